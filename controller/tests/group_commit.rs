//! Group commit of host facts on a real PostgreSQL: many sessions' reports written in shared
//! transactions give exactly the answers and rows single-report ingest gives — fresh,
//! duplicate, two reports of one host in one batch, tenants kept apart — and a batch holding
//! a revoked host is rolled back and applied report by report, so only that host's report
//! fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use futures_util::future::join_all;
use time::OffsetDateTime;
use unity_controller::ingest::group_commit::{FactsWriter, GroupCommitSettings};
use unity_controller::ingest::{IngestError, IngestSettings};
use unity_controller::jobs::outcome::Peer;
use unity_controller::store::{Store, Tenant, hosts};
use unity_protocol::latest::{HostFacts, Report, ReportBody, ReportReply};
use uuid::Uuid;

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

fn facts(hostname: &str, uptime_secs: u64) -> HostFacts {
    HostFacts {
        hostname: hostname.into(),
        os_name: "Debian GNU/Linux".into(),
        os_version: "12".into(),
        kernel_version: "6.1".into(),
        architecture: "x86_64".into(),
        cpu_model: "cpu".into(),
        cpu_logical_cores: 2,
        cpu_physical_cores: Some(1),
        memory_total_bytes: 1 << 30,
        memory_available_bytes: 1 << 29,
        swap_total_bytes: 0,
        swap_free_bytes: 0,
        filesystems: vec![],
        uptime_secs,
        boot_id: format!("boot-{hostname}"),
        agent_version: unity_controller::VERSION.into(),
    }
}

struct Host {
    tenant: Uuid,
    id: Uuid,
    stream: Uuid,
    name: String,
}

impl Host {
    fn peer(&self) -> Peer {
        Peer {
            identity: unity_pki::HostIdentity {
                tenant_id: self.tenant,
                host_id: self.id,
            },
            host_key: Vec::new(),
        }
    }

    fn report(&self, seq: u64, uptime_secs: u64) -> Report {
        Report {
            stream_id: self.stream,
            seq,
            collected_at_ms: now_ms(),
            body: ReportBody::HostFacts(facts(&self.name, uptime_secs)),
        }
    }
}

async fn hosts_of(store: &Store, tenant: &Tenant, count: usize) -> Vec<Host> {
    let mut out = Vec::new();
    for i in 0..count {
        let name = format!("{}-{i}", tenant.name);
        let id = common::add_host(store, tenant, &name).await;
        out.push(Host {
            tenant: tenant.id,
            id,
            stream: Uuid::new_v4(),
            name,
        });
    }
    out
}

/// Submits every `(host, report)` at once and returns the answers in order.
async fn submit(
    writer: &FactsWriter,
    reports: Vec<(&Host, Report)>,
) -> Vec<Result<ReportReply, IngestError>> {
    join_all(reports.into_iter().map(|(host, report)| {
        let peer = host.peer();
        async move { writer.apply(&peer, report).await }
    }))
    .await
}

/// The uptime stored for `host` (its facts document), read through its tenant.
async fn stored_uptime(store: &Store, host: &Host) -> Option<u64> {
    let mut tx = store.tenant_tx(host.tenant).await.unwrap();
    let detail = hosts::get_host(&mut tx, host.id).await.unwrap()?;
    tx.commit().await.unwrap();
    detail.facts.map(|facts| facts.uptime_secs)
}

fn ack(fresh: bool) -> impl Fn(&Result<ReportReply, IngestError>) -> bool {
    move |answer| matches!(answer, Ok(ReportReply::Ack { duplicate, .. }) if *duplicate != fresh)
}

