//! What agents say about jobs — acceptance, progress, signed results and refusals — applied to
//! the job rows through the state machine.
//!
//! A result counts only with a receipt that verifies with the key of the host certificate the
//! session presented, names this host and tenant, and is bound (by SHA-256) to the exact
//! spec bytes the job row holds. Anything else is rejected with a reason and changes nothing.

use time::OffsetDateTime;
use unity_pki::HostIdentity;
use unity_protocol::latest::{JobEnd, JobEvent, JobEventKind, JobOutcome, JobReceipt};
use uuid::Uuid;

use super::state::{Input, JobState, Outcome, transition};
use crate::store::host_rows::{HostScope, detail_value, strip_nul};
use crate::store::jobs::{self as job_store, JobUpdate, NewEvent, ReceiptWrite};
use crate::store::storage::alerts::{self, NewAlert, ObjectKind, Severity};
use crate::store::{StoreError, TenantTx};

/// The session's peer, as job answers need it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub identity: HostIdentity,
    /// SEC1 public key of the host certificate the session presented.
    pub host_key: Vec<u8>,
}

/// What became of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The job moved to (or stayed in) this state.
    Moved(JobState),
    /// Already known: nothing changed. The agent may forget it.
    Duplicate,
    /// Never acceptable; the reason goes back to the agent and into the log.
    Rejected(String),
}

/// A time the agent gave for a job, if it is a sane one (`ingest::agent_time`).
fn ms_time(ms: i64) -> Option<OffsetDateTime> {
    crate::ingest::agent_time(ms, OffsetDateTime::now_utc()).ok()
}

/// The agent journaled job `job_id`.
pub async fn accepted(
    tx: &mut TenantTx,
    peer: &Peer,
    job_id: Uuid,
    now: OffsetDateTime,
) -> Result<Applied, StoreError> {
    let Some(row) = job_store::lock(tx, job_id).await? else {
        return Ok(Applied::Rejected(format!("no job {job_id} for this host")));
    };
    if row.host_id != peer.identity.host_id {
        return Ok(Applied::Rejected(format!("no job {job_id} for this host")));
    }
    match transition(row.facts(), Input::Accepted, now) {
        Outcome::Move(state) => {
            job_store::update(tx, job_id, &JobUpdate::Accepted).await?;
            Ok(Applied::Moved(state))
        }
        Outcome::Ignore | Outcome::Refuse(_) => Ok(Applied::Duplicate),
    }
}

/// A progress event.
pub async fn event(
    tx: &mut TenantTx,
    peer: &Peer,
    event: &JobEvent,
    now: OffsetDateTime,
) -> Result<Applied, StoreError> {
    let Some(row) = job_store::lock(tx, event.job_id).await? else {
        return Ok(Applied::Rejected(format!(
            "no job {} for this host",
            event.job_id
        )));
    };
    if row.host_id != peer.identity.host_id {
        return Ok(Applied::Rejected(format!(
            "no job {} for this host",
            event.job_id
        )));
    }
    let Ok(seq) = i32::try_from(event.seq) else {
        return Ok(Applied::Rejected(format!(
            "event seq {} is out of range",
            event.seq
        )));
    };
    if seq < 1 {
        return Ok(Applied::Rejected("event seq must start at 1".into()));
    }
    let at = ms_time(event.at_ms).unwrap_or(now);
    let (detail, _) = detail_value(&event.detail_json);
    let kind = match event.kind {
        JobEventKind::Started => "started",
        JobEventKind::Progress => "progress",
        JobEventKind::Warning => "warning",
    };
    let message = strip_nul(&event.message);
    let fresh = job_store::insert_event(
        tx,
        peer.identity.tenant_id,
        &NewEvent {
            job_id: event.job_id,
            seq,
            at,
            kind,
            message: &message,
            detail: &detail,
        },
    )
    .await?;
    if event.kind == JobEventKind::Started
        && let Outcome::Move(state) = transition(row.facts(), Input::Started, now)
    {
        job_store::update(tx, event.job_id, &JobUpdate::Started { at }).await?;
        return Ok(Applied::Moved(state));
    }
    Ok(if fresh {
        Applied::Moved(row.facts().state)
    } else {
        Applied::Duplicate
    })
}

