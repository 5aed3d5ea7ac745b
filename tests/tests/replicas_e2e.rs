//! Three controllers on one PostgreSQL: the harness's in-process one and two real controller
//! processes sharing its database and data directory (CA, job key). Agents are configured
//! with the two processes' addresses (`--controller a,b`); they all start on the first, it is
//! killed with SIGKILL, and every one of them moves to the other and keeps reporting (none
//! dropped a report; the cursors make a redelivery count once), and a job
//! created through the third controller's API reaches each host and succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use unity_agent::enroll::enroll;
use unity_agent::state::AgentState;
use unity_e2e::engines::free_port;
use unity_e2e::process::Process;
use unity_e2e::{AgentTask, Harness, fast_options};

const CONTROLLER: &str = env!("CARGO_BIN_EXE_e2e-controller");
const AGENTS: usize = 4;

/// A controller process on the harness's database and data directory.
fn replica(h: &Harness, name: &str, quic: &str) -> (Process, String) {
    let api = format!("127.0.0.1:{}", free_port());
    let process = Process::spawn(
        name,
        CONTROLLER,
        &["serve"],
        &[
            ("DATABASE_URL", h.database_url.clone()),
            (
                "UNITY_DATA_DIR",
                h.dir.path().join("controller").display().to_string(),
            ),
            ("UNITY_QUIC_LISTEN", quic.to_owned()),
            ("UNITY_API_LISTEN", api.clone()),
            ("UNITY_REPORT_INTERVAL_SECS", "1".into()),
            // Agents notice a replica killed without a word by the idle timeout.
            ("UNITY_AGENT_IDLE_TIMEOUT_SECS", "5".into()),
            ("UNITY_BACKUP_INTERVAL_HOURS", "0".into()),
        ],
        &h.dir.path().join(format!("{name}.log")),
    );
    (process, api)
}

async fn wait_ready(api: &str, process: &mut Process) {
    if !ready_unless_port_taken(api, process).await {
        panic!(
            "{} lost its port before binding it:\n{}",
            process.name,
            process.output()
        );
    }
}

