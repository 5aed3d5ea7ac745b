//! Disks: current state keyed by a stable identity, plus samples.

use serde::Serialize;
use time::OffsetDateTime;
use unity_protocol::latest::{DiskReport, Health};
use uuid::Uuid;

use super::{DetailWrite, ObjectKey};
use super::{ListFilter, parse_health};
use crate::store::host_rows::{HostScope, Vanished, to_i32, to_i64};
use crate::store::page::Page;
use crate::store::{StoreError, TenantTx, query_error};

/// What ingest needs to know about a disk's stored row to decide what changed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DiskPrevious {
    pub id: Uuid,
    pub host_id: Uuid,
    pub health: String,
    pub known_health: Option<String>,
    pub present: bool,
    /// Another host that reported this disk while its own host still did.
    pub contested_by: Option<Uuid>,
    /// SHA-256 of the detail text last written (see [`super::DetailWrite`]).
    pub detail_hash: Option<Vec<u8>>,
}

impl DiskPrevious {
    pub fn known_health(&self) -> Option<Health> {
        self.known_health.as_deref().map(parse_health)
    }
}

/// Reads (and locks, until the transaction ends) the disk with this identity, on any host of
/// the tenant: a disk moved between hosts is the same disk.
pub async fn lock(
    tx: &mut TenantTx,
    identity_key: &str,
) -> Result<Option<DiskPrevious>, StoreError> {
    sqlx::query_as::<_, DiskPrevious>(
        "SELECT id, host_id, health, known_health, present, contested_by, detail_hash FROM disks \
         WHERE identity_key = $1 FOR UPDATE",
    )
    .bind(identity_key)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a disk's previous state"))
}

/// The new state of one disk.
#[derive(Debug, Clone, Copy)]
pub struct DiskWrite<'a> {
    /// Used only when the row does not exist yet.
    pub new_id: Uuid,
    pub identity_key: &'a str,
    pub report: &'a DiskReport,
    pub known_health: Option<Health>,
    pub detail: &'a DetailWrite,
    pub collected_at: OffsetDateTime,
}

/// Records that `host_id` also reports disk `id` (which stays where it is).
pub async fn mark_contested(tx: &mut TenantTx, id: Uuid, host_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE disks SET contested_by = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(host_id)
        .execute(&mut **tx)
        .await
        .map_err(query_error("recording a contested disk"))?;
    Ok(())
}

/// Inserts the disk or updates it in place (moving it to `scope.host_id` if it was seen on
/// another host). Returns the row's id.
pub async fn upsert(
    tx: &mut TenantTx,
    scope: HostScope,
    write: DiskWrite<'_>,
) -> Result<Uuid, StoreError> {
    let DiskWrite {
        new_id,
        identity_key,
        report: disk,
        known_health,
        detail,
        collected_at,
    } = write;
    sqlx::query_scalar(
        "INSERT INTO disks (id, tenant_id, host_id, identity_key, device, device_type, protocol, \
             model, serial, wwn, firmware, capacity_bytes, rotation_rpm, read_status, read_detail, \
             health, known_health, reasons, temperature_c, power_on_hours, present, detail, \
             detail_hash, first_seen_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19, $20, true, coalesce($21::jsonb, '{}'::jsonb), $23, $22, $22) \
         ON CONFLICT (tenant_id, identity_key) DO UPDATE SET \
             host_id = EXCLUDED.host_id, device = EXCLUDED.device, \
             device_type = EXCLUDED.device_type, protocol = EXCLUDED.protocol, \
             model = EXCLUDED.model, serial = EXCLUDED.serial, wwn = EXCLUDED.wwn, \
             firmware = EXCLUDED.firmware, capacity_bytes = EXCLUDED.capacity_bytes, \
             rotation_rpm = EXCLUDED.rotation_rpm, read_status = EXCLUDED.read_status, \
             read_detail = EXCLUDED.read_detail, health = EXCLUDED.health, \
             known_health = EXCLUDED.known_health, reasons = EXCLUDED.reasons, \
             temperature_c = EXCLUDED.temperature_c, power_on_hours = EXCLUDED.power_on_hours, \
             present = true, detail = coalesce($21::jsonb, disks.detail), \
             detail_hash = EXCLUDED.detail_hash, last_seen_at = EXCLUDED.last_seen_at, \
             contested_by = CASE WHEN disks.host_id = EXCLUDED.host_id \
                 THEN disks.contested_by END, \
             updated_at = now() \
         RETURNING id",
    )
    .bind(new_id)
    .bind(scope.tenant_id)
    .bind(scope.host_id)
    .bind(identity_key)
    .bind(&disk.device)
    .bind(&disk.device_type)
    .bind(&disk.protocol)
    .bind(&disk.model)
    .bind(&disk.serial)
    .bind(&disk.wwn)
    .bind(&disk.firmware)
    .bind(to_i64(disk.capacity_bytes))
    .bind(to_i32(disk.rotation_rpm))
    .bind(&disk.read_status)
    .bind(&disk.read_detail)
    .bind(disk.health.as_str())
    .bind(known_health.map(Health::as_str))
    .bind(&disk.reasons)
    .bind(disk.temperature_c)
    .bind(to_i64(disk.power_on_hours))
    .bind(detail.bound())
    .bind(collected_at)
    .bind(&detail.hash)
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error("storing a disk"))
}

