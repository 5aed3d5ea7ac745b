//! Nothing collected is lost to an outage: the controller goes away for several storage
//! rounds, the agent is restarted in the middle of it, the controller comes back — and every
//! round collected meanwhile arrives, in order, with the time it was collected, so the disk
//! history has no gap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use unity_agent::reports::storage::StorageCollector;
use unity_agent::run::RunOptions;
use unity_agent::state::AgentState;
use unity_e2e::{AgentTask, Harness, fast_options};

fn options(storage: Arc<dyn StorageCollector>) -> RunOptions {
    RunOptions {
        report_interval: Some(Duration::from_millis(500)),
        storage_interval: Duration::from_secs(1),
        storage: Some(storage),
        ..fast_options()
    }
}

/// Collection times of a disk's history, oldest first.
async fn history(h: &Harness, token: &str) -> Vec<OffsetDateTime> {
    let (_, disks) = h.api("/api/v1/disks", token).await;
    let Some(id) = disks
        .as_array()
        .and_then(|d| d.first())
        .map(|d| d["id"].as_str().unwrap().to_owned())
    else {
        return Vec::new();
    };
    let (_, disk) = h
        .api(&format!("/api/v1/disks/{id}?limit=1000"), token)
        .await;
    let mut times: Vec<OffsetDateTime> = disk["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| OffsetDateTime::parse(s["collected_at"].as_str().unwrap(), &Rfc3339).unwrap())
        .collect();
    times.sort();
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_with_an_agent_restart_loses_no_storage_round() {
    let mut h = Harness::start().await;
    let tenant = h.store.create_tenant("alpha").await.unwrap();
    let token = h.store.create_api_token(tenant.id, "t").await.unwrap();
    let state = h.enroll("nas", tenant.id).await;
    let state_dir = state.dir.clone();
    let scratch = tempfile::tempdir().unwrap();
    let storage: Arc<dyn StorageCollector> =
        Arc::new(unity_agent::testing::recorded_storage(scratch.path()).unwrap());
    let agent = AgentTask::spawn(state, options(storage.clone()));
    for _ in 0..100 {
        if history(&h, &token).await.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        history(&h, &token).await.len() >= 2,
        "storage rounds arrive while connected"
    );

    // The controller goes away.
    let down_at = OffsetDateTime::now_utc();
    let quic = h.stop_controller().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The agent restarts in the middle of the outage (what it spooled is on disk).
    agent.stop().await;
    let spooled = std::fs::read_dir(state_dir.join("spool"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "rpt")
        })
        .count();
    assert!(
        spooled >= 4,
        "rounds spooled while the controller was away: {spooled}"
    );
    let agent = AgentTask::spawn(AgentState::load(&state_dir).unwrap(), options(storage));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let up_at = OffsetDateTime::now_utc();
    h.start_controller_on(quic).await;

    // The backlog arrives: the history covers the outage with no gap wider than a round or two.
    let mut times = Vec::new();
    for _ in 0..300 {
        times = history(&h, &token).await;
        if times.iter().any(|t| *t > up_at) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during: Vec<&OffsetDateTime> = times
        .iter()
        .filter(|t| **t > down_at && **t < up_at)
        .collect();
    assert!(
        during.len() >= 6,
        "rounds collected during the 8 s outage: {}",
        during.len()
    );
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap < time::Duration::seconds(3),
            "gap of {gap} in the history: {times:?}"
        );
    }
    // The controller knows the spool's state and that nothing was dropped.
    let host = AgentState::load(&state_dir).unwrap().enrollment.host_id;
    let (_, detail) = h.api(&format!("/api/v1/hosts/{host}"), &token).await;
    assert_eq!(detail["agent_status"]["dropped_reports"], 0, "{detail}");
    // And the spool drains: what is left is at most what was collected in the last moment.
    let spooled = || {
        std::fs::read_dir(state_dir.join("spool"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "rpt")
            })
            .count()
    };
    let mut left = spooled();
    for _ in 0..100 {
        if left <= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = spooled();
    }
    assert!(left <= 2, "the spool drains once delivered: {left} left");
    agent.stop().await;
}

/// The database, not the controller, goes away: sessions are closed with `UNAVAILABLE` and a
/// `retry_after` hint (the agent comes back then instead of backing off further), rounds
/// collected meanwhile stay in the spool, and they all arrive once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_waited_out_and_its_rounds_arrive() {
    use unity_protocol::latest::close_code;
    let mut h = Harness::start().await;
    let tenant = h.store.create_tenant("alpha").await.unwrap();
    let token = h.store.create_api_token(tenant.id, "t").await.unwrap();
    let state = h.enroll("nas", tenant.id).await;
    let probe = h.enroll("probe", tenant.id).await;
    let scratch = tempfile::tempdir().unwrap();
    let storage: Arc<dyn StorageCollector> =
        Arc::new(unity_agent::testing::recorded_storage(scratch.path()).unwrap());
    let agent = AgentTask::spawn(state, options(storage));
    for _ in 0..100 {
        if history(&h, &token).await.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(history(&h, &token).await.len() >= 2);

    let down_at = OffsetDateTime::now_utc();
    h.pg.stop().await.unwrap();
    // A session opened now is closed with the hint.
    let tls = unity_pki::tls::agent_client_config(
        &probe.ca,
        vec![probe.certificate.clone()],
        probe.private_key_der(),
    )
    .unwrap();
    let addr = unity_agent::link::resolve(&probe.enrollment.controller)
        .await
        .unwrap();
    let (_endpoint, connection) = unity_agent::link::connect(addr, tls).await.unwrap();
    let opened = unity_agent::link::Session::open(connection.clone(), "probe").await;
    assert!(opened.is_err(), "no session without a database");
    match connection.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(close)) => {
            assert_eq!(close.error_code, close_code::UNAVAILABLE.into());
            assert_eq!(close_code::retry_after(&close.reason), Some(5));
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let up_at = OffsetDateTime::now_utc();
    h.pg.start_again().await.unwrap();

    let mut times = Vec::new();
    for _ in 0..300 {
        times = history(&h, &token).await;
        if times.iter().any(|t| *t > up_at) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = times
        .iter()
        .filter(|t| **t > down_at && **t < up_at)
        .count();
    assert!(
        during >= 3,
        "rounds collected during the 4 s database outage arrive: {during} in {times:?}"
    );
    agent.stop().await;
}
