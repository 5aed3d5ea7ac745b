//! `container_update` against a **real** `dockerd` and a **real** registry: the agent's job
//! host receives signed jobs exactly as from a session, pulls, recreates, gates and rolls
//! back real containers built from `busybox-static` (healthy, never healthy, crashing,
//! impossible to start, no health check). The controller is not involved here (see
//! `container_update_e2e.rs` for the whole path through the API).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use tokio::sync::mpsc::UnboundedReceiver;
use unity_agent::jobs::{JobHost, JobOptions, Outgoing};
use unity_agent::state::{AgentState, Enrollment};
use unity_e2e::engines::{Behaviour, Dockerd, Registry, SilentRegistry, free_port, present};
use unity_pki::agent_key::AgentKey;
use unity_pki::job_key::JobSigningKey;
use unity_protocol::latest::{
    ContainerUpdateParams, JobEnd, JobEvent, JobKind, JobOutcome, JobSpec, Push, PushReply,
    SignedJob,
};
use uuid::Uuid;

/// An enrolled-looking agent state (the job host needs identity, key and trusted keys; the
/// certificates are never used without a session).
fn agent_state(dir: &std::path::Path, signer: &JobSigningKey) -> AgentState {
    AgentState {
        dir: dir.to_owned(),
        enrollment: Enrollment {
            controller: "unused:1".into(),
            tenant_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
            job_signing_keys: vec![hex::encode(signer.public_key())],
        },
        key: AgentKey::generate().unwrap(),
        certificate: CertificateDer::from(Vec::new()),
        intermediates: Vec::new(),
        ca: CertificateDer::from(Vec::new()),
    }
}

struct Rig {
    engine: Dockerd,
    registry: Registry,
    busybox: String,
    signer: JobSigningKey,
    state_dir: tempfile::TempDir,
}

impl Rig {
    fn start() -> Option<Self> {
        let busybox = present("busybox-static", &["/bin/busybox", "/usr/bin/busybox"])?;
        let engine = Dockerd::start()?;
        let registry = Registry::start(engine.dir.path())?;
        Some(Self {
            engine,
            registry,
            busybox,
            signer: JobSigningKey::generate().unwrap().0,
            state_dir: tempfile::tempdir().unwrap(),
        })
    }

    fn options(&self) -> JobOptions {
        JobOptions {
            allow: vec!["container_update".into()],
            pull_timeout: Duration::from_secs(10),
            containers: self.engine.config(),
            ..JobOptions::default()
        }
    }

    fn host(&self) -> (Arc<JobHost>, UnboundedReceiver<Outgoing>) {
        JobHost::open(
            &agent_state(self.state_dir.path(), &self.signer),
            self.options(),
        )
        .unwrap()
    }

    fn tag(&self, name: &str) -> String {
        format!("{}/unity/{name}", self.registry.addr)
    }

    fn push(&self, behaviour: Behaviour, marker: &str, tag: &str) -> String {
        self.engine
            .build_and_push(&self.busybox, behaviour, marker, &self.tag(tag))
    }

    fn image_id(&self, container: &str) -> String {
        self.engine.inspect("{{.Image}}", container)
    }

    fn job(&self, container: &str, image: &str, expected: &str) -> SignedJob {
        let now =
            i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
        let spec = JobSpec {
            job_id: Uuid::new_v4(),
            tenant_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
            issued_at_ms: now,
            not_before_ms: now,
            expires_at_ms: now + 3_600_000,
            requested_by: "test".into(),
            kind: JobKind::ContainerUpdate(ContainerUpdateParams {
                container: container.into(),
                expected_image_id: expected.into(),
                image: image.into(),
                health_timeout_secs: 20,
                settle_secs: 2,
                stop_timeout_secs: 2,
            }),
        };
        SignedJob::seal(&spec, self.signer.key_id(), |b| self.signer.sign(b)).unwrap()
    }
}

/// Sends `job` to the host and waits for its signed result; returns it with the events.
async fn run_job(
    host: &Arc<JobHost>,
    rx: &mut UnboundedReceiver<Outgoing>,
    job: SignedJob,
) -> (JobOutcome, Vec<JobEvent>) {
    match host.handle_push(Push::Job(job)) {
        PushReply::JobAccepted { .. } => {}
        other => panic!("job not accepted: {other:?}"),
    }
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
            Ok(Some(Outgoing::Event(event))) => events.push(event),
            Ok(Some(Outgoing::InventoryChanged)) => {}
            Ok(Some(Outgoing::Result { receipt, .. })) => {
                let outcome = unity_protocol::decode_payload(&receipt.outcome).unwrap();
                return (outcome, events);
            }
            other => panic!("no result: {other:?}"),
        }
    }
}

