//! md RAID arrays: current state per `(host, name)`, plus samples.

use serde::Serialize;
use time::OffsetDateTime;
use unity_protocol::latest::{ArrayReport, Health};
use uuid::Uuid;

use super::{DetailWrite, ObjectKey};
use super::{ListFilter, parse_health};
use crate::store::host_rows::{HostScope, Vanished, to_i32};
use crate::store::page::Page;
use crate::store::{StoreError, TenantTx, query_error};

/// What ingest needs to know about an array's stored row to decide what changed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArrayPrevious {
    pub id: Uuid,
    pub health: String,
    pub known_health: Option<String>,
    pub degraded: bool,
    pub present: bool,
    /// SHA-256 of the detail text last written (see [`super::DetailWrite`]).
    pub detail_hash: Option<Vec<u8>>,
}

impl ArrayPrevious {
    pub fn known_health(&self) -> Option<Health> {
        self.known_health.as_deref().map(parse_health)
    }
}

/// Reads and locks the stored array `name` of `host_id`.
pub async fn lock(
    tx: &mut TenantTx,
    host_id: Uuid,
    name: &str,
) -> Result<Option<ArrayPrevious>, StoreError> {
    sqlx::query_as::<_, ArrayPrevious>(
        "SELECT id, health, known_health, degraded, present, detail_hash FROM arrays \
         WHERE host_id = $1 AND name = $2 FOR UPDATE",
    )
    .bind(host_id)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading an array's previous state"))
}

/// The new state of one array.
#[derive(Debug, Clone, Copy)]
pub struct ArrayWrite<'a> {
    /// Used only when the row does not exist yet.
    pub new_id: Uuid,
    pub report: &'a ArrayReport,
    pub known_health: Option<Health>,
    pub detail: &'a DetailWrite,
    pub collected_at: OffsetDateTime,
}

/// Inserts or updates the array; returns its id.
pub async fn upsert(
    tx: &mut TenantTx,
    scope: HostScope,
    write: ArrayWrite<'_>,
) -> Result<Uuid, StoreError> {
    let array = write.report;
    sqlx::query_scalar(
        "INSERT INTO arrays (id, tenant_id, host_id, name, level, state, health, known_health, \
             reasons, raid_disks, active_disks, degraded, sync_action, sync_progress_percent, \
             present, detail, detail_hash, first_seen_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, true, \
             coalesce($15::jsonb, '{}'::jsonb), $17, $16, $16) \
         ON CONFLICT (host_id, name) DO UPDATE SET \
             level = EXCLUDED.level, state = EXCLUDED.state, health = EXCLUDED.health, \
             known_health = EXCLUDED.known_health, reasons = EXCLUDED.reasons, \
             raid_disks = EXCLUDED.raid_disks, active_disks = EXCLUDED.active_disks, \
             degraded = EXCLUDED.degraded, sync_action = EXCLUDED.sync_action, \
             sync_progress_percent = EXCLUDED.sync_progress_percent, present = true, \
             detail = coalesce($15::jsonb, arrays.detail), detail_hash = EXCLUDED.detail_hash, \
             last_seen_at = EXCLUDED.last_seen_at, updated_at = now() \
         RETURNING id",
    )
    .bind(write.new_id)
    .bind(scope.tenant_id)
    .bind(scope.host_id)
    .bind(&array.name)
    .bind(&array.level)
    .bind(&array.state)
    .bind(array.health.as_str())
    .bind(write.known_health.map(Health::as_str))
    .bind(&array.reasons)
    .bind(to_i32(array.raid_disks))
    .bind(to_i32(array.active_disks))
    .bind(array.degraded)
    .bind(&array.sync_action)
    .bind(array.sync_progress_percent)
    .bind(write.detail.bound())
    .bind(write.collected_at)
    .bind(&write.detail.hash)
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error("storing an array"))
}

