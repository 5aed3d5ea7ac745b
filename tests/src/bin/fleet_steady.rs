//! `fleet-steady`: what a controller spends holding a fleet day to day — every session open,
//! host facts every `--facts-every-secs`, a storage round every `--storage-every-secs`, each
//! agent at its own phase of both — with the real binaries and a real PostgreSQL.
//!
//! ```sh
//! cargo build --release -p unity-controller -p unity-e2e --bin fleet-steady
//! target/release/fleet-steady --agents 10000 --secs 600
//! ```
//!
//! 1. Starts a throwaway PostgreSQL and the **release controller binary** as a child process.
//! 2. Enrolls `--agents` simulated agents (real keys, real enrollment over QUIC) and opens a
//!    session for each (real QUIC + mTLS, 100 agents per client socket).
//! 3. For `--secs`, every agent sends host facts and storage rounds (recorded real tool
//!    outputs, disks of its own) on its schedule, starting at a random point of each
//!    interval, as a fleet that has been up for a while does; every report waits for its
//!    acknowledgement (sent after commit).
//! 4. Prints failures (which must be 0), round-trip percentiles per kind, the controller's
//!    CPU in cores and its RSS, this process's CPU (the simulated agents share the machine),
//!    UDP receive-buffer drops, and what the figures extrapolate to for 100 000 agents.
//!
//! The figures belong in docs/performance.md with the command that made them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use unity_agent::link::{self, Session};
use unity_e2e::bench::{
    BenchController, agent_dialers, now_ms, own_disks, percentile, sample, udp_rcvbuf_errors,
};
use unity_protocol::latest::{ReportBody, ReportReply};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// The measured window, after every session is up.
    #[arg(long, default_value_t = 600)]
    secs: u64,
    #[arg(long, default_value_t = 60)]
    facts_every_secs: u64,
    #[arg(long, default_value_t = 300)]
    storage_every_secs: u64,
    #[arg(long, default_value = "target/release/unity-controller")]
    controller_bin: std::path::PathBuf,
}

/// Sessions opened at once while the fleet connects (a handshake each; the controller
/// admits them in its own order).
const CONNECTING_AT_ONCE: usize = 256;

/// What one agent saw during the window.
#[derive(Default)]
struct AgentLog {
    facts: Vec<Duration>,
    storage: Vec<Duration>,
    failures: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    unity_e2e::bench::require_built(&[&args.controller_bin])?;
    let work = tempfile::tempdir()?;
    let (_pg, store, database_url, tenant) = unity_e2e::bench::bench_tenant().await?;
    let bench = BenchController::start(
        &args.controller_bin,
        &database_url,
        &work.path().join("controller"),
    )
    .await?;
    let pid = bench.pid;
    let baseline = sample(pid)?;

    let started = Instant::now();
    let states = bench
        .enroll_many(&store, tenant.id, args.agents, work.path())
        .await?;
    let enroll_elapsed = started.elapsed();

    let addr: std::net::SocketAddr = bench.quic_addr.parse()?;
    let started = Instant::now();
    let sessions = connect_all(&states, addr).await?;
    let connect_elapsed = started.elapsed();
    let connected = sample(pid)?;

    let facts = ReportBody::HostFacts(unity_agent::reports::host::collect());
    let scratch = tempfile::tempdir()?;
    let storage = unity_agent::testing::recorded_storage(scratch.path())?
        .collect()
        .await;
    let facts_every = Duration::from_secs(args.facts_every_secs);
    let storage_every = Duration::from_secs(args.storage_every_secs);
    let window = Duration::from_secs(args.secs);

    let cpu_before = sample(pid)?;
    let own_before = sample(std::process::id())?;
    let rcvbuf_before = udp_rcvbuf_errors();
    let start = tokio::time::Instant::now();
    let end = start + window;
    let mut set = tokio::task::JoinSet::new();
    for (agent, session) in sessions.into_iter().enumerate() {
        let storage = ReportBody::Storage(own_disks(&storage, agent));
        let next_facts = start + facts_every.mul_f64(link::backoff::random_unit());
        let next_storage = start + storage_every.mul_f64(link::backoff::random_unit());
        set.spawn(run_agent(
            session,
            [(next_facts, facts_every), (next_storage, storage_every)],
            [facts.clone(), storage],
            end,
        ));
    }
    let mut log = AgentLog::default();
    while let Some(agent) = set.join_next().await {
        let agent = agent?;
        log.facts.extend(agent.facts);
        log.storage.extend(agent.storage);
        log.failures.extend(agent.failures);
    }
    let elapsed = start.elapsed();
    let cpu = sample(pid)?.cpu.saturating_sub(cpu_before.cpu);
    let own_cpu = sample(std::process::id())?
        .cpu
        .saturating_sub(own_before.cpu);
    let drops = udp_rcvbuf_errors()
        .zip(rcvbuf_before)
        .map(|(after, before)| after.saturating_sub(before));
    let after = sample(pid)?;
    log.facts.sort();
    log.storage.sort();

