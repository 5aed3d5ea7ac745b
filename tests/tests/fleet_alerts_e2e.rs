//! The alerts people miss, end to end: a host certificate about to lapse because its host
//! did not renew it (and the all-clear once the host came back and renewed), and an agent
//! older than its controller (once per version, and its update).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use unity_e2e::{AgentTask, Harness, fast_options, open_session};
use unity_protocol::latest::ReportBody;

async fn alerts_of_kind(h: &Harness, token: &str, kind: &str) -> Vec<Value> {
    let (_, alerts) = h.api("/api/v1/alerts", token).await;
    let mut of_kind: Vec<Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind)
        .cloned()
        .collect();
    of_kind.reverse();
    of_kind
}

async fn wait_alerts(h: &Harness, token: &str, kind: &str, n: usize) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..400 {
        found = alerts_of_kind(h, token, kind).await;
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_not_renewed_in_time_alerts_and_its_renewal_clears_it() {
    // 20 s certificates: renewal is due at ~13 s, the alert at 15 s (a quarter left).
    let h = Harness::start_with(Duration::from_secs(1), Duration::from_secs(20)).await;
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let token = h.store.create_api_token(tenant.id, "read").await.unwrap();
    // Enrolled, then offline: nothing renews its certificate.
    let state = h.enroll("laptop", tenant.id).await;
    let raised = wait_alerts(&h, &token, "certificate_expiring", 1).await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["severity"], "warning");
    assert!(
        raised[0]["message"]
            .as_str()
            .unwrap()
            .contains("was not renewed"),
        "{raised:?}"
    );
    // Once, not every sweep.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        alerts_of_kind(&h, &token, "certificate_expiring")
            .await
            .len(),
        1
    );
    // The host comes back in time: its agent renews at once, and the alert clears.
    let agent = AgentTask::spawn(state, fast_options());
    let cleared = wait_alerts(&h, &token, "certificate_expiring", 2).await;
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert_eq!(cleared[1]["severity"], "info");
    assert_eq!(cleared[1]["current"], "valid");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_behind_its_controller_is_told_once_per_version_and_when_current() {
    let h = Harness::start().await;
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let token = h.store.create_api_token(tenant.id, "read").await.unwrap();
    let state = h.enroll("nas", tenant.id).await;
    let mut session = open_session(&state).await.unwrap();
    let mut facts = unity_agent::reports::host::collect();
    let now = || time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for version in ["0.2.0", "0.2.0", "0.2.0"] {
        facts.agent_version = version.into();
        session
            .send(now(), ReportBody::HostFacts(facts.clone()))
            .await
            .unwrap();
    }
    let behind = alerts_of_kind(&h, &token, "agent_outdated").await;
    assert_eq!(behind.len(), 1, "once for 0.2.0: {behind:?}");
    assert_eq!(behind[0]["severity"], "warning");
    assert_eq!(behind[0]["current"], "0.2.0");
    assert!(
        behind[0]["message"]
            .as_str()
            .unwrap()
            .contains(unity_controller::VERSION)
    );
    facts.agent_version = unity_controller::VERSION.into();
    session
        .send(now(), ReportBody::HostFacts(facts.clone()))
        .await
        .unwrap();
    let all = alerts_of_kind(&h, &token, "agent_outdated").await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1]["severity"], "info");
    assert_eq!(all[1]["previous"], "0.2.0");
    session.close();
}
