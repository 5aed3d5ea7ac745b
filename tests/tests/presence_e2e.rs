//! A host that stops reporting is told once (`host_silent`, warning) and its return too
//! (info) — real agent run loop, real QUIC, real PostgreSQL; the controller's silence
//! threshold shortened to 3 s for the test (the default is three report intervals, at least
//! 5 minutes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use unity_agent::state::AgentState;
use unity_e2e::{AgentTask, Harness, fast_options};

async fn silent_alerts(h: &Harness, token: &str, host: uuid::Uuid) -> Vec<Value> {
    let (_, alerts) = h
        .api(&format!("/api/v1/alerts?host_id={host}"), token)
        .await;
    let mut found: Vec<Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "host_silent")
        .cloned()
        .collect();
    found.reverse(); // oldest first
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_stops_reporting_is_told_once_and_its_return_too() {
    let mut h = Harness::start().await;
    let quic = h.stop_controller().await;
    h.start_controller_with(|options| {
        options.quic_listen = quic;
        options.silent_after = Duration::from_secs(3);
    })
    .await;
    let home = h.store.create_tenant("home").await.unwrap();
    let token = h.store.create_api_token(home.id, "read").await.unwrap();
    let state = h.enroll("nas", home.id).await;
    let host = state.enrollment.host_id;
    let dir = state.dir.clone();
    let agent = AgentTask::spawn(state, fast_options());
    h.wait_for_facts(&token, host).await;
    // Reporting every second: never silent.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(silent_alerts(&h, &token, host).await.is_empty());

    agent.stop().await;
    let mut alerts = Vec::new();
    for _ in 0..200 {
        alerts = silent_alerts(&h, &token, host).await;
        if !alerts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["current"], "silent");
    assert_eq!(alerts[0]["severity"], "warning");
    assert_eq!(alerts[0]["object_kind"], "host");
    // Still silent a while later: told once, not every sweep.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(silent_alerts(&h, &token, host).await.len(), 1);

    let agent = AgentTask::spawn(AgentState::load(&dir).unwrap(), fast_options());
    for _ in 0..200 {
        alerts = silent_alerts(&h, &token, host).await;
        if alerts.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(alerts[1]["current"], "reporting");
    assert_eq!(alerts[1]["severity"], "info");
    agent.stop().await;
}