fn detail(outcome: &JobOutcome) -> serde_json::Value {
    serde_json::from_str(&outcome.detail_json).unwrap()
}

fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_keeps_the_configuration_and_bad_images_are_rolled_back() {
    let Some(rig) = Rig::start() else { return };
    let e = &rig.engine;
    let tag = rig.tag("web:stable");
    let v1 = rig.push(Behaviour::Healthy, "v1", "web:stable");
    e.docker(&["network", "create", "pubnet"]);
    e.docker(&["volume", "create", "appdata"]);
    let port = free_port();
    e.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "pubnet",
        "--network-alias",
        "site",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "-e",
        "EXTRA=1",
        "--label",
        "com.docker.compose.project=homelab",
        "--label",
        "com.docker.compose.service=web",
        "-v",
        "appdata:/data",
        "--restart",
        "unless-stopped",
        "--memory",
        "64m",
        &tag,
    ]);
    e.docker(&["exec", "web", "sh", "-c", "echo kept > /data/file"]);
    let v1_id = rig.image_id("web");
    assert!(v1.contains("@sha256:"));
    let (host, mut rx) = rig.host();

    // v2 pushed to the same tag: the update the check would have found.
    let v2 = rig.push(Behaviour::Healthy, "v2", "web:stable");
    let (outcome, events) = run_job(&host, &mut rx, rig.job("web", &v2, &v1_id)).await;
    assert_eq!(outcome.end, JobEnd::Succeeded, "{outcome:#?} {events:#?}");
    let d = detail(&outcome);
    assert_eq!(d["old_image_id"], v1_id);
    let v2_id = rig.image_id("web");
    assert_ne!(v2_id, v1_id);
    assert_eq!(d["new_image_id"], v2_id);
    assert_eq!(d["probe"]["kind"], "health_check", "{d}");
    // Same name, new image, same configuration; it still follows its tag, which now names
    // exactly the pulled digest.
    assert_eq!(e.inspect("{{.Config.Image}}", "web"), tag);
    assert_eq!(e.inspect("{{.Id}}", &tag), v2_id);
    assert_eq!(e.docker(&["exec", "web", "cat", "/marker"]), "v2");
    assert_eq!(
        e.docker(&["exec", "web", "cat", "/data/file"]),
        "kept",
        "named volume kept"
    );
    let env = e.inspect("{{json .Config.Env}}", "web");
    assert!(
        env.contains("EXTRA=1") && env.contains("APP_MODE=prod"),
        "{env}"
    );
    assert_eq!(
        e.inspect(
            "{{index .Config.Labels \"com.docker.compose.project\"}}",
            "web"
        ),
        "homelab"
    );
    assert_eq!(
        e.inspect("{{.HostConfig.RestartPolicy.Name}}", "web"),
        "unless-stopped"
    );
    assert_eq!(
        e.inspect("{{.HostConfig.Memory}}", "web"),
        (64 * 1024 * 1024).to_string()
    );
    let aliases = e.inspect("{{json .NetworkSettings.Networks.pubnet.Aliases}}", "web");
    assert!(aliases.contains("\"site\""), "{aliases}");
    assert!(http_get(port).contains("v2"), "published port serves v2");
    assert_eq!(
        e.docker(&["ps", "-aq"]).lines().count(),
        1,
        "old container removed"
    );
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.starts_with("pulling")),
        "{messages:?}"
    );
    assert!(messages.contains(&"health gate"), "{messages:?}");

    // Bad images: each is rolled back to v2, which keeps serving.
    for (behaviour, marker, expect) in [
        (Behaviour::NeverHealthy, "sick", "unhealthy"),
        (Behaviour::Crashes, "crash", "exit code 3"),
        (Behaviour::CannotStart, "nostart", "did not start"),
    ] {
        let bad = rig.push(behaviour, marker, "web:stable");
        let before = e.inspect("{{.Id}}", "web");
        let (outcome, events) = run_job(&host, &mut rx, rig.job("web", &bad, &v2_id)).await;
        assert_eq!(
            outcome.end,
            JobEnd::RolledBack,
            "{marker}: {outcome:#?} {events:#?}"
        );
        assert!(
            outcome.summary.contains(expect),
            "{marker}: {}",
            outcome.summary
        );
        let d = detail(&outcome);
        assert!(
            d["restored"].as_str().unwrap().contains("healthy again"),
            "{d}"
        );
        assert_eq!(
            e.inspect("{{.Id}}", "web"),
            before,
            "{marker}: the old container is back"
        );
        assert_eq!(e.inspect("{{.State.Running}}", "web"), "true");
        assert_eq!(
            e.inspect("{{.HostConfig.RestartPolicy.Name}}", "web"),
            "unless-stopped"
        );
        assert_eq!(
            e.docker(&["ps", "-aq"]).lines().count(),
            1,
            "{marker}: the new one is gone"
        );
        assert!(http_get(port).contains("v2"), "{marker}: still serving v2");
        assert_eq!(
            e.inspect("{{.Id}}", &tag),
            v2_id,
            "{marker}: the tag points back at v2"
        );
        if behaviour == Behaviour::NeverHealthy {
            let log = &d["failed"]["health_log"];
            assert!(
                log.to_string().contains("not ready"),
                "health output kept: {d}"
            );
        }
        if behaviour == Behaviour::Crashes {
            let tail = d["failed"]["log_tail"].to_string();
            assert!(tail.contains("crashing"), "container output kept: {d}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_changes_when_the_job_does_not_fit_the_host() {
    let Some(rig) = Rig::start() else { return };
    let e = &rig.engine;
    let tag = rig.tag("app:1");
    rig.push(Behaviour::NoHealthcheck, "one", "app:1");
    e.docker(&["run", "-d", "--name", "app", &tag]);
    e.docker(&["create", "--name", "idle", &tag]);
    let id = rig.image_id("app");
    let target = rig.push(Behaviour::NoHealthcheck, "two", "app:1");
    let (host, mut rx) = rig.host();
    let container_before = e.inspect("{{.Id}}", "app");

    let cases = [
        (rig.job("gone", &target, &id), JobEnd::Failed, "not found"),
        (
            rig.job(
                "app",
                &target,
                "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ),
            JobEnd::Refused,
            "was made for",
        ),
        (
            rig.job("idle", &target, &id),
            JobEnd::Refused,
            "only running containers",
        ),
        (
            rig.job(
                "app",
                &format!(
                    "{}/other/thing:1@{}",
                    rig.registry.addr,
                    target.rsplit_once('@').unwrap().1
                ),
                &id,
            ),
            JobEnd::Refused,
            "another repository",
        ),
        (
            rig.job(
                "app",
                &format!("{}@sha256:{}", rig.tag("app"), "e".repeat(64)),
                &id,
            ),
            JobEnd::Failed,
            "could not pull",
        ),
    ];
    for (job, end, words) in cases {
        let (outcome, _) = run_job(&host, &mut rx, job).await;
        assert_eq!(outcome.end, end, "{outcome:#?}");
        assert!(
            outcome.summary.contains(words),
            "{words}: {}",
            outcome.summary
        );
        assert!(
            outcome.summary.starts_with("nothing changed"),
            "{}",
            outcome.summary
        );
        assert_eq!(e.inspect("{{.Id}}", "app"), container_before);
        assert_eq!(e.inspect("{{.State.Running}}", "app"), "true");
    }
    // A registry that accepts connections and never answers: the pull times out.
    let silent = SilentRegistry::start();
    let job = rig.job(
        "app",
        &format!("{}/unity/app@sha256:{}", silent.addr, "f".repeat(64)),
        &id,
    );
    let mut options = rig.options();
    options.allow_repository_change = true;
    options.pull_timeout = Duration::from_secs(3);
    let (host, mut rx) =
        JobHost::open(&agent_state(rig.state_dir.path(), &rig.signer), options).unwrap();
    let (outcome, _) = run_job(&host, &mut rx, job).await;
    assert_eq!(outcome.end, JobEnd::Failed, "{outcome:#?}");
    assert!(
        outcome.summary.contains("within 3 s"),
        "{}",
        outcome.summary
    );
    assert_eq!(e.inspect("{{.Id}}", "app"), container_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_without_health_check_is_proven_by_its_published_port() {
    let Some(rig) = Rig::start() else { return };
    let e = &rig.engine;
    let tag = rig.tag("plain:1");
    rig.push(Behaviour::NoHealthcheck, "p1", "plain:1");
    e.docker(&["network", "create", "plainnet"]);
    let port = free_port();
    e.docker(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--network",
        "plainnet",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        &tag,
    ]);
    let id = rig.image_id("plain");
    let target = rig.push(Behaviour::NoHealthcheck, "p2", "plain:1");
    let (host, mut rx) = rig.host();
    let (outcome, _) = run_job(&host, &mut rx, rig.job("plain", &target, &id)).await;
    assert_eq!(outcome.end, JobEnd::Succeeded, "{outcome:#?}");
    let d = detail(&outcome);
    assert_eq!(d["probe"]["kind"], "tcp", "{d}");
    assert_eq!(d["probe"]["targets"][0], format!("127.0.0.1:{port}"));
    assert!(http_get(port).contains("p2"));
}

/// The agent dies while the new container is in its health gate (its runtime is torn down at
/// an await point, as a kill would leave it: the journal is all that survives). On the next
/// start the job host finds the journal entry, rolls back, and reports the interruption.
#[test]
fn an_agent_killed_during_the_health_gate_rolls_back_on_its_next_start() {
    let Some(rig) = Rig::start() else { return };
    let e = &rig.engine;
    let tag = rig.tag("slow:1");
    rig.push(Behaviour::Healthy, "s1", "slow:1");
    e.docker(&["run", "-d", "--name", "slow", &tag]);
    let id = rig.image_id("slow");
    let old_container = e.inspect("{{.Id}}", "slow");
    // Never healthy: the gate waits for up to its 20 s timeout — long enough to kill it.
    let target = rig.push(Behaviour::NeverHealthy, "s2", "slow:1");
    let job = rig.job("slow", &target, &id);
    let journal = rig.state_dir.path().join("jobs");

    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    first.block_on(async {
        let (host, _rx) = rig.host();
        assert!(matches!(
            host.handle_push(Push::Job(job.clone())),
            PushReply::JobAccepted { .. }
        ));
        for _ in 0..600 {
            let text = std::fs::read_dir(&journal)
                .unwrap()
                .filter_map(Result::ok)
                .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
                .collect::<String>();
            if text.contains("\"health_gate\"") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the job never reached its health gate");
    });
    // Kill: every task of that runtime is dropped where it waits.
    first.shutdown_background();
    assert_eq!(
        e.inspect("{{.State.Running}}", &old_container),
        "false",
        "old one stopped mid-update"
    );

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let (host, mut rx) = rig.host();
        host.recover();
        let outcome = loop {
            match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
                Ok(Some(Outgoing::Result { receipt, .. })) => {
                    break unity_protocol::decode_payload::<JobOutcome>(&receipt.outcome).unwrap();
                }
                Ok(Some(Outgoing::Event(_) | Outgoing::InventoryChanged)) => {}
                other => panic!("no result after recovery: {other:?}"),
            }
        };
        assert_eq!(outcome.end, JobEnd::Failed, "{outcome:#?}");
        assert!(
            outcome
                .summary
                .contains("interrupted by an agent restart during health_gate"),
            "{}",
            outcome.summary
        );
        assert!(
            outcome.summary.contains("rolled back"),
            "{}",
            outcome.summary
        );
        // A replay of the same job after the restart is refused, not run.
        match host.handle_push(Push::Job(job.clone())) {
            PushReply::JobAccepted {
                already_known: true,
                ..
            }
            | PushReply::JobRefused(_) => {}
            other => panic!("replay accepted as new: {other:?}"),
        }
    });
    assert_eq!(
        e.inspect("{{.Id}}", "slow"),
        old_container,
        "the old container has its name back"
    );
    assert_eq!(e.inspect("{{.State.Running}}", "slow"), "true");
    assert_eq!(e.docker(&["exec", "slow", "cat", "/marker"]), "s1");
    assert_eq!(
        e.docker(&["ps", "-aq"]).lines().count(),
        1,
        "the half-updated container is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_container_is_proven_by_its_protocol_probe_not_by_an_open_port() {
    let Some(rig) = Rig::start() else { return };
    if present(
        "redis-server (.ci/setup-databases.sh)",
        &["/usr/bin/redis-server"],
    )
    .is_none()
    {
        return;
    }
    let e = &rig.engine;
    let tag = rig.tag("redis:7.0");
    rig.push(Behaviour::Redis, "r1", "redis:7.0");
    e.docker(&["network", "create", "dbnet"]);
    let port = free_port();
    e.docker(&[
        "run",
        "-d",
        "--name",
        "cache",
        "--network",
        "dbnet",
        "-p",
        &format!("127.0.0.1:{port}:6379"),
        &tag,
    ]);
    let (host, mut rx) = rig.host();
    // A new build of the same server: the Redis probe confirms it.
    let id = rig.image_id("cache");
    let target = rig.push(Behaviour::Redis, "r2", "redis:7.0");
    let (outcome, _) = run_job(&host, &mut rx, rig.job("cache", &target, &id)).await;
    assert_eq!(outcome.end, JobEnd::Succeeded, "{outcome:#?}");
    let d = detail(&outcome);
    assert_eq!(d["probe"]["kind"], "database", "{d}");
    assert_eq!(d["probe"]["database"], "redis", "{d}");
    // An "update" that listens on the port but does not speak Redis (an HTTP server):
    // a TCP connect would pass it; the protocol probe does not.
    let id = rig.image_id("cache");
    let impostor = rig.push(Behaviour::NoHealthcheck, "http", "redis:7.0");
    let mut job = rig.job("cache", &impostor, &id);
    // Shorter gate for the failing case.
    let mut spec: JobSpec = unity_protocol::decode_payload(&job.spec).unwrap();
    if let JobKind::ContainerUpdate(p) = &mut spec.kind {
        p.health_timeout_secs = 8;
    }
    job = SignedJob::seal(&spec, rig.signer.key_id(), |b| rig.signer.sign(b)).unwrap();
    let (outcome, _) = run_job(&host, &mut rx, job).await;
    assert_eq!(outcome.end, JobEnd::RolledBack, "{outcome:#?}");
    assert!(
        outcome.summary.contains("redis probe"),
        "{}",
        outcome.summary
    );
    assert_eq!(
        e.inspect("{{.Image}}", "cache"),
        id,
        "the real Redis is back"
    );
}

/// The same job through Podman's Docker-compatible API (Podman 4.3 from Debian). Podman runs
/// health checks from systemd timers, which this machine has not, and makes no network
/// namespaces here: the gate is "running, and still running after the settle period".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_containers_are_updated_and_rolled_back_too() {
    let Some(rig) = Rig::start() else { return };
    let Some(podman) = unity_e2e::engines::Podman::start(Some(&rig.registry.addr)) else {
        return;
    };
    let tag = rig.tag("pod:stable");
    rig.push(Behaviour::NoHealthcheck, "p1", "pod:stable");
    podman.podman(&["pull", &tag]);
    podman.podman(&[
        "run",
        "-d",
        "--name",
        "svc",
        "-e",
        "EXTRA=1",
        "--label",
        "com.docker.compose.project=pods",
        "--restart",
        "on-failure:3",
        &tag,
    ]);
    let id = podman.podman(&["inspect", "-f", "{{.Image}}", "svc"]);
    let id = if id.starts_with("sha256:") {
        id
    } else {
        format!("sha256:{id}")
    };
    let target = rig.push(Behaviour::NoHealthcheck, "p2", "pod:stable");
    let options = JobOptions {
        containers: podman.config(),
        ..rig.options()
    };
    let (host, mut rx) =
        JobHost::open(&agent_state(rig.state_dir.path(), &rig.signer), options).unwrap();
    let (outcome, events) = run_job(&host, &mut rx, rig.job("svc", &target, &id)).await;
    assert_eq!(outcome.end, JobEnd::Succeeded, "{outcome:#?} {events:#?}");
    assert_eq!(podman.podman(&["exec", "svc", "cat", "/marker"]), "p2");
    let env = podman.podman(&["inspect", "-f", "{{json .Config.Env}}", "svc"]);
    assert!(env.contains("EXTRA=1"), "{env}");
    assert_eq!(
        podman.podman(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"com.docker.compose.project\"}}",
            "svc"
        ]),
        "pods"
    );
    assert_eq!(
        podman.podman(&["ps", "-aq"]).lines().count(),
        1,
        "old container removed"
    );
    // A crashing image: rolled back to p2.
    let new_id = podman.podman(&["inspect", "-f", "{{.Image}}", "svc"]);
    let new_id = if new_id.starts_with("sha256:") {
        new_id
    } else {
        format!("sha256:{new_id}")
    };
    let crash = rig.push(Behaviour::Crashes, "pc", "pod:stable");
    let (outcome, events) = run_job(&host, &mut rx, rig.job("svc", &crash, &new_id)).await;
    assert_eq!(outcome.end, JobEnd::RolledBack, "{outcome:#?} {events:#?}");
    assert_eq!(podman.podman(&["exec", "svc", "cat", "/marker"]), "p2");
    assert_eq!(podman.podman(&["ps", "-aq"]).lines().count(), 1);
}