#[tokio::test]
async fn facts_of_many_sessions_commit_together_with_single_report_answers() {
    let (_pg, store) = common::database().await;
    let alpha = store.create_tenant("alpha").await.unwrap();
    let beta = store.create_tenant("beta").await.unwrap();
    let mut fleet = hosts_of(&store, &alpha, 20).await;
    fleet.extend(hosts_of(&store, &beta, 5).await);
    // One writer, so reports submitted together are written together.
    let writer = FactsWriter::start(
        store.clone(),
        IngestSettings::default(),
        GroupCommitSettings {
            writers: 1,
            ..GroupCommitSettings::default()
        },
    );

    // Every host's first report, all at once: fresh, in few transactions, one per tenant.
    let answers = submit(
        &writer,
        fleet.iter().map(|h| (h, h.report(1, 100))).collect(),
    )
    .await;
    assert!(answers.iter().all(ack(true)), "{answers:?}");
    let stats = writer.stats();
    assert_eq!(stats.batched_reports, 25);
    assert!(
        stats.batches <= 3,
        "25 reports submitted together were written in {} transactions",
        stats.batches
    );
    for host in &fleet {
        assert_eq!(
            stored_uptime(&store, host).await,
            Some(100),
            "{}",
            host.name
        );
    }

    // Redelivered: acknowledged as duplicates, nothing rewritten.
    let answers = submit(
        &writer,
        fleet.iter().map(|h| (h, h.report(1, 999))).collect(),
    )
    .await;
    assert!(answers.iter().all(ack(false)), "{answers:?}");
    assert_eq!(stored_uptime(&store, &fleet[0]).await, Some(100));

    // Two reports of one host in one batch (an old session not yet closed beside the new
    // one): both fresh, applied in order, the later one's facts kept.
    let host = &fleet[3];
    let answers = submit(
        &writer,
        vec![(host, host.report(2, 200)), (host, host.report(3, 300))],
    )
    .await;
    assert!(answers.iter().all(ack(true)), "{answers:?}");
    assert_eq!(stored_uptime(&store, host).await, Some(300));
    // The same on two streams of one host (a spooled report replayed beside a new one): both
    // fresh, in order, the later one's facts kept.
    let other_stream = Host {
        stream: Uuid::new_v4(),
        name: host.name.clone(),
        ..*host
    };
    let answers = submit(
        &writer,
        vec![
            (host, host.report(4, 400)),
            (&other_stream, other_stream.report(1, 500)),
        ],
    )
    .await;
    assert!(answers.iter().all(ack(true)), "{answers:?}");
    assert_eq!(stored_uptime(&store, host).await, Some(500));
    assert_eq!(writer.stats().fallbacks, 0);

    // A host revoked while its report waits: the batch holding it is rolled back and applied
    // report by report — that host's report fails, every other one is stored.
    let revoked = &fleet[7];
    let mut tx = store.tenant_tx(alpha.id).await.unwrap();
    assert!(hosts::revoke_host(&mut tx, revoked.id).await.unwrap());
    tx.commit().await.unwrap();
    let answers = submit(
        &writer,
        fleet.iter().map(|h| (h, h.report(10, 1000))).collect(),
    )
    .await;
    for (host, answer) in fleet.iter().zip(&answers) {
        if host.id == revoked.id {
            assert!(
                matches!(answer, Err(IngestError::HostGone)),
                "revoked host answered {answer:?}"
            );
            assert_eq!(stored_uptime(&store, host).await, Some(100));
        } else {
            assert!(ack(true)(answer), "{}: {answer:?}", host.name);
            assert_eq!(
                stored_uptime(&store, host).await,
                Some(1000),
                "{}",
                host.name
            );
        }
    }
    assert_eq!(writer.stats().fallbacks, 1, "only alpha's batch fell back");

    // The revoked host's cursor did not move with the rolled-back batch: its report is not
    // "already seen" (it stays refused for the revocation, not swallowed as a duplicate).
    let answers = submit(&writer, vec![(revoked, revoked.report(10, 1000))]).await;
    assert!(
        matches!(answers[0], Err(IngestError::HostGone)),
        "{answers:?}"
    );
}

#[tokio::test]
async fn rejected_reports_never_reach_a_batch() {
    let (_pg, store) = common::database().await;
    let alpha = store.create_tenant("alpha").await.unwrap();
    let fleet = hosts_of(&store, &alpha, 2).await;
    let writer = FactsWriter::start(
        store.clone(),
        IngestSettings::default(),
        GroupCommitSettings::default(),
    );
    let mut late = fleet[0].report(1, 5);
    late.collected_at_ms = 1_000; // 1970: the host's clock is wrong
    let answers = submit(
        &writer,
        vec![(&fleet[0], late), (&fleet[1], fleet[1].report(1, 5))],
    )
    .await;
    assert!(
        matches!(&answers[0], Ok(ReportReply::Rejected { detail, .. }) if detail.contains("clock is wrong")),
        "{answers:?}"
    );
    assert!(ack(true)(&answers[1]), "{answers:?}");
    assert_eq!(stored_uptime(&store, &fleet[0]).await, None);
    assert_eq!(writer.stats().batched_reports, 1);
}
