//! Each host's operating-system packages, in the store: pending updates, security updates,
//! the reboot-required flag. One row per host, upserted by ingest; every function takes a
//! [`TenantTx`], so row-level security confines it to one tenant.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{StoreError, TenantTx, query_error};
use crate::store::host_rows::HostScope;

/// What the rules need of the previous row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PreviousPackages {
    pub reboot_required: bool,
    pub security_count: i32,
    pub security_pending_since: Option<OffsetDateTime>,
    pub security_alerted: bool,
}

/// The row ingest writes.
#[derive(Debug, Clone)]
pub struct PackagesRow<'a> {
    pub manager: &'a str,
    pub source_state: &'a str,
    pub source_detail: &'a str,
    pub pending: serde_json::Value,
    pub pending_count: i32,
    pub security_count: i32,
    pub held_back: serde_json::Value,
    pub reboot_required: bool,
    pub reboot_required_by: serde_json::Value,
    pub lists_updated_at: Option<OffsetDateTime>,
    pub security_pending_since: Option<OffsetDateTime>,
    pub security_alerted: bool,
    pub collected_at: OffsetDateTime,
}

pub async fn previous(
    tx: &mut TenantTx,
    host_id: Uuid,
) -> Result<Option<PreviousPackages>, StoreError> {
    sqlx::query_as(
        "SELECT reboot_required, security_count, security_pending_since, security_alerted \
         FROM host_packages WHERE host_id = $1",
    )
    .bind(host_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a host's packages"))
}

pub async fn upsert(
    tx: &mut TenantTx,
    scope: HostScope,
    row: &PackagesRow<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO host_packages (tenant_id, host_id, manager, source_state, source_detail, \
             pending, pending_count, security_count, held_back, reboot_required, \
             reboot_required_by, lists_updated_at, security_pending_since, security_alerted, \
             collected_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (host_id) DO UPDATE SET manager = EXCLUDED.manager, \
             source_state = EXCLUDED.source_state, source_detail = EXCLUDED.source_detail, \
             pending = EXCLUDED.pending, pending_count = EXCLUDED.pending_count, \
             security_count = EXCLUDED.security_count, held_back = EXCLUDED.held_back, \
             reboot_required = EXCLUDED.reboot_required, \
             reboot_required_by = EXCLUDED.reboot_required_by, \
             lists_updated_at = EXCLUDED.lists_updated_at, \
             security_pending_since = EXCLUDED.security_pending_since, \
             security_alerted = EXCLUDED.security_alerted, \
             collected_at = EXCLUDED.collected_at, updated_at = now() \
         WHERE host_packages.collected_at <= EXCLUDED.collected_at",
    )
    .bind(scope.tenant_id)
    .bind(scope.host_id)
    .bind(row.manager)
    .bind(row.source_state)
    .bind(row.source_detail)
    .bind(&row.pending)
    .bind(row.pending_count)
    .bind(row.security_count)
    .bind(&row.held_back)
    .bind(row.reboot_required)
    .bind(&row.reboot_required_by)
    .bind(row.lists_updated_at)
    .bind(row.security_pending_since)
    .bind(row.security_alerted)
    .bind(row.collected_at)
    .execute(&mut **tx)
    .await
    .map_err(query_error("storing a host's packages"))?;
    Ok(())
}

/// `GET /api/v1/hosts/{id}/packages`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct HostPackages {
    pub host_id: Uuid,
    /// `apt`; empty when the host has no supported package manager.
    pub manager: String,
    /// `ok`, `not_present`, `tool_missing`, `permission_denied` or `failed`.
    pub source_state: String,
    pub source_detail: String,
    /// `[{name, current_version, new_version, architecture, origins, security}]`.
    #[schema(value_type = Vec<Object>)]
    pub pending: sqlx::types::Json<serde_json::Value>,
    pub pending_count: i32,
    pub security_count: i32,
    #[schema(value_type = Vec<String>)]
    pub held_back: sqlx::types::Json<serde_json::Value>,
    pub reboot_required: bool,
    #[schema(value_type = Vec<String>)]
    pub reboot_required_by: sqlx::types::Json<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub lists_updated_at: Option<OffsetDateTime>,
    /// Since when security updates have been pending without a break (agent clock).
    #[serde(with = "time::serde::rfc3339::option")]
    pub security_pending_since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
}

pub async fn get(tx: &mut TenantTx, host_id: Uuid) -> Result<Option<HostPackages>, StoreError> {
    sqlx::query_as(
        "SELECT host_id, manager, source_state, source_detail, pending, pending_count, \
             security_count, held_back, reboot_required, reboot_required_by, lists_updated_at, \
             security_pending_since, collected_at \
         FROM host_packages WHERE host_id = $1",
    )
    .bind(host_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a host's packages"))
}
