//! Host labels and rollouts, in the store. Every function takes a [`TenantTx`], so
//! row-level security confines it to one tenant.

use super::page::{NewestKey, OldestKey, Page};
use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{StoreError, TenantTx, query_error};

pub use unity_protocol::latest::{valid_label_key, valid_label_value};

/// Replaces the operator's labels of a host; the host's own (agent) labels stay in effect
/// for keys the operator did not set.
pub async fn set_labels(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    host_id: Uuid,
    labels: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM host_labels WHERE host_id = $1")
        .bind(host_id)
        .execute(&mut **tx)
        .await
        .map_err(query_error("clearing a host's labels"))?;
    for (key, value) in labels {
        sqlx::query(
            "INSERT INTO host_labels (tenant_id, host_id, key, value, source) \
             VALUES ($1, $2, $3, $4, 'api')",
        )
        .bind(tenant_id)
        .bind(host_id)
        .bind(key)
        .bind(value)
        .execute(&mut **tx)
        .await
        .map_err(query_error("setting a host label"))?;
    }
    apply_agent_labels(tx, tenant_id, host_id).await
}

/// Replaces the labels the host declares for itself (its `[host] labels`); whether the host
/// is still enrolled.
pub async fn set_agent_labels(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    host_id: Uuid,
    labels: &BTreeMap<String, String>,
) -> Result<bool, StoreError> {
    let declared = serde_json::to_value(labels).unwrap_or_default();
    let updated = sqlx::query(
        "UPDATE hosts SET agent_labels = $2, last_seen_at = now() \
         WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(host_id)
    .bind(declared)
    .execute(&mut **tx)
    .await
    .map_err(query_error("storing a host's own labels"))?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM host_labels WHERE host_id = $1 AND source = 'agent'")
        .bind(host_id)
        .execute(&mut **tx)
        .await
        .map_err(query_error("clearing a host's own labels"))?;
    apply_agent_labels(tx, tenant_id, host_id).await?;
    Ok(true)
}

/// Adds the host's declared labels to the effective set, under the operator's.
async fn apply_agent_labels(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    host_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO host_labels (tenant_id, host_id, key, value, source) \
         SELECT $1, h.id, d.key, d.value, 'agent' \
         FROM hosts h, jsonb_each_text(h.agent_labels) AS d(key, value) WHERE h.id = $2 \
         ON CONFLICT (host_id, key) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(host_id)
    .execute(&mut **tx)
    .await
    .map_err(query_error("applying a host's own labels"))?;
    Ok(())
}

/// The labels the host declares for itself.
pub async fn agent_labels(
    tx: &mut TenantTx,
    host_id: Uuid,
) -> Result<BTreeMap<String, String>, StoreError> {
    let declared: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT agent_labels FROM hosts WHERE id = $1")
            .bind(host_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(query_error("reading a host's own labels"))?;
    Ok(declared
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// The effective labels: the operator's, and the host's own for other keys.
pub async fn labels(
    tx: &mut TenantTx,
    host_id: Uuid,
) -> Result<BTreeMap<String, String>, StoreError> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM host_labels WHERE host_id = $1 ORDER BY key")
            .bind(host_id)
            .fetch_all(&mut **tx)
            .await
            .map_err(query_error("reading a host's labels"))?;
    Ok(rows.into_iter().collect())
}

/// Active (not revoked) hosts carrying every label of `labels` and, when `ids` is given,
/// among them; ordered by hostname, then enrollment, then id (the order waves are filled in:
/// predictable for people, stable for hosts that share a name).
pub async fn select_hosts(
    tx: &mut TenantTx,
    labels: &BTreeMap<String, String>,
    ids: Option<&[Uuid]>,
) -> Result<Vec<Uuid>, StoreError> {
    let keys: Vec<&str> = labels.keys().map(String::as_str).collect();
    let values: Vec<&str> = labels.values().map(String::as_str).collect();
    sqlx::query_scalar(
        "SELECT h.id FROM hosts h \
         WHERE h.revoked_at IS NULL \
           AND ($3::uuid[] IS NULL OR h.id = ANY($3)) \
           AND (SELECT count(*) FROM host_labels l JOIN unnest($1::text[], $2::text[]) AS w(k, v) \
                  ON l.key = w.k AND l.value = w.v WHERE l.host_id = h.id) = cardinality($1::text[]) \
         ORDER BY h.hostname, h.enrolled_at, h.id",
    )
    .bind(&keys)
    .bind(&values)
    .bind(ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("selecting hosts by label"))
}

/// Why changing `host_id` now could cost data: a failing disk, a pool or array that is
/// degraded, rebuilding or worse. `None` when its storage is healthy (or unknown).
pub async fn unhealthy_reason(
    tx: &mut TenantTx,
    host_id: Uuid,
) -> Result<Option<String>, StoreError> {
    let problems: Vec<String> = sqlx::query_scalar(
        "SELECT 'disk ' || device || ' is failing' FROM disks \
             WHERE host_id = $1 AND present AND health = 'critical' \
         UNION ALL SELECT 'pool ' || name || ' is ' || health FROM pools \
             WHERE host_id = $1 AND present AND health IN ('warning', 'critical') \
         UNION ALL SELECT 'array ' || name || ' is ' || health FROM arrays \
             WHERE host_id = $1 AND present AND health IN ('warning', 'critical') \
         ORDER BY 1",
    )
    .bind(host_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("checking a host's storage health"))?;
    Ok((!problems.is_empty()).then(|| problems.join("; ")))
}

#[derive(Debug, Clone)]
pub struct NewRollout<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: &'a str,
    pub params: &'a serde_json::Value,
    pub selector: &'a serde_json::Value,
    pub waves: &'a serde_json::Value,
    pub failure_budget: i32,
    pub force: bool,
    pub job_lifetime_secs: i32,
    pub created_by: &'a str,
    /// Hosts with their wave, in order.
    pub hosts: &'a [(Uuid, i32)],
    /// The schedule that started it, if any.
    pub schedule_id: Option<Uuid>,
    /// Hosts not started by then are skipped.
    pub deadline: Option<OffsetDateTime>,
}

pub async fn insert(tx: &mut TenantTx, r: &NewRollout<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rollouts (id, tenant_id, kind, params, selector, waves, failure_budget, \
             force, job_lifetime_secs, state, created_by, schedule_id, deadline) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'running', $10, $11, $12)",
    )
    .bind(r.id)
    .bind(r.tenant_id)
    .bind(r.kind)
    .bind(r.params)
    .bind(r.selector)
    .bind(r.waves)
    .bind(r.failure_budget)
    .bind(r.force)
    .bind(r.job_lifetime_secs)
    .bind(r.created_by)
    .bind(r.schedule_id)
    .bind(r.deadline)
    .execute(&mut **tx)
    .await
    .map_err(query_error("creating a rollout"))?;
    for (position, (host_id, wave)) in r.hosts.iter().enumerate() {
        sqlx::query(
            "INSERT INTO rollout_hosts (rollout_id, tenant_id, host_id, wave, position, state) \
             VALUES ($1, $2, $3, $4, $5, 'pending')",
        )
        .bind(r.id)
        .bind(r.tenant_id)
        .bind(host_id)
        .bind(wave)
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .execute(&mut **tx)
        .await
        .map_err(query_error("adding a host to a rollout"))?;
    }
    Ok(())
}

