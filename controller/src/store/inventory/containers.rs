//! Containers: current state per `(host, engine id)`.

use crate::store::page::Page;
use crate::store::storage::ObjectKey;
use serde::Serialize;
use time::OffsetDateTime;
use unity_protocol::latest::{ContainerInfo, RunState, UpdateState};
use uuid::Uuid;

use super::ms_time;
use crate::store::host_rows::{HostScope, to_i64};
use crate::store::{StoreError, TenantTx, query_error};

/// What ingest needs to know about a container's stored row to decide what changed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContainerPrevious {
    pub id: Uuid,
    pub state: String,
    pub known_health: Option<String>,
    pub exit_code: Option<i64>,
    pub update_state: String,
    pub update_notified: Option<String>,
    pub present: bool,
}

/// Reads and locks the stored container `engine_id` of `host_id`.
pub async fn lock(
    tx: &mut TenantTx,
    host_id: Uuid,
    engine_id: &str,
) -> Result<Option<ContainerPrevious>, StoreError> {
    sqlx::query_as::<_, ContainerPrevious>(
        "SELECT id, state, known_health, exit_code, update_state, update_notified, present \
         FROM containers WHERE host_id = $1 AND engine_id = $2 FOR UPDATE",
    )
    .bind(host_id)
    .bind(engine_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a container's previous state"))
}

/// The new state of one container.
#[derive(Debug, Clone, Copy)]
pub struct ContainerWrite<'a> {
    /// Used only when the row does not exist yet.
    pub new_id: Uuid,
    pub report: &'a ContainerInfo,
    pub known_health: Option<&'a str>,
    pub update_notified: Option<&'a str>,
    pub detail: &'a serde_json::Value,
    pub collected_at: OffsetDateTime,
}

/// Inserts or updates the container; returns its id.
pub async fn upsert(
    tx: &mut TenantTx,
    scope: HostScope,
    write: ContainerWrite<'_>,
) -> Result<Uuid, StoreError> {
    let c = write.report;
    sqlx::query_scalar(
        "INSERT INTO containers (id, tenant_id, host_id, engine_id, name, image, image_id, \
             repo_digest, state, health, known_health, exit_code, restart_count, created_at, \
             started_at, ports, compose_project, compose_service, update_state, \
             update_new_digest, update_reason, update_notified, present, detail, first_seen_at, \
             last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19, $20, $21, $22, true, $23, $24, $24) \
         ON CONFLICT (host_id, engine_id) DO UPDATE SET \
             name = EXCLUDED.name, image = EXCLUDED.image, image_id = EXCLUDED.image_id, \
             repo_digest = EXCLUDED.repo_digest, state = EXCLUDED.state, \
             health = EXCLUDED.health, known_health = EXCLUDED.known_health, \
             exit_code = EXCLUDED.exit_code, restart_count = EXCLUDED.restart_count, \
             created_at = EXCLUDED.created_at, started_at = EXCLUDED.started_at, \
             ports = EXCLUDED.ports, compose_project = EXCLUDED.compose_project, \
             compose_service = EXCLUDED.compose_service, update_state = EXCLUDED.update_state, \
             update_new_digest = EXCLUDED.update_new_digest, \
             update_reason = EXCLUDED.update_reason, update_notified = EXCLUDED.update_notified, \
             present = true, detail = EXCLUDED.detail, last_seen_at = EXCLUDED.last_seen_at, \
             updated_at = now() \
         RETURNING id",
    )
    .bind(write.new_id)
    .bind(scope.tenant_id)
    .bind(scope.host_id)
    .bind(&c.id)
    .bind(&c.name)
    .bind(&c.image)
    .bind(&c.image_id)
    .bind(&c.repo_digest)
    .bind(&c.state)
    .bind(&c.health)
    .bind(write.known_health)
    .bind(c.exit_code)
    .bind(to_i64(c.restart_count))
    .bind(ms_time(c.created_at_ms))
    .bind(ms_time(c.started_at_ms))
    .bind(&c.ports)
    .bind(&c.compose_project)
    .bind(&c.compose_service)
    .bind(c.update.state.as_str())
    .bind(&c.update.new_digest)
    .bind(&c.update.reason)
    .bind(write.update_notified)
    .bind(sqlx::types::Json(write.detail))
    .bind(write.collected_at)
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error("storing a container"))
}

