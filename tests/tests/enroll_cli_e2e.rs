//! Enrollment as an operator runs it, with the real `unity-agent` command line: an unwritable
//! state directory fails before the token is spent; `enroll --force` retires the host record
//! it replaces; `status` says what the agent is and holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use unity_e2e::Harness;

const AGENT: &str = env!("CARGO_BIN_EXE_e2e-agent");

fn agent(args: &[&str]) -> (bool, String) {
    let out = Command::new(AGENT).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_leaves_no_debris_and_status_tells_the_state() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let token = h.store.create_api_token(a.id, "t").await.unwrap();
    let controller = h.controller().quic_addr.to_string();
    let fingerprint = h.controller().ca_fingerprint.to_string();
    let enroll = |dir: &str, token: &str, force: bool| {
        let mut args = vec![
            "--state-dir",
            dir,
            "enroll",
            "--controller",
            &controller,
            "--token",
            token,
            "--ca-fingerprint",
            &fingerprint,
        ];
        if force {
            args.push("--force");
        }
        agent(&args)
    };

    // A state directory that cannot exist (its parent is a file): refused before the token
    // is sent, so the same token still enrolls elsewhere.
    let blocker = h.dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let bad = blocker.join("agent");
    let enroll_token = h.enrollment_token(a.id).await;
    let (ok, out) = enroll(bad.to_str().unwrap(), &enroll_token, false);
    assert!(!ok, "{out}");
    assert!(
        out.contains("not writable") && out.contains("unspent"),
        "{out}"
    );
    let good = h.dir.path().join("agent");
    let (ok, out) = enroll(good.to_str().unwrap(), &enroll_token, false);
    assert!(ok, "{out}");
    let (_, hosts) = h.api("/api/v1/hosts", &token).await;
    assert_eq!(
        hosts.as_array().unwrap().len(),
        1,
        "no orphan from the refused attempt: {hosts}"
    );
    let first = hosts[0]["id"].as_str().unwrap().to_owned();

    // status
    let (ok, out) = agent(&["--state-dir", good.to_str().unwrap(), "status"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&first) && out.contains("certificate:  valid until"),
        "{out}"
    );
    assert!(out.contains("spool:") && out.contains("jobs:"), "{out}");
    let (ok, out) = agent(&[
        "--state-dir",
        h.dir.path().join("nothing").to_str().unwrap(),
        "status",
    ]);
    assert!(!ok && out.contains("not enrolled"), "{out}");

    // Re-enrolling with --force retires the record it replaces.
    let (ok, out) = enroll(
        good.to_str().unwrap(),
        &h.enrollment_token(a.id).await,
        true,
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("retired the previous enrollment (host {first})")),
        "{out}"
    );
    let (_, old) = h.api(&format!("/api/v1/hosts/{first}"), &token).await;
    assert!(old["revoked_at"].is_string(), "{old}");
    let (_, hosts) = h.api("/api/v1/hosts", &token).await;
    let active: Vec<_> = hosts
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["revoked_at"].is_null())
        .collect();
    assert_eq!(active.len(), 1, "{hosts}");
    assert_ne!(active[0]["id"], first.as_str());
}

/// The admin API does what the CLI does: an enrollment token whose printed command enrolls a
/// real agent as printed (the controller's address as the request reached it), API tokens
/// created, listed and revoked (a revoked one is refused from then on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_enrolls_hosts_and_manages_tokens() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let admin = h
        .store
        .create_scoped_api_token(a.id, "admin", unity_e2e::Scope::Admin)
        .await
        .unwrap();
    let (status, enrollment) = h
        .post("/api/v1/enrollment-tokens", &admin, serde_json::json!({}))
        .await;
    assert_eq!(status, 201, "{enrollment}");
    let command = enrollment["command"].as_str().unwrap();
    assert_eq!(
        enrollment["controller"],
        format!("127.0.0.1:{}", h.controller().quic_addr.port())
    );
    // Run exactly the printed command (with a state directory of the test's).
    let state = h.dir.path().join("api-enrolled");
    let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let state_arg = state.to_str().unwrap();
    args.splice(0..0, ["--state-dir", state_arg]);
    let (ok, out) = agent(&args);
    assert!(ok, "{command}: {out}");
    assert!(out.contains("enrolled: tenant"), "{out}");
    let host = unity_agent::state::AgentState::load(&state)
        .unwrap()
        .enrollment
        .host_id;
    // Revoked (kept), then deleted with its data.
    let (status, revoked) = h
        .post(
            &format!("/api/v1/hosts/{host}/revoke"),
            &admin,
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let response = unity_e2e::http_client()
        .delete(format!(
            "http://{}/api/v1/hosts/{host}",
            h.controller().api_addr
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let (status, _) = h.api(&format!("/api/v1/hosts/{host}"), &admin).await;
    assert_eq!(status, 404);

    let (status, created) = h
        .post(
            "/api/v1/tokens",
            &admin,
            serde_json::json!({ "name": "grafana", "scope": "read" }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let (status, _) = h.api("/api/v1/hosts", &token).await;
    assert_eq!(status, 200);
    let (_, tokens) = h.api("/api/v1/tokens", &admin).await;
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "grafana")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !tokens.to_string().contains(&token),
        "never the token itself"
    );
    let (status, revoked) = h
        .post(
            &format!("/api/v1/tokens/{id}/revoke"),
            &admin,
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (status, _) = h.api("/api/v1/hosts", &token).await;
    assert_eq!(status, 401, "a revoked token is refused");
    // A read token administers nothing.
    let (status, _) = h
        .post("/api/v1/tokens", &token, serde_json::json!({ "name": "x" }))
        .await;
    assert_eq!(status, 401);
}
