//! What runs on hosts, in the store: container engines, containers, images, databases.
//!
//! Every function takes a [`TenantTx`], so row-level security confines it to one tenant.
//! Current state only (one row per object, upserted by ingest, marked absent, never deleted);
//! the alerts ingest raises on changes are the history. Deciding *what changed* is ingest's
//! job; these modules read the previous row and write the new one.

pub mod containers;
pub mod databases;
pub mod images;

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use unity_protocol::latest::{EngineInfo, UpdateState};
use uuid::Uuid;

use super::{StoreError, TenantTx, query_error};
use crate::store::collectors::{self, CollectorStatus};
use crate::store::host_rows::HostScope;

/// The collector sources inventory reports use in `collector_status`.
pub const SOURCES: &[&str] = &["containers", "databases"];

/// Agent milliseconds since the epoch as a time; out-of-range values are dropped (a wrong
/// clock value from a tool must not make the report unstorable).
/// An agent-reported time about a container or image, if plausible (`ingest::plausible_time`).
pub(crate) fn ms_time(ms: Option<i64>) -> Option<OffsetDateTime> {
    crate::ingest::plausible_time(ms, OffsetDateTime::now_utc())
}

/// Records the engine the host's agent talks to.
pub async fn upsert_engine(
    tx: &mut TenantTx,
    scope: HostScope,
    engine: &EngineInfo,
    collected_at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO container_engines (tenant_id, host_id, kind, version, api_version, \
             storage_driver, rootless, endpoint, present, first_seen_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true, $9, $9) \
         ON CONFLICT (host_id) DO UPDATE SET kind = EXCLUDED.kind, version = EXCLUDED.version, \
             api_version = EXCLUDED.api_version, storage_driver = EXCLUDED.storage_driver, \
             rootless = EXCLUDED.rootless, endpoint = EXCLUDED.endpoint, present = true, \
             last_seen_at = EXCLUDED.last_seen_at, updated_at = now()",
    )
    .bind(scope.tenant_id)
    .bind(scope.host_id)
    .bind(&engine.kind)
    .bind(&engine.version)
    .bind(&engine.api_version)
    .bind(&engine.storage_driver)
    .bind(engine.rootless)
    .bind(&engine.endpoint)
    .bind(collected_at)
    .execute(&mut **tx)
    .await
    .map_err(query_error("storing a container engine"))?;
    Ok(())
}

/// Marks the host's engine absent (a round that worked found none).
pub async fn mark_engine_absent(tx: &mut TenantTx, host_id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE container_engines SET present = false, updated_at = now() \
         WHERE host_id = $1 AND present",
    )
    .bind(host_id)
    .execute(&mut **tx)
    .await
    .map_err(query_error("marking a container engine absent"))?;
    Ok(())
}

/// The container engine of a host.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Engine {
    /// `docker` or `podman`.
    pub kind: String,
    pub version: String,
    pub api_version: String,
    pub storage_driver: String,
    pub rootless: bool,
    /// The socket or URL the agent used.
    pub endpoint: String,
    /// False when the latest successful collection found no engine.
    pub present: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Present containers per update state.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct UpdateCounts {
    pub up_to_date: i64,
    pub update_available: i64,
    pub unknown: i64,
    pub not_checked: i64,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ContainerCounts {
    /// Present containers.
    pub total: i64,
    /// Present containers per engine state (`running`, `exited`, …).
    pub by_state: BTreeMap<String, i64>,
    pub by_update: UpdateCounts,
    /// Present containers whose health check says `unhealthy`.
    pub unhealthy: i64,
    /// Known containers missing from the latest successful collection.
    pub absent: i64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct ImageCounts {
    pub total: i64,
    pub absent: i64,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct DatabaseCounts {
    /// Present databases.
    pub total: i64,
    /// Present databases per kind (`postgresql`, `redis`, …).
    pub by_kind: BTreeMap<String, i64>,
    /// Known databases missing from the latest successful discovery.
    pub absent: i64,
}

/// `GET /api/v1/hosts/{id}/inventory`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HostInventory {
    pub host_id: Uuid,
    /// Null until the host reported an engine.
    pub engine: Option<Engine>,
    pub containers: ContainerCounts,
    pub images: ImageCounts,
    pub databases: DatabaseCounts,
    /// States of the `containers` and `databases` collectors.
    pub collectors: Vec<CollectorStatus>,
}

/// The inventory summary of one host, or `None` if the host is not the tenant's.
pub async fn host_inventory(
    tx: &mut TenantTx,
    host_id: Uuid,
) -> Result<Option<HostInventory>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM hosts WHERE id = $1)")
        .bind(host_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(query_error("looking up a host"))?;
    if !exists {
        return Ok(None);
    }
    let engine = sqlx::query_as::<_, Engine>(
        "SELECT kind, version, api_version, storage_driver, rootless, endpoint, present, \
             first_seen_at, last_seen_at, updated_at FROM container_engines WHERE host_id = $1",
    )
    .bind(host_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a host's container engine"))?;

    let rows: Vec<(String, String, bool, bool, i64)> = sqlx::query_as(
        "SELECT state, update_state, present, coalesce(health = 'unhealthy', false), count(*) \
         FROM containers WHERE host_id = $1 GROUP BY 1, 2, 3, 4",
    )
    .bind(host_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("counting containers"))?;
    let mut containers = ContainerCounts::default();
    for (state, update, present, unhealthy, n) in rows {
        if !present {
            containers.absent += n;
            continue;
        }
        containers.total += n;
        *containers.by_state.entry(state).or_default() += n;
        if unhealthy {
            containers.unhealthy += n;
        }
        let u = &mut containers.by_update;
        // A word this build does not know (a newer replica wrote it) counts as unknown.
        match update.parse() {
            Ok(UpdateState::UpToDate) => u.up_to_date += n,
            Ok(UpdateState::UpdateAvailable) => u.update_available += n,
            Ok(UpdateState::NotChecked) => u.not_checked += n,
            Ok(UpdateState::Unknown) | Err(_) => u.unknown += n,
        }
    }

    let rows: Vec<(bool, i64)> = sqlx::query_as(
        "SELECT present, count(*) FROM container_images WHERE host_id = $1 GROUP BY present",
    )
    .bind(host_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("counting container images"))?;
    let mut images = ImageCounts::default();
    for (present, n) in rows {
        if present {
            images.total += n;
        } else {
            images.absent += n;
        }
    }

    let rows: Vec<(String, bool, i64)> = sqlx::query_as(
        "SELECT kind, present, count(*) FROM databases WHERE host_id = $1 GROUP BY kind, present",
    )
    .bind(host_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("counting databases"))?;
    let mut databases = DatabaseCounts::default();
    for (kind, present, n) in rows {
        if present {
            databases.total += n;
            *databases.by_kind.entry(kind).or_default() += n;
        } else {
            databases.absent += n;
        }
    }

    Ok(Some(HostInventory {
        host_id,
        engine,
        containers,
        images,
        databases,
        collectors: collectors::list_for_host(tx, host_id, SOURCES).await?,
    }))
}
