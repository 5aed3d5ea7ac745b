//! End to end for the inventory: a real `redis-server` started by the test is discovered by
//! the agent through the real `/proc` and a real probe, reported over real QUIC, stored in a
//! real PostgreSQL and shown by the tenant's API; the container source reports "no engine"
//! (this test points it at no socket) and the other tenant sees nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use unity_agent::reports::inventory::HostInventory;
use unity_agent::run::RunOptions;
use unity_collect::containers::ContainerConfig;
use unity_collect::databases::DiscoveryOptions;
use unity_collect::runner::SystemRunner;
use unity_e2e::{AgentTask, Harness, fast_options};

fn redis_server() -> Option<PathBuf> {
    let found = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "redis-server must be installed in CI (.ci/setup-databases.sh)"
        );
        eprintln!("skipped: redis-server is not installed");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_redis_on_this_host_reaches_its_tenant_api() {
    let Some(redis) = redis_server() else { return };
    let port = free_port();
    let redis_dir = tempfile::tempdir().unwrap();
    let _redis = KillOnDrop(
        std::process::Command::new(&redis)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--dir"])
            .arg(redis_dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let expected_version = {
        let out = std::process::Command::new(&redis)
            .arg("--version")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "Redis server v=7.0.15 sha=..."
        text.split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .unwrap()
            .to_owned()
    };

    let h = Harness::start_with(Duration::from_secs(5), Duration::from_secs(3600)).await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let b = h.store.create_tenant("beta").await.unwrap();
    let token_a = h.store.create_api_token(a.id, "t").await.unwrap();
    let token_b = h.store.create_api_token(b.id, "t").await.unwrap();
    let state = h.enroll("db-host", a.id).await;
    let host_id = state.enrollment.host_id;
    let inventory = HostInventory::new(
        ContainerConfig {
            honour_docker_host: false,
            endpoints: Vec::new(),
            ..ContainerConfig::default()
        },
        SystemRunner,
        PathBuf::from("/proc"),
        DiscoveryOptions::default(),
    );
    let agent = AgentTask::spawn(
        state,
        RunOptions {
            inventory_interval: Duration::from_millis(500),
            inventory: Some(Arc::new(inventory)),
            ..fast_options()
        },
    );

    let listen = format!("127.0.0.1:{port}");
    let mut found = Value::Null;
    for _ in 0..150 {
        let (status, body) = h.api("/api/v1/databases?kind=redis", &token_a).await;
        if status == 200
            && let Some(db) = body.as_array().and_then(|dbs| {
                dbs.iter()
                    .find(|d| d["listen"].to_string().contains(&listen))
            })
        {
            found = db.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!found.is_null(), "redis on {listen} never appeared");
    assert_eq!(found["host_id"], host_id.to_string());
    assert_eq!(found["version"], expected_version, "{found}");
    assert_eq!(found["probe"], "confirmed", "{found}");
    let db_id = found["id"].as_str().unwrap().to_owned();

    let (status, summary) = h
        .api(&format!("/api/v1/hosts/{host_id}/inventory"), &token_a)
        .await;
    assert_eq!(status, 200, "{summary}");
    let (_, containers) = h.api("/api/v1/containers", &token_a).await;
    assert_eq!(containers, serde_json::json!([]));

    for path in ["/api/v1/databases", "/api/v1/containers", "/api/v1/images"] {
        let (status, body) = h.api(path, &token_b).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            body,
            serde_json::json!([]),
            "{path} leaks to another tenant"
        );
    }
    for path in [
        format!("/api/v1/databases/{db_id}"),
        format!("/api/v1/hosts/{host_id}/inventory"),
    ] {
        let (status, _) = h.api(&path, &token_b).await;
        assert_eq!(status, 404, "{path}");
    }

    agent.stop().await;
}
