//! A controller lost and brought back from its backup, as an operator does it with the real
//! command line on the embedded default: `backup` while it serves with an enrolled agent
//! reporting, the whole data directory deleted, `restore` into the empty place, `serve` again.
//! The same agent — never touched, never re-enrolled — reconnects with the certificate it
//! holds, the API answers the same data to the same token, and a signed job still runs (the
//! job key came back too). Around it: a damaged archive is refused before anything is written,
//! a restore over an existing controller is refused without `--force`, and a restore under a
//! running controller is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use unity_e2e::engines::free_port;
use unity_e2e::process::{Process, run_to_end};

const CONTROLLER: &str = env!("CARGO_BIN_EXE_e2e-controller");
const AGENT: &str = env!("CARGO_BIN_EXE_e2e-agent");

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a command line; (succeeded, stdout + stderr).
fn attempt(program: &str, args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut command = Command::new(program);
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    match http.get(url).bearer_auth(token).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn wait_for<T>(what: &str, within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn has_state(data: &Path) -> bool {
    data.join("ca/ca.key.pem").exists() || data.join("job-signing.pk8").exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_deleted_and_restored_from_its_backup_takes_its_agents_back() {
    // PostgreSQL runs as `postgres` when we are root: every directory must be traversable.
    let dir = tempfile::Builder::new()
        .prefix("unity-bk-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let api = format!("127.0.0.1:{}", free_port());
    let quic = format!("127.0.0.1:{}", free_udp_port());
    let env = vec![
        // The embedded default, whatever the environment says.
        ("DATABASE_URL", String::new()),
        ("UNITY_DATA_DIR", data.display().to_string()),
        ("UNITY_API_LISTEN", api.clone()),
        ("UNITY_QUIC_LISTEN", quic.clone()),
        ("UNITY_REPORT_INTERVAL_SECS", "1".into()),
    ];
    let http = unity_e2e::http_client();
    let base = format!("http://{api}");
    let serve = |n: usize| {
        Process::spawn(
            "controller",
            CONTROLLER,
            &["serve"],
            &env,
            &dir.path().join(format!("controller-{n}.log")),
        )
    };
    let healthy = async || {
        wait_for(
            "the controller's API",
            Duration::from_secs(90),
            async || {
                let r = http.get(format!("{base}/healthz")).send().await.ok()?;
                (r.status() == 200).then_some(())
            },
        )
        .await
    };

    let mut controller = serve(1);
    healthy().await;
    run_to_end(CONTROLLER, &["tenant", "create", "home"], &env);
    let token = run_to_end(
        CONTROLLER,
        &[
            "api-token",
            "create",
            "--tenant",
            "home",
            "--scope",
            "operate",
        ],
        &env,
    );
    let enroll_token = run_to_end(
        CONTROLLER,
        &["enroll-token", "create", "--tenant", "home", "--quiet"],
        &env,
    );
    let fingerprint = run_to_end(CONTROLLER, &["ca", "fingerprint"], &env);
    let agent_env = vec![(
        "UNITY_AGENT_STATE_DIR",
        dir.path().join("agent").display().to_string(),
    )];
    run_to_end(
        AGENT,
        &[
            "enroll",
            "--controller",
            &quic,
            "--token",
            &enroll_token,
            "--ca-fingerprint",
            &fingerprint,
        ],
        &agent_env,
    );
    let mut agent = Process::spawn(
        "agent",
        AGENT,
        &[
            "run",
            "--report-interval-secs",
            "1",
            "--no-storage",
            "--no-inventory",
        ],
        &agent_env,
        &dir.path().join("agent.log"),
    );
    let host = wait_for(
        "the agent's first report",
        Duration::from_secs(60),
        async || {
            let (_, hosts) = get(&http, &format!("{base}/api/v1/hosts"), &token).await;
            let host = hosts.as_array()?.first()?.clone();
            host["last_seen_at"].is_string().then_some(host)
        },
    )
    .await;
    let host_id = host["id"].as_str().unwrap().to_owned();

    // The backup, while serving.
    let archive = dir.path().join("backups/controller.tar.gz");
    let printed = run_to_end(
        CONTROLLER,
        &["backup", "--output", archive.to_str().unwrap()],
        &env,
    );
    assert_eq!(printed, archive.display().to_string());
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the archive holds the CA key: {mode:o}");
    // After the backup: must not come back.
    run_to_end(CONTROLLER, &["tenant", "create", "after-backup"], &env);

    // The disaster: the controller stops and its whole data directory is gone.
    controller.stop();
    std::fs::remove_dir_all(&data).unwrap();

    // A damaged archive is refused before anything is written.
    let damaged = dir.path().join("damaged.tar.gz");
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    let (ok, out) = attempt(CONTROLLER, &["restore", damaged.to_str().unwrap()], &env);
    assert!(!ok, "{out}");
    assert!(
        out.contains("damaged") || out.contains("not a Unity Fleet backup"),
        "{out}"
    );
    assert!(!has_state(&data), "nothing written from a damaged archive");

    let (ok, out) = attempt(CONTROLLER, &["restore", archive.to_str().unwrap()], &env);
    assert!(ok, "{out}");
    assert!(out.contains("1 tenant(s), 1 host(s)"), "{out}");
    assert!(out.contains(&fingerprint), "the same CA: {out}");

    // Restoring again over what is now there needs --force.
    let (ok, out) = attempt(CONTROLLER, &["restore", archive.to_str().unwrap()], &env);
    assert!(!ok && out.contains("--force"), "{out}");

    let restarted_at = time::OffsetDateTime::now_utc();
    let mut controller = serve(2);
    healthy().await;
    let (ok, out) = attempt(
        CONTROLLER,
        &["restore", "--force", archive.to_str().unwrap()],
        &env,
    );
    assert!(
        !ok && out.contains("is the controller running"),
        "no restore under a running controller: {out}"
    );

    // The same agent, untouched, reports again with the certificate it holds.
    wait_for(
        "the agent to report to the restored controller",
        Duration::from_secs(90),
        async || {
            let (status, h) = get(&http, &format!("{base}/api/v1/hosts/{host_id}"), &token).await;
            let seen = time::OffsetDateTime::parse(
                h["last_seen_at"].as_str()?,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()?;
            (status == 200 && seen > restarted_at).then_some(())
        },
    )
    .await;
    let (_, hosts) = get(&http, &format!("{base}/api/v1/hosts"), &token).await;
    assert_eq!(hosts.as_array().unwrap().len(), 1, "{hosts}");
    assert_eq!(hosts[0]["hostname"], host["hostname"]);
    let tenants = run_to_end(CONTROLLER, &["tenant", "list"], &env);
    assert!(
        tenants.contains("home") && !tenants.contains("after-backup"),
        "{tenants}"
    );

    // The job-signing key came back: the agent still accepts signed jobs.
    let r = http
        .post(format!("{base}/api/v1/jobs"))
        .bearer_auth(&token)
        .json(&json!({ "host_id": host_id, "kind": "ping" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let job: Value = r.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let job = wait_for("the ping job", Duration::from_secs(60), async || {
        let (_, job) = get(&http, &format!("{base}/api/v1/jobs/{id}"), &token).await;
        (!matches!(
            job["state"].as_str(),
            Some("queued" | "dispatched" | "running") | None
        ))
        .then_some(job)
    })
    .await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // --force replaces a stopped controller with the backup's state.
    controller.stop();
    let (ok, out) = attempt(
        CONTROLLER,
        &["restore", "--force", archive.to_str().unwrap()],
        &env,
    );
    assert!(ok, "{out}");
    let _controller = serve(3);
    healthy().await;
    let (status, _) = get(&http, &format!("{base}/api/v1/jobs/{id}"), &token).await;
    assert_eq!(status, 404, "the job came after the backup");
    assert!(agent.running(), "{}", agent.output());
}
