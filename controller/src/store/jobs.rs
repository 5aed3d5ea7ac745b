//! Jobs, their events and the job-key statements. Every tenant function takes a
//! [`TenantTx`]; state changes are decided by `jobs::state::transition` and only written here.

use super::page::{NewestKey, Page};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Store, StoreError, TenantTx, query_error};
use crate::jobs::state::{JobFacts, JobState};

/// A job about to be queued: the signed bytes plus what people and dispatch need.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub host_id: Uuid,
    pub kind: &'a str,
    pub params: &'a serde_json::Value,
    pub target: Option<&'a str>,
    pub requested_by: &'a str,
    pub key_id: &'a [u8; 32],
    pub spec: &'a [u8],
    pub signature: &'a [u8],
    pub spec_sha256: &'a [u8; 32],
    pub created_at: OffsetDateTime,
    pub not_before: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertJobError {
    /// Another unfinished job acts on the same target of the host.
    #[error("another job for {target} on this host is still queued or running")]
    TargetBusy { target: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn insert(tx: &mut TenantTx, job: &NewJob<'_>) -> Result<(), InsertJobError> {
    let result = sqlx::query(
        "INSERT INTO jobs (id, tenant_id, host_id, kind, params, target, requested_by, state, \
             key_id, spec, signature, spec_sha256, created_at, not_before, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(job.id)
    .bind(job.tenant_id)
    .bind(job.host_id)
    .bind(job.kind)
    .bind(job.params)
    .bind(job.target)
    .bind(job.requested_by)
    .bind(&job.key_id[..])
    .bind(job.spec)
    .bind(job.signature)
    .bind(&job.spec_sha256[..])
    .bind(job.created_at)
    .bind(job.not_before)
    .bind(job.expires_at)
    .execute(&mut **tx)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("jobs_one_open_per_target") => {
            Err(InsertJobError::TargetBusy {
                target: job.target.unwrap_or_default().to_owned(),
            })
        }
        Err(source) => Err(StoreError::Query {
            action: "queueing a job",
            source,
        }
        .into()),
    }
}

/// The row as dispatch and the state machine see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub host_id: Uuid,
    pub kind: String,
    pub state: String,
    pub key_id: Vec<u8>,
    pub spec: Vec<u8>,
    pub signature: Vec<u8>,
    pub spec_sha256: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub accepted_at: Option<OffsetDateTime>,
    pub dispatched_at: Option<OffsetDateTime>,
}

impl JobRow {
    /// What the state machine needs. A state the code does not know (a row written by
    /// something else) reads as terminal `failed`, which nothing moves.
    pub fn facts(&self) -> JobFacts {
        JobFacts {
            state: self.state.parse().unwrap_or(JobState::Failed),
            not_before: self.not_before,
            expires_at: self.expires_at,
            accepted: self.accepted_at.is_some(),
        }
    }
}

const ROW_COLUMNS: &str = "id, host_id, kind, state, key_id, spec, signature, spec_sha256, \
    not_before, expires_at, accepted_at, dispatched_at";

/// Reads and locks job `id` (of this tenant) until the transaction ends.
pub async fn lock(tx: &mut TenantTx, id: Uuid) -> Result<Option<JobRow>, StoreError> {
    // Built only from constants.
    sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("locking a job"))
}

/// Jobs of `host_id` a connected agent should be sent now: queued ones, and dispatched ones
/// it never acknowledged whose last delivery is older than `redeliver_before`. Oldest first;
/// rows another transaction holds are skipped (another replica is on them).
pub async fn deliverable(
    tx: &mut TenantTx,
    host_id: Uuid,
    redeliver_before: OffsetDateTime,
) -> Result<Vec<JobRow>, StoreError> {
    sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM jobs WHERE host_id = $1 AND \
             (state = 'queued' OR (state = 'dispatched' AND accepted_at IS NULL \
                                   AND dispatched_at < $2)) \
         ORDER BY created_at, id FOR UPDATE SKIP LOCKED"
    )))
    .bind(host_id)
    .bind(redeliver_before)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("finding jobs to dispatch"))
}