/// A signed result or refusal. `delivered` is the row a delivery's answer belongs to: the
/// receipt then applies to that row even if the bytes it carried claim another job id (a row
/// someone filled with another job's bytes); a result report names its job itself.
pub async fn receipt(
    tx: &mut TenantTx,
    peer: &Peer,
    receipt: &JobReceipt,
    now: OffsetDateTime,
    delivered: Option<Uuid>,
) -> Result<Applied, StoreError> {
    if let Err(error) =
        unity_pki::receipt::verify(&peer.host_key, &receipt.outcome, &receipt.signature)
    {
        return Ok(Applied::Rejected(error.to_string()));
    }
    let outcome: JobOutcome = match unity_protocol::decode_payload(&receipt.outcome) {
        Ok(outcome) => outcome,
        Err(error) => {
            return Ok(Applied::Rejected(format!(
                "receipt does not decode: {error}"
            )));
        }
    };
    if outcome.host_id != peer.identity.host_id || outcome.tenant_id != peer.identity.tenant_id {
        return Ok(Applied::Rejected(
            "receipt names another host or tenant than this session".into(),
        ));
    }
    let job_id = delivered.unwrap_or(outcome.job_id);
    let Some(row) = job_store::lock(tx, job_id).await? else {
        return Ok(Applied::Rejected(format!("no job {job_id} for this host")));
    };
    if row.host_id != peer.identity.host_id {
        return Ok(Applied::Rejected(format!("no job {job_id} for this host")));
    }
    if row.spec_sha256 != outcome.spec_sha256 {
        return Ok(Applied::Rejected(format!(
            "receipt for job {} covers other bytes than the job this controller queued",
            outcome.job_id
        )));
    }
    let state = match transition(row.facts(), Input::Finished(outcome.end), now) {
        Outcome::Move(state) => state,
        Outcome::Ignore | Outcome::Refuse(_) => return Ok(Applied::Duplicate),
    };
    let summary = strip_nul(&outcome.summary);
    let refusal = outcome.refusal.map(|r| r.as_str());
    let detail = match (outcome.end, refusal) {
        (JobEnd::Refused, Some(reason)) => format!("refused by the host ({reason}): {summary}"),
        _ => summary.clone(),
    };
    let (result_detail, _) = detail_value(&outcome.detail_json);
    job_store::update(
        tx,
        job_id,
        &JobUpdate::Ended {
            state,
            detail: &detail,
            refusal,
            summary: &summary,
            result_detail: &result_detail,
            started_at: outcome.started_at_ms.and_then(ms_time),
            finished_at: ms_time(outcome.finished_at_ms).unwrap_or(now),
            receipt: ReceiptWrite {
                outcome: &receipt.outcome,
                signature: &receipt.signature,
                public_key: &peer.host_key,
                verified: true,
            },
        },
    )
    .await?;
    tracing::info!(%job_id, tenant_id = %peer.identity.tenant_id,
        host_id = %peer.identity.host_id, %state, refusal, %summary, "job ended");
    if let Some(alert) = job_alert(&row, state, refusal, &summary) {
        let scope = HostScope {
            tenant_id: peer.identity.tenant_id,
            host_id: peer.identity.host_id,
        };
        alerts::insert(tx, scope, &alert, now).await?;
    }
    Ok(Applied::Moved(state))
}

/// Refusals that mean someone tampered with or misdirected a job (not a host's own limits).
const SUSPICIOUS: &[&str] = &[
    "bad_signature",
    "unknown_key",
    "malformed",
    "wrong_tenant",
    "wrong_host",
    "replay",
];

/// The alert a job's end raises (docs/alerts.md, "Jobs"): a failed job (critical: it may have
/// left something down — a failed rollback is one), a rolled-back one (warning: the previous
/// state runs), a refused one (critical when it looks like tampering).
fn job_alert(
    row: &job_store::JobRow,
    state: JobState,
    refusal: Option<&str>,
    summary: &str,
) -> Option<NewAlert> {
    let (kind, severity) = match state {
        JobState::Failed => ("job_failed", Severity::Critical),
        JobState::RolledBack => ("job_rolled_back", Severity::Warning),
        JobState::Refused if refusal.is_some_and(|r| SUSPICIOUS.contains(&r)) => {
            ("job_refused", Severity::Critical)
        }
        JobState::Refused => ("job_refused", Severity::Warning),
        _ => return None,
    };
    Some(NewAlert {
        object_kind: ObjectKind::Job,
        object_id: Some(row.id),
        object_name: format!("{} job", row.kind),
        kind,
        previous: None,
        current: match refusal {
            Some(reason) => format!("refused ({reason})"),
            None => state.as_str().to_owned(),
        },
        severity,
        message: summary.to_owned(),
    })
}
