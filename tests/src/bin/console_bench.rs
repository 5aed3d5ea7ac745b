//! `console-bench`: how fast the web console answers with a fleet of `--hosts` hosts
//! (docs/performance.md), beside the JSON API serving the same rows.
//!
//! ```sh
//! cargo build --release -p unity-controller
//! cargo run --release -p unity-e2e --bin console-bench -- --hosts 300
//! ```
//!
//! 1. A throwaway PostgreSQL and the release controller as a child process.
//! 2. `--hosts` hosts, each given through the real ingest path this machine's host facts,
//!    the storage the agent reads from recorded real tool outputs (a failing NVMe drive, a
//!    healthy one, a degraded pool and array — serials made unique per host, as real disks
//!    are) and `--containers` containers, a third of them with an image update; then a
//!    second storage round, so disks have history; then `ANALYZE`, as autovacuum would.
//! 3. Logs a console user in over HTTP and times `--requests` sequential GETs of each page
//!    (after 5 warm-ups): p50, p95, max, and the page's size; then the same for the API
//!    routes that serve those rows as JSON.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use time::OffsetDateTime;
use unity_controller::jobs::outcome::Peer;
use unity_controller::store::hosts::{self, NewHost};
use unity_controller::store::users::{self, Role};
use unity_e2e::bench::{BenchController, percentile};
use unity_protocol::latest::{
    ContainerInfo, ContainerReport, EngineInfo, ImageUpdate, Report, ReportBody, SourceState,
    SourceStatus, StorageReport, UpdateState,
};
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 300)]
    hosts: usize,
    #[arg(long, default_value_t = 6)]
    containers: usize,
    #[arg(long, default_value_t = 50)]
    requests: usize,
    #[arg(long, default_value = "target/release/unity-controller")]
    controller_bin: PathBuf,
    /// After loading, print the database URL and the tenant id and wait this long (to look
    /// at query plans with psql) instead of timing pages.
    #[arg(long)]
    hold_secs: Option<u64>,
}

const PASSWORD: &str = "console bench passphrase";

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// `base` with every disk's identity made this host's own.
fn storage_for(base: &StorageReport, host: usize) -> StorageReport {
    let mut report = base.clone();
    for disk in &mut report.disks {
        disk.serial = disk.serial.as_ref().map(|s| format!("{s}-{host}"));
        disk.wwn = disk.wwn.as_ref().map(|w| format!("{w}{host:04x}"));
    }
    report
}

fn containers_for(host: usize, n: usize) -> ReportBody {
    let containers = (0..n)
        .map(|i| {
            let update = i % 3 == 0;
            ContainerInfo {
                id: format!("{host:08x}{i:056x}"),
                name: format!("app-{i}"),
                image: format!("ghcr.io/example/app-{i}:latest"),
                image_id: format!("sha256:{host:08x}{i:056x}"),
                repo_digest: Some(format!("ghcr.io/example/app-{i}@sha256:{}", "a".repeat(64))),
                state: "running".into(),
                health: Some("healthy".into()),
                exit_code: None,
                restart_count: Some(0),
                created_at_ms: Some(now_ms() - 86_400_000),
                started_at_ms: Some(now_ms() - 3_600_000),
                ports: vec![format!("0.0.0.0:{}->80/tcp", 8000 + i)],
                compose_project: Some("homelab".into()),
                compose_service: Some(format!("app-{i}")),
                update: ImageUpdate {
                    state: if update {
                        UpdateState::UpdateAvailable
                    } else {
                        UpdateState::UpToDate
                    },
                    new_digest: update.then(|| format!("sha256:{}", "b".repeat(64))),
                    reason: String::new(),
                },
                detail_json: "{}".into(),
            }
        })
        .collect();
    ReportBody::Containers(ContainerReport {
        status: SourceStatus {
            state: SourceState::Ok,
            detail: String::new(),
        },
        engine: Some(EngineInfo {
            kind: "docker".into(),
            version: "27.3.1".into(),
            api_version: "1.47".into(),
            storage_driver: "overlay2".into(),
            rootless: false,
            endpoint: "unix:///var/run/docker.sock".into(),
        }),
        containers,
        images: Vec::new(),
    })
}

struct Timing {
    p50: Duration,
    p95: Duration,
    max: Duration,
    bytes: usize,
}