/// Polls `/readyz` for up to 30 s; `false` when the process exited because a port it was
/// given was taken meanwhile (the caller starts it again on others).
async fn ready_unless_port_taken(api: &str, process: &mut Process) -> bool {
    for _ in 0..300 {
        if unity_e2e::http_client()
            .get(format!("http://{api}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        if !process.running() && process.output().contains("Address already in use") {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never became ready:\n{}", process.name, process.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_move_to_another_replica_when_theirs_is_killed_and_jobs_reach_them() {
    let h = Harness::start().await;
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let reader = h.store.create_api_token(tenant.id, "read").await.unwrap();
    let ops = h.operate_token(tenant.id).await;
    let quic_a = format!("127.0.0.1:{}", free_port());
    let quic_b = format!("127.0.0.1:{}", free_port());
    let (mut a, api_a) = replica(&h, "replica-a", &quic_a);
    wait_ready(&api_a, &mut a).await;

    // Enrolled through replica A, every agent knows both A and B; B is not up yet, so each
    // session starts on A.
    let addresses = format!("{quic_a},{quic_b}");
    let mut agents = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..AGENTS {
        let name = format!("host-{i}");
        let mut options = h.enroll_options(&name, h.enrollment_token(tenant.id).await);
        options.controller = addresses.clone();
        let enrollment = enroll(&options).await.unwrap();
        hosts.push(enrollment.host_id);
        agents.push(AgentTask::spawn(
            AgentState::load(&options.state_dir).unwrap(),
            fast_options(),
        ));
    }
    for host in &hosts {
        h.wait_for_facts(&reader, *host).await;
    }
    let sessions_on_a = a.output().matches("agent session established").count();
    assert!(sessions_on_a >= AGENTS, "{}", a.output());

    // B comes up; A dies without a word.
    let (mut b, api_b) = replica(&h, "replica-b", &quic_b);
    wait_ready(&api_b, &mut b).await;
    a.kill_9();
    let killed_at = time::OffsetDateTime::now_utc();

    // Every host reports again — through B, the only replica it knows that lives.
    for host in &hosts {
        let mut fresh = false;
        for _ in 0..400 {
            let (_, detail) = h.api(&format!("/api/v1/hosts/{host}"), &reader).await;
            let collected = detail["facts_collected_at"].as_str().and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            });
            if collected.is_some_and(|at| at > killed_at + time::Duration::seconds(1)) {
                fresh = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            fresh,
            "host {host} never reported after A died:\n{}",
            b.output()
        );
    }
    assert!(
        b.output().matches("agent session established").count() >= AGENTS,
        "{}",
        b.output()
    );

    // A job created through the in-process controller (the third replica) reaches every host,
    // whose session is on B.
    for host in &hosts {
        let (status, job) = h
            .post(
                "/api/v1/jobs",
                &ops,
                json!({ "host_id": host, "kind": "ping", "params": { "message": "via C" } }),
            )
            .await;
        assert_eq!(status, 201, "{job}");
        let id = job["id"].as_str().unwrap().to_owned();
        let job = h
            .wait_for_job(&reader, &id, Duration::from_secs(40), |job| {
                !matches!(
                    job["state"].as_str(),
                    Some("queued" | "dispatched" | "running") | None
                )
            })
            .await;
        assert_eq!(job["state"], "succeeded", "{job}\n{}", b.output());
        assert_eq!(job["result_summary"], "pong: via C");
    }

    // No agent had to drop a report on the way (its status, sent at each new session).
    for host in &hosts {
        let (_, detail) = h.api(&format!("/api/v1/hosts/{host}"), &reader).await;
        assert_eq!(detail["agent_status"]["dropped_reports"], 0, "{detail}");
    }
    for agent in agents {
        agent.stop().await;
    }
}

/// Three controllers started at the same moment on an empty database (keys made once
/// beforehand, as the chart requires): one migrates under the advisory lock, the others wait,
/// and all three serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_on_an_empty_database_migrate_once() {
    let h = Harness::start().await;
    let url = h.pg.empty_database().await.unwrap();
    let data = h.dir.path().join("shared");
    let made = unity_e2e::process::run_to_end(
        CONTROLLER,
        &["ca", "create-keys"],
        &[("UNITY_DATA_DIR", data.display().to_string())],
    );
    assert!(made.contains("CA fingerprint"), "{made}");
    // Ports are chosen free but can be taken before the replica binds them (other tests'
    // agents open UDP sockets in the same range): such a replica is started again on new ports.
    let spawn = |i: usize, attempt: usize| {
        let api = format!("127.0.0.1:{}", free_port());
        let process = Process::spawn(
            &format!("replica-{i}"),
            CONTROLLER,
            &["serve"],
            &[
                ("DATABASE_URL", url.clone()),
                ("UNITY_DATA_DIR", data.display().to_string()),
                ("UNITY_QUIC_LISTEN", format!("127.0.0.1:{}", free_port())),
                ("UNITY_API_LISTEN", api.clone()),
                ("UNITY_BACKUP_INTERVAL_HOURS", "0".into()),
            ],
            &h.dir.path().join(format!("together-{i}-{attempt}.log")),
        );
        (process, api)
    };
    let mut replicas: Vec<(Process, String)> = (0..3).map(|i| spawn(i, 0)).collect();
    for (i, (process, api)) in replicas.iter_mut().enumerate() {
        let mut attempt = 0;
        while !ready_unless_port_taken(api, process).await {
            attempt += 1;
            assert!(attempt < 5, "replica-{i}: ports taken five times");
            (*process, *api) = spawn(i, attempt);
        }
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let (applied, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT version) FROM _sqlx_migrations WHERE success",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(applied, distinct);
    assert_eq!(
        applied,
        unity_controller::store::MIGRATOR.iter().count() as i64
    );
    pool.close().await;
}
