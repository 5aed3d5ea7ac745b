//! Automatic updates end to end: a real agent inventories a real `dockerd`, finds newer tags
//! on a real registry by its containers' `unity.update` policies, and the controller queues
//! (and the agent runs) the update by itself — only where the policy allows it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use unity_agent::jobs::JobOptions;
use unity_agent::reports::inventory::HostInventory;
use unity_agent::run::RunOptions;
use unity_collect::databases::DiscoveryOptions;
use unity_collect::runner::SystemRunner;
use unity_e2e::engines::{Behaviour, Dockerd, Registry, present};
use unity_e2e::{AgentTask, Harness, fast_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minor_policy_moves_a_container_to_the_newest_minor_tag_by_itself() {
    let Some(busybox) = present("busybox-static", &["/bin/busybox", "/usr/bin/busybox"]) else {
        return;
    };
    let Some(engine) = Dockerd::start() else {
        return;
    };
    let Some(registry) = Registry::start(engine.dir.path()) else {
        return;
    };
    let repo = format!("{}/homelab/app", registry.addr);
    for version in ["1.0.0", "1.0.1", "1.1.0", "2.0.0"] {
        engine.build_and_push(
            &busybox,
            Behaviour::Healthy,
            &format!("v{version}"),
            &format!("{repo}:{version}"),
        );
    }
    let start = format!("{repo}:1.0.0");
    engine.docker(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--label",
        "unity.update=minor",
        &start,
    ]);
    engine.docker(&[
        "run",
        "-d",
        "--name",
        "watched",
        "--label",
        "unity.update=notify",
        &start,
    ]);
    engine.docker(&["run", "-d", "--name", "plain", &start]);

    let h = Harness::start().await;
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let token = h.operate_token(tenant.id).await;
    let state = h.enroll("docker-host", tenant.id).await;
    let host = state.enrollment.host_id;
    let containers = engine.config();
    let task = AgentTask::spawn(
        state,
        RunOptions {
            report_interval: Some(Duration::from_millis(500)),
            inventory: Some(Arc::new(HostInventory::new(
                containers.clone(),
                SystemRunner,
                PathBuf::from("/proc"),
                DiscoveryOptions::default(),
            ))),
            jobs: JobOptions {
                containers,
                ..JobOptions::default()
            },
            ..fast_options()
        },
    );
    // The controller's sweep (every second in the harness) finds the candidate and queues.
    let mut job = serde_json::Value::Null;
    for _ in 0..600 {
        let (_, jobs) = h.api(&format!("/api/v1/jobs?host_id={host}"), &token).await;
        if let Some(found) = jobs.as_array().and_then(|j| j.first()).cloned() {
            job = found;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job["requested_by"], "policy:minor", "{job}");
    assert_eq!(job["target"], "container:svc", "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let job = h
        .wait_for_job(&token, &id, Duration::from_secs(120), |j| {
            !matches!(
                j["state"].as_str(),
                Some("queued" | "dispatched" | "running")
            )
        })
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(
        job["params"]["image"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{repo}:1.1.0@sha256:")),
        "{job}"
    );
    assert_eq!(
        engine.docker(&["exec", "svc", "cat", "/marker"]),
        "v1.1.0",
        "minor: 1.1.0, not 2.0.0"
    );
    assert_eq!(
        engine.inspect("{{.Config.Image}}", "svc"),
        format!("{repo}:1.1.0")
    );
    // Nothing more is queued: `svc` is on its newest minor, the others only notify.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, jobs) = h.api(&format!("/api/v1/jobs?host_id={host}"), &token).await;
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(
        engine.docker(&["exec", "watched", "cat", "/marker"]),
        "v1.0.0"
    );
    assert_eq!(
        engine.docker(&["exec", "plain", "cat", "/marker"]),
        "v1.0.0"
    );
    task.stop().await;
}
