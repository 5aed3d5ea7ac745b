//! `fleet-bench`: measures what docs/performance.md reports, on this machine, with the real
//! binaries and a real PostgreSQL.
//!
//! ```sh
//! cargo build --release -p unity-controller && cargo build --profile release-agent -p unity-agent
//! cargo run --release -p unity-e2e --bin fleet-bench -- --agents 500 --reports 20
//! ```
//!
//! 1. Starts a throwaway PostgreSQL and the **release controller binary** as a child process.
//! 2. Enrolls `--agents` simulated agents (real keys, real enrollment over QUIC).
//! 3. Ingest: every agent opens a session and sends `--reports` host-facts reports back to back;
//!    prints reports/s, latency percentiles and the controller's CPU time per 1000 reports.
//!    Then storage: every agent sends a real storage round (recorded real tool outputs: three
//!    disks with attribute metrics, a degraded pool, a degraded array); prints reports/s.
//! 4. Agents per controller: holds all sessions open (keep-alives only) for `--idle-secs`;
//!    prints the controller's RSS per connected agent and its idle CPU.
//! 5. Reconnect storm: every session is dropped at once (as a controller restart drops them)
//!    and every agent reconnects and sends a storage round — spread over the window a
//!    stopping controller gives that many agents, as real agents do (`--storm-spread-secs 0`:
//!    all at the same instant, the worst case); prints failures (which must be 0), time until
//!    all are stored and acknowledged, and how many UDP datagrams the kernel dropped for full
//!    receive buffers meanwhile (`RcvbufErrors`, machine-wide). Simulated agents share a
//!    client socket per 100, each with an 8 MiB buffer, so the drops counted are the
//!    controller's.
//! 6. Agent footprint: runs the **release-agent binary** enrolled for real, reporting every 60 s,
//!    for `--idle-secs`; prints its RSS, CPU and binary size.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use unity_agent::link::{self, Session};
use unity_e2e::bench::{
    BenchController, Child, ProcSample, agent_dialers, now_ms, own_disks, percentile, sample,
    udp_rcvbuf_errors,
};
use unity_e2e::pg_alone::Shape;
use unity_protocol::latest::ReportBody;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 200)]
    agents: usize,
    #[arg(long, default_value_t = 20)]
    reports: usize,
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    #[arg(long, default_value = "target/release/unity-controller")]
    controller_bin: PathBuf,
    #[arg(long, default_value = "target/release-agent/unity-agent")]
    agent_bin: PathBuf,
    /// Connections for the PostgreSQL-alone comparison (the controller's application pool
    /// holds 16; its facts writers use 2).
    #[arg(long, default_value_t = 8)]
    pg_clients: usize,
    /// The reconnect storm's window: each agent waits a delay uniform in its upper half, as
    /// real agents do with the `retry_after` a stopping controller gives them. Unset: the
    /// window that controller gives this many agents; 0: all at the same instant.
    #[arg(long)]
    storm_spread_secs: Option<u32>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    unity_e2e::bench::require_built(&[&args.controller_bin, &args.agent_bin])?;
    let work = tempfile::tempdir()?;
    let (_pg, store, database_url, tenant) = unity_e2e::bench::bench_tenant().await?;

    let controller_dir = work.path().join("controller");
    let bench =
        BenchController::start(&args.controller_bin, &database_url, &controller_dir).await?;
    let pid = bench.pid;
    let fingerprint = bench.fingerprint;
    let controller_addr = bench.quic_addr.clone();
    let baseline = sample(pid)?;

    // Enrollment.
    let started = Instant::now();
    let states = bench
        .enroll_many(&store, tenant.id, args.agents, work.path())
        .await?;
    let enroll_elapsed = started.elapsed();

    // Sessions over one shared client endpoint.
    let addr: std::net::SocketAddr = controller_addr.parse()?;
    let endpoint = link::client_endpoint(addr)?;
    let facts = unity_agent::reports::host::collect();
    let report_bytes = unity_protocol::encode_frame(&ReportBody::HostFacts(facts.clone()))?.len();
    let mut sessions = Vec::with_capacity(states.len());
    for state in &states {
        let tls = unity_pki::tls::agent_client_config(
            &state.ca,
            vec![state.certificate.clone()],
            state.private_key_der(),
        )?;
        let connection = link::connect_with(&endpoint, addr, tls).await?;
        sessions.push(Session::open(connection, "bench").await?);
    }
    // Each session keeps the index of its host's state: the phases below collect sessions in
    // completion order, and a host's disks must carry the same serials in every phase (else
    // the storm would find each disk "claimed" by another host and measure alerts).
    let mut sessions: Vec<(usize, Session)> = sessions.into_iter().enumerate().collect();
    let connected = sample(pid)?;

    // Ingest.
    let before = sample(pid)?;
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let facts = Arc::new(facts);
    let facts_start_ms = now_ms();
    for (agent, mut session) in sessions {
        let facts = facts.clone();
        let reports = args.reports;
        set.spawn(async move {
            let mut latencies = Vec::with_capacity(reports);
            for i in 0..reports {
                let t = Instant::now();
                session
                    .send(
                        facts_start_ms + i as i64,
                        ReportBody::HostFacts((*facts).clone()),
                    )
                    .await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>((agent, session, latencies))
        });
    }
    sessions = Vec::new();
    let mut latencies = Vec::new();
    while let Some(result) = set.join_next().await {
        let (agent, session, l) = result??;
        sessions.push((agent, session));
        latencies.extend(l);
    }
    let ingest_elapsed = started.elapsed();
    let after = sample(pid)?;
    latencies.sort();
    let total = args.agents * args.reports;

    // PostgreSQL alone: the same facts SQL, the same hosts and database, no controller.
    let host_ids: Vec<uuid::Uuid> = states.iter().map(|s| s.enrollment.host_id).collect();
    let mut pg_alone = Vec::new();
    for shape in [
        Shape::PerReport { per_tx: 1 },
        Shape::PerReport { per_tx: 10 },
        Shape::MultiRow { per_tx: 10 },
        Shape::MultiRow { per_tx: 100 },
    ] {
        let elapsed = unity_e2e::pg_alone::facts(
            &store,
            tenant.id,
            &host_ids,
            &facts,
            total,
            args.pg_clients,
            shape,
        )
        .await?;
        pg_alone.push((shape, total as f64 / elapsed.as_secs_f64()));
    }

    // Storage ingest: every agent sends a real storage round (3 disks with their attribute
    // metrics, a degraded pool, a degraded array, recorded real outputs) a few times; each
    // report upserts every object and writes history samples. Each simulated host has its
    // own disks (serials and WWNs made unique per agent): the same serials on every host
    // would measure lock contention on a few rows and a storm of `disk_moved` alerts, not
    // ingest. Collection times are now, so retention keeps what was just written.
    let scratch = tempfile::tempdir()?;
    let storage = unity_agent::testing::recorded_storage(scratch.path())?
        .collect()
        .await;
    let storage_bytes = unity_protocol::encode_frame(&ReportBody::Storage(storage.clone()))?.len();
    let storage_rounds = args.reports.div_ceil(4).max(1);
    let storage_before = sample(pid)?;
    let wal_before = wal_position(&store, tenant.id).await?;
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let storage_start_ms = now_ms();
    for (agent, mut session) in sessions {
        let storage = own_disks(&storage, agent);
        set.spawn(async move {
            for i in 0..storage_rounds {
                session
                    .send(
                        storage_start_ms + i as i64,
                        ReportBody::Storage(storage.clone()),
                    )
                    .await?;
            }
            Ok::<_, anyhow::Error>((agent, session))
        });
    }
    sessions = Vec::new();
    while let Some(result) = set.join_next().await {
        sessions.push(result??);
    }
    let storage_elapsed = started.elapsed();
    let storage_cpu = sample(pid)?.cpu.saturating_sub(storage_before.cpu);
    let storage_wal = wal_position(&store, tenant.id).await? - wal_before;
    let storage_total = args.agents * storage_rounds;

    // Idle sessions.
    let idle_before = sample(pid)?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_after = sample(pid)?;

    // Reconnect storm.
    for (_, session) in &sessions {
        session.close();
    }
    drop(sessions);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spread = args
        .storm_spread_secs
        .unwrap_or_else(|| unity_controller::link::reconnect_spread_secs(states.len()));
    let storm = reconnect_storm(&states, addr, &storage, pid, spread).await?;
    let sessions = storm.sessions;

    // A real agent process.
    let (token, _) = store
        .create_enrollment_token(tenant.id, Duration::from_secs(600))
        .await?;
    let agent_dir = work.path().join("real-agent");
    let status = tokio::process::Command::new(&args.agent_bin)
        .args(["--state-dir"])
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
    let agent = Child(
        tokio::process::Command::new(&args.agent_bin)
            .args(["--state-dir"])
            .arg(&agent_dir)
            .arg("run")
            .env("UNITY_LOG", "warn")
            .spawn()?,
    );
    let agent_pid = agent.0.id().context("agent pid")?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let agent_before = sample(agent_pid)?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let agent_after = sample(agent_pid)?;
    let agent_size = std::fs::metadata(&args.agent_bin)?.len();

    for session in &sessions {
        session.close();
    }
    print_results(&Results {
        args: &args,
        enroll_elapsed,
        report_bytes,
        ingest_elapsed,
        total,
        latencies: &latencies,
        ingest_cpu: after.cpu.saturating_sub(before.cpu),
        storage_bytes,
        storage_total,
        storage_elapsed,
        storage_cpu,
        storage_wal,
        baseline,
        connected,
        idle_cpu: idle_after.cpu.saturating_sub(idle_before.cpu),
        idle_after,
        agent_cpu: agent_after.cpu.saturating_sub(agent_before.cpu),
        agent_after,
        agent_size,
        agent_bin: &args.agent_bin,
        pg_alone: &pg_alone,
        storm: &storm.summary,
    });
    drop(agent);
    drop(bench);
    Ok(())
}

