//! Packages end to end with real processes' parts: a real agent run loop reporting what the
//! **real** apt (in a private apt world, `unity_e2e::apt`) says is pending, the controller
//! storing it under row-level security, the API showing it only to its tenant, and a
//! `package_upgrade` job created through the API applying it — after which the next report
//! shows nothing pending and the reboot the upgrade asked for (an alert).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use unity_agent::jobs::JobOptions;
use unity_agent::jobs::package_upgrade::PackageJobOptions;
use unity_agent::run::RunOptions;
use unity_e2e::apt::{AptRoot, Postinst};
use unity_e2e::{AgentTask, Harness, fast_options};

async fn packages_where(
    h: &Harness,
    token: &str,
    host: uuid::Uuid,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..300 {
        let (status, body) = h
            .api(&format!("/api/v1/hosts/{host}/packages"), token)
            .await;
        if status == 200 && done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("packages never matched: {last:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_updates_are_reported_upgraded_through_the_api_and_the_reboot_is_raised() {
    let Some(apt) = AptRoot::new() else { return };
    apt.publish("unity-app", "1.0", Postinst::Succeeds);
    apt.apt_get(&["-q", "update"]);
    apt.apt_get(&["-y", "-q", "install", "unity-app"]);
    apt.publish("unity-app", "2.0", Postinst::RequiresReboot);
    apt.apt_get(&["-q", "update"]);

    let h = Harness::start().await;
    let home = h.store.create_tenant("home").await.unwrap();
    let other = h.store.create_tenant("other").await.unwrap();
    let token = h.store.create_api_token(home.id, "read").await.unwrap();
    let other_token = h.store.create_api_token(other.id, "read").await.unwrap();
    let ops = h.operate_token(home.id).await;
    let state = h.enroll("nas", home.id).await;
    let host = state.enrollment.host_id;
    let agent = AgentTask::spawn(
        state,
        RunOptions {
            packages: Some(apt.config()),
            packages_interval: Duration::from_secs(3600),
            jobs: JobOptions {
                allow: vec!["package_upgrade".into()],
                packages: PackageJobOptions {
                    apt: apt.config(),
                    ..PackageJobOptions::default()
                },
                ..JobOptions::default()
            },
            ..fast_options()
        },
    );

    let before = packages_where(&h, &token, host, |p| p["pending_count"] == 1).await;
    assert_eq!(before["manager"], "apt");
    assert_eq!(before["pending"][0]["name"], "unity-app");
    assert_eq!(before["pending"][0]["current_version"], "1.0");
    assert_eq!(before["pending"][0]["new_version"], "2.0");
    assert_eq!(before["reboot_required"], false);
    // Another tenant cannot see it, not even that it exists.
    let (status, _) = h
        .api(&format!("/api/v1/hosts/{host}/packages"), &other_token)
        .await;
    assert_eq!(status, 404);

    let (status, job) = h
        .post(
            "/api/v1/jobs",
            &ops,
            serde_json::json!({ "host_id": host, "kind": "package_upgrade",
                "params": { "scope": "all", "reboot": "never" } }),
        )
        .await;
    assert_eq!(status, 201, "{job:#}");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = h
        .wait_for_job(&token, &id, Duration::from_secs(120), |j| {
            j["state"] == "succeeded" || j["state"] == "failed"
        })
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert!(
        done["result_summary"]
            .as_str()
            .unwrap()
            .contains("needs a reboot"),
        "{done:#}"
    );
    assert_eq!(apt.installed("unity-app").as_deref(), Some("2.0 ii"));

    // The job made the agent read its packages again: nothing pending, a reboot required.
    let after = packages_where(&h, &token, host, |p| p["pending_count"] == 0).await;
    assert_eq!(after["reboot_required"], true, "{after:#}");
    assert_eq!(after["reboot_required_by"][0], "unity-app");
    let (_, alerts) = h
        .api(&format!("/api/v1/alerts?host_id={host}"), &token)
        .await;
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "reboot_required" && a["object_kind"] == "host"),
        "{alerts:#}"
    );
    agent.stop().await;
}
