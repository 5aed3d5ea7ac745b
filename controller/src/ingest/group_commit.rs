//! Group commit for host facts: the reports of every session written together, a few
//! statements and one commit for many reports.
//!
//! Why: a facts report is tiny (a few hundred bytes) and frequent (every host, every minute),
//! and written alone it costs five round trips and a commit — PostgreSQL spent a quarter of
//! that time executing and the rest waiting on the wire and on fsync (issue 16's numbers in
//! docs/performance.md). Here sessions hand their checked report to a queue; a few writers
//! take *whatever is queued* when they are free (no timer: an idle controller writes each
//! report at once, a busy one writes as many as arrived during the previous commit) and
//! write them per tenant as multi-row statements in one transaction. Acknowledgements still
//! go out only after that commit, so nothing acknowledged can be lost.
//!
//! One bad report must not fail the others: if a batch fails (a database error, or a host
//! that was revoked meanwhile), it is rolled back whole and every report of it is applied
//! again on its own through [`super::apply_with`], which gives each its precise answer.
//! That is rare and costs only time; no report is ever acknowledged without its commit.
//!
//! The same `(host, stream)` cursor or host row twice in one statement is something
//! PostgreSQL refuses or decides arbitrarily, so a batch is cut into rounds in which each host
//! appears once (in practice a host has one
//! report in flight: its session applies reports one at a time).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc, oneshot};
use unity_protocol::latest::{HostFacts, Report, ReportBody, ReportReply};
use uuid::Uuid;

use super::{IngestError, IngestSettings, agent_version, count, precheck};
use crate::error_chain;
use crate::jobs::outcome::Peer;
use crate::store::host_rows::HostScope;
use crate::store::hosts::{self, CursorStep};
use crate::store::{self, Store, StoreError};

/// How the writers batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitSettings {
    /// Writers working at once (each holds one pooled connection while it writes). Two
    /// keep one batch forming while the other commits.
    pub writers: usize,
    /// Most reports one writer takes at once; more wait for the next batch.
    pub max_batch: usize,
    /// Reports waiting for a writer; sessions beyond it wait to enqueue (backpressure).
    pub queue: usize,
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self {
            writers: 2,
            max_batch: 512,
            queue: 4096,
        }
    }
}

/// A checked facts report waiting for its batch.
struct Pending {
    peer: Peer,
    stream_id: Uuid,
    seq: u64,
    collected_at_ms: i64,
    facts: HostFacts,
    collected_at: OffsetDateTime,
    submitted: Instant,
    answer: oneshot::Sender<Result<ReportReply, IngestError>>,
}

impl Pending {
    /// The report again, for the one-by-one path after a failed batch.
    fn report(&self) -> Report {
        Report {
            stream_id: self.stream_id,
            seq: self.seq,
            collected_at_ms: self.collected_at_ms,
            body: ReportBody::HostFacts(self.facts.clone()),
        }
    }

    fn answer(self, result: Result<ReportReply, IngestError>) {
        count("host_facts", &result, self.submitted);
        // The session may have ended meanwhile; the report is committed either way.
        let _ = self.answer.send(result);
    }
}

/// The queue sessions hand facts reports to; the writers behind it run until the last
/// handle is dropped.
#[derive(Debug, Clone)]
pub struct FactsWriter {
    queue: mpsc::Sender<Pending>,
    stats: Arc<Counters>,
    /// For reports that are not facts (applied the single-report way).
    store: Store,
    ingest: IngestSettings,
}

