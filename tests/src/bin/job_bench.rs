//! `job-bench`: the job figures of docs/performance.md, measured on this machine with the
//! release controller binary, a real PostgreSQL and real agents.
//!
//! ```sh
//! cargo build --release -p unity-controller && cargo build --profile release-agent -p unity-agent
//! cargo run --release -p unity-e2e --bin job-bench -- --agents 1000 --jobs 200
//! ```
//!
//! 1. Starts a throwaway PostgreSQL and the release controller as a child process, enrolls
//!    `--agents` agents for real and runs each with the agent's real run loop and job host
//!    (journal on disk, fsync included) in this process — `--agents` connected sessions.
//! 2. Latency: `--jobs` `ping` jobs, one at a time, each to a random host through the HTTP
//!    API; create-to-start and create-to-end from the job's own timestamps (controller clock
//!    at creation, agent clock at start; one machine, one clock).
//! 3. Fan-out: one job for every host, created as fast as the API takes them; time from the
//!    first creation to the last start and the last stored result.
//! 4. Verification: the agent's checks on one job (signature, decode, target, window,
//!    allow-list), in a loop, and the journal's durable create (fsync), per job.
//! 5. Agent RSS while it runs a job: the release-agent binary (idle, then during a `ping`, and,
//!    when `dockerd` is installed, during a real `container_update` of a busybox container).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use time::OffsetDateTime;
use unity_e2e::Scope;
use unity_e2e::bench::{BenchController, Child, percentile, sample};
use unity_pki::job_key::JobSigningKey;
use unity_protocol::latest::{JobKind, JobSpec, PingParams, SignedJob};
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    #[arg(long, default_value_t = 200)]
    jobs: usize,
    #[arg(long, default_value = "target/release/unity-controller")]
    controller_bin: PathBuf,
    #[arg(long, default_value = "target/release-agent/unity-agent")]
    agent_bin: PathBuf,
}

