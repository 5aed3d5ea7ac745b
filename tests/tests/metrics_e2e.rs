//! Prometheus metrics end to end: an agent reporting real recorded storage (a failing drive,
//! a degraded pool and array), the controller's `/metrics` and the tenant's
//! `/api/v1/metrics`, both checked by the real `promtool check metrics` (Debian's
//! `prometheus` package) and for the values they must show.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use unity_e2e::Harness;

async fn text(h: &Harness, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request =
        unity_e2e::http_client().get(format!("http://{}{path}", h.controller().api_addr));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// `promtool check metrics` on `exposition`; `None` when promtool is not installed.
fn promtool(exposition: &str) -> Option<(bool, String)> {
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "promtool is required under CI (apt-get install prometheus)"
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success() && said.trim().is_empty(), said))
}

fn value(exposition: &str, metric: &str, label_part: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(metric) && l.contains(label_part))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_endpoints_pass_promtool_and_show_the_fleet() {
    let h = Harness::start().await;
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let token = h.store.create_api_token(tenant.id, "read").await.unwrap();
    let other = h.store.create_tenant("other").await.unwrap();
    let other_token = h.store.create_api_token(other.id, "read").await.unwrap();
    let state = h.enroll("nas", tenant.id).await;
    let host = state.enrollment.host_id;
    let (agent, _scratch) = unity_e2e::spawn_with_recorded_storage(state);
    let mut fleet = String::new();
    for _ in 0..200 {
        let (status, body) = text(&h, "/api/v1/metrics", Some(&token)).await;
        assert_eq!(status, 200);
        fleet = body;
        if fleet.contains("unity_pool_health{") && fleet.contains("unity_array_degraded{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let host_label = format!("host_id=\"{host}\"");
    assert_eq!(
        value(&fleet, "unity_disk_health{", "device=\"/dev/nvme0\""),
        Some(3.0),
        "the failing drive is critical:\n{fleet}"
    );
    assert_eq!(
        value(&fleet, "unity_disk_health{", "device=\"/dev/nvme1\""),
        Some(0.0),
        "{fleet}"
    );
    assert!(value(&fleet, "unity_disk_temperature_celsius{", "/dev/nvme1").is_some());
    assert_eq!(
        value(&fleet, "unity_array_degraded{", &host_label),
        Some(1.0)
    );
    assert_eq!(value(&fleet, "unity_pool_online{", &host_label), Some(0.0));
    assert_eq!(value(&fleet, "unity_host_silent{", &host_label), Some(0.0));
    assert!(
        value(
            &fleet,
            "unity_host_last_seen_timestamp_seconds{",
            &host_label
        )
        .unwrap()
            > 1.7e9
    );
    // Another tenant's token sees none of it; no token sees nothing.
    let (_, theirs) = text(&h, "/api/v1/metrics", Some(&other_token)).await;
    assert!(!theirs.contains(&host.to_string()), "{theirs}");
    let (status, _) = text(&h, "/api/v1/metrics", None).await;
    assert_eq!(status, 401);

    let (status, controller) = text(&h, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        value(
            &controller,
            "unity_reports_ingested_total{",
            "kind=\"storage\""
        )
        .unwrap()
            >= 1.0,
        "{controller}"
    );
    assert_eq!(value(&controller, "unity_agent_sessions", ""), Some(1.0));
    assert_eq!(value(&controller, "unity_store_up", ""), Some(1.0));
    // The built-in CA's end, years ahead.
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    let ca_end = value(&controller, "unity_ca_expiry_timestamp_seconds", "").unwrap();
    assert!(ca_end > now + 365.0 * 86400.0, "{ca_end}");
    assert!(controller.contains("unity_ingest_duration_seconds_bucket{"));
    assert!(
        !controller.contains(&host.to_string()) && !controller.contains("homelab"),
        "the controller's own metrics name no tenant's objects"
    );
    for (what, exposition) in [("fleet", &fleet), ("controller", &controller)] {
        if let Some((clean, said)) = promtool(exposition) {
            assert!(
                clean,
                "promtool on the {what} metrics:\n{said}\n{exposition}"
            );
        }
    }
    agent.stop().await;
}
