//! A container update as a user does it, with every part real and in its own process: a
//! controller process (`e2e-controller serve` on a throwaway PostgreSQL), an agent process
//! enrolled with the real command line, a real `dockerd` and registry. Driven through the
//! HTTP API only. Then the faults: the agent killed with SIGKILL in the middle of the health
//! gate, and the controller killed and restarted while a job runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use unity_controller::testing::ThrowawayPostgres;
use unity_e2e::Scope;
use unity_e2e::engines::{Behaviour, Dockerd, Registry, free_port, present};
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

struct Fleet {
    dir: tempfile::TempDir,
    controller_env: Vec<(&'static str, String)>,
    agent_env: Vec<(&'static str, String)>,
    api: String,
    http: reqwest::Client,
    token: String,
    host_id: String,
}

impl Fleet {
    fn controller(&self) -> Process {
        Process::spawn(
            "controller",
            CONTROLLER,
            &["serve"],
            &self.controller_env,
            &self.dir.path().join(format!(
                "controller-{}.log",
                Instant::now().elapsed().as_nanos()
            )),
        )
    }

    fn agent(&self, n: usize) -> Process {
        Process::spawn(
            "agent",
            AGENT,
            &[
                "run",
                "--report-interval-secs",
                "1",
                "--no-storage",
                "--inventory-interval-secs",
                "10",
            ],
            &self.agent_env,
            &self.dir.path().join(format!("agent-{n}.log")),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        match self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn wait<T>(
        &self,
        what: &str,
        within: Duration,
        mut check: impl AsyncFnMut(&Self) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = check(self).await {
                return v;
            }
            assert!(start.elapsed() < within, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The container named `name` as the controller's inventory shows it, once it runs
    /// `image_id`.
    async fn container_running(&self, name: &str, image_id: &str) -> Value {
        let path = format!("/api/v1/containers?host_id={}", self.host_id);
        self.wait(
            &format!("{name} on {image_id} in the inventory"),
            Duration::from_secs(60),
            async |f| {
                let (_, list) = f.get(&path).await;
                list.as_array()?
                    .iter()
                    .find(|c| {
                        c["name"] == name && c["present"] == true && c["image_id"] == image_id
                    })
                    .cloned()
            },
        )
        .await
    }

    async fn job_until(&self, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        self.wait(&format!("job {id}"), within, async |f| {
            let (status, job) = f.get(&format!("/api/v1/jobs/{id}")).await;
            (status == 200 && done(&job)).then_some(job)
        })
        .await
    }
}

fn ended(job: &Value) -> bool {
    !matches!(
        job["state"].as_str(),
        Some("queued" | "dispatched" | "running") | None
    )
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_updates_a_container_through_the_api_and_nothing_survives_a_crash_half_done() {
    let Some(busybox) = present("busybox-static", &["/bin/busybox", "/usr/bin/busybox"]) else {
        return;
    };
    let Some(engine) = Dockerd::start() else {
        return;
    };
    let Some(registry) = Registry::start(engine.dir.path()) else {
        return;
    };
    let pg = ThrowawayPostgres::start().await.unwrap();
    let (store, url) = pg.fresh_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // The service the user runs: v1 from the registry, then v2 pushed to the same tag.
    let tag = format!("{}/homelab/web:stable", registry.addr);
    engine.build_and_push(&busybox, Behaviour::Healthy, "v1", &tag);
    engine.docker(&["network", "create", "lan"]);
    let port = free_port();
    engine.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "lan",
        "--network-alias",
        "www",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "--restart",
        "unless-stopped",
        "--label",
        "com.docker.compose.project=site",
        &tag,
    ]);
    let v1_id = engine.inspect("{{.Image}}", "web");
    let v2 = engine.build_and_push(&busybox, Behaviour::Healthy, "v2", &tag);
    let v2_digest = v2.rsplit_once('@').unwrap().1.to_owned();

    let quic = format!("127.0.0.1:{}", free_udp_port());
    let api = format!("127.0.0.1:{}", free_port());
    let controller_env = vec![
        ("DATABASE_URL", url.clone()),
        (
            "UNITY_DATA_DIR",
            dir.path().join("controller").display().to_string(),
        ),
        ("UNITY_QUIC_LISTEN", quic.clone()),
        ("UNITY_API_LISTEN", api.clone()),
        ("UNITY_REPORT_INTERVAL_SECS", "1".into()),
    ];
    let state_dir = dir.path().join("agent");
    let config = dir.path().join("agent.toml");
    write_private(
        &config,
        &format!(
            "[containers]\nendpoints = [\"{}\"]\n\n[jobs]\nallow = [\"ping\", \"container_update\"]\n",
            engine.host()
        ),
    );
    let agent_env = vec![
        ("UNITY_AGENT_STATE_DIR", state_dir.display().to_string()),
        ("UNITY_AGENT_CONFIG", config.display().to_string()),
    ];
    let tenant = store.create_tenant("homelab").await.unwrap();
    let token = store
        .create_scoped_api_token(tenant.id, "ops", Scope::Operate)
        .await
        .unwrap();
    let mut fleet = Fleet {
        dir,
        controller_env,
        agent_env,
        api: format!("http://{api}"),
        http: unity_e2e::http_client(),
        token,
        host_id: String::new(),
    };
    let mut controller = fleet.controller();
    fleet
        .wait("the controller's API", Duration::from_secs(60), async |f| {
            (f.http
                .get(format!("{}/healthz", f.api))
                .send()
                .await
                .ok()?
                .status()
                == 200)
                .then_some(())
        })
        .await;
    // Enrollment with the real command lines.
    let (enroll_token, _) = store
        .create_enrollment_token(tenant.id, Duration::from_secs(600))
        .await
        .unwrap();
    let fingerprint = run_to_end(CONTROLLER, &["ca", "fingerprint"], &fleet.controller_env);
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
        &fleet.agent_env,
    );
    let enrollment: Value =
        serde_json::from_str(&std::fs::read_to_string(state_dir.join("enrollment.json")).unwrap())
            .unwrap();
    fleet.host_id = enrollment["host_id"].as_str().unwrap().to_owned();
    let mut agent = fleet.agent(1);

    // 1. The update check found v2; a job with no image updates to exactly that digest.
    let web = fleet.container_running("web", &v1_id).await;
    assert_eq!(web["update_state"], "update_available", "{web}");
    assert_eq!(web["update_new_digest"], v2_digest);
    let (status, job) = fleet
        .post(
            "/api/v1/jobs",
            json!({ "host_id": fleet.host_id, "kind": "container_update",
                    "params": { "container": "web", "health_timeout_secs": 60, "settle_secs": 2, "stop_timeout_secs": 3 } }),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["params"]["expected_image_id"], v1_id);
    assert!(
        job["params"]["image"]
            .as_str()
            .unwrap()
            .ends_with(&v2_digest),
        "{job}"
    );
    let job = fleet
        .job_until(job["id"].as_str().unwrap(), Duration::from_secs(120), ended)
        .await;
    assert_eq!(job["state"], "succeeded", "{job}\n{}", agent.output());
    assert_eq!(job["receipt"]["status"], "verified");
    let v2_id = engine.inspect("{{.Image}}", "web");
    assert_eq!(job["result"]["new_image_id"], v2_id);
    assert_eq!(engine.docker(&["exec", "web", "cat", "/marker"]), "v2");
    assert_eq!(
        engine.inspect(
            "{{index .Config.Labels \"com.docker.compose.project\"}}",
            "web"
        ),
        "site"
    );
    // The agent re-read its inventory right after the change.
    let web = fleet.container_running("web", &v2_id).await;
    assert_eq!(web["update_state"], "up_to_date", "{web}");

    // 2. A broken image, named explicitly: rolled back, with the evidence.
    let sick = engine.build_and_push(&busybox, Behaviour::NeverHealthy, "sick", &tag);
    let (status, job) = fleet
        .post(
            "/api/v1/jobs",
            json!({ "host_id": fleet.host_id, "kind": "container_update",
                    "params": { "container": "web", "image": sick, "health_timeout_secs": 30, "settle_secs": 2, "stop_timeout_secs": 3 } }),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let job = fleet
        .job_until(job["id"].as_str().unwrap(), Duration::from_secs(120), ended)
        .await;
    assert_eq!(job["state"], "rolled_back", "{job}");
    assert!(
        job["result"]["failed"]["health_log"]
            .to_string()
            .contains("not ready"),
        "{job}"
    );
    assert!(
        job["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "warning"),
        "{job}"
    );
    assert_eq!(engine.docker(&["exec", "web", "cat", "/marker"]), "v2");
    let (_, alerts) = fleet.get("/api/v1/alerts").await;
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "job_rolled_back" && a["severity"] == "warning"),
        "{alerts}"
    );

    // The controller's inventory shows the rolled-back container again (a round collected
    // during the health gate may have seen the sick one; the job's result can arrive before
    // the round the agent starts after it). A job made from the stale view would rightly be
    // refused as `target_changed`.
    fleet.container_running("web", &v2_id).await;

    // 3. The agent is killed (SIGKILL) while the new container is in its health gate.
    let web_container = engine.inspect("{{.Id}}", "web");
    let (_, job) = fleet
        .post(
            "/api/v1/jobs",
            json!({ "host_id": fleet.host_id, "kind": "container_update",
                    "params": { "container": "web", "image": sick, "health_timeout_secs": 120, "settle_secs": 2, "stop_timeout_secs": 3 } }),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    fleet
        .job_until(&id, Duration::from_secs(60), |j| {
            j["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["message"] == "health gate"))
        })
        .await;
    agent.kill_9();
    assert_eq!(
        engine.inspect("{{.State.Running}}", &web_container),
        "false",
        "the old one is down mid-update"
    );
    let (_, job) = fleet.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["state"], "running", "{job}");
    let mut agent = fleet.agent(2);
    let job = fleet.job_until(&id, Duration::from_secs(120), ended).await;
    assert_eq!(job["state"], "failed", "{job}\n{}", agent.output());
    let detail = job["detail"].as_str().unwrap();
    assert!(
        detail.contains("interrupted by an agent restart during health_gate"),
        "{detail}"
    );
    assert!(detail.contains("rolled back"), "{detail}");
    assert_eq!(
        engine.inspect("{{.Id}}", "web"),
        web_container,
        "the old container is back under its name"
    );
    assert_eq!(engine.inspect("{{.State.Running}}", "web"), "true");
    assert_eq!(engine.docker(&["ps", "-aq"]).lines().count(), 1);

    // As after step 2: the recovered job's result can arrive before the inventory round the
    // agent starts after it, and a job made from the stale view is refused as `target_changed`.
    fleet.container_running("web", &v2_id).await;

    // 4. The controller is killed (SIGKILL) and restarted while a job runs: the agent finishes
    //    it and delivers the signed result to the new controller process.
    let (_, job) = fleet
        .post(
            "/api/v1/jobs",
            json!({ "host_id": fleet.host_id, "kind": "container_update",
                    "params": { "container": "web", "image": sick, "health_timeout_secs": 8, "settle_secs": 2, "stop_timeout_secs": 3 } }),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let job = fleet
        .job_until(&id, Duration::from_secs(60), |j| {
            j["state"] == "running" || ended(j)
        })
        .await;
    assert_eq!(job["state"], "running", "{job}\n{}", agent.output());
    controller.kill_9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _controller = fleet.controller();
    let job = fleet.job_until(&id, Duration::from_secs(120), ended).await;
    assert_eq!(job["state"], "rolled_back", "{job}\n{}", agent.output());
    assert_eq!(job["receipt"]["status"], "verified");
    assert_eq!(engine.inspect("{{.State.Running}}", "web"), "true");
    assert_eq!(engine.docker(&["exec", "web", "cat", "/marker"]), "v2");
    assert!(
        agent.running(),
        "the agent survived everything:\n{}",
        agent.output()
    );
    agent.stop();
}