async fn time_get(
    http: &reqwest::Client,
    url: &str,
    auth: (&str, &str),
    n: usize,
) -> Result<Timing> {
    let get = || http.get(url).header(auth.0, auth.1).send();
    for _ in 0..5 {
        get().await?.bytes().await?;
    }
    let mut spans = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let started = Instant::now();
        let response = get().await?;
        let status = response.status();
        let body = response.bytes().await?;
        spans.push(started.elapsed());
        if !status.is_success() {
            bail!("{url} answered {status}");
        }
        bytes = body.len();
    }
    spans.sort();
    Ok(Timing {
        p50: percentile(&spans, 0.5),
        p95: percentile(&spans, 0.95),
        max: *spans.last().context("no requests")?,
        bytes,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    unity_e2e::bench::require_built(&[&args.controller_bin])?;
    let work = tempfile::tempdir()?;
    let (_pg, store, database_url, tenant) = unity_e2e::bench::bench_tenant().await?;
    let token = store.create_api_token(tenant.id, "bench").await?;
    let mut tx = store.tenant_tx(tenant.id).await?;
    users::create_user(&mut tx, tenant.id, "bench", Role::Admin, PASSWORD).await?;
    tx.commit().await?;

    let scratch = tempfile::tempdir()?;
    let storage = unity_agent::testing::recorded_storage(scratch.path())?
        .collect()
        .await;
    let facts = unity_agent::reports::host::collect();
    let started = Instant::now();
    let mut host_ids = Vec::with_capacity(args.hosts);
    for i in 0..args.hosts {
        let id = Uuid::new_v4();
        let mut tx = store.tenant_tx(tenant.id).await?;
        hosts::insert_host(
            &mut tx,
            &NewHost {
                id,
                tenant_id: tenant.id,
                hostname: format!("host-{i:03}"),
                agent_version: env!("CARGO_PKG_VERSION").into(),
                cert_serial: format!("{i:X}"),
                cert_not_after: OffsetDateTime::now_utc() + time::Duration::days(30),
                cert_issuer: unity_controller::issuer::IssuerKind::BuiltIn,
            },
        )
        .await?;
        tx.commit().await?;
        let peer = Peer {
            identity: unity_pki::HostIdentity {
                tenant_id: tenant.id,
                host_id: id,
            },
            host_key: Vec::new(),
        };
        let stream = Uuid::new_v4();
        let mut facts = facts.clone();
        facts.hostname = format!("host-{i:03}");
        let bodies = [
            ReportBody::HostFacts(facts),
            ReportBody::Storage(storage_for(&storage, i)),
            containers_for(i, args.containers),
            ReportBody::Storage(storage_for(&storage, i)),
        ];
        for (seq, body) in bodies.into_iter().enumerate() {
            let report = Report {
                stream_id: stream,
                seq: seq as u64 + 1,
                collected_at_ms: now_ms(),
                body,
            };
            unity_controller::ingest::apply(&store, &peer, &report)
                .await
                .with_context(|| format!("ingesting host {i}"))?;
        }
        host_ids.push(id);
    }
    // As autovacuum would within a minute of such writes: plans on tables without statistics
    // are not what a running fleet sees.
    let owner = sqlx::PgPool::connect(&database_url).await?;
    sqlx::query("ANALYZE")
        .execute(&owner)
        .await
        .context("ANALYZE")?;
    owner.close().await;
    println!(
        "{} hosts loaded in {:.1} s ({} disks, pools and arrays each; {} containers)",
        args.hosts,
        started.elapsed().as_secs_f64(),
        storage.disks.len() + storage.pools.len() + storage.arrays.len(),
        args.containers
    );

    if let Some(secs) = args.hold_secs {
        println!("database: {database_url}\ntenant: {}", tenant.id);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        return Ok(());
    }
    let bench = BenchController::start(
        &args.controller_bin,
        &database_url,
        &work.path().join("controller"),
    )
    .await?;
    let base = bench.api_base.clone();
    let http = unity_e2e::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let login = http
        .post(format!("{base}/login"))
        .form(&[("name", "bench"), ("password", PASSWORD)])
        .send()
        .await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .context("no session cookie")?
        .to_str()?
        .split(';')
        .next()
        .context("cookie")?
        .to_owned();
    let host = host_ids[args.hosts / 2];
    let mut tx = store.tenant_tx(tenant.id).await?;
    let disk: Uuid = sqlx::query_scalar("SELECT id FROM disks WHERE host_id = $1 LIMIT 1")
        .bind(host)
        .fetch_one(&mut *tx)
        .await?;
    drop(tx);
    let bearer = format!("Bearer {token}");
    let rows: Vec<(&str, String, (&str, &str))> = vec![
        (
            "console /  (fleet)",
            format!("{base}/"),
            ("cookie", &cookie),
        ),
        (
            "console /hosts/{id}",
            format!("{base}/hosts/{host}"),
            ("cookie", &cookie),
        ),
        (
            "console /disks/{id}",
            format!("{base}/disks/{disk}"),
            ("cookie", &cookie),
        ),
        (
            "console /alerts",
            format!("{base}/alerts"),
            ("cookie", &cookie),
        ),
        (
            "console /updates",
            format!("{base}/updates"),
            ("cookie", &cookie),
        ),
        ("console /jobs", format!("{base}/jobs"), ("cookie", &cookie)),
        (
            "console /?label=role=nas (fleet, filtered in SQL)",
            format!("{base}/?label=role%3Dnas"),
            ("cookie", &cookie),
        ),
        (
            "console /rollouts",
            format!("{base}/rollouts"),
            ("cookie", &cookie),
        ),
        (
            "console /settings",
            format!("{base}/settings"),
            ("cookie", &cookie),
        ),
        (
            "api /api/v1/hosts?limit=1000",
            format!("{base}/api/v1/hosts?limit=1000"),
            ("authorization", &bearer),
        ),
        (
            "api /api/v1/disks?host_id=…",
            format!("{base}/api/v1/disks?host_id={host}"),
            ("authorization", &bearer),
        ),
        (
            "api /api/v1/alerts?limit=500",
            format!("{base}/api/v1/alerts?limit=500"),
            ("authorization", &bearer),
        ),
        (
            "api /api/v1/containers?update=update_available&limit=500",
            format!("{base}/api/v1/containers?update=update_available&limit=500"),
            ("authorization", &bearer),
        ),
    ];
    println!(
        "\n{:<58} {:>9} {:>9} {:>9} {:>10}",
        format!("{} requests each, sequential", args.requests),
        "p50 ms",
        "p95 ms",
        "max ms",
        "bytes"
    );
    for (label, url, auth) in &rows {
        let t = time_get(&http, url, *auth, args.requests).await?;
        println!(
            "{label:<58} {:>9.2} {:>9.2} {:>9.2} {:>10}",
            t.p50.as_secs_f64() * 1e3,
            t.p95.as_secs_f64() * 1e3,
            t.max.as_secs_f64() * 1e3,
            t.bytes
        );
    }
    drop(bench);
    Ok(())
}
