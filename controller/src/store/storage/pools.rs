//! ZFS pools: current state per `(host, name)`, plus samples.

use serde::Serialize;
use time::OffsetDateTime;
use unity_protocol::latest::{Health, PoolReport};
use uuid::Uuid;

use super::{DetailWrite, ObjectKey};
use super::{ListFilter, parse_health};
use crate::store::host_rows::{HostScope, Vanished, to_i64};
use crate::store::page::Page;
use crate::store::{StoreError, TenantTx, query_error};

/// What ingest needs to know about a pool's stored row to decide what changed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PoolPrevious {
    pub id: Uuid,
    pub state: String,
    pub health: String,
    pub known_health: Option<String>,
    pub scan_errors: Option<i64>,
    pub data_errors: Option<i64>,
    pub present: bool,
    /// SHA-256 of the detail text last written (see [`super::DetailWrite`]).
    pub detail_hash: Option<Vec<u8>>,
}

impl PoolPrevious {
    pub fn known_health(&self) -> Option<Health> {
        self.known_health.as_deref().map(parse_health)
    }
}

/// Reads and locks the stored pool `name` of `host_id`.
pub async fn lock(
    tx: &mut TenantTx,
    host_id: Uuid,
    name: &str,
) -> Result<Option<PoolPrevious>, StoreError> {
    sqlx::query_as::<_, PoolPrevious>(
        "SELECT id, state, health, known_health, scan_errors, data_errors, present, detail_hash \
         FROM pools \
         WHERE host_id = $1 AND name = $2 FOR UPDATE",
    )
    .bind(host_id)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a pool's previous state"))
}

/// The new state of one pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolWrite<'a> {
    /// Used only when the row does not exist yet.
    pub new_id: Uuid,
    pub report: &'a PoolReport,
    pub known_health: Option<Health>,
    pub detail: &'a DetailWrite,
    pub collected_at: OffsetDateTime,
}

/// Inserts or updates the pool; returns its id.
pub async fn upsert(
    tx: &mut TenantTx,
    scope: HostScope,
    write: PoolWrite<'_>,
) -> Result<Uuid, StoreError> {
    let pool = write.report;
    sqlx::query_scalar(
        "INSERT INTO pools (id, tenant_id, host_id, name, state, health, known_health, reasons, \
             size_bytes, allocated_bytes, free_bytes, capacity_percent, fragmentation_percent, \
             scan_function, scan_state, scan_progress_percent, scan_errors, data_errors, present, \
             detail, detail_hash, first_seen_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             true, coalesce($19::jsonb, '{}'::jsonb), $21, $20, $20) \
         ON CONFLICT (host_id, name) DO UPDATE SET \
             state = EXCLUDED.state, health = EXCLUDED.health, \
             known_health = EXCLUDED.known_health, reasons = EXCLUDED.reasons, \
             size_bytes = EXCLUDED.size_bytes, allocated_bytes = EXCLUDED.allocated_bytes, \
             free_bytes = EXCLUDED.free_bytes, capacity_percent = EXCLUDED.capacity_percent, \
             fragmentation_percent = EXCLUDED.fragmentation_percent, \
             scan_function = EXCLUDED.scan_function, scan_state = EXCLUDED.scan_state, \
             scan_progress_percent = EXCLUDED.scan_progress_percent, \
             scan_errors = EXCLUDED.scan_errors, data_errors = EXCLUDED.data_errors, \
             present = true, detail = coalesce($19::jsonb, pools.detail), \
             detail_hash = EXCLUDED.detail_hash, last_seen_at = EXCLUDED.last_seen_at, \
             updated_at = now() \
         RETURNING id",
    )
    .bind(write.new_id)
    .bind(scope.tenant_id)
    .bind(scope.host_id)
    .bind(&pool.name)
    .bind(&pool.state)
    .bind(pool.health.as_str())
    .bind(write.known_health.map(Health::as_str))
    .bind(&pool.reasons)
    .bind(to_i64(pool.size_bytes))
    .bind(to_i64(pool.allocated_bytes))
    .bind(to_i64(pool.free_bytes))
    .bind(pool.capacity_percent.map(i16::from))
    .bind(pool.fragmentation_percent.map(i16::from))
    .bind(&pool.scan_function)
    .bind(&pool.scan_state)
    .bind(pool.scan_progress_percent)
    .bind(to_i64(pool.scan_errors))
    .bind(to_i64(pool.data_errors))
    .bind(write.detail.bound())
    .bind(write.collected_at)
    .bind(&write.detail.hash)
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error("storing a pool"))
}

