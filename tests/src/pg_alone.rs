//! PostgreSQL alone: the controller's own host-facts SQL (the `store::hosts` functions ingest
//! calls) run straight from a pool — no QUIC, no TLS, no sessions, no queue. It is the
//! ceiling the controller's end-to-end facts ingest is judged against in
//! docs/performance.md (issue 16: "≥ 0.8 of PostgreSQL's own figure for the same SQL").
//!
//! Each client owns a disjoint set of hosts (as each host has one session), so clients never
//! wait on each other's rows; every report is fresh (its stream's sequence grows), and every
//! transaction is durable (the cluster's defaults: fsync and synchronous commit on).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use time::OffsetDateTime;
use unity_controller::store::hosts::{self, CursorStep};
use unity_controller::store::{self, Store};
use unity_protocol::latest::HostFacts;
use uuid::Uuid;

/// How the reports are put into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Single-report ingest's statements (cursor, facts) repeated per report, `per_tx`
    /// reports to a transaction (1 = what the controller did before group commit).
    PerReport { per_tx: usize },
    /// The group-commit writer's statements: one multi-row cursor statement and one
    /// multi-row facts statement for `per_tx` reports.
    MultiRow { per_tx: usize },
}

impl Shape {
    fn per_tx(self) -> usize {
        match self {
            Shape::PerReport { per_tx } | Shape::MultiRow { per_tx } => per_tx.max(1),
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::PerReport { per_tx: 1 } => write!(f, "one report per transaction"),
            Shape::PerReport { per_tx } => {
                write!(f, "{per_tx} reports per transaction, statements per report")
            }
            Shape::MultiRow { per_tx } => {
                write!(f, "{per_tx} reports per transaction, multi-row statements")
            }
        }
    }
}

/// Writes `total` facts reports for `hosts` of `tenant` with `clients` concurrent
/// connections; returns the elapsed time.
pub async fn facts(
    store: &Store,
    tenant: Uuid,
    hosts: &[Uuid],
    facts: &HostFacts,
    total: usize,
    clients: usize,
    shape: Shape,
) -> Result<Duration> {
    let clients = clients.clamp(1, hosts.len().max(1));
    let per_tx = shape.per_tx();
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for client in 0..clients {
        // Own hosts, each with a fresh stream (seq counts up from 1 per host).
        let own: Vec<(Uuid, Uuid)> = hosts
            .iter()
            .skip(client)
            .step_by(clients)
            .map(|&h| (h, Uuid::new_v4()))
            .collect();
        let (store, facts, done) = (store.clone(), facts.clone(), done.clone());
        set.spawn(async move {
            let mut seqs = vec![0u64; own.len()];
            let mut next = 0usize;
            loop {
                let claimed = done.fetch_add(per_tx, Ordering::Relaxed);
                if claimed >= total {
                    return Ok::<_, anyhow::Error>(());
                }
                let n = per_tx.min(total - claimed).min(own.len());
                let mut batch = Vec::with_capacity(n);
                for _ in 0..n {
                    seqs[next] += 1;
                    batch.push(CursorStep {
                        host_id: own[next].0,
                        stream_id: own[next].1,
                        seq: seqs[next],
                    });
                    next = (next + 1) % own.len();
                }
                write(&store, tenant, &facts, &batch, shape).await?;
            }
        });
    }
    while let Some(result) = set.join_next().await {
        result??;
    }
    Ok(started.elapsed())
}

async fn write(
    store: &Store,
    tenant: Uuid,
    facts: &HostFacts,
    batch: &[CursorStep],
    shape: Shape,
) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let mut tx = store.tenant_tx(tenant).await?;
    match shape {
        Shape::PerReport { .. } => {
            for step in batch {
                let fresh =
                    hosts::advance_cursor(&mut tx, tenant, step.host_id, step.stream_id, step.seq)
                        .await?;
                anyhow::ensure!(fresh, "a bench report was not fresh");
                hosts::store_facts(&mut tx, step.host_id, facts, now).await?;
            }
        }
        Shape::MultiRow { .. } => {
            let fresh = hosts::advance_cursors(&mut tx, tenant, batch).await?;
            anyhow::ensure!(fresh.iter().all(|f| *f), "a bench report was not fresh");
            let rows: Vec<_> = batch.iter().map(|s| (s.host_id, facts, now)).collect();
            hosts::store_facts_many(&mut tx, &rows).await?;
        }
    }
    store::commit(tx, "committing bench facts").await?;
    Ok(())
}