    let cores = cpu.as_secs_f64() / elapsed.as_secs_f64();
    let per_session_kib =
        (connected.rss_kib.saturating_sub(baseline.rss_kib)) as f64 / args.agents as f64;
    let scale = 100_000.0 / args.agents as f64;
    println!(
        "## fleet-steady: {} agents, facts every {} s, storage every {} s, {} s window\n",
        args.agents, args.facts_every_secs, args.storage_every_secs, args.secs
    );
    println!("| measure | value |\n|---|---|");
    println!(
        "| enrollment | {} in {:.1} s ({:.0}/s) |",
        args.agents,
        enroll_elapsed.as_secs_f64(),
        args.agents as f64 / enroll_elapsed.as_secs_f64()
    );
    println!(
        "| sessions opened | {} in {:.1} s |",
        args.agents,
        connect_elapsed.as_secs_f64()
    );
    println!(
        "| reports acknowledged | {} facts ({:.0}/s), {} storage ({:.1}/s) |",
        log.facts.len(),
        log.facts.len() as f64 / elapsed.as_secs_f64(),
        log.storage.len(),
        log.storage.len() as f64 / elapsed.as_secs_f64()
    );
    println!("| **failures** | **{}** |", log.failures.len());
    for kind in log.failures.iter().take(3) {
        println!("| failure | {kind} |");
    }
    for (name, sorted) in [("facts", &log.facts), ("storage", &log.storage)] {
        println!(
            "| {name} round trip | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
            ms(percentile(sorted, 0.5)),
            ms(percentile(sorted, 0.99)),
            ms(sorted.last().copied().unwrap_or_default())
        );
    }
    println!(
        "| controller CPU | {:.3} cores ({:.2} % of a core per 1000 agents) |",
        cores,
        cores * 100.0 * 1000.0 / args.agents as f64
    );
    println!(
        "| simulated agents' CPU (this process, same machine) | {:.3} cores |",
        own_cpu.as_secs_f64() / elapsed.as_secs_f64()
    );
    println!(
        "| controller RSS | {:.1} MiB at the end, peak {:.1} MiB; {:.1} KiB per session |",
        after.rss_kib as f64 / 1024.0,
        after.hwm_kib as f64 / 1024.0,
        per_session_kib
    );
    if let Some(drops) = drops {
        println!("| UDP receive-buffer drops (machine) | {drops} |");
    }
    println!(
        "| **100 000 agents, extrapolated** | controller {:.2} cores, {:.1} GiB |",
        cores * scale,
        (baseline.rss_kib as f64 + per_session_kib * 100_000.0) / (1024.0 * 1024.0)
    );
    drop(bench);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Opens a session for every agent, [`CONNECTING_AT_ONCE`] handshakes at a time.
async fn connect_all(
    states: &[unity_agent::state::AgentState],
    addr: std::net::SocketAddr,
) -> Result<Vec<Session>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(CONNECTING_AT_ONCE));
    let mut set = tokio::task::JoinSet::new();
    for (agent, (endpoint, tls)) in agent_dialers(states, addr)?.into_iter().enumerate() {
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let connection = link::connect_with(&endpoint, addr, tls).await?;
            Ok::<_, anyhow::Error>((agent, Session::open(connection, "bench").await?))
        });
    }
    let mut sessions = Vec::with_capacity(states.len());
    while let Some(result) = set.join_next().await {
        sessions.push(result??);
    }
    sessions.sort_by_key(|(agent, _)| *agent);
    Ok(sessions.into_iter().map(|(_, s)| s).collect())
}

/// One agent's window: each report kind at its next time, then every interval after, until
/// `end`. A failed report is counted and the agent stops (a real one would reconnect and
/// resend from its spool; here a failure is what the bench exists to find).
async fn run_agent(
    mut session: Session,
    mut schedule: [(tokio::time::Instant, Duration); 2],
    bodies: [ReportBody; 2],
    end: tokio::time::Instant,
) -> AgentLog {
    let mut log = AgentLog::default();
    loop {
        let kind = usize::from(schedule[1].0 < schedule[0].0);
        let (at, every) = schedule[kind];
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        schedule[kind].0 = at + every;
        let sent = Instant::now();
        match session.send(now_ms(), bodies[kind].clone()).await {
            Ok(ReportReply::Ack { .. }) => {
                let took = sent.elapsed();
                if kind == 0 {
                    log.facts.push(took);
                } else {
                    log.storage.push(took);
                }
            }
            Ok(other) => {
                log.failures.push(format!("not acknowledged: {other:?}"));
                break;
            }
            Err(error) => {
                log.failures.push(format!("{error:#}"));
                break;
            }
        }
    }
    session.close();
    log
}