/// A rollout as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Rollout {
    pub id: Uuid,
    pub kind: String,
    #[schema(value_type = Object)]
    pub params: sqlx::types::Json<serde_json::Value>,
    #[schema(value_type = Object)]
    pub selector: sqlx::types::Json<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub waves: sqlx::types::Json<serde_json::Value>,
    pub failure_budget: i32,
    pub force: bool,
    pub job_lifetime_secs: i32,
    /// `running`, `paused`, `halted`, `aborted` or `completed`.
    pub state: String,
    /// The wave running now (from 0).
    pub current_wave: i32,
    /// Why it halted or was aborted.
    pub reason: Option<String>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The schedule that started it.
    pub schedule_id: Option<Uuid>,
    /// Hosts not started by then are skipped (the schedule's window closes).
    #[serde(with = "time::serde::rfc3339::option")]
    pub deadline: Option<OffsetDateTime>,
}

const ROLLOUT_COLUMNS: &str = "id, kind, params, selector, waves, failure_budget, force, \
    job_lifetime_secs, state, current_wave, reason, created_by, created_at, updated_at, \
    schedule_id, deadline";

/// One host of a rollout.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RolloutHost {
    pub host_id: Uuid,
    pub hostname: String,
    pub wave: i32,
    /// `pending`, `waiting_window`, `deferred`, `dispatched`, `succeeded`, `failed` or
    /// `skipped`.
    pub state: String,
    pub job_id: Option<Uuid>,
    /// The job's own state once dispatched.
    pub job_state: Option<String>,
    /// Why it was deferred, failed or skipped.
    pub reason: Option<String>,
}