struct Results<'a> {
    args: &'a Args,
    enroll_elapsed: Duration,
    report_bytes: usize,
    ingest_elapsed: Duration,
    total: usize,
    latencies: &'a [Duration],
    ingest_cpu: Duration,
    storage_bytes: usize,
    storage_total: usize,
    storage_elapsed: Duration,
    storage_cpu: Duration,
    /// WAL PostgreSQL wrote during the storage phase, in bytes.
    storage_wal: i64,
    baseline: ProcSample,
    connected: ProcSample,
    idle_cpu: Duration,
    idle_after: ProcSample,
    agent_cpu: Duration,
    agent_after: ProcSample,
    agent_size: u64,
    agent_bin: &'a Path,
    pg_alone: &'a [(Shape, f64)],
    storm: &'a StormSummary,
}

/// What the reconnect storm measured.
struct StormSummary {
    agents: usize,
    failures: usize,
    /// A few distinct failure messages, for the reader.
    failure_kinds: Vec<String>,
    elapsed: Duration,
    /// Per agent: from its (spread) reconnect until its storage report was acknowledged.
    latencies: Vec<Duration>,
    spread_secs: u32,
    rcvbuf_errors: Option<u64>,
    cpu: Duration,
}

struct Storm {
    summary: StormSummary,
    sessions: Vec<Session>,
}

