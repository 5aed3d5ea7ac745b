//! Helpers the benchmark binaries share: process CPU/RSS from procfs, percentiles, a child
//! process killed on drop.

use std::time::Duration;

use anyhow::{Context, Result};

/// CPU time (user + system) and RSS of a process, from procfs.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub cpu: Duration,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn sample(pid: u32) -> Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc/pid/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        cpu: Duration::from_millis(ticks * 1000 / clock_ticks()),
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Fails, saying what to do, when a binary the bench runs has not been built (the benches
/// time the release builds; they do not build them).
pub fn require_built(binaries: &[&std::path::Path]) -> Result<()> {
    for binary in binaries {
        if !binary.exists() {
            anyhow::bail!(
                "{} not found: build it first (see the bench's module docs)",
                binary.display()
            );
        }
    }
    Ok(())
}

/// A throwaway PostgreSQL (keep it: dropping it stops the cluster), a fresh database with the
/// controller's schema, its URL, and the tenant `bench`: where every bench starts.
pub async fn bench_tenant() -> Result<(
    unity_controller::testing::ThrowawayPostgres,
    unity_controller::store::Store,
    String,
    unity_controller::store::Tenant,
)> {
    let pg = unity_controller::testing::ThrowawayPostgres::start().await?;
    let (store, database_url) = pg.fresh_database().await?;
    let tenant = store.create_tenant("bench").await?;
    Ok((pg, store, database_url, tenant))
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// A child process killed when dropped.
#[derive(Debug)]
pub struct Child(pub tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// The release controller binary running as a child process on `database_url`.
#[derive(Debug)]
pub struct BenchController {
    pub child: Child,
    pub pid: u32,
    pub quic_addr: String,
    pub api_base: String,
    pub fingerprint: unity_pki::Fingerprint,
}

impl BenchController {
    /// Starts `bin serve` with its state in `dir`, waits for `/healthz`, reads the CA
    /// fingerprint agents pin.
    pub async fn start(
        bin: &std::path::Path,
        database_url: &str,
        dir: &std::path::Path,
    ) -> Result<Self> {
        let quic_port = free_port()?;
        let api_port = free_port()?;
        let child = Child(
            tokio::process::Command::new(bin)
                .arg("serve")
                .env("DATABASE_URL", database_url)
                .env("UNITY_DATA_DIR", dir)
                .env("UNITY_QUIC_LISTEN", format!("127.0.0.1:{quic_port}"))
                .env("UNITY_API_LISTEN", format!("127.0.0.1:{api_port}"))
                .env("UNITY_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .spawn()
                .context("starting the controller")?,
        );
        let pid = child.0.id().context("controller pid")?;
        let api_base = format!("http://127.0.0.1:{api_port}");
        let http = crate::http_client();
        let mut ready = false;
        for _ in 0..100 {
            if http
                .get(format!("{api_base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            anyhow::bail!("controller did not become healthy");
        }
        let out = std::process::Command::new(bin)
            .args(["ca", "fingerprint"])
            .env("UNITY_DATA_DIR", dir)
            .output()?;
        let fingerprint = String::from_utf8_lossy(&out.stdout).trim().parse()?;
        Ok(Self {
            child,
            pid,
            quic_addr: format!("127.0.0.1:{quic_port}"),
            api_base,
            fingerprint,
        })
    }

    /// Enrolls `n` agents for real (16 at a time), with state under `dir/agent-<i>`.
    pub async fn enroll_many(
        &self,
        store: &unity_controller::store::Store,
        tenant: uuid::Uuid,
        n: usize,
        dir: &std::path::Path,
    ) -> Result<Vec<unity_agent::state::AgentState>> {
        use unity_agent::enroll::{EnrollOptions, enroll};
        let mut states = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(16) {
            let mut set = tokio::task::JoinSet::new();
            for &i in chunk {
                let (token, _) = store
                    .create_enrollment_token(tenant, Duration::from_secs(600))
                    .await?;
                let options = EnrollOptions {
                    controller: self.quic_addr.clone(),
                    token,
                    ca_fingerprint: self.fingerprint,
                    state_dir: dir.join(format!("agent-{i}")),
                    hostname: format!("bench-{i}"),
                    force: false,
                };
                set.spawn(async move {
                    enroll(&options).await?;
                    unity_agent::state::AgentState::load(&options.state_dir)
                        .map_err(anyhow::Error::from)
                });
            }
            while let Some(state) = set.join_next().await {
                states.push(state??);
            }
        }
        Ok(states)
    }
}

/// Runs every agent of `states` with the real run loop and job host (facts once an hour, a
/// fast reconnect), as the benchmarks' simulated fleet.
pub fn spawn_fleet(states: Vec<unity_agent::state::AgentState>) -> Vec<crate::AgentTask> {
    states
        .into_iter()
        .map(|state| {
            crate::AgentTask::spawn(
                state,
                unity_agent::run::RunOptions {
                    report_interval: Some(Duration::from_secs(3600)),
                    backoff_base: Duration::from_millis(200),
                    backoff_max: Duration::from_secs(5),
                    ..unity_agent::run::RunOptions::default()
                },
            )
        })
        .collect()
}

/// Waits until `n` hosts of `tenant` have sent their first facts (their sessions are up);
/// returns how long that took.
pub async fn wait_connected(
    store: &unity_controller::store::Store,
    tenant: uuid::Uuid,
    n: usize,
) -> Result<Duration> {
    let started = std::time::Instant::now();
    loop {
        let mut tx = store.tenant_tx(tenant).await?;
        let seen = unity_controller::store::hosts::list_hosts(
            &mut tx,
            &unity_controller::store::page::Page::all(),
        )
        .await?
        .iter()
        .filter(|h| h.os.is_some())
        .count();
        drop(tx);
        if seen == n {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("only {seen} of {n} agents connected");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Simulated agents per client socket: as many sockets as a real fleet's hosts would be too
/// many for one machine; one for all would make its receive buffer the bottleneck.
pub const AGENTS_PER_SOCKET: usize = 100;

/// For each agent of `states`, the client socket it connects from (one per
/// [`AGENTS_PER_SOCKET`]) and its mTLS client configuration.
pub fn agent_dialers(
    states: &[unity_agent::state::AgentState],
    addr: std::net::SocketAddr,
) -> Result<Vec<(quinn::Endpoint, quinn::rustls::ClientConfig)>> {
    let mut endpoints = Vec::new();
    for _ in 0..states.len().div_ceil(AGENTS_PER_SOCKET) {
        endpoints.push(bench_client_endpoint(addr)?);
    }
    let mut dialers = Vec::with_capacity(states.len());
    for (agent, state) in states.iter().enumerate() {
        let tls = unity_pki::tls::agent_client_config(
            &state.ca,
            vec![state.certificate.clone()],
            state.private_key_der(),
        )?;
        dialers.push((endpoints[agent / AGENTS_PER_SOCKET].clone(), tls));
    }
    Ok(dialers)
}

/// A client socket for up to 100 simulated agents, with a buffer large enough that drops
/// on this side do not blur the controller's.
pub fn bench_client_endpoint(addr: std::net::SocketAddr) -> Result<quinn::Endpoint> {
    let bind: std::net::SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let (socket, _) = unity_controller::link::socket::bind(bind, 8 << 20)?;
    Ok(quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket,
        std::sync::Arc::new(quinn::TokioRuntime),
    )?)
}

/// Milliseconds since the epoch, for collection times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The kernel's count of UDP datagrams dropped because a socket's receive buffer was full
/// (`Udp: … RcvbufErrors` in /proc/net/snmp), all sockets of the machine together.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let column = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(column)?.parse().ok()
}

/// The recorded storage round with disks of agent `agent`'s own: every serial and WWN gets a
/// per-agent suffix (in the wire summary and in the detail JSON the controller keeps).
pub fn own_disks(
    storage: &unity_protocol::latest::StorageReport,
    agent: usize,
) -> unity_protocol::latest::StorageReport {
    let mut storage = storage.clone();
    for disk in &mut storage.disks {
        for id in [&mut disk.serial, &mut disk.wwn].into_iter().flatten() {
            let own = format!("{id}-{agent}");
            disk.detail_json = disk
                .detail_json
                .replace(&format!("\"{id}\""), &format!("\"{own}\""));
            *id = own;
        }
    }
    storage
}
