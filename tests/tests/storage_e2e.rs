//! End to end for storage health: an agent whose collectors read recorded real tool outputs
//! (through the same runner seam the real tools use) reports a failing disk, a degraded pool
//! and a degraded array over real QUIC; the controller stores them in a real PostgreSQL; the
//! tenant's API shows them and raises each alert once; the other tenant sees nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use unity_agent::run::RunOptions;
use unity_e2e::{AgentTask, Harness, fast_options};

fn array(value: &Value) -> &Vec<Value> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON array, got {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_disk_degraded_pool_and_array_reach_only_their_tenant_with_one_alert_each() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let b = h.store.create_tenant("beta").await.unwrap();
    let token_a = h.store.create_api_token(a.id, "t").await.unwrap();
    let token_b = h.store.create_api_token(b.id, "t").await.unwrap();
    let state = h.enroll("nas", a.id).await;
    let host_id = state.enrollment.host_id;
    let storage = unity_agent::testing::recorded_storage(h.dir.path()).unwrap();
    let agent = AgentTask::spawn(
        state,
        RunOptions {
            report_interval: Some(Duration::from_secs(5)),
            storage_interval: Duration::from_millis(300),
            storage: Some(Arc::new(storage)),
            ..fast_options()
        },
    );

    let mut disks = Value::Null;
    for _ in 0..150 {
        let (status, body) = h.api("/api/v1/disks", &token_a).await;
        if status == 200 && !array(&body).is_empty() {
            disks = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let disks = array(&disks);
    assert!(!disks.is_empty(), "no disks ever appeared");
    let failing = disks
        .iter()
        .find(|d| d["health"] == "critical")
        .unwrap_or_else(|| panic!("no critical disk in {disks:?}"));
    assert_eq!(failing["host_id"], host_id.to_string());
    assert!(
        failing["reasons"].to_string().contains("114"),
        "reasons name the 114% wear: {failing}"
    );
    let disk_id = failing["id"].as_str().unwrap().to_owned();

    let (status, detail) = h.api(&format!("/api/v1/disks/{disk_id}"), &token_a).await;
    assert_eq!(status, 200, "{detail}");
    assert!(!array(&detail["history"]).is_empty(), "{detail}");

    let (_, pools) = h.api("/api/v1/pools", &token_a).await;
    let pool = &array(&pools)[0];
    assert_eq!(pool["state"], "DEGRADED", "{pool}");
    assert_eq!(pool["health"], "critical", "{pool}");

    let (_, arrays) = h.api("/api/v1/arrays", &token_a).await;
    let md = &array(&arrays)[0];
    assert_eq!(md["degraded"], true, "{md}");
    assert_eq!(md["level"], "raid5", "{md}");

    let (status, summary) = h
        .api(&format!("/api/v1/hosts/{host_id}/storage"), &token_a)
        .await;
    assert_eq!(status, 200, "{summary}");

    // Let several more identical rounds arrive: alerts must not repeat.
    let (_, first_alerts) = h.api("/api/v1/alerts", &token_a).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, alerts) = h.api("/api/v1/alerts", &token_a).await;
    let alerts = array(&alerts);
    assert_eq!(
        alerts.len(),
        array(&first_alerts).len(),
        "alerts repeated: {alerts:?}"
    );
    let count = |kind: &str, severity: &str| {
        alerts
            .iter()
            .filter(|a| a["object_kind"] == kind && a["severity"] == severity)
            .count()
    };
    assert_eq!(count("disk", "critical"), 1, "{alerts:?}");
    assert_eq!(count("pool", "critical"), 1, "{alerts:?}");
    assert!(
        alerts.iter().any(|a| a["object_kind"] == "array"),
        "{alerts:?}"
    );

    // The other tenant sees none of it.
    for path in [
        "/api/v1/disks",
        "/api/v1/pools",
        "/api/v1/arrays",
        "/api/v1/alerts",
    ] {
        let (status, body) = h.api(path, &token_b).await;
        assert_eq!(status, 200, "{path}");
        assert!(array(&body).is_empty(), "{path} leaks: {body}");
    }
    for path in [
        format!("/api/v1/disks/{disk_id}"),
        format!("/api/v1/pools/{}", pool["id"].as_str().unwrap()),
        format!("/api/v1/arrays/{}", md["id"].as_str().unwrap()),
        format!("/api/v1/hosts/{host_id}/storage"),
    ] {
        let (status, _) = h.api(&path, &token_b).await;
        assert_eq!(status, 404, "{path}");
    }

    // /proc/mdstat turns into something that is not mdstat at all: the md source's round
    // ends `failed` with the parser's error in the API, and the known array is kept.
    let mdstat = h.dir.path().join("mdstat");
    std::fs::write(&mdstat, "hello\nworld\n").unwrap();
    let mdraid = wait_for_source(&h, &token_a, host_id, |c| c["state"] == "failed").await;
    assert!(
        mdraid["detail"]
            .as_str()
            .unwrap()
            .contains("line 1: unexpected text \"hello\""),
        "{mdraid}"
    );
    let (_, arrays) = h.api("/api/v1/arrays", &token_a).await;
    assert_eq!(array(&arrays).len(), 1, "{arrays}");

    // A file with one unreadable line: the source is `ok` again and the array is kept as a
    // partial record, never healthy, with the line named in its reasons.
    std::fs::write(
        &mdstat,
        "Personalities : [raid1]\nmd9 : active raid1 sdb1[1] sda1[0]\n      1048512 blocks super 1.2 [2/2] [UU]\n      bitmap: garbled beyond reading\n\nunused devices: <none>\n",
    )
    .unwrap();
    wait_for_source(&h, &token_a, host_id, |c| c["state"] == "ok").await;
    let mut md9 = Value::Null;
    for _ in 0..150 {
        let (_, arrays) = h.api("/api/v1/arrays", &token_a).await;
        if let Some(a) = array(&arrays).iter().find(|a| a["name"] == "md9") {
            md9 = a.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(md9["health"], "warning", "{md9}");
    assert!(
        md9["reasons"].to_string().contains("partial record")
            && md9["reasons"].to_string().contains("line 4"),
        "{md9}"
    );

    agent.stop().await;
}

/// Polls the host's storage summary until the `mdraid` source matches `done`.
async fn wait_for_source(
    h: &Harness,
    token: &str,
    host_id: uuid::Uuid,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..150 {
        let (_, summary) = h
            .api(&format!("/api/v1/hosts/{host_id}/storage"), token)
            .await;
        if let Some(c) = summary["collectors"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["source"] == "mdraid"))
        {
            if done(c) {
                return c.clone();
            }
            last = c.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the mdraid source never reached the expected state; last: {last}");
}
