//! `replica-bench`: the same fleet on one controller and on several sharing one PostgreSQL
//! (docs/performance.md, "Replicas").
//!
//! ```sh
//! cargo build --release -p unity-controller
//! cargo run --release -p unity-e2e --bin replica-bench -- --agents 300 --reports 20 --replicas 1,3
//! ```
//!
//! For each replica count: a fresh database, that many **release controller** processes on
//! it (one data directory: the CA and keys they share), `--agents` enrolled agents whose
//! sessions are spread round-robin over the replicas, then every agent sends `--reports`
//! host-facts reports back to back. Prints reports/s, the round trip's percentiles, and the
//! CPU all controllers and PostgreSQL spent per 1000 reports — on one machine the replicas
//! share its cores with each other and the database, which is what the figures show.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use unity_agent::link::{self, Session};
use unity_controller::testing::ThrowawayPostgres;
use unity_e2e::bench::{BenchController, percentile, sample};
use unity_protocol::latest::ReportBody;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 300)]
    agents: usize,
    #[arg(long, default_value_t = 20)]
    reports: usize,
    /// Replica counts to measure, e.g. `1,3`.
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    replicas: Vec<usize>,
    #[arg(long, default_value = "target/release/unity-controller")]
    controller_bin: PathBuf,
}

/// CPU time of PostgreSQL's processes (its server and backends), from /proc.
fn postgres_cpu() -> Duration {
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres"
            && let Ok(s) = sample(pid)
        {
            total += s.cpu;
        }
    }
    total
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    unity_e2e::bench::require_built(&[&args.controller_bin])?;
    println!(
        "replica-bench: {} agents × {} host-facts reports, sessions spread round-robin",
        args.agents, args.reports
    );
    println!();
    println!(
        "| replicas | reports/s | round trip p50 / p99 | controllers' CPU per 1000 | PostgreSQL CPU per 1000 |"
    );
    println!("|---|---|---|---|---|");
    let pg = ThrowawayPostgres::start().await?;
    for &replicas in &args.replicas {
        let work = tempfile::tempdir()?;
        let (store, database_url) = pg.fresh_database().await?;
        let tenant = store.create_tenant("bench").await?;
        let dir = work.path().join("controller");
        // The first creates the CA and keys; the others start on them.
        let mut controllers =
            vec![BenchController::start(&args.controller_bin, &database_url, &dir).await?];
        for _ in 1..replicas.max(1) {
            controllers
                .push(BenchController::start(&args.controller_bin, &database_url, &dir).await?);
        }
        let states = controllers[0]
            .enroll_many(&store, tenant.id, args.agents, work.path())
            .await?;
        let mut sessions = Vec::with_capacity(states.len());
        for (i, state) in states.iter().enumerate() {
            let addr: std::net::SocketAddr =
                controllers[i % controllers.len()].quic_addr.parse()?;
            let endpoint = link::client_endpoint(addr)?;
            let tls = unity_pki::tls::agent_client_config(
                &state.ca,
                state.chain(),
                state.private_key_der(),
            )?;
            let connection = link::connect_with(&endpoint, addr, tls).await?;
            sessions.push((
                endpoint,
                Session::open(connection, unity_agent::version()).await?,
            ));
        }
        let facts = Arc::new(unity_agent::reports::host::collect());
        let cpu = |controllers: &[BenchController]| -> Result<Duration> {
            controllers
                .iter()
                .map(|c| sample(c.pid).map(|s| s.cpu))
                .sum()
        };
        let before = cpu(&controllers)?;
        let pg_before = postgres_cpu();
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for (endpoint, mut session) in sessions {
            let facts = facts.clone();
            let reports = args.reports;
            set.spawn(async move {
                let mut latencies = Vec::with_capacity(reports);
                for i in 0..reports {
                    let t = Instant::now();
                    session
                        .send(
                            1_700_000_000_000 + i as i64,
                            ReportBody::HostFacts((*facts).clone()),
                        )
                        .await?;
                    latencies.push(t.elapsed());
                }
                session.close();
                drop(endpoint);
                Ok::<_, anyhow::Error>(latencies)
            });
        }
        let mut latencies = Vec::new();
        while let Some(result) = set.join_next().await {
            latencies.extend(result??);
        }
        let elapsed = started.elapsed();
        let controllers_cpu = cpu(&controllers)?.saturating_sub(before);
        let pg_cpu = postgres_cpu().saturating_sub(pg_before);
        latencies.sort();
        let total = (args.agents * args.reports) as f64;
        println!(
            "| {replicas} | **{:.0}** | {:.1} / {:.1} ms | {:.0} ms | {:.0} ms |",
            total / elapsed.as_secs_f64(),
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            controllers_cpu.as_secs_f64() * 1e3 * 1000.0 / total,
            pg_cpu.as_secs_f64() * 1e3 * 1000.0 / total,
        );
        drop(controllers);
    }
    Ok(())
}