/// Queued or unacknowledged jobs of this tenant whose expiry has passed, locked.
pub async fn past_expiry(tx: &mut TenantTx) -> Result<Vec<JobRow>, StoreError> {
    sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM jobs WHERE state IN ('queued', 'dispatched') \
             AND expires_at < now() FOR UPDATE SKIP LOCKED"
    )))
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("finding expired jobs"))
}

/// Tenants with jobs past expiry (a SECURITY DEFINER look-up that reads no tenant's rows).
pub async fn tenants_with_expired_jobs(store: &Store) -> Result<Vec<Uuid>, StoreError> {
    sqlx::query_scalar("SELECT unity_tenants_with_expired_jobs()")
        .fetch_all(store.app())
        .await
        .map_err(query_error("finding tenants with expired jobs"))
}

/// Of `hosts`, those with jobs [`deliverable`] would return for `redeliver_before` (a
/// SECURITY DEFINER look-up that answers only with ids it was given; migration 0024).
pub async fn hosts_with_undelivered_jobs(
    store: &Store,
    hosts: &[Uuid],
    redeliver_before: OffsetDateTime,
) -> Result<Vec<Uuid>, StoreError> {
    sqlx::query_scalar("SELECT unity_hosts_with_undelivered_jobs($1, $2)")
        .bind(hosts)
        .bind(redeliver_before)
        .fetch_all(store.app())
        .await
        .map_err(query_error("finding connected hosts with jobs to deliver"))
}

/// The signed result the host sent, as stored.
#[derive(Debug, Clone)]
pub struct ReceiptWrite<'a> {
    pub outcome: &'a [u8],
    pub signature: &'a [u8],
    pub public_key: &'a [u8],
    pub verified: bool,
}

/// One change to a job row; the new state comes from the state machine.
#[derive(Debug, Clone)]
pub enum JobUpdate<'a> {
    Dispatched,
    Accepted,
    Started {
        at: OffsetDateTime,
    },
    Ended {
        state: JobState,
        detail: &'a str,
        refusal: Option<&'a str>,
        summary: &'a str,
        result_detail: &'a serde_json::Value,
        started_at: Option<OffsetDateTime>,
        finished_at: OffsetDateTime,
        receipt: ReceiptWrite<'a>,
    },
    /// Expired or cancelled by the controller.
    Closed {
        state: JobState,
        detail: &'a str,
    },
}

