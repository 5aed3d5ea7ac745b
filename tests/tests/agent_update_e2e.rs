//! `agent_update` with real binaries: the agent process (`e2e-agent`, the crate's version)
//! runs from a copy that stands for `/usr/local/bin/unity-agent`, kept running the way
//! systemd's `Restart=always` would (`Supervised`); releases are other real agent builds
//! (`e2e-agent-next`, `e2e-agent-crashing`) stored with the real `unity-controller
//! agent-release add`, fetched over the agent's QUIC session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use unity_e2e::Harness;
use unity_e2e::process::{CRASHING_AGENT_VERSION, NEXT_AGENT_VERSION, Supervised, run_to_end};
use uuid::Uuid;

const AGENT: &str = env!("CARGO_BIN_EXE_e2e-agent");
const NEXT: &str = env!("CARGO_BIN_EXE_e2e-agent-next");
const CRASHING: &str = env!("CARGO_BIN_EXE_e2e-agent-crashing");
const CONTROLLER: &str = env!("CARGO_BIN_EXE_e2e-controller");
/// A debug build of the agent is ~100 MiB: fetching it is 100 chunks.
const WAIT: Duration = Duration::from_secs(240);

fn ended(job: &serde_json::Value) -> bool {
    !matches!(
        job["state"].as_str(),
        Some("queued" | "dispatched" | "running") | None
    )
}

struct Rig {
    h: Harness,
    ops: String,
    host: Uuid,
    entry: PathBuf,
    agent: Option<Supervised>,
}

