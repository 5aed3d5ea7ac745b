//! The collection loop: runs whether or not the controller is reachable, and writes every
//! report to the spool before anything tries to send it.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Interval, MissedTickBehavior};
use unity_protocol::latest::{AgentStatus, ReportBody, SourceState, SourceStatus, StorageReport};

use super::{RunOptions, Shared, now_ms};
use crate::error_chain;
use crate::jobs::Outgoing;
use crate::reports;
use crate::spool::Spool;

/// At most one status report a minute when the spool drops reports.
const STATUS_EVERY_MS: i64 = 60_000;

fn ticker(period: Duration) -> Interval {
    let mut ticker = tokio::time::interval(period.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// The agent's status as a report body.
pub(super) fn status_report(spool: &Spool) -> ReportBody {
    let (reports, bytes) = spool.depth();
    let dropped = spool.dropped();
    ReportBody::AgentStatus(AgentStatus {
        spool_reports: reports as u64,
        spool_bytes: bytes,
        oldest_queued_ms: spool.oldest_ms(),
        dropped_reports: dropped.reports,
        dropped_bytes: dropped.bytes,
        dropped_corrupt: dropped.corrupt,
        dropped_detail: dropped
            .by_kind
            .iter()
            .map(|(kind, n)| format!("{}: {n}", kind.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

pub(super) async fn collect_forever(
    options: &RunOptions,
    shared: &Shared,
    mut outgoing: UnboundedReceiver<Outgoing>,
) {
    let mut source_log = SourceLog::default();
    let mut interval = shared.interval.subscribe();
    let mut facts = ticker(*interval.borrow());
    let mut storage = ticker(options.storage_interval);
    let mut inventory = ticker(options.inventory_interval);
    let mut packages = ticker(options.packages_interval);
    let mut last_status_ms = i64::MIN;
    loop {
        let bodies = tokio::select! {
            Ok(()) = interval.changed() => {
                facts = ticker(*interval.borrow_and_update());
                continue;
            }
            _ = facts.tick() => vec![ReportBody::HostFacts(reports::host::collect())],
            _ = storage.tick(), if options.storage.is_some() => {
                let Some(source) = &options.storage else { continue };
                let report = source.collect_storage().await;
                source_log.observe_storage(&report);
                vec![ReportBody::Storage(report)]
            }
            _ = inventory.tick(), if options.inventory.is_some() => {
                let Some(source) = &options.inventory else { continue };
                let (containers, databases) = source.collect_inventory().await;
                source_log.observe_inventory(&containers.status, &databases.status);
                vec![ReportBody::Containers(containers), ReportBody::Databases(databases)]
            }
            _ = packages.tick(), if options.packages.is_some() => {
                let Some(config) = &options.packages else { continue };
                vec![ReportBody::Packages(crate::reports::packages::collect(config).await)]
            }
            Some(out) = outgoing.recv() => match out {
                Outgoing::Event(event) => vec![ReportBody::JobEvent(event)],
                Outgoing::Result { job_id, receipt } => {
                    shared.pending_result(job_id, receipt);
                    shared.wake.notify_one();
                    continue;
                }
                Outgoing::InventoryChanged => {
                    inventory.reset_immediately();
                    packages.reset_immediately();
                    continue;
                }
                Outgoing::Flush(flushed) => {
                    // Everything received before it was spooled in earlier rounds.
                    flushed.signal();
                    continue;
                }
            },
        };
        for body in bodies {
            let kind = crate::spool::Kind::of(&body);
            let now = now_ms();
            let mut spool = shared.spool();
            let appended = spool.append(body, now, now);
            if appended.is_ok() {
                // One line per report, for counting end to end (docs/reliability.md).
                tracing::debug!(
                    kind = kind.as_str(),
                    collected_at_ms = now,
                    "report spooled"
                );
            }
            match appended {
                Ok(dropped) if !dropped.is_empty() => {
                    tracing::warn!(
                        dropped = dropped.len(),
                        total_dropped = spool.dropped().reports,
                        "spool full: oldest history dropped (the latest state of every source is kept)"
                    );
                    if now.saturating_sub(last_status_ms) >= STATUS_EVERY_MS {
                        last_status_ms = now;
                        let status = status_report(&spool);
                        if let Err(error) = spool.append(status, now, now) {
                            tracing::error!(error = %error_chain(&error), "could not spool a status report");
                        }
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(kind = kind.as_str(), error = %error_chain(&error),
                        "could not spool a report (it cannot be encoded or is larger than the wire allows); it is lost, the next round is collected again");
                }
            }
        }
        shared.wake.notify_one();
    }
}

/// Logs a source's status when it changes — not every round — so a host without ZFS or
/// Docker says so once, and a smartctl that breaks says so the moment it does.
#[derive(Debug, Default)]
struct SourceLog {
    /// smart, zfs, mdraid, containers, databases.
    last: [Option<SourceStatus>; 5],
    /// Device path → last read status, so one unreadable disk is logged once, not every round.
    disks: std::collections::HashMap<String, String>,
}

impl SourceLog {
    fn observe_storage(&mut self, report: &StorageReport) {
        self.observe_sources(
            0,
            [
                ("smart", &report.smart),
                ("zfs", &report.zfs),
                ("mdraid", &report.mdraid),
            ],
        );
        for disk in &report.disks {
            let previous = self
                .disks
                .insert(disk.device.clone(), disk.read_status.clone());
            if previous.as_deref() == Some(disk.read_status.as_str()) {
                continue;
            }
            if disk.read_status == "ok" || disk.read_status == "in_standby" {
                tracing::info!(device = %disk.device, status = %disk.read_status, "disk readable");
            } else {
                tracing::warn!(device = %disk.device, status = %disk.read_status,
                    detail = %disk.read_detail, "disk could not be read");
            }
        }
    }

    fn observe_inventory(&mut self, containers: &SourceStatus, databases: &SourceStatus) {
        self.observe_sources(3, [("containers", containers), ("databases", databases)]);
    }

    fn observe_sources<const N: usize>(
        &mut self,
        offset: usize,
        sources: [(&'static str, &SourceStatus); N],
    ) {
        for ((name, status), last) in sources.into_iter().zip(self.last[offset..].iter_mut()) {
            if last.as_ref() == Some(status) {
                continue;
            }
            match status.state {
                SourceState::Ok => {
                    tracing::info!(source = name, detail = %status.detail, "source readable")
                }
                SourceState::NotPresent => {
                    tracing::info!(source = name, detail = %status.detail, "source not present on this host")
                }
                _ => tracing::warn!(source = name, state = ?status.state, detail = %status.detail,
                    "source unavailable"),
            }
            *last = Some(status.clone());
        }
    }
}