pub async fn update(tx: &mut TenantTx, id: Uuid, update: &JobUpdate<'_>) -> Result<(), StoreError> {
    let query = match update {
        JobUpdate::Dispatched => sqlx::query(
            "UPDATE jobs SET state = 'dispatched', dispatched_at = now(), \
                 dispatch_attempts = dispatch_attempts + 1, updated_at = now() WHERE id = $1",
        )
        .bind(id),
        JobUpdate::Accepted => sqlx::query(
            "UPDATE jobs SET accepted_at = coalesce(accepted_at, now()), updated_at = now() \
             WHERE id = $1",
        )
        .bind(id),
        JobUpdate::Started { at } => sqlx::query(
            "UPDATE jobs SET state = 'running', started_at = coalesce(started_at, $2), \
                 accepted_at = coalesce(accepted_at, now()), updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(*at),
        JobUpdate::Ended {
            state,
            detail,
            refusal,
            summary,
            result_detail,
            started_at,
            finished_at,
            receipt,
        } => sqlx::query(
            "UPDATE jobs SET state = $2, detail = $3, refusal = $4, result_summary = $5, \
                 result_detail = $6, started_at = coalesce(started_at, $7), finished_at = $8, \
                 receipt = $9, receipt_signature = $10, receipt_key = $11, \
                 receipt_verified = $12, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(state.as_str())
        .bind(*detail)
        .bind(*refusal)
        .bind(*summary)
        .bind(*result_detail)
        .bind(*started_at)
        .bind(*finished_at)
        .bind(receipt.outcome)
        .bind(receipt.signature)
        .bind(receipt.public_key)
        .bind(receipt.verified),
        JobUpdate::Closed { state, detail } => sqlx::query(
            "UPDATE jobs SET state = $2, detail = $3, finished_at = now(), updated_at = now() \
             WHERE id = $1",
        )
        .bind(id)
        .bind(state.as_str())
        .bind(*detail),
    };
    query
        .execute(&mut **tx)
        .await
        .map_err(query_error("updating a job"))?;
    Ok(())
}

/// Stores one progress event; a redelivered one is ignored. Returns false when the event
/// was already stored.
pub async fn insert_event(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    event: &NewEvent<'_>,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO job_events (tenant_id, job_id, seq, at, kind, message, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_id, seq) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(event.job_id)
    .bind(event.seq)
    .bind(event.at)
    .bind(event.kind)
    .bind(event.message)
    .bind(event.detail)
    .execute(&mut **tx)
    .await
    .map_err(query_error("storing a job event"))?
    .rows_affected();
    Ok(inserted == 1)
}

#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub job_id: Uuid,
    pub seq: i32,
    pub at: OffsetDateTime,
    pub kind: &'a str,
    pub message: &'a str,
    pub detail: &'a serde_json::Value,
}

/// One line of `GET /api/v1/jobs`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobSummary {
    pub id: Uuid,
    pub host_id: Uuid,
    /// `ping`, `container_update`.
    pub kind: String,
    /// What the job acts on (a container name), if anything.
    pub target: Option<String>,
    /// `queued`, `dispatched`, `running`, `succeeded`, `failed`, `rolled_back`, `refused`,
    /// `expired`, `cancelled`.
    pub state: String,
    /// Why the job is in its state.
    pub detail: String,
    pub requested_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub dispatched_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// The host's one-line account of the outcome.
    pub result_summary: Option<String>,
}

const SUMMARY_COLUMNS: &str = "id, host_id, kind, target, state, detail, requested_by, \
    created_at, not_before, expires_at, dispatched_at, started_at, finished_at, result_summary";

/// `GET /api/v1/jobs/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    /// The parameters as requested (the agent acts on the signed spec, which carries them).
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// The agent's refusal code when `state` is `refused`: `bad_signature`, `unknown_key`,
    /// `malformed`, `not_yet_valid`, `expired`, `wrong_tenant`, `wrong_host`, `replay`,
    /// `kind_not_allowed`, `invalid_parameters`.
    pub refusal: Option<String>,
    pub dispatch_attempts: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub accepted_at: Option<OffsetDateTime>,
    /// The host's evidence (digests, health output, exit code, restarts).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub receipt: ReceiptStatus,
    /// Hex SHA-256 of the signed spec bytes, and of the key that signed them.
    pub spec_sha256: String,
    pub key_id: String,
    pub events: Vec<JobEventView>,
}

/// Whether the host's signed receipt is stored and checked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReceiptStatus {
    /// `verified` (signed by the host's certificate key), `unverified` (stored, signature
    /// did not check), or `none` (no result yet, or the controller ended the job).
    pub status: &'static str,
    /// Hex of the signed outcome bytes and the signature, so anyone can check them again.
    pub outcome: Option<String>,
    pub signature: Option<String>,
    /// Hex SEC1 public key of the host certificate the receipt verified against.
    pub host_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobEventView {
    pub seq: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `started`, `progress`, `warning`.
    pub kind: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Filters of `GET /api/v1/jobs`.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub host_id: Option<Uuid>,
    pub state: Option<JobState>,
    pub kind: Option<String>,
}