fn parse_time(value: &serde_json::Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(
        value.as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
}

fn since(a: &serde_json::Value, b: &serde_json::Value) -> Option<Duration> {
    let d = parse_time(b)? - parse_time(a)?;
    Duration::try_from(d).ok()
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn post_job(&self, host: Uuid) -> Result<String> {
        let response = self
            .http
            .post(format!("{}/api/v1/jobs", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "host_id": host, "kind": "ping", "params": { "message": "bench" } }))
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        if status != 201 {
            bail!("job creation answered {status}: {body}");
        }
        Ok(body["id"].as_str().context("job id")?.to_owned())
    }

    async fn job(&self, id: &str) -> Result<serde_json::Value> {
        Ok(self
            .http
            .get(format!("{}/api/v1/jobs/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?
            .json()
            .await?)
    }

    async fn wait_ended(&self, id: &str) -> Result<serde_json::Value> {
        for _ in 0..6000 {
            let job = self.job(id).await?;
            if job["finished_at"].is_string() {
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!("job {id} never ended")
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    unity_e2e::bench::require_built(&[&args.controller_bin, &args.agent_bin])?;
    let work = tempfile::tempdir()?;
    let (_pg, store, database_url, tenant) = unity_e2e::bench::bench_tenant().await?;
    let token = store
        .create_scoped_api_token(tenant.id, "bench", Scope::Operate)
        .await?;
    let controller_dir = work.path().join("controller");
    let bench =
        BenchController::start(&args.controller_bin, &database_url, &controller_dir).await?;
    let controller_pid = bench.pid;
    let fingerprint = bench.fingerprint;
    let api = Api {
        http: unity_e2e::http_client(),
        base: bench.api_base.clone(),
        token,
    };
    let controller_addr = bench.quic_addr.clone();

    // 1. Agents: enrolled for real, each running the real loop and job host.
    let states = bench
        .enroll_many(&store, tenant.id, args.agents, work.path())
        .await?;
    let hosts: Vec<Uuid> = states.iter().map(|s| s.enrollment.host_id).collect();
    let agents = unity_e2e::bench::spawn_fleet(states);
    let connect_elapsed = unity_e2e::bench::wait_connected(&store, tenant.id, hosts.len()).await?;

    // 2. Latency, one job at a time to a random host.
    let mut to_start = Vec::new();
    let mut to_accept = Vec::new();
    let mut to_end = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..args.jobs {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let host = hosts[(seed as usize) % hosts.len()];
        let id = api.post_job(host).await?;
        let job = api.wait_ended(&id).await?;
        if job["state"] != "succeeded" {
            bail!("job did not succeed: {job}");
        }
        to_accept.extend(since(&job["created_at"], &job["accepted_at"]));
        to_start.extend(since(&job["created_at"], &job["started_at"]));
        to_end.extend(since(&job["created_at"], &job["finished_at"]));
    }
    to_start.sort();
    to_accept.sort();
    to_end.sort();

    // 3. Fan-out: a job for every host.
    let cpu_before = sample(controller_pid)?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(hosts.len());
    let mut set = tokio::task::JoinSet::new();
    let api = std::sync::Arc::new(api);
    for chunk in hosts.chunks(hosts.len().div_ceil(8)) {
        let api = api.clone();
        let chunk = chunk.to_vec();
        set.spawn(async move {
            let mut out = Vec::new();
            for host in chunk {
                out.push(api.post_job(host).await?);
            }
            Ok::<_, anyhow::Error>(out)
        });
    }
    while let Some(result) = set.join_next().await {
        ids.extend(result??);
    }
    let created_all = started.elapsed();
    let mut first_created: Option<OffsetDateTime> = None;
    let mut last_started: Option<OffsetDateTime> = None;
    let mut last_finished: Option<OffsetDateTime> = None;
    for id in &ids {
        let job = api.wait_ended(id).await?;
        if job["state"] != "succeeded" {
            bail!("fan-out job did not succeed: {job}");
        }
        let (c, s, f) = (
            parse_time(&job["created_at"]),
            parse_time(&job["started_at"]),
            parse_time(&job["finished_at"]),
        );
        first_created = first_created.min(c).or(c);
        last_started = last_started.max(s);
        last_finished = last_finished.max(f);
    }
    let fan_cpu = sample(controller_pid)?.cpu.saturating_sub(cpu_before.cpu);
    let span = |end: Option<OffsetDateTime>| {
        end.zip(first_created)
            .and_then(|(e, c)| Duration::try_from(e - c).ok())
            .unwrap_or_default()
    };
    for agent in agents {
        agent.stop().await;
    }

    // The floor of the dispatch path's first hop: PostgreSQL alone, NOTIFY committed on one
    // connection → received by a LISTENing one.
    let mut listener = sqlx::postgres::PgListener::connect(&database_url).await?;
    listener.listen("bench_floor").await?;
    let notifier = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&database_url)
        .await?;
    let mut floor = Vec::with_capacity(args.jobs);
    for _ in 0..args.jobs {
        let t = Instant::now();
        sqlx::query("SELECT pg_notify('bench_floor', 'x')")
            .execute(&notifier)
            .await?;
        listener.recv().await?;
        floor.push(t.elapsed());
    }
    floor.sort();

    // 4. The agent's verification, alone.
    let (key, _) = JobSigningKey::generate()?;
    let now_ms = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)?;
    let spec = JobSpec {
        job_id: Uuid::new_v4(),
        tenant_id: tenant.id,
        host_id: hosts[0],
        issued_at_ms: now_ms,
        not_before_ms: now_ms,
        expires_at_ms: now_ms + 3_600_000,
        requested_by: "bench".into(),
        kind: JobKind::Ping(PingParams {
            message: "x".into(),
        }),
    };
    let signed = SignedJob::seal(&spec, key.key_id(), |b| key.sign(b))?;
    let trusted = [key.public_key()];
    let allowed = vec!["ping".to_owned()];
    let expect = unity_agent::jobs::verify::Expectations {
        tenant_id: tenant.id,
        host_id: hosts[0],
        trusted_keys: &trusted,
        allowed_kinds: &allowed,
        clock_skew_ms: 300_000,
        max_lifetime_ms: 8 * 24 * 3_600_000,
    };
    let rounds = 20_000u32;
    let t = Instant::now();
    for _ in 0..rounds {
        let spec = unity_agent::jobs::verify::open(&signed, &expect)
            .map_err(|r| anyhow::anyhow!(r.detail))?;
        unity_agent::jobs::verify::check_target(&spec, &expect)
            .map_err(|r| anyhow::anyhow!(r.detail))?;
        unity_agent::jobs::verify::check_runnable(&spec, &expect, now_ms)
            .map_err(|r| anyhow::anyhow!(r.detail))?;
    }
    let verify_each = t.elapsed() / rounds;
    let journal = unity_agent::jobs::journal::Journal::open(&work.path().join("journal-bench"))?;
    let t = Instant::now();
    let journal_rounds = 200u32;
    for _ in 0..journal_rounds {
        let entry = unity_agent::jobs::journal::Entry::new(
            &signed,
            Uuid::new_v4(),
            "ping",
            now_ms,
            now_ms + 1,
        );
        journal.create(&entry)?;
    }
    let journal_each = t.elapsed() / journal_rounds;

    // 5. The release agent's RSS around a job.
    let (token, _) = store
        .create_enrollment_token(tenant.id, Duration::from_secs(600))
        .await?;
    let agent_dir = work.path().join("real-agent");
    let status = tokio::process::Command::new(&args.agent_bin)
        .arg("--state-dir")
        .arg(&agent_dir)
        .args([
            "enroll",
            "--controller",
            &controller_addr,
            "--token",
            &token,
        ])
        .args(["--ca-fingerprint", &fingerprint.to_string()])
        .stdout(Stdio::null())
        .status()
        .await?;
    if !status.success() {
        bail!("real agent enrollment failed");
    }
    let engine = if unity_e2e::engines::present_quietly(&["/usr/sbin/dockerd", "/usr/bin/dockerd"])
    {
        unity_e2e::engines::Dockerd::start()
    } else {
        None
    };
    let config = work.path().join("agent.toml");
    if let Some(engine) = &engine {
        std::fs::write(
            &config,
            format!(
                "[containers]\nendpoints = [\"{}\"]\nupdate_checks = false\n",
                engine.host()
            ),
        )?;
    } else {
        std::fs::write(&config, "")?;
    }
    let real_host: Uuid = {
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(agent_dir.join("enrollment.json"))?)?;
        e["host_id"].as_str().context("host id")?.parse()?
    };
    let agent = Child(
        tokio::process::Command::new(&args.agent_bin)
            .arg("--state-dir")
            .arg(&agent_dir)
            .arg("--config")
            .arg(&config)
            .args(["run", "--no-storage", "--inventory-interval-secs", "10"])
            .env("UNITY_LOG", "warn")
            .spawn()?,
    );
    let agent_pid = agent.0.id().context("agent pid")?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = sample(agent_pid)?;
    let id = api.post_job(real_host).await?;
    api.wait_ended(&id).await?;
    let after_ping = sample(agent_pid)?;
    let mut update_line = "not measured (no dockerd on this machine)".to_owned();
    if let (Some(engine), Some(registry)) = (
        &engine,
        engine
            .as_ref()
            .and_then(|e| unity_e2e::engines::Registry::start(e.dir.path())),
    ) {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .context("busybox-static")?;
        let tag = format!("{}/bench/web:1", registry.addr);
        engine.build_and_push(
            busybox,
            unity_e2e::engines::Behaviour::NoHealthcheck,
            "b1",
            &tag,
        );
        engine.docker(&["run", "-d", "--name", "web", &tag]);
        let target = engine.build_and_push(
            busybox,
            unity_e2e::engines::Behaviour::NoHealthcheck,
            "b2",
            &tag,
        );
        // Wait for the inventory to show the container.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let response = api
            .http
            .post(format!("{}/api/v1/jobs", api.base))
            .bearer_auth(&api.token)
            .json(&serde_json::json!({ "host_id": real_host, "kind": "container_update",
                "params": { "container": "web", "image": target, "settle_secs": 5, "stop_timeout_secs": 2 } }))
            .send()
            .await?;
        let job: serde_json::Value = response.json().await?;
        let id = job["id"].as_str().context("container job id")?.to_owned();
        let mut peak = 0;
        loop {
            peak = peak.max(sample(agent_pid)?.rss_kib);
            let job = api.job(&id).await?;
            if job["finished_at"].is_string() {
                update_line = format!(
                    "{} KiB at most during a `container_update` ({}, {} s from creation)",
                    peak,
                    job["state"].as_str().unwrap_or("?"),
                    since(&job["created_at"], &job["finished_at"])
                        .unwrap_or_default()
                        .as_secs()
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop(agent);
    drop(bench);

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "job-bench: {} connected agents, {} sequential jobs",
        args.agents, args.jobs
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| agents connected | {} in {:.1} s |",
        hosts.len(),
        connect_elapsed.as_secs_f64()
    );
    println!(
        "| create → agent accepted (journaled) | p50 {:.1} ms, p99 {:.1} ms |",
        ms(percentile(&to_accept, 0.5)),
        ms(percentile(&to_accept, 0.99))
    );
    println!(
        "| **create → start** | p50 **{:.1} ms**, p99 **{:.1} ms**, max {:.1} ms |",
        ms(percentile(&to_start, 0.5)),
        ms(percentile(&to_start, 0.99)),
        ms(percentile(&to_start, 1.0))
    );
    println!(
        "| floor: PostgreSQL NOTIFY → LISTEN alone | p50 {:.2} ms, p99 {:.2} ms |",
        ms(percentile(&floor, 0.5)),
        ms(percentile(&floor, 0.99))
    );
    println!(
        "| create → signed result stored | p50 {:.1} ms, p99 {:.1} ms |",
        ms(percentile(&to_end, 0.5)),
        ms(percentile(&to_end, 0.99))
    );
    println!(
        "| one job to each of {} hosts | created in {:.2} s; last started {:.2} s, last result stored {:.2} s after the first creation; controller CPU {:.2} s |",
        ids.len(),
        created_all.as_secs_f64(),
        span(last_started).as_secs_f64(),
        span(last_finished).as_secs_f64(),
        fan_cpu.as_secs_f64()
    );
    println!(
        "| agent verification per job (signature + decode + checks) | {:.1} µs |",
        verify_each.as_secs_f64() * 1e6
    );
    println!(
        "| agent journal entry per job (O_EXCL create + fsync + directory fsync) | {:.2} ms on this disk |",
        journal_each.as_secs_f64() * 1e3
    );
    println!(
        "| release agent RSS | {} KiB idle; {} KiB after a `ping`; {update_line} |",
        idle.rss_kib, after_ping.rss_kib
    );
    Ok(())
}
