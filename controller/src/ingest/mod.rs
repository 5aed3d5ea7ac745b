//! Applying agent reports to the store, exactly once per `(host, stream, seq)`.
//!
//! * [`storage`] — disks, pools, arrays, collector states and their alerts.
//! * [`inventory`] — container engines, containers, images, databases and their alerts.
//! * [`storage_alerts`], [`inventory_alerts`] — when a change raises an alert (pure).
//! * [`group_commit`] — host facts from every session written in shared transactions.

pub mod agent_version;
pub mod group_commit;
pub mod inventory;
pub mod inventory_alerts;
pub mod limits;
pub mod packages;
pub mod storage;
pub mod storage_alerts;

use time::OffsetDateTime;
use unity_protocol::latest::{Report, ReportBody, ReportReply};

use crate::jobs::outcome::{self, Applied, Peer};
use crate::store::host_rows::{HostScope, detail_value};
use crate::store::storage::alerts::{NewAlert, Severity};
use crate::store::{self, Store, StoreError, hosts};
use unity_protocol::latest::{SourceState, SourceStatus};

/// Agents existed after this.
const EARLIEST_AGENT_TIME: OffsetDateTime = time::macros::datetime!(2000-01-01 00:00 UTC);
/// A clock further ahead of the controller's than this is broken, not early.
const MAX_CLOCK_AHEAD: time::Duration = time::Duration::DAY;

/// An agent's Unix-millisecond time, if it is one a report can have: after 2000, and no more
/// than a day ahead of `now` (the controller's clock). Such times are refused, never stored —
/// one report dated 6 BC once made a tenant's whole disk and alert listings fail.
pub fn agent_time(ms: i64, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let at = i128::from(ms)
        .checked_mul(1_000_000)
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .ok_or_else(|| format!("collected_at_ms {ms} is not a valid time"))?;
    if at < EARLIEST_AGENT_TIME {
        return Err(format!(
            "collected_at_ms {ms} ({at}) is before 2000: the host's clock is wrong"
        ));
    }
    if at > now + MAX_CLOCK_AHEAD {
        return Err(format!(
            "collected_at_ms {ms} ({at}) is more than a day ahead of the controller's clock ({now}): the host's clock is wrong"
        ));
    }
    Ok(at)
}

/// Times an agent reports about things (a container's start, an image's build): kept when
/// they are plausible (after 1970, at most a day ahead), dropped otherwise.
pub fn plausible_time(ms: Option<i64>, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms?).checked_mul(1_000_000)?).ok()?;
    (at > time::macros::datetime!(1970-01-02 00:00 UTC) && at <= now + MAX_CLOCK_AHEAD)
        .then_some(at)
}

/// Whether a source's object list is the whole truth, so that an object missing from it is
/// really gone. `not_present` counts: "no md driver" means there are no arrays. A source
/// that could not run says nothing about its objects.
pub(crate) fn authoritative(status: &SourceStatus) -> bool {
    matches!(status.state, SourceState::Ok | SourceState::NotPresent)
}

/// Parses an object's detail, logging (not refusing) text that is not JSON.
pub(crate) fn detail(
    scope: HostScope,
    what: &'static str,
    name: &str,
    raw: &str,
) -> serde_json::Value {
    let (value, valid) = detail_value(raw);
    if !valid {
        tracing::warn!(tenant_id = %scope.tenant_id, host_id = %scope.host_id, object = what,
            name, "agent sent detail_json that is not JSON; stored as a JSON string");
    }
    value
}

/// One log line per alert raised, at `warn` for what needs a look.
pub(crate) fn log_alert(scope: HostScope, alert: &NewAlert) {
    let (tenant_id, host_id) = (scope.tenant_id, scope.host_id);
    let (kind, object) = (alert.kind, alert.object_name.as_str());
    match alert.severity {
        Severity::Critical | Severity::Warning => tracing::warn!(%tenant_id, %host_id, kind,
            object, severity = alert.severity.as_str(), message = %alert.message, "alert raised"),
        Severity::Info => tracing::info!(%tenant_id, %host_id, kind, object,
            message = %alert.message, "alert raised"),
    }
}