/// Every agent connects, checks in and sends its storage round: after a delay uniform in the
/// upper half of `spread_secs` (what real agents do with a stopping controller's
/// `retry_after`), or all at the same instant when it is 0.
async fn reconnect_storm(
    states: &[unity_agent::state::AgentState],
    addr: std::net::SocketAddr,
    storage: &unity_protocol::latest::StorageReport,
    pid: u32,
    spread_secs: u32,
) -> Result<Storm> {
    let mut prepared = Vec::with_capacity(states.len());
    for (agent, (endpoint, tls)) in agent_dialers(states, addr)?.into_iter().enumerate() {
        prepared.push((endpoint, tls, own_disks(storage, agent)));
    }
    let rcvbuf_before = udp_rcvbuf_errors();
    let cpu_before = sample(pid)?;
    let gate = Arc::new(tokio::sync::Barrier::new(prepared.len() + 1));
    let mut set = tokio::task::JoinSet::new();
    let started_ms = now_ms();
    for (endpoint, tls, storage) in prepared {
        let gate = gate.clone();
        let delay = if spread_secs == 0 {
            Duration::ZERO
        } else {
            unity_agent::link::backoff::hinted_delay(
                spread_secs,
                unity_agent::link::backoff::random_unit(),
            )
        };
        set.spawn(async move {
            gate.wait().await;
            tokio::time::sleep(delay).await;
            let started = Instant::now();
            let connection = link::connect_with(&endpoint, addr, tls).await?;
            let mut session = Session::open(connection, "bench").await?;
            let reply = session
                .send(started_ms, ReportBody::Storage(storage))
                .await?;
            if !matches!(reply, unity_protocol::latest::ReportReply::Ack { .. }) {
                bail!("not acknowledged: {reply:?}");
            }
            Ok::<_, anyhow::Error>((session, started.elapsed()))
        });
    }
    gate.wait().await;
    let started = Instant::now();
    let mut sessions = Vec::new();
    let mut latencies = Vec::new();
    let mut failures = 0;
    let mut failure_kinds: Vec<String> = Vec::new();
    while let Some(result) = set.join_next().await {
        match result? {
            Ok((session, latency)) => {
                sessions.push(session);
                latencies.push(latency);
            }
            Err(error) => {
                failures += 1;
                let kind = format!("{error:#}");
                if failure_kinds.len() < 3 && !failure_kinds.contains(&kind) {
                    failure_kinds.push(kind);
                }
            }
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Storm {
        summary: StormSummary {
            agents: states.len(),
            failures,
            failure_kinds,
            elapsed,
            latencies,
            spread_secs,
            rcvbuf_errors: udp_rcvbuf_errors()
                .zip(rcvbuf_before)
                .map(|(after, before)| after.saturating_sub(before)),
            cpu: sample(pid)?.cpu.saturating_sub(cpu_before.cpu),
        },
        sessions,
    })
}

fn print_results(r: &Results<'_>) {
    let a = r.args;
    let secs = r.ingest_elapsed.as_secs_f64();
    println!(
        "fleet-bench: {} agents × {} reports, idle window {} s",
        a.agents, a.reports, a.idle_secs
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| enrollment | {} hosts in {:.2} s ({:.0} hosts/s) |",
        a.agents,
        r.enroll_elapsed.as_secs_f64(),
        a.agents as f64 / r.enroll_elapsed.as_secs_f64()
    );
    println!(
        "| ingest | {} reports ({} B each) in {:.2} s = **{:.0} reports/s** |",
        r.total,
        r.report_bytes,
        secs,
        r.total as f64 / secs
    );
    println!(
        "| report round trip | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
        percentile(r.latencies, 0.5).as_secs_f64() * 1e3,
        percentile(r.latencies, 0.99).as_secs_f64() * 1e3,
        percentile(r.latencies, 1.0).as_secs_f64() * 1e3
    );
    println!(
        "| controller CPU per 1000 reports | {:.0} ms |",
        r.ingest_cpu.as_secs_f64() * 1e3 * 1000.0 / r.total as f64
    );
    let controller_rate = r.total as f64 / secs;
    for (shape, rate) in r.pg_alone {
        println!(
            "| PostgreSQL alone, same facts SQL, {} clients, {shape} | {rate:.0} reports/s (controller end to end: **{:.2}×** this) |",
            a.pg_clients,
            controller_rate / rate
        );
    }
    println!(
        "| storage ingest | {} reports ({} B each: 3 disks, 1 pool, 1 array) in {:.2} s = **{:.0} reports/s**, controller CPU {:.0} ms per 1000, WAL {:.1} KiB per report |",
        r.storage_total,
        r.storage_bytes,
        r.storage_elapsed.as_secs_f64(),
        r.storage_total as f64 / r.storage_elapsed.as_secs_f64(),
        r.storage_cpu.as_secs_f64() * 1e3 * 1000.0 / r.storage_total as f64,
        r.storage_wal as f64 / 1024.0 / r.storage_total as f64
    );
    let storm = r.storm;
    println!(
        "| reconnect storm: {} agents connect, check in and send a storage round {} | **{} failures**{}; all stored in {:.2} s (per agent p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms); controller CPU {:.2} s; UDP receive-buffer drops {} |",
        storm.agents,
        if storm.spread_secs == 0 {
            "all at once".to_owned()
        } else {
            format!(
                "spread over {}–{} s (the controller's retry_after)",
                storm.spread_secs / 2,
                storm.spread_secs
            )
        },
        storm.failures,
        if storm.failure_kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", storm.failure_kinds.join("; "))
        },
        storm.elapsed.as_secs_f64(),
        percentile(&storm.latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&storm.latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&storm.latencies, 1.0).as_secs_f64() * 1e3,
        storm.cpu.as_secs_f64(),
        storm
            .rcvbuf_errors
            .map_or("unknown".to_owned(), |n| n.to_string()),
    );
    println!(
        "| controller RSS | {} KiB idle with no agents → {} KiB with {} sessions (**{:.1} KiB per agent**); peak {} KiB |",
        r.baseline.rss_kib,
        r.connected.rss_kib,
        a.agents,
        r.connected.rss_kib.saturating_sub(r.baseline.rss_kib) as f64 / a.agents as f64,
        r.idle_after.hwm_kib
    );
    println!(
        "| controller CPU with {} idle sessions | {:.2} % of one core |",
        a.agents,
        r.idle_cpu.as_secs_f64() * 100.0 / a.idle_secs as f64
    );
    println!(
        "| agent ({}) | {:.1} MiB binary, RSS {} KiB (peak {} KiB), CPU {:.3} % of one core over {} s |",
        r.agent_bin.display(),
        r.agent_size as f64 / (1024.0 * 1024.0),
        r.agent_after.rss_kib,
        r.agent_after.hwm_kib,
        r.agent_cpu.as_secs_f64() * 100.0 / a.idle_secs as f64,
        a.idle_secs
    );
}

/// PostgreSQL's current WAL position in bytes: the difference of two is the WAL written.
async fn wal_position(store: &unity_controller::store::Store, tenant: uuid::Uuid) -> Result<i64> {
    let mut tx = store.tenant_tx(tenant).await?;
    let lsn: i64 =
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
            .fetch_one(&mut *tx)
            .await?;
    Ok(lsn)
}
