//! Whether each collector of a host (storage: smart, zfs, mdraid; inventory: containers,
//! databases) worked in its last round.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::host_rows::HostScope;
use crate::store::{StoreError, TenantTx, query_error};

/// One collector of one host.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CollectorStatus {
    /// `smart`, `zfs`, `mdraid`, `containers` or `databases`.
    pub source: String,
    /// `ok`, `not_present`, `tool_missing`, `permission_denied` or `failed`.
    pub state: String,
    /// Operator-facing explanation from the agent; empty when `ok`.
    pub detail: String,
    /// Collection time of the report that changed `state` last.
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
    /// Collection time of the latest report.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Records the state of `source` and returns the state it had before (`None` the first time).
pub async fn record(
    tx: &mut TenantTx,
    scope: HostScope,
    source: &'static str,
    state: &'static str,
    detail: &str,
    collected_at: OffsetDateTime,
) -> Result<Option<String>, StoreError> {
    let previous: Option<String> = sqlx::query_scalar(
        "SELECT state FROM collector_status WHERE host_id = $1 AND source = $2 FOR UPDATE",
    )
    .bind(scope.host_id)
    .bind(source)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a collector's previous state"))?;
    sqlx::query(
        "INSERT INTO collector_status (tenant_id, host_id, source, state, detail, changed_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (host_id, source) DO UPDATE SET state = EXCLUDED.state, \
             detail = EXCLUDED.detail, updated_at = EXCLUDED.updated_at, \
             changed_at = CASE WHEN collector_status.state = EXCLUDED.state \
                 THEN collector_status.changed_at ELSE EXCLUDED.changed_at END",
    )
    .bind(scope.tenant_id)
    .bind(scope.host_id)
    .bind(source)
    .bind(state)
    .bind(detail)
    .bind(collected_at)
    .execute(&mut **tx)
    .await
    .map_err(query_error("storing a collector's state"))?;
    Ok(previous)
}

/// The states of `sources` on `host_id`, by source name.
pub async fn list_for_host(
    tx: &mut TenantTx,
    host_id: Uuid,
    sources: &[&str],
) -> Result<Vec<CollectorStatus>, StoreError> {
    sqlx::query_as::<_, CollectorStatus>(
        "SELECT source, state, detail, changed_at, updated_at FROM collector_status \
         WHERE host_id = $1 AND source = ANY($2) ORDER BY source",
    )
    .bind(host_id)
    .bind(sources)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing collector states"))
}