impl Rig {
    async fn start() -> Self {
        let h = Harness::start().await;
        let tenant = h.store.create_tenant("alpha").await.unwrap();
        let ops = h.operate_token(tenant.id).await;
        let state = h.enroll("host", tenant.id).await;
        let host = state.enrollment.host_id;
        // The installed binary, in a directory the agent may write (as the self-update
        // drop-in allows under systemd).
        let bin = h.dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let entry = bin.join("unity-agent");
        std::fs::copy(AGENT, &entry).unwrap();
        let config = h.dir.path().join("agent.toml");
        std::fs::write(&config, "[jobs]\nallow = [\"ping\", \"agent_update\"]\n").unwrap();
        let args: Vec<String> = [
            "--state-dir",
            state.dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "run",
            "--report-interval-secs",
            "1",
            "--no-storage",
            "--no-inventory",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let agent = Supervised::spawn(&entry, &args, &[], &h.dir.path().join("agent.log"));
        let rig = Self {
            h,
            ops,
            host,
            entry,
            agent: Some(agent),
        };
        rig.wait_for_version(unity_agent::VERSION).await;
        rig
    }

    fn agent(&self) -> &Supervised {
        self.agent.as_ref().unwrap()
    }

    /// `unity-controller agent-release add`, the real command line on the harness database.
    fn add_release(&self, file: &str, version: &str) -> serde_json::Value {
        let out = run_to_end(
            CONTROLLER,
            &["agent-release", "add", file, "--version", version],
            &[
                ("DATABASE_URL", self.h.database_url.clone()),
                (
                    "UNITY_DATA_DIR",
                    self.h.dir.path().join("controller").display().to_string(),
                ),
            ],
        );
        serde_json::from_str(&out).unwrap()
    }

    async fn update(&self, params: serde_json::Value) -> (u16, serde_json::Value) {
        self.h
            .post(
                "/api/v1/jobs",
                &self.ops,
                json!({ "host_id": self.host, "kind": "agent_update", "params": params }),
            )
            .await
    }

    async fn run_update(&self, params: serde_json::Value) -> serde_json::Value {
        let (status, job) = self.update(params).await;
        assert_eq!(status, 201, "{job}");
        let job = self
            .h
            .wait_for_job(&self.ops, job["id"].as_str().unwrap(), WAIT, ended)
            .await;
        assert!(ended(&job), "{job}\n{}", self.agent().output());
        job
    }

    /// Waits until the host's facts name `version` (the agent that runs now reported).
    async fn wait_for_version(&self, version: &str) {
        let mut last = serde_json::Value::Null;
        for _ in 0..600 {
            let (_, host) = self
                .h
                .api(&format!("/api/v1/hosts/{}", self.host), &self.ops)
                .await;
            if host["facts"]["agent_version"] == version {
                return;
            }
            last = host;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the host never reported agent {version}: {last}\n{}",
            self.agent().output()
        );
    }

    fn releases_left(&self) -> Vec<PathBuf> {
        let dir = self.h.dir.path().join("host/releases");
        std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

fn same_bytes(a: &Path, b: &str) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

fn messages(job: &serde_json::Value) -> Vec<String> {
    job["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_installs_the_new_agent_keeps_the_old_one_and_downgrades_only_when_allowed() {
    let mut rig = Rig::start().await;
    let release = rig.add_release(NEXT, NEXT_AGENT_VERSION);
    assert_eq!(release["architecture"], std::env::consts::ARCH);
    assert_eq!(
        release["size"].as_u64().unwrap(),
        std::fs::metadata(NEXT).unwrap().len()
    );

    let job = rig
        .run_update(json!({ "version": NEXT_AGENT_VERSION }))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}\n{}", rig.agent().output());
    assert_eq!(job["receipt"]["status"], "verified", "{job}");
    assert!(
        job["result_summary"].as_str().unwrap().contains(&format!(
            "from {} to {NEXT_AGENT_VERSION}",
            unity_agent::VERSION
        )),
        "{job}"
    );
    let events = messages(&job);
    assert!(
        events.iter().any(|m| m.contains("size and SHA-256 match")),
        "{events:?}"
    );
    // The figure docs/performance.md records (`-- --nocapture`).
    if let Some(fetched) = job["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["detail"]["fetch_ms"].is_u64())
    {
        let ms = fetched["detail"]["fetch_ms"].as_u64().unwrap().max(1);
        let size = release["size"].as_u64().unwrap();
        println!(
            "release fetch over the session: {size} bytes in {ms} ms ({:.1} MiB/s)",
            size as f64 / 1_048_576.0 / (ms as f64 / 1000.0)
        );
    }
    rig.wait_for_version(NEXT_AGENT_VERSION).await;
    // The new binary is installed, the old one kept beside it; nothing left in the state dir.
    assert!(same_bytes(&rig.entry, NEXT));
    assert!(same_bytes(
        &unity_agent::jobs::agent_update::install::previous_path(&rig.entry),
        AGENT
    ));
    assert!(rig.releases_left().is_empty(), "{:?}", rig.releases_left());
    // The same process throughout (exec): the supervisor never had to restart it.
    assert_eq!(rig.agent().starts(), 1, "{}", rig.agent().output());
    // Its log is a file, not a terminal: no colour codes (what journald gets).
    assert!(
        !rig.agent().output().contains('\u{1b}'),
        "ANSI escapes in a log file"
    );

    // Back to the crate's version: refused by the controller as a downgrade, unless allowed.
    rig.add_release(AGENT, unity_agent::VERSION);
    let (status, body) = rig.update(json!({ "version": unity_agent::VERSION })).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("allow_downgrade"),
        "{body}"
    );
    let job = rig
        .run_update(json!({ "version": unity_agent::VERSION, "allow_downgrade": true }))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}\n{}", rig.agent().output());
    rig.wait_for_version(unity_agent::VERSION).await;
    assert!(same_bytes(&rig.entry, AGENT));
    drop(rig.agent.take());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_crashes_at_start_is_rolled_back_by_the_previous_agent() {
    let mut rig = Rig::start().await;
    rig.add_release(CRASHING, CRASHING_AGENT_VERSION);
    let job = rig
        .run_update(json!({ "version": CRASHING_AGENT_VERSION }))
        .await;
    assert_eq!(
        job["state"],
        "rolled_back",
        "{job}\n{}",
        rig.agent().output()
    );
    let summary = job["result_summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("agent {CRASHING_AGENT_VERSION} exited before")),
        "{summary}"
    );
    // The crash ended the process; the restart brought back the untouched old binary.
    assert!(rig.agent().starts() >= 2, "{}", rig.agent().output());
    assert!(same_bytes(&rig.entry, AGENT));
    assert!(
        rig.agent().output().contains("crashing at start"),
        "{}",
        rig.agent().output()
    );
    rig.wait_for_version(unity_agent::VERSION).await;
    assert!(rig.releases_left().is_empty(), "{:?}", rig.releases_left());
    // The host still takes jobs.
    let (status, ping) = rig
        .h
        .post(
            "/api/v1/jobs",
            &rig.ops,
            json!({ "host_id": rig.host, "kind": "ping" }),
        )
        .await;
    assert_eq!(status, 201, "{ping}");
    let ping = rig
        .h
        .wait_for_job(&rig.ops, ping["id"].as_str().unwrap(), WAIT, ended)
        .await;
    assert_eq!(ping["state"], "succeeded", "{ping}");
    drop(rig.agent.take());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_whose_bytes_do_not_match_the_signed_digest_is_never_run() {
    let mut rig = Rig::start().await;
    let release = rig.add_release(NEXT, NEXT_AGENT_VERSION);
    // The store is tampered with after the release was added (its digest recorded) and
    // before the job is signed from that record: the first byte of the last chunk, inverted
    // (overwriting it with a fixed byte changed nothing whenever the build's last chunk
    // happened to start with that byte). Before the job, so the agent's fetch cannot read the
    // chunk first.
    let mut owner = rig.h.database_owner().await;
    let tampered = sqlx::query(
        "UPDATE agent_release_chunks SET bytes = set_byte(bytes, 0, get_byte(bytes, 0) # 255) \
         WHERE sha256 = decode($1, 'hex') \
           AND chunk = (SELECT max(chunk) FROM agent_release_chunks WHERE sha256 = decode($1, 'hex'))",
    )
    .bind(release["sha256"].as_str().unwrap())
    .execute(&mut owner)
    .await
    .unwrap();
    assert_eq!(tampered.rows_affected(), 1);
    let (status, job) = rig.update(json!({ "version": NEXT_AGENT_VERSION })).await;
    assert_eq!(status, 201, "{job}");
    let job = rig
        .h
        .wait_for_job(&rig.ops, job["id"].as_str().unwrap(), WAIT, ended)
        .await;
    assert_eq!(job["state"], "failed", "{job}\n{}", rig.agent().output());
    let summary = job["result_summary"].as_str().unwrap();
    assert!(
        summary.contains("do not match the signed digest")
            && summary.contains("nothing was installed"),
        "{summary}"
    );
    assert!(same_bytes(&rig.entry, AGENT));
    assert_eq!(rig.agent().starts(), 1);
    assert!(rig.releases_left().is_empty(), "{:?}", rig.releases_left());
    drop(rig.agent.take());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_the_controller_does_not_have_or_cannot_run_are_refused_up_front() {
    let mut rig = Rig::start().await;
    let (status, body) = rig.update(json!({ "version": "9.9.9" })).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("agent-release add"),
        "{body}"
    );
    let (status, body) = rig.update(json!({ "version": "latest" })).await;
    assert_eq!(status, 400, "{body}");
    // Not an executable for any machine: the CLI refuses to store it.
    let script = rig.h.dir.path().join("agent.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let out = std::process::Command::new(CONTROLLER)
        .args([
            "agent-release",
            "add",
            script.to_str().unwrap(),
            "--version",
            "1.0.0",
        ])
        .env("DATABASE_URL", &rig.h.database_url)
        .env(
            "UNITY_DATA_DIR",
            rig.h.dir.path().join("controller").display().to_string(),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an ELF executable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(rig.agent.take());
}
