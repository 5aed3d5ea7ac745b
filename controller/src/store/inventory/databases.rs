//! Databases found on hosts: current state per `(host, identity key)`.

use crate::store::page::Page;
use serde::Serialize;
use time::OffsetDateTime;
use unity_protocol::latest::DatabaseInfo;
use uuid::Uuid;

use crate::store::host_rows::{HostScope, Vanished};
use crate::store::{StoreError, TenantTx, query_error};

/// What ingest needs to know about a database's stored row to decide what changed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DatabasePrevious {
    pub id: Uuid,
    pub version: Option<String>,
    pub present: bool,
}

/// Reads and locks the stored database `identity_key` of `host_id`.
pub async fn lock(
    tx: &mut TenantTx,
    host_id: Uuid,
    identity_key: &str,
) -> Result<Option<DatabasePrevious>, StoreError> {
    sqlx::query_as::<_, DatabasePrevious>(
        "SELECT id, version, present FROM databases \
         WHERE host_id = $1 AND identity_key = $2 FOR UPDATE",
    )
    .bind(host_id)
    .bind(identity_key)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a database's previous state"))
}

/// The new state of one database.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseWrite<'a> {
    /// Used only when the row does not exist yet.
    pub new_id: Uuid,
    pub identity_key: &'a str,
    pub report: &'a DatabaseInfo,
    pub detail: &'a serde_json::Value,
    pub collected_at: OffsetDateTime,
}

/// Inserts or updates the database; returns its id. A report without a version keeps the
/// last known one.
pub async fn upsert(
    tx: &mut TenantTx,
    scope: HostScope,
    write: DatabaseWrite<'_>,
) -> Result<Uuid, StoreError> {
    let d = write.report;
    sqlx::query_scalar(
        "INSERT INTO databases (id, tenant_id, host_id, identity_key, kind, version, listen, pid, \
             process, container_id, data_dir, found_by, probe, probe_detail, present, detail, \
             first_seen_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, true, $15, $16, $16) \
         ON CONFLICT (host_id, identity_key) DO UPDATE SET \
             kind = EXCLUDED.kind, version = COALESCE(EXCLUDED.version, databases.version), \
             listen = EXCLUDED.listen, pid = EXCLUDED.pid, process = EXCLUDED.process, \
             container_id = EXCLUDED.container_id, data_dir = EXCLUDED.data_dir, \
             found_by = EXCLUDED.found_by, probe = EXCLUDED.probe, \
             probe_detail = EXCLUDED.probe_detail, present = true, detail = EXCLUDED.detail, \
             last_seen_at = EXCLUDED.last_seen_at, updated_at = now() \
         RETURNING id",
    )
    .bind(write.new_id)
    .bind(scope.tenant_id)
    .bind(scope.host_id)
    .bind(write.identity_key)
    .bind(&d.kind)
    .bind(&d.version)
    .bind(&d.listen)
    .bind(d.pid.map(i64::from))
    .bind(&d.process)
    .bind(&d.container_id)
    .bind(&d.data_dir)
    .bind(&d.found_by)
    .bind(&d.probe)
    .bind(&d.probe_detail)
    .bind(sqlx::types::Json(write.detail))
    .bind(write.collected_at)
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error("storing a database"))
}

/// Marks this host's present databases that are not in `seen` as absent; returns them, named
/// `<kind> (<identity key>)` for alerts.
pub async fn mark_absent(
    tx: &mut TenantTx,
    host_id: Uuid,
    seen: &[Uuid],
) -> Result<Vec<Vanished>, StoreError> {
    sqlx::query_as(
        "UPDATE databases SET present = false, updated_at = now() \
         WHERE host_id = $1 AND present AND NOT (id = ANY($2)) RETURNING id, identity_key AS name",
    )
    .bind(host_id)
    .bind(seen)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("marking missing databases absent"))
}

/// One line of `GET /api/v1/databases`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DatabaseSummary {
    pub id: Uuid,
    pub host_id: Uuid,
    /// How the controller recognises this database across reports (docs/inventory-api.md).
    pub identity_key: String,
    /// `postgresql`, `mysql`, `mariadb`, `mongodb`, `redis`, `valkey`, `minio`, …
    pub kind: String,
    /// The last version the agent could read.
    pub version: Option<String>,
    /// `127.0.0.1:5432`, `[::]:6379`, `/run/postgresql/.s.PGSQL.5432`.
    pub listen: Vec<String>,
    pub pid: Option<i64>,
    pub process: Option<String>,
    /// The engine id of the container it runs in, if any.
    pub container_id: Option<String>,
    pub data_dir: Option<String>,
    /// Which sources agreed: `socket`, `process`, `container`.
    pub found_by: Vec<String>,
    /// `confirmed`, `auth_required`, `wrong_protocol`, `timeout`, `refused`, `error`,
    /// `not_probed`.
    pub probe: String,
    pub probe_detail: String,
    /// False when the database was missing from its host's latest successful discovery.
    pub present: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// `GET /api/v1/databases/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatabaseDetail {
    #[serde(flatten)]
    pub summary: DatabaseSummary,
    /// The agent's full record.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Filters of `GET /api/v1/databases`; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct DatabaseFilter {
    pub host_id: Option<Uuid>,
    pub kind: Option<String>,
}

const SUMMARY_COLUMNS: &str = "id, host_id, identity_key, kind, version, listen, pid, process, \
    container_id, data_dir, found_by, probe, probe_detail, present, first_seen_at, last_seen_at, \
    updated_at";

/// Sort key of [`list`]: host, kind, identity key, id.
pub type DatabaseKey = (Uuid, String, String, Uuid);

/// By host, kind and identity.
pub async fn list(
    tx: &mut TenantTx,
    filter: &DatabaseFilter,
    page: &Page<DatabaseKey>,
) -> Result<Vec<DatabaseSummary>, StoreError> {
    let after = page.after.as_ref();
    // Built only from constants; filters are binds.
    sqlx::query_as::<_, DatabaseSummary>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM databases \
         WHERE ($1::uuid IS NULL OR host_id = $1) AND ($2::text IS NULL OR kind = $2) \
           AND ($3::uuid IS NULL OR (host_id, kind, identity_key, id) > ($3, $4, $5, $6)) \
         ORDER BY host_id, kind, identity_key, id LIMIT $7"
    )))
    .bind(filter.host_id)
    .bind(&filter.kind)
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| &k.1))
    .bind(after.map(|k| &k.2))
    .bind(after.map(|k| k.3))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing databases"))
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<DatabaseDetail>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        summary: DatabaseSummary,
        detail: sqlx::types::Json<serde_json::Value>,
    }
    // Built only from constants.
    let row = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, detail FROM databases WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a database"))?;
    Ok(row.map(|row| DatabaseDetail {
        summary: row.summary,
        detail: row.detail.0,
    }))
}