/// A job answer that can never be accepted is rejected (the transaction, cursor included,
/// rolls back, so nothing of it is kept); anything else is applied and acknowledged.
fn job_reply(seq: u64, applied: Applied) -> Option<ReportReply> {
    match applied {
        Applied::Rejected(detail) => {
            tracing::warn!(seq, %detail, "job report rejected");
            Some(ReportReply::Rejected { seq, detail })
        }
        Applied::Moved(_) | Applied::Duplicate => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The host was revoked (or removed) while connected; the session must end.
    #[error("host is revoked or no longer enrolled")]
    HostGone,
    /// The group-commit writers stopped: only while the process shuts down.
    #[error("the ingest writers stopped (the controller is shutting down)")]
    Stopped,
}

/// Applies `report` for the host named by the session's certificate. The cursor advance and
/// the data change commit together, so a redelivered report is acknowledged without being
/// applied twice, and a crash between the two cannot happen.
pub async fn apply(
    store: &Store,
    peer: &Peer,
    report: &Report,
) -> Result<ReportReply, IngestError> {
    apply_with(store, peer, report, &IngestSettings::default()).await
}

/// What ingest rules may be configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestSettings {
    /// Security updates pending longer than this raise `security_updates_pending`.
    pub security_alert_after: std::time::Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            security_alert_after: packages::DEFAULT_SECURITY_ALERT_AFTER,
        }
    }
}

/// The kind of a report body, as metrics label it.
pub fn kind_name(body: &ReportBody) -> &'static str {
    match body {
        ReportBody::HostFacts(_) => "host_facts",
        ReportBody::Storage(_) => "storage",
        ReportBody::Containers(_) => "containers",
        ReportBody::Databases(_) => "databases",
        ReportBody::JobEvent(_) => "job_event",
        ReportBody::JobResult(_) => "job_result",
        ReportBody::AgentStatus(_) => "agent_status",
        ReportBody::Packages(_) => "packages",
        ReportBody::Labels(_) => "labels",
    }
}

/// [`apply`] with configured rules; counted and timed (`crate::metrics`).
pub async fn apply_with(
    store: &Store,
    peer: &Peer,
    report: &Report,
    settings: &IngestSettings,
) -> Result<ReportReply, IngestError> {
    let started = std::time::Instant::now();
    let result = apply_counted(store, peer, report, settings).await;
    count(kind_name(&report.body), &result, started);
    result
}

/// Counts and times one report's outcome (`crate::metrics`), whichever path applied it.
pub(crate) fn count(
    kind: &'static str,
    result: &Result<ReportReply, IngestError>,
    started: std::time::Instant,
) {
    let Some(m) = crate::metrics::get() else {
        return;
    };
    m.ingest_seconds
        .with_label_values(&[kind])
        .observe(started.elapsed().as_secs_f64());
    let failure = match result {
        Ok(ReportReply::Ack { .. }) => {
            m.reports.with_label_values(&[kind]).inc();
            return;
        }
        Ok(ReportReply::Rejected { .. }) => "rejected",
        Err(IngestError::Store(_)) => "store_error",
        Err(IngestError::HostGone) => "host_gone",
        Err(IngestError::Stopped) => "stopped",
    };
    m.report_failures.with_label_values(&[kind, failure]).inc();
}