/// Newest first.
pub async fn list(tx: &mut TenantTx, page: &Page<NewestKey>) -> Result<Vec<Rollout>, StoreError> {
    let after = page.after.as_ref();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROLLOUT_COLUMNS} FROM rollouts \
         WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2)) \
         ORDER BY created_at DESC, id DESC LIMIT $3"
    )))
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| k.1))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing rollouts"))
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<Rollout>, StoreError> {
    fetch(tx, id, "").await
}

async fn fetch(
    tx: &mut TenantTx,
    id: Uuid,
    lock: &'static str,
) -> Result<Option<Rollout>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1 {lock}"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a rollout"))
}

/// The hosts of rollout `id` (of wave `wave` only, when given), in order.
pub async fn hosts(
    tx: &mut TenantTx,
    id: Uuid,
    wave: Option<i32>,
) -> Result<Vec<RolloutHost>, StoreError> {
    sqlx::query_as(
        "SELECT rh.host_id, h.hostname, rh.wave, rh.state, rh.job_id, j.state AS job_state, rh.reason \
         FROM rollout_hosts rh JOIN hosts h ON h.id = rh.host_id \
         LEFT JOIN jobs j ON j.id = rh.job_id \
         WHERE rh.rollout_id = $1 AND ($2::int IS NULL OR rh.wave = $2) \
         ORDER BY rh.wave, rh.position",
    )
    .bind(id)
    .bind(wave)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("reading a rollout's hosts"))
}

/// Running rollouts of the tenant, locked for this transaction; ones another replica is
/// stepping are skipped.
pub async fn lock_running(tx: &mut TenantTx) -> Result<Vec<Rollout>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE state = 'running' \
         ORDER BY created_at FOR UPDATE SKIP LOCKED"
    )))
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("locking running rollouts"))
}

/// Locks one rollout for a state change by the API.
pub async fn lock(tx: &mut TenantTx, id: Uuid) -> Result<Option<Rollout>, StoreError> {
    fetch(tx, id, "FOR UPDATE").await
}

pub async fn set_host(
    tx: &mut TenantTx,
    rollout_id: Uuid,
    host_id: Uuid,
    state: &str,
    job_id: Option<Uuid>,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE rollout_hosts SET state = $3, job_id = COALESCE($4, job_id), reason = $5, \
             updated_at = now() WHERE rollout_id = $1 AND host_id = $2",
    )
    .bind(rollout_id)
    .bind(host_id)
    .bind(state)
    .bind(job_id)
    .bind(reason)
    .execute(&mut **tx)
    .await
    .map_err(query_error("updating a rollout host"))?;
    Ok(())
}

/// Marks every host still waiting to start (`pending`, `waiting_window`) as skipped.
pub async fn skip_waiting(
    tx: &mut TenantTx,
    rollout_id: Uuid,
    reason: &str,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE rollout_hosts SET state = 'skipped', reason = $2, updated_at = now() \
         WHERE rollout_id = $1 AND state IN ('pending', 'waiting_window')",
    )
    .bind(rollout_id)
    .bind(reason)
    .execute(&mut **tx)
    .await
    .map_err(query_error("skipping a rollout's hosts"))?
    .rows_affected())
}

pub async fn set_state(
    tx: &mut TenantTx,
    id: Uuid,
    state: &str,
    current_wave: i32,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE rollouts SET state = $2, current_wave = $3, reason = $4, updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(current_wave)
    .bind(reason)
    .execute(&mut **tx)
    .await
    .map_err(query_error("updating a rollout"))?;
    Ok(())
}

/// How many waves rollout `id` has.
pub async fn wave_count(tx: &mut TenantTx, id: Uuid) -> Result<i32, StoreError> {
    sqlx::query_scalar("SELECT COALESCE(max(wave) + 1, 0) FROM rollout_hosts WHERE rollout_id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(query_error("counting a rollout's waves"))
}

/// A rollout schedule as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Schedule {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub params: sqlx::types::Json<serde_json::Value>,
    #[schema(value_type = Object)]
    pub selector: sqlx::types::Json<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub waves: sqlx::types::Json<serde_json::Value>,
    pub failure_budget: i32,
    pub force: bool,
    pub job_lifetime_secs: i32,
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    pub days: Vec<i16>,
    /// Minutes after local midnight.
    pub start_minute: i32,
    pub duration_minutes: i32,
    pub time_zone: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_started_at: Option<OffsetDateTime>,
    /// The rollout it created last time, or why it could not.
    pub last_result: Option<String>,
}