/// What the writers have done since they started (tests and benchmarks read it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Transactions that committed a batch.
    pub batches: u64,
    /// Reports those transactions held.
    pub batched_reports: u64,
    /// Batches rolled back and applied report by report.
    pub fallbacks: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    batched_reports: AtomicU64,
    fallbacks: AtomicU64,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("host_id", &self.peer.identity.host_id)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl FactsWriter {
    /// Starts `settings.writers` writers on the current runtime.
    pub fn start(store: Store, ingest: IngestSettings, settings: GroupCommitSettings) -> Self {
        let (queue, receiver) = mpsc::channel(settings.queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        let stats = Arc::new(Counters::default());
        for _ in 0..settings.writers.max(1) {
            tokio::spawn(write_forever(
                store.clone(),
                ingest,
                settings.max_batch.max(1),
                receiver.clone(),
                stats.clone(),
            ));
        }
        Self {
            queue,
            stats,
            store,
            ingest,
        }
    }

    pub fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            batches: self.stats.batches.load(Ordering::Relaxed),
            batched_reports: self.stats.batched_reports.load(Ordering::Relaxed),
            fallbacks: self.stats.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// Applies a report: host facts through a shared batch (answered after the commit that
    /// holds it), any other kind the single-report way.
    pub async fn apply(&self, peer: &Peer, report: Report) -> Result<ReportReply, IngestError> {
        let submitted = Instant::now();
        let collected_at = match precheck(peer, &report, OffsetDateTime::now_utc()) {
            Ok(at) => at,
            Err(rejected) => {
                let result = Ok(rejected);
                count(super::kind_name(&report.body), &result, submitted);
                return result;
            }
        };
        let Report {
            stream_id,
            seq,
            collected_at_ms,
            body,
        } = report;
        let facts = match body {
            ReportBody::HostFacts(facts) => facts,
            body => {
                let report = Report {
                    stream_id,
                    seq,
                    collected_at_ms,
                    body,
                };
                return super::apply_with(&self.store, peer, &report, &self.ingest).await;
            }
        };
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            peer: peer.clone(),
            stream_id,
            seq,
            collected_at_ms,
            facts,
            collected_at,
            submitted,
            answer,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| IngestError::Stopped)?;
        answered.await.map_err(|_| IngestError::Stopped)?
    }
}

async fn write_forever(
    store: Store,
    ingest: IngestSettings,
    max_batch: usize,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    stats: Arc<Counters>,
) {
    loop {
        let batch = {
            let mut receiver = receiver.lock().await;
            let mut batch = Vec::new();
            if receiver.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
            batch
        };
        write_batch(&store, &ingest, batch, &stats).await;
    }
}

/// Writes a batch tenant by tenant; a tenant's batch that fails is applied report by report.
async fn write_batch(
    store: &Store,
    ingest: &IngestSettings,
    batch: Vec<Pending>,
    stats: &Counters,
) {
    let mut by_tenant: HashMap<Uuid, Vec<Pending>> = HashMap::new();
    for pending in batch {
        by_tenant
            .entry(pending.peer.identity.tenant_id)
            .or_default()
            .push(pending);
    }
    for (tenant_id, reports) in by_tenant {
        match write_tenant(store, tenant_id, &reports).await {
            Ok(replies) => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .batched_reports
                    .fetch_add(reports.len() as u64, Ordering::Relaxed);
                for (pending, reply) in reports.into_iter().zip(replies) {
                    pending.answer(Ok(reply));
                }
            }
            Err(failure) => {
                stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%tenant_id, reports = reports.len(), error = %error_chain(&failure),
                    "group commit failed; applying these reports one by one");
                for pending in reports {
                    let result =
                        super::apply_counted(store, &pending.peer, &pending.report(), ingest).await;
                    // `answer` counts it; `apply_counted` does not.
                    pending.answer(result);
                }
            }
        }
    }
}

/// Why a tenant's batch was rolled back (its reports are then applied one by one).
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("host {0} is revoked or no longer enrolled")]
    HostGone(Uuid),
}