/// The checks a report passes before any database work: a collection time it can have and
/// sizes that are not absurd. `Err` is the rejection to send; nothing of the report is kept.
pub(crate) fn precheck(
    peer: &Peer,
    report: &Report,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, ReportReply> {
    let identity = peer.identity;
    let collected_at = agent_time(report.collected_at_ms, now).map_err(|detail| {
        tracing::warn!(tenant_id = %identity.tenant_id, host_id = %identity.host_id,
            seq = report.seq, %detail, "report refused: impossible collection time");
        ReportReply::Rejected {
            seq: report.seq,
            detail,
        }
    })?;
    limits::check(&report.body).map_err(|detail| {
        tracing::warn!(tenant_id = %identity.tenant_id, host_id = %identity.host_id,
            seq = report.seq, %detail, "report refused: absurd size");
        ReportReply::Rejected {
            seq: report.seq,
            detail,
        }
    })?;
    Ok(collected_at)
}

async fn apply_counted(
    store: &Store,
    peer: &Peer,
    report: &Report,
    settings: &IngestSettings,
) -> Result<ReportReply, IngestError> {
    let identity = peer.identity;
    let collected_at = match precheck(peer, report, OffsetDateTime::now_utc()) {
        Ok(at) => at,
        Err(rejected) => return Ok(rejected),
    };
    let mut tx = store.tenant_tx(identity.tenant_id).await?;
    let fresh = store::hosts::advance_cursor(
        &mut tx,
        identity.tenant_id,
        identity.host_id,
        report.stream_id,
        report.seq,
    )
    .await?;
    if !fresh {
        return Ok(ReportReply::Ack {
            seq: report.seq,
            duplicate: true,
        });
    }
    let applied = match &report.body {
        ReportBody::HostFacts(facts) => {
            match store::hosts::store_facts(&mut tx, identity.host_id, facts, collected_at).await? {
                Some(stored) => {
                    let scope = store::host_rows::HostScope {
                        tenant_id: identity.tenant_id,
                        host_id: identity.host_id,
                    };
                    agent_version::apply(
                        &mut tx,
                        scope,
                        &facts.hostname,
                        &facts.agent_version,
                        stored.outdated_version.as_deref(),
                        collected_at,
                    )
                    .await?;
                    true
                }
                None => false,
            }
        }
        ReportBody::Storage(storage_report) => {
            let scope = store::host_rows::HostScope {
                tenant_id: identity.tenant_id,
                host_id: identity.host_id,
            };
            storage::apply(&mut tx, scope, storage_report, collected_at).await?
        }
        ReportBody::Containers(containers) => {
            let scope = store::host_rows::HostScope {
                tenant_id: identity.tenant_id,
                host_id: identity.host_id,
            };
            inventory::apply_containers(&mut tx, scope, containers, collected_at).await?
        }
        ReportBody::Databases(databases) => {
            let scope = store::host_rows::HostScope {
                tenant_id: identity.tenant_id,
                host_id: identity.host_id,
            };
            inventory::apply_databases(&mut tx, scope, databases, collected_at).await?
        }
        ReportBody::JobEvent(event) => {
            let applied = outcome::event(&mut tx, peer, event, OffsetDateTime::now_utc()).await?;
            if let Some(reply) = job_reply(report.seq, applied) {
                return Ok(reply);
            }
            hosts::touch_active(&mut tx, identity.host_id).await?
        }
        ReportBody::AgentStatus(status) => {
            if status.dropped_reports > 0 {
                tracing::warn!(tenant_id = %identity.tenant_id, host_id = %identity.host_id,
                    dropped = status.dropped_reports, detail = %status.dropped_detail,
                    "agent dropped spooled reports: its history has a gap");
            }
            hosts::store_agent_status(&mut tx, identity.host_id, status, collected_at).await?
        }
        ReportBody::Packages(packages_report) => {
            let scope = store::host_rows::HostScope {
                tenant_id: identity.tenant_id,
                host_id: identity.host_id,
            };
            packages::apply(
                &mut tx,
                scope,
                packages_report,
                collected_at,
                settings.security_alert_after,
            )
            .await?
        }
        ReportBody::Labels(declared) => {
            store::rollouts::set_agent_labels(
                &mut tx,
                identity.tenant_id,
                identity.host_id,
                &declared.labels,
            )
            .await?
        }
        ReportBody::JobResult(receipt) => {
            let applied =
                outcome::receipt(&mut tx, peer, receipt, OffsetDateTime::now_utc(), None).await?;
            if let Some(reply) = job_reply(report.seq, applied) {
                return Ok(reply);
            }
            hosts::touch_active(&mut tx, identity.host_id).await?
        }
    };
    if !applied {
        return Err(IngestError::HostGone);
    }
    store::commit(tx, "committing a report").await?;
    Ok(ReportReply::Ack {
        seq: report.seq,
        duplicate: false,
    })
}