/// Newest first.
pub async fn list(
    tx: &mut TenantTx,
    filter: &JobFilter,
    page: &Page<NewestKey>,
) -> Result<Vec<JobSummary>, StoreError> {
    let after = page.after.as_ref();
    sqlx::query_as::<_, JobSummary>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM jobs \
         WHERE ($1::uuid IS NULL OR host_id = $1) AND ($2::text IS NULL OR state = $2) \
             AND ($3::text IS NULL OR kind = $3) \
             AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
         ORDER BY created_at DESC, id DESC LIMIT $6"
    )))
    .bind(filter.host_id)
    .bind(filter.state.map(JobState::as_str))
    .bind(filter.kind.as_deref())
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| k.1))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing jobs"))
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<JobDetail>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        summary: JobSummary,
        params: serde_json::Value,
        refusal: Option<String>,
        dispatch_attempts: i32,
        accepted_at: Option<OffsetDateTime>,
        result_detail: Option<serde_json::Value>,
        receipt: Option<Vec<u8>>,
        receipt_signature: Option<Vec<u8>>,
        receipt_key: Option<Vec<u8>>,
        receipt_verified: Option<bool>,
        spec_sha256: Vec<u8>,
        key_id: Vec<u8>,
    }
    let row = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, params, refusal, dispatch_attempts, accepted_at, \
             result_detail, receipt, receipt_signature, receipt_key, receipt_verified, \
             spec_sha256, key_id FROM jobs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a job"))?;
    let Some(row) = row else { return Ok(None) };
    let events = sqlx::query_as::<_, JobEventView>(
        "SELECT seq, at, kind, message, detail FROM job_events WHERE job_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("reading a job's events"))?;
    let status = match (&row.receipt, row.receipt_verified) {
        (None, _) => "none",
        (Some(_), Some(true)) => "verified",
        (Some(_), _) => "unverified",
    };
    Ok(Some(JobDetail {
        summary: row.summary,
        params: row.params,
        refusal: row.refusal,
        dispatch_attempts: row.dispatch_attempts,
        accepted_at: row.accepted_at,
        result: row.result_detail,
        receipt: ReceiptStatus {
            status,
            outcome: row.receipt.as_deref().map(hex::encode),
            signature: row.receipt_signature.as_deref().map(hex::encode),
            host_key: row.receipt_key.as_deref().map(hex::encode),
        },
        spec_sha256: hex::encode(&row.spec_sha256),
        key_id: hex::encode(&row.key_id),
        events,
    }))
}

/// The job-key statement chain, oldest first (public; not tenant-scoped).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatementRow {
    pub version: i64,
    pub signer: Vec<u8>,
    pub statement: Vec<u8>,
    pub signature: Vec<u8>,
    pub public_key: Vec<u8>,
}

pub async fn key_statements(store: &Store) -> Result<Vec<StatementRow>, StoreError> {
    sqlx::query_as::<_, StatementRow>(
        "SELECT version, signer, statement, signature, public_key FROM job_key_statements \
         ORDER BY version",
    )
    .fetch_all(store.app())
    .await
    .map_err(query_error("reading the job-key statements"))
}

/// Records a rotation (administrative). Fails if `version` exists: two rotations raced.
pub async fn insert_key_statement(store: &Store, row: &StatementRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO job_key_statements (version, signer, statement, signature, public_key) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(row.version)
    .bind(&row.signer)
    .bind(&row.statement)
    .bind(&row.signature)
    .bind(&row.public_key)
    .execute(store.admin())
    .await
    .map_err(query_error("recording a job-key rotation"))?;
    Ok(())
}

/// After a rotation: queued jobs signed by the retired key would be refused by every agent,
/// so they are cancelled with the reason (administrative, all tenants). Returns how many.
pub async fn cancel_queued_signed_by(store: &Store, key_id: &[u8; 32]) -> Result<u64, StoreError> {
    // Queued → cancelled is the state machine's `Cancel` rule; nothing else is touched.
    let done = sqlx::query(
        "UPDATE jobs SET state = 'cancelled', finished_at = now(), updated_at = now(), \
             detail = 'the job-signing key was rotated before this job was sent; create it again' \
         WHERE state = 'queued' AND key_id = $1",
    )
    .bind(&key_id[..])
    .execute(store.admin())
    .await
    .map_err(query_error("cancelling jobs signed by a retired key"))?
    .rows_affected();
    Ok(done)
}