/// Appends one history row (ignored if this array already has one for this collection time).
pub async fn insert_sample(
    tx: &mut TenantTx,
    scope: HostScope,
    array_id: Uuid,
    array: &ArrayReport,
    collected_at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO array_samples (tenant_id, array_id, collected_at, health, state, degraded, \
             active_disks, sync_action, sync_progress_percent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (array_id, collected_at) DO NOTHING",
    )
    .bind(scope.tenant_id)
    .bind(array_id)
    .bind(collected_at)
    .bind(array.health.as_str())
    .bind(&array.state)
    .bind(array.degraded)
    .bind(to_i32(array.active_disks))
    .bind(&array.sync_action)
    .bind(array.sync_progress_percent)
    .execute(&mut **tx)
    .await
    .map_err(query_error("storing an array sample"))?;
    Ok(())
}

/// Marks this host's present arrays that are not in `seen` as absent; returns those.
pub async fn mark_absent(
    tx: &mut TenantTx,
    host_id: Uuid,
    seen: &[Uuid],
) -> Result<Vec<Vanished>, StoreError> {
    sqlx::query_as(
        "UPDATE arrays SET present = false, updated_at = now() \
         WHERE host_id = $1 AND present AND NOT (id = ANY($2)) RETURNING id, name",
    )
    .bind(host_id)
    .bind(seen)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("marking missing arrays absent"))
}

/// One line of `GET /api/v1/arrays`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ArraySummary {
    pub id: Uuid,
    pub host_id: Uuid,
    /// `md0`, `md127`, …
    pub name: String,
    pub level: String,
    pub state: String,
    /// `ok`, `unknown`, `warning` or `critical`.
    pub health: String,
    pub reasons: Vec<String>,
    pub raid_disks: Option<i32>,
    pub active_disks: Option<i32>,
    pub degraded: bool,
    pub sync_action: Option<String>,
    pub sync_progress_percent: Option<f32>,
    /// False when the array was missing from its host's latest successful md collection.
    pub present: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ArraySample {
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
    pub health: String,
    pub state: String,
    pub degraded: bool,
    pub active_disks: Option<i32>,
    pub sync_action: Option<String>,
    pub sync_progress_percent: Option<f32>,
}

/// `GET /api/v1/arrays/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArrayDetail {
    #[serde(flatten)]
    pub summary: ArraySummary,
    /// The agent's full parsed array (members, roles, bitmap, sysfs state).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// Recent samples, newest first.
    pub history: Vec<ArraySample>,
}

const SUMMARY_COLUMNS: &str = "id, host_id, name, level, state, health, reasons, raid_disks, \
    active_disks, degraded, sync_action, sync_progress_percent, present, first_seen_at, \
    last_seen_at, updated_at";

/// By host, then name.
pub async fn list(
    tx: &mut TenantTx,
    filter: ListFilter,
    page: &Page<ObjectKey>,
) -> Result<Vec<ArraySummary>, StoreError> {
    let after = page.after.as_ref();
    // Built only from constants; filters are binds.
    sqlx::query_as::<_, ArraySummary>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM arrays \
         WHERE ($1::uuid IS NULL OR host_id = $1) AND ($2::text IS NULL OR health = $2) \
           AND ($3::uuid IS NULL OR (host_id, name, id) > ($3, $4, $5)) \
         ORDER BY host_id, name, id LIMIT $6"
    )))
    .bind(filter.host_id)
    .bind(filter.health_text())
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| &k.1))
    .bind(after.map(|k| k.2))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing arrays"))
}

pub async fn get(
    tx: &mut TenantTx,
    id: Uuid,
    history_limit: i64,
) -> Result<Option<ArrayDetail>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        summary: ArraySummary,
        detail: sqlx::types::Json<serde_json::Value>,
    }
    // Built only from constants.
    let Some(row) = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, detail FROM arrays WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading an array"))?
    else {
        return Ok(None);
    };
    let history = sqlx::query_as::<_, ArraySample>(
        "SELECT collected_at, health, state, degraded, active_disks, sync_action, \
             sync_progress_percent FROM array_samples \
         WHERE array_id = $1 ORDER BY collected_at DESC LIMIT $2",
    )
    .bind(id)
    .bind(history_limit)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("reading array history"))?;
    Ok(Some(ArrayDetail {
        summary: row.summary,
        detail: row.detail.0,
        history,
    }))
}