/// Appends one history row (ignored if this pool already has one for this collection time).
pub async fn insert_sample(
    tx: &mut TenantTx,
    scope: HostScope,
    pool_id: Uuid,
    pool: &PoolReport,
    collected_at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO pool_samples (tenant_id, pool_id, collected_at, health, state, \
             capacity_percent, allocated_bytes, scan_progress_percent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (pool_id, collected_at) DO NOTHING",
    )
    .bind(scope.tenant_id)
    .bind(pool_id)
    .bind(collected_at)
    .bind(pool.health.as_str())
    .bind(&pool.state)
    .bind(pool.capacity_percent.map(i16::from))
    .bind(to_i64(pool.allocated_bytes))
    .bind(pool.scan_progress_percent)
    .execute(&mut **tx)
    .await
    .map_err(query_error("storing a pool sample"))?;
    Ok(())
}

/// Marks this host's present pools that are not in `seen` as absent; returns `(id, name)`.
pub async fn mark_absent(
    tx: &mut TenantTx,
    host_id: Uuid,
    seen: &[Uuid],
) -> Result<Vec<Vanished>, StoreError> {
    sqlx::query_as(
        "UPDATE pools SET present = false, updated_at = now() \
         WHERE host_id = $1 AND present AND NOT (id = ANY($2)) RETURNING id, name",
    )
    .bind(host_id)
    .bind(seen)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("marking missing pools absent"))
}

/// One line of `GET /api/v1/pools`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PoolSummary {
    pub id: Uuid,
    pub host_id: Uuid,
    pub name: String,
    /// As zpool prints it: `ONLINE`, `DEGRADED`, `FAULTED`, …
    pub state: String,
    /// `ok`, `unknown`, `warning` or `critical`.
    pub health: String,
    pub reasons: Vec<String>,
    pub size_bytes: Option<i64>,
    pub allocated_bytes: Option<i64>,
    pub free_bytes: Option<i64>,
    pub capacity_percent: Option<i16>,
    pub fragmentation_percent: Option<i16>,
    pub scan_function: Option<String>,
    pub scan_state: Option<String>,
    pub scan_progress_percent: Option<f32>,
    pub scan_errors: Option<i64>,
    pub data_errors: Option<i64>,
    /// False when the pool was missing from its host's latest successful ZFS collection.
    pub present: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PoolSample {
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
    pub health: String,
    pub state: String,
    pub capacity_percent: Option<i16>,
    pub allocated_bytes: Option<i64>,
    pub scan_progress_percent: Option<f32>,
}

/// `GET /api/v1/pools/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PoolDetail {
    #[serde(flatten)]
    pub summary: PoolSummary,
    /// The agent's full parsed pool (vdev tree, counters, scan line).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// Recent samples, newest first.
    pub history: Vec<PoolSample>,
}

const SUMMARY_COLUMNS: &str = "id, host_id, name, state, health, reasons, size_bytes, \
    allocated_bytes, free_bytes, capacity_percent, fragmentation_percent, scan_function, \
    scan_state, scan_progress_percent, scan_errors, data_errors, present, first_seen_at, \
    last_seen_at, updated_at";

/// By host, then name.
pub async fn list(
    tx: &mut TenantTx,
    filter: ListFilter,
    page: &Page<ObjectKey>,
) -> Result<Vec<PoolSummary>, StoreError> {
    let after = page.after.as_ref();
    // Built only from constants; filters are binds.
    sqlx::query_as::<_, PoolSummary>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM pools \
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
    .map_err(query_error("listing pools"))
}

pub async fn get(
    tx: &mut TenantTx,
    id: Uuid,
    history_limit: i64,
) -> Result<Option<PoolDetail>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        summary: PoolSummary,
        detail: sqlx::types::Json<serde_json::Value>,
    }
    // Built only from constants.
    let Some(row) = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, detail FROM pools WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a pool"))?
    else {
        return Ok(None);
    };
    let history = sqlx::query_as::<_, PoolSample>(
        "SELECT collected_at, health, state, capacity_percent, allocated_bytes, \
             scan_progress_percent FROM pool_samples \
         WHERE pool_id = $1 ORDER BY collected_at DESC LIMIT $2",
    )
    .bind(id)
    .bind(history_limit)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("reading pool history"))?;
    Ok(Some(PoolDetail {
        summary: row.summary,
        detail: row.detail.0,
        history,
    }))
}