/// Appends one history row. A second sample for the same disk and collection time (the same
/// disk listed twice in one report, e.g. through two paths) is ignored.
pub async fn insert_sample(
    tx: &mut TenantTx,
    scope: HostScope,
    disk_id: Uuid,
    disk: &DiskReport,
    metrics: &serde_json::Value,
    collected_at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO disk_samples (tenant_id, disk_id, collected_at, health, temperature_c, \
             power_on_hours, metrics) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (disk_id, collected_at) DO NOTHING",
    )
    .bind(scope.tenant_id)
    .bind(disk_id)
    .bind(collected_at)
    .bind(disk.health.as_str())
    .bind(disk.temperature_c)
    .bind(to_i64(disk.power_on_hours))
    .bind(sqlx::types::Json(metrics))
    .execute(&mut **tx)
    .await
    .map_err(query_error("storing a disk sample"))?;
    Ok(())
}

/// Marks this host's present disks that are not in `seen` as absent; returns those.
pub async fn mark_absent(
    tx: &mut TenantTx,
    host_id: Uuid,
    seen: &[Uuid],
) -> Result<Vec<Vanished>, StoreError> {
    sqlx::query_as::<_, Vanished>(
        "UPDATE disks SET present = false, updated_at = now() \
         WHERE host_id = $1 AND present AND NOT (id = ANY($2)) \
         RETURNING id, CASE WHEN coalesce(model, serial) IS NULL THEN device \
             ELSE device || ' (' || concat_ws(', ', model, serial) || ')' END AS name",
    )
    .bind(host_id)
    .bind(seen)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("marking missing disks absent"))
}

/// One line of `GET /api/v1/disks`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DiskSummary {
    pub id: Uuid,
    pub host_id: Uuid,
    /// `wwn:…`, `serial:<model>:<serial>` or `device:<host_id>:<device>` (docs/alerts.md).
    pub identity_key: String,
    /// Device path at the last collection (`/dev/sdb`); may change across reboots.
    pub device: String,
    pub protocol: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub firmware: Option<String>,
    pub capacity_bytes: Option<i64>,
    pub rotation_rpm: Option<i32>,
    pub read_status: String,
    /// `ok`, `unknown`, `warning` or `critical`.
    pub health: String,
    pub reasons: Vec<String>,
    pub temperature_c: Option<i32>,
    pub power_on_hours: Option<i64>,
    /// False when the disk was missing from its host's latest successful SMART collection.
    pub present: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen_at: OffsetDateTime,
    /// Collection time of the last report that listed the disk.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One history row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DiskSample {
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
    pub health: String,
    pub temperature_c: Option<i32>,
    pub power_on_hours: Option<i64>,
    /// Metric name → value (`ata.5.reallocated_sector_ct`, `nvme.percentage_used`, …).
    #[schema(value_type = Object)]
    pub metrics: sqlx::types::Json<serde_json::Value>,
}

/// `GET /api/v1/disks/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiskDetail {
    #[serde(flatten)]
    pub summary: DiskSummary,
    pub device_type: String,
    pub read_detail: String,
    /// The agent's full normalized SMART record (a JSON string if the agent sent invalid JSON).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// Recent samples, newest first.
    pub history: Vec<DiskSample>,
}

const SUMMARY_COLUMNS: &str = "id, host_id, identity_key, device, protocol, model, serial, wwn, \
    firmware, capacity_bytes, rotation_rpm, read_status, health, reasons, temperature_c, \
    power_on_hours, present, first_seen_at, last_seen_at, updated_at";

/// By host, then device.
pub async fn list(
    tx: &mut TenantTx,
    filter: ListFilter,
    page: &Page<ObjectKey>,
) -> Result<Vec<DiskSummary>, StoreError> {
    let after = page.after.as_ref();
    // Built only from constants; filters are binds.
    sqlx::query_as::<_, DiskSummary>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM disks \
         WHERE ($1::uuid IS NULL OR host_id = $1) AND ($2::text IS NULL OR health = $2) \
           AND ($3::uuid IS NULL OR (host_id, device, id) > ($3, $4, $5)) \
         ORDER BY host_id, device, id LIMIT $6"
    )))
    .bind(filter.host_id)
    .bind(filter.health_text())
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| &k.1))
    .bind(after.map(|k| k.2))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing disks"))
}

pub async fn get(
    tx: &mut TenantTx,
    id: Uuid,
    history_limit: i64,
) -> Result<Option<DiskDetail>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        summary: DiskSummary,
        device_type: String,
        read_detail: String,
        detail: sqlx::types::Json<serde_json::Value>,
    }
    // Built only from constants.
    let Some(row) = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, device_type, read_detail, detail FROM disks WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a disk"))?
    else {
        return Ok(None);
    };
    let history = sqlx::query_as::<_, DiskSample>(
        "SELECT collected_at, health, temperature_c, power_on_hours, metrics FROM disk_samples \
         WHERE disk_id = $1 ORDER BY collected_at DESC LIMIT $2",
    )
    .bind(id)
    .bind(history_limit)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("reading disk history"))?;
    Ok(Some(DiskDetail {
        summary: row.summary,
        device_type: row.device_type,
        read_detail: row.read_detail,
        detail: row.detail.0,
        history,
    }))
}