const SCHEDULE_COLUMNS: &str = "id, name, kind, params, selector, waves, failure_budget, force, \
    job_lifetime_secs, days, start_minute, duration_minutes, time_zone, created_by, created_at, \
    last_started_at, last_result";

#[derive(Debug, Clone)]
pub struct NewSchedule<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: &'a str,
    pub kind: &'a str,
    pub params: &'a serde_json::Value,
    pub selector: &'a serde_json::Value,
    pub waves: &'a serde_json::Value,
    pub failure_budget: i32,
    pub force: bool,
    pub job_lifetime_secs: i32,
    pub days: &'a [i16],
    pub start_minute: i32,
    pub duration_minutes: i32,
    pub time_zone: &'a str,
    pub created_by: &'a str,
}

pub async fn insert_schedule(tx: &mut TenantTx, s: &NewSchedule<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rollout_schedules (id, tenant_id, name, kind, params, selector, waves, \
             failure_budget, force, job_lifetime_secs, days, start_minute, duration_minutes, \
             time_zone, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(s.id)
    .bind(s.tenant_id)
    .bind(s.name)
    .bind(s.kind)
    .bind(s.params)
    .bind(s.selector)
    .bind(s.waves)
    .bind(s.failure_budget)
    .bind(s.force)
    .bind(s.job_lifetime_secs)
    .bind(s.days)
    .bind(s.start_minute)
    .bind(s.duration_minutes)
    .bind(s.time_zone)
    .bind(s.created_by)
    .execute(&mut **tx)
    .await
    .map_err(query_error("creating a rollout schedule"))?;
    Ok(())
}

/// Oldest first.
pub async fn list_schedules(
    tx: &mut TenantTx,
    page: &Page<OldestKey>,
) -> Result<Vec<Schedule>, StoreError> {
    let after = page.after.as_ref();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SCHEDULE_COLUMNS} FROM rollout_schedules \
         WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2)) \
         ORDER BY created_at, id LIMIT $3"
    )))
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| k.1))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing rollout schedules"))
}

pub async fn get_schedule(tx: &mut TenantTx, id: Uuid) -> Result<Option<Schedule>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SCHEDULE_COLUMNS} FROM rollout_schedules WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a rollout schedule"))
}

pub async fn delete_schedule(tx: &mut TenantTx, id: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query("DELETE FROM rollout_schedules WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(query_error("deleting a rollout schedule"))?
        .rows_affected()
        > 0)
}

/// Schedules whose window is open at `now` and that have not started a rollout in this
/// opening yet, locked for this transaction, each with the last minute its window is still
/// open (the rollout's deadline).
pub async fn due_schedules(
    tx: &mut TenantTx,
    now: OffsetDateTime,
) -> Result<Vec<(Schedule, OffsetDateTime)>, StoreError> {
    let due: Vec<Schedule> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SCHEDULE_COLUMNS} FROM rollout_schedules s \
         WHERE unity_in_window(s.days, s.start_minute, s.duration_minutes, s.time_zone, $1) \
           AND (s.last_started_at IS NULL \
                OR s.last_started_at < $1 - s.duration_minutes * interval '1 minute') \
         ORDER BY s.created_at FOR UPDATE SKIP LOCKED"
    )))
    .bind(now)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("finding due rollout schedules"))?;
    let mut out = Vec::with_capacity(due.len());
    for schedule in due {
        let closes: Option<OffsetDateTime> = sqlx::query_scalar(
            "SELECT max(t) FROM generate_series($1::timestamptz, \
                 $1::timestamptz + $2 * interval '1 minute', interval '1 minute') AS t \
             WHERE unity_in_window($3, $4, $5, $6, t)",
        )
        .bind(now)
        .bind(schedule.duration_minutes)
        .bind(&schedule.days)
        .bind(schedule.start_minute)
        .bind(schedule.duration_minutes)
        .bind(&schedule.time_zone)
        .fetch_one(&mut **tx)
        .await
        .map_err(query_error("finding when a schedule's window closes"))?;
        let closes = closes.unwrap_or(now);
        out.push((schedule, closes));
    }
    Ok(out)
}

pub async fn schedule_started(
    tx: &mut TenantTx,
    id: Uuid,
    at: OffsetDateTime,
    result: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE rollout_schedules SET last_started_at = $2, last_result = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(at)
    .bind(result)
    .execute(&mut **tx)
    .await
    .map_err(query_error("recording a schedule's start"))?;
    Ok(())
}
