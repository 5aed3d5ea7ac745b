//! `rollout-bench`: the rollout and package figures of docs/performance.md, measured on this
//! machine with the release controller binary, a real PostgreSQL and real agents.
//!
//! ```sh
//! cargo build --release -p unity-controller
//! cargo run --release -p unity-e2e --bin rollout-bench -- --agents 1000
//! ```
//!
//! 1. Starts a throwaway PostgreSQL and the release controller as a child process, enrolls
//!    `--agents` agents for real and runs each with the agent's real run loop and job host in
//!    this process; labels every host through the API.
//! 2. One `ping` rollout over all of them, waves `[1, "10%", "100%"]`, budget 0, created
//!    through the API: each wave's span (first job created → last job finished, from the
//!    jobs' own timestamps), the whole rollout, and the controller's CPU and memory
//!    (sampled every 200 ms) while it runs.
//! 3. The agent-side cost of the pending-updates report on this host: the real apt
//!    simulation (`unity-agent packages`' path), and the parser alone on the recorded Debian
//!    output.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use time::OffsetDateTime;
use unity_e2e::Scope;
use unity_e2e::bench::{BenchController, percentile, sample};
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    #[arg(long, default_value = "target/release/unity-controller")]
    controller_bin: PathBuf,
    /// Rounds of the apt simulation to time.
    #[arg(long, default_value_t = 10)]
    apt_rounds: usize,
}

fn parse_time(value: &serde_json::Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(
        value.as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    unity_e2e::bench::require_built(&[&args.controller_bin])?;
    let work = tempfile::tempdir()?;
    let (_pg, store, database_url, tenant) = unity_e2e::bench::bench_tenant().await?;
    let token = store
        .create_scoped_api_token(tenant.id, "bench", Scope::Operate)
        .await?;
    let bench = BenchController::start(
        &args.controller_bin,
        &database_url,
        &work.path().join("controller"),
    )
    .await?;
    let http = unity_e2e::http_client();
    let base = bench.api_base.clone();

    let states = bench
        .enroll_many(&store, tenant.id, args.agents, work.path())
        .await?;
    let hosts: Vec<Uuid> = states.iter().map(|s| s.enrollment.host_id).collect();
    let agents = unity_e2e::bench::spawn_fleet(states);
    unity_e2e::bench::wait_connected(&store, tenant.id, hosts.len()).await?;
    for host in &hosts {
        let r = http
            .put(format!("{base}/api/v1/hosts/{host}/labels"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "labels": { "role": "bench" } }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("labelling answered {}", r.status());
        }
    }

    // 2. The rollout.
    let before = sample(bench.pid)?;
    let started = Instant::now();
    let r = http
        .post(format!("{base}/api/v1/rollouts"))
        .bearer_auth(&token)
        .json(
            &serde_json::json!({ "kind": "ping", "params": { "message": "bench" },
            "hosts": { "labels": { "role": "bench" } }, "waves": [1, "10%", "100%"] }),
        )
        .send()
        .await?;
    let created: serde_json::Value = r.json().await?;
    let id = created["id"].as_str().context("rollout id")?.to_owned();
    let mut peak_rss = before.rss_kib;
    let rollout = loop {
        let rollout: serde_json::Value = http
            .get(format!("{base}/api/v1/rollouts/{id}"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        peak_rss = peak_rss.max(sample(bench.pid)?.rss_kib);
        match rollout["state"].as_str() {
            Some("completed") => break rollout,
            Some("running") => {}
            other => bail!("rollout ended {other:?}: {rollout}"),
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("rollout did not complete in 15 min");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let total = started.elapsed();
    let after = sample(bench.pid)?;

    let mut waves: std::collections::BTreeMap<
        i64,
        (usize, Option<OffsetDateTime>, Option<OffsetDateTime>),
    > = Default::default();
    let mut jobs = store.tenant_tx(tenant.id).await?;
    for host in rollout["hosts"].as_array().context("hosts")? {
        let wave = host["wave"].as_i64().unwrap_or(0);
        let job_id: Uuid = host["job_id"].as_str().context("job id")?.parse()?;
        let job = unity_controller::store::jobs::get(&mut jobs, job_id)
            .await?
            .context("job")?;
        let job = serde_json::to_value(&job)?;
        let entry = waves.entry(wave).or_default();
        entry.0 += 1;
        let (c, f) = (
            parse_time(&job["created_at"]),
            parse_time(&job["finished_at"]),
        );
        entry.1 = entry.1.min(c).or(c);
        entry.2 = entry.2.max(f);
    }
    drop(jobs);
    for agent in agents {
        agent.stop().await;
    }

    // 3. The package report's cost on this host.
    let config = unity_collect::packages::run::PackageConfig::default();
    let mut apt = Vec::new();
    let mut pending = 0;
    for _ in 0..args.apt_rounds {
        let t = Instant::now();
        let state =
            unity_collect::packages::run::collect(&unity_collect::runner::SystemRunner, &config)
                .await;
        apt.push(t.elapsed());
        if let unity_collect::packages::run::PackageState::Read { simulation, .. } = state {
            pending = simulation.installs.len();
        }
    }
    apt.sort();
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../collect/fixtures/apt/debian12-upgrade-with-new-pkgs-70-security-20.txt"
    ))?;
    let rounds = 20_000u32;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(unity_collect::packages::parse_simulation(
            std::hint::black_box(&fixture),
        )?);
    }
    let parse = t.elapsed() / rounds;

    println!(
        "rollout of `ping` over {} hosts, waves [1, 10%, 100%]:",
        hosts.len()
    );
    for (wave, (n, c, f)) in &waves {
        let span = c
            .zip(*f)
            .and_then(|(c, f)| Duration::try_from(f - c).ok())
            .unwrap_or_default();
        println!(
            "  wave {}: {n} hosts, first job created → last finished {span:?}",
            wave + 1
        );
    }
    println!("  whole rollout (API create → completed seen): {total:?}");
    println!(
        "  controller: CPU {:?}, RSS {} → {} MiB (peak seen {} MiB)",
        after.cpu.saturating_sub(before.cpu),
        before.rss_kib / 1024,
        after.rss_kib / 1024,
        peak_rss / 1024
    );
    println!(
        "pending-updates report on this host ({pending} pending): apt simulation + parse min {:?}, median {:?}, max {:?} over {} rounds",
        apt[0],
        percentile(&apt, 0.5),
        apt[apt.len() - 1],
        apt.len()
    );
    println!(
        "parser alone, recorded Debian output ({} bytes, 70 packages): {parse:?} per parse",
        fixture.len()
    );
    Ok(())
}
