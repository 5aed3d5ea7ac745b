//! Alerts: append-only records of a change worth telling someone about. Deciding *when* to
//! raise one is ingest's job (`ingest::storage_alerts`, `ingest::inventory_alerts`); this stores and lists them.

use crate::store::page::{NewestKey, Page};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::host_rows::HostScope;
use crate::store::{StoreError, TenantTx, query_error};

/// How much an alert matters; least first, so `>=` is "at least as bad". Its words are the
/// ones the CHECK constraints of `alerts.severity` and `notification_channels.min_severity`
/// allow (and the word a notification's JSON carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

unity_protocol::word_enum!(Severity, UnknownSeverity, "severity", {
    Info => "info",
    Warning => "warning",
    Critical => "critical",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Disk,
    Pool,
    Array,
    Collector,
    Container,
    Database,
    Job,
    /// The host itself (its packages, its reboot flag).
    Host,
    Rollout,
}

unity_protocol::word_enum!(ObjectKind, UnknownObjectKind, "alert object kind", {
    Disk => "disk",
    Pool => "pool",
    Array => "array",
    Collector => "collector",
    Container => "container",
    Database => "database",
    Job => "job",
    Host => "host",
    Rollout => "rollout",
});

/// An alert about to be raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub object_kind: ObjectKind,
    pub object_id: Option<Uuid>,
    pub object_name: String,
    /// `disk_health`, `pool_state`, `array_degraded`, … (docs/alerts.md).
    pub kind: &'static str,
    /// `None` when the object is seen for the first time.
    pub previous: Option<String>,
    pub current: String,
    pub severity: Severity,
    pub message: String,
}

pub async fn insert(
    tx: &mut TenantTx,
    scope: HostScope,
    alert: &NewAlert,
    observed_at: OffsetDateTime,
) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO alerts (id, tenant_id, host_id, object_kind, object_id, object_name, kind, \
             previous, current, severity, message, observed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(scope.tenant_id)
    .bind(scope.host_id)
    .bind(alert.object_kind.as_str())
    .bind(alert.object_id)
    .bind(&alert.object_name)
    .bind(alert.kind)
    .bind(&alert.previous)
    .bind(&alert.current)
    .bind(alert.severity.as_str())
    .bind(&alert.message)
    .bind(observed_at)
    .execute(&mut **tx)
    .await
    .map_err(query_error("raising an alert"))?;
    Ok(id)
}

/// One line of `GET /api/v1/alerts`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Alert {
    pub id: Uuid,
    pub host_id: Uuid,
    /// `disk`, `pool`, `array`, `collector`, `container`, `database`, `job`, `host` or
    /// `rollout`.
    pub object_kind: String,
    /// The disk, pool, array, container or database id; null for collectors.
    pub object_id: Option<Uuid>,
    pub object_name: String,
    pub kind: String,
    /// Null when the object was first seen in this state.
    pub previous: Option<String>,
    pub current: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub message: String,
    /// Collection time of the report that showed the change (agent clock).
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    /// When the controller raised it.
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
    /// When an operator acknowledged it (no more reminders), and who.
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    pub acknowledged_by: Option<String>,
}

/// Filters of `GET /api/v1/alerts`.
#[derive(Debug, Clone, Copy)]
pub struct AlertFilter {
    pub host_id: Option<Uuid>,
    /// Only alerts raised at or after this time.
    pub since: Option<OffsetDateTime>,
}

/// Newest first.
pub async fn list(
    tx: &mut TenantTx,
    filter: AlertFilter,
    page: &Page<NewestKey>,
) -> Result<Vec<Alert>, StoreError> {
    let after = page.after.as_ref();
    sqlx::query_as::<_, Alert>(
        "SELECT id, host_id, object_kind, object_id, object_name, kind, previous, current, \
             severity, message, observed_at, raised_at, acknowledged_at, acknowledged_by \
         FROM alerts \
         WHERE ($1::uuid IS NULL OR host_id = $1) AND ($2::timestamptz IS NULL OR raised_at >= $2) \
           AND ($3::timestamptz IS NULL OR (raised_at, id) < ($3, $4)) \
         ORDER BY raised_at DESC, id DESC LIMIT $5",
    )
    .bind(filter.host_id)
    .bind(filter.since)
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| k.1))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing alerts"))
}

/// Acknowledges alert `id` as `by`; the alert as it is now (the first acknowledgement
/// stands), or `None` when the tenant has no such alert.
pub async fn acknowledge(
    tx: &mut TenantTx,
    id: Uuid,
    by: &str,
) -> Result<Option<Alert>, StoreError> {
    sqlx::query(
        "UPDATE alerts SET acknowledged_at = now(), acknowledged_by = $2 \
                 WHERE id = $1 AND acknowledged_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .execute(&mut **tx)
    .await
    .map_err(query_error("acknowledging an alert"))?;
    sqlx::query_as::<_, Alert>(
        "SELECT id, host_id, object_kind, object_id, object_name, kind, previous, current, \
             severity, message, observed_at, raised_at, acknowledged_at, acknowledged_by \
         FROM alerts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading an alert"))
}