/// Marks this host's present containers that are not in `seen` as absent; returns how many.
pub async fn mark_absent(
    tx: &mut TenantTx,
    host_id: Uuid,
    seen: &[Uuid],
) -> Result<u64, StoreError> {
    sqlx::query(
        "UPDATE containers SET present = false, updated_at = now() \
         WHERE host_id = $1 AND present AND NOT (id = ANY($2))",
    )
    .bind(host_id)
    .bind(seen)
    .execute(&mut **tx)
    .await
    .map(|done| done.rows_affected())
    .map_err(query_error("marking missing containers absent"))
}

/// One line of `GET /api/v1/containers`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ContainerSummary {
    pub id: Uuid,
    pub host_id: Uuid,
    /// The engine's full container id.
    pub engine_id: String,
    pub name: String,
    /// The image reference as configured (`nginx:1.27`).
    pub image: String,
    pub image_id: String,
    /// `repo@sha256:…` the local image was pulled as; null for built or imported images.
    pub repo_digest: Option<String>,
    /// As the engine says: `created`, `running`, `paused`, `restarting`, `exited`, `dead`, …
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`; null without a health check.
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    pub restart_count: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// `0.0.0.0:8080->80/tcp`, one per published port.
    pub ports: Vec<String>,
    pub compose_project: Option<String>,
    pub compose_service: Option<String>,
    /// `up_to_date`, `update_available`, `unknown` or `not_checked`.
    pub update_state: String,
    /// The registry's current digest when `update_available`.
    pub update_new_digest: Option<String>,
    /// Why the update state is `unknown` or `not_checked`.
    pub update_reason: String,
    /// False when the container was missing from its host's latest successful collection.
    pub present: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// `GET /api/v1/containers/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ContainerDetail {
    #[serde(flatten)]
    pub summary: ContainerSummary,
    /// The agent's full record (mounts, networks, labels, limits).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Filters of `GET /api/v1/containers`; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct ContainerFilter {
    pub host_id: Option<Uuid>,
    pub state: Option<RunState>,
    pub update: Option<UpdateState>,
}

const SUMMARY_COLUMNS: &str = "id, host_id, engine_id, name, image, image_id, repo_digest, \
    state, health, exit_code, restart_count, created_at, started_at, ports, compose_project, \
    compose_service, update_state, update_new_digest, update_reason, present, first_seen_at, \
    last_seen_at, updated_at";

/// By host, then name.
pub async fn list(
    tx: &mut TenantTx,
    filter: &ContainerFilter,
    page: &Page<ObjectKey>,
) -> Result<Vec<ContainerSummary>, StoreError> {
    let after = page.after.as_ref();
    // Built only from constants; filters are binds.
    sqlx::query_as::<_, ContainerSummary>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM containers \
         WHERE ($1::uuid IS NULL OR host_id = $1) AND ($2::text IS NULL OR state = $2) \
             AND ($3::text IS NULL OR update_state = $3) \
             AND ($4::uuid IS NULL OR (host_id, name, id) > ($4, $5, $6)) \
         ORDER BY host_id, name, id LIMIT $7"
    )))
    .bind(filter.host_id)
    .bind(filter.state.as_ref().map(RunState::as_str))
    .bind(filter.update.map(UpdateState::as_str))
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| &k.1))
    .bind(after.map(|k| k.2))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing containers"))
}

pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Option<ContainerDetail>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        summary: ContainerSummary,
        detail: sqlx::types::Json<serde_json::Value>,
    }
    // Built only from constants.
    let row = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, detail FROM containers WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a container"))?;
    Ok(row.map(|row| ContainerDetail {
        summary: row.summary,
        detail: row.detail.0,
    }))
}

/// A present container of `host_id` named by its name, its engine id (or a prefix of at least
/// 12 characters, as `docker ps` shows it) or its API id. Used to make a job for it.
pub async fn find_present(
    tx: &mut TenantTx,
    host_id: Uuid,
    reference: &str,
) -> Result<Option<ContainerSummary>, StoreError> {
    let api_id = Uuid::try_parse(reference).ok();
    let prefix = (reference.len() >= 12 && reference.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("{}%", reference.to_ascii_lowercase()));
    // Built only from constants; the reference is a bind.
    sqlx::query_as::<_, ContainerSummary>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM containers \
         WHERE host_id = $1 AND present \
             AND (name = $2 OR engine_id = $2 OR id = $3 OR ($4::text IS NOT NULL AND engine_id LIKE $4)) \
         ORDER BY (name = $2) DESC, last_seen_at DESC LIMIT 1"
    )))
    .bind(host_id)
    .bind(reference.trim_start_matches('/'))
    .bind(api_id)
    .bind(prefix)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("finding a container for a job"))
}