/// One transaction for one tenant's reports; the replies in the order of `reports`.
async fn write_tenant(
    store: &Store,
    tenant_id: Uuid,
    reports: &[Pending],
) -> Result<Vec<ReportReply>, BatchError> {
    let mut tx = store.tenant_tx(tenant_id).await?;
    let mut replies: Vec<Option<ReportReply>> = vec![None; reports.len()];
    for round in rounds(reports) {
        let steps: Vec<CursorStep> = round
            .iter()
            .map(|&i| CursorStep {
                host_id: reports[i].peer.identity.host_id,
                stream_id: reports[i].stream_id,
                seq: reports[i].seq,
            })
            .collect();
        let fresh = hosts::advance_cursors(&mut tx, tenant_id, &steps).await?;
        let mut to_store = Vec::new();
        for (&i, fresh) in round.iter().zip(fresh) {
            if fresh {
                to_store.push(i);
            } else {
                replies[i] = Some(ReportReply::Ack {
                    seq: reports[i].seq,
                    duplicate: true,
                });
            }
        }
        if to_store.is_empty() {
            continue;
        }
        let rows: Vec<(Uuid, &HostFacts, OffsetDateTime)> = to_store
            .iter()
            .map(|&i| {
                (
                    reports[i].peer.identity.host_id,
                    &reports[i].facts,
                    reports[i].collected_at,
                )
            })
            .collect();
        let stored = hosts::store_facts_many(&mut tx, &rows).await?;
        for (&i, stored) in to_store.iter().zip(stored) {
            let pending = &reports[i];
            let host_id = pending.peer.identity.host_id;
            let Some(stored) = stored else {
                return Err(BatchError::HostGone(host_id));
            };
            let facts = &pending.facts;
            agent_version::apply(
                &mut tx,
                HostScope { tenant_id, host_id },
                &facts.hostname,
                &facts.agent_version,
                stored.outdated_version.as_deref(),
                pending.collected_at,
            )
            .await?;
            replies[i] = Some(ReportReply::Ack {
                seq: pending.seq,
                duplicate: false,
            });
        }
    }
    store::commit(tx, "committing a batch of host facts").await?;
    Ok(replies
        .into_iter()
        .zip(reports)
        .map(|(reply, pending)| {
            // Every index is in exactly one round; a gap would be a bug, answered as a
            // duplicate would lose the report, so it is refused instead and resent.
            reply.unwrap_or_else(|| ReportReply::Rejected {
                seq: pending.seq,
                detail: "internal: the report was left out of its batch".into(),
            })
        })
        .collect())
}

/// Indexes of `reports` cut into rounds in which each host appears once, in arrival order (a
/// host's second report goes into the next round, after its first). Keyed by host, not by
/// `(host, stream)`: the facts statement updates one `hosts` row per host, and two reports of
/// one host on different streams in one statement would leave it to PostgreSQL which wins.
fn rounds(reports: &[Pending]) -> Vec<Vec<usize>> {
    let hosts: Vec<Uuid> = reports.iter().map(|p| p.peer.identity.host_id).collect();
    rounds_of(&hosts)
}

/// [`rounds`] over the keys alone (pure; tested).
fn rounds_of<K: Eq + std::hash::Hash + Copy>(keys: &[K]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<(HashSet<K>, Vec<usize>)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        // The first round after the last one holding this key, so order per key is kept.
        let after = rounds
            .iter()
            .rposition(|(seen, _)| seen.contains(key))
            .map_or(0, |last| last + 1);
        if after == rounds.len() {
            rounds.push((HashSet::new(), Vec::new()));
        }
        let (seen, members) = &mut rounds[after];
        seen.insert(*key);
        members.push(i);
    }
    rounds.into_iter().map(|(_, members)| members).collect()
}

#[cfg(test)]
mod tests {
    use super::rounds_of;

    #[test]
    fn distinct_keys_are_one_round() {
        assert_eq!(rounds_of(&[1, 2, 3]), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn a_repeated_key_moves_to_a_later_round_in_order() {
        assert_eq!(
            rounds_of(&[1, 2, 1, 3, 1, 2]),
            vec![vec![0, 1, 3], vec![2, 5], vec![4]]
        );
    }

    #[test]
    fn nothing_is_no_round() {
        assert!(rounds_of::<u8>(&[]).is_empty());
    }
}
