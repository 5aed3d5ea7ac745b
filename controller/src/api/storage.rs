//! `/api/v1/disks`, `/api/v1/pools`, `/api/v1/arrays`, `/api/v1/hosts/{id}/storage`,
//! `/api/v1/alerts`.
//!
//! Query parameters arrive as text and are parsed here, so a bad value is a 400 with our JSON
//! error body naming the parameter, never a plain-text extractor rejection.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use serde::Deserialize;
use time::OffsetDateTime;
use unity_protocol::latest::Health;
use uuid::Uuid;

use super::page::{Paged, limit, page};
use super::{ApiError, ApiState, ErrorBody, TenantAuth, parse_id};
use crate::store::storage::alerts::{self, Alert, AlertFilter};
use crate::store::storage::arrays::{self, ArrayDetail, ArraySummary};
use crate::store::storage::disks::{self, DiskDetail, DiskSummary};
use crate::store::storage::pools::{self, PoolDetail, PoolSummary};
use crate::store::storage::{self, HostStorage, ListFilter};

/// History rows returned by the detail routes unless `?limit=` says otherwise.
const DEFAULT_HISTORY: i64 = 200;

/// Raw query parameters of the storage routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StorageQuery {
    /// Only objects of this host (uuid).
    host_id: Option<String>,
    /// Only objects with this health: `ok`, `unknown`, `warning`, `critical`.
    health: Option<String>,
    /// Rows on the page (1-1000, default 100).
    limit: Option<String>,
    /// Where the page starts: the `cursor` of the previous page's `Link: rel="next"`.
    cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// History rows to return, newest first (1-1000, default 200).
    limit: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// Only alerts of this host (uuid).
    host_id: Option<String>,
    /// Only alerts raised at or after this RFC 3339 time (`2025-01-31T12:00:00Z`).
    since: Option<String>,
    /// Alerts on the page, newest first (1-1000, default 100).
    limit: Option<String>,
    /// Where the page starts: the `cursor` of the previous page's `Link: rel="next"`.
    cursor: Option<String>,
}

pub(super) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|rejection| {
        ApiError::BadRequest(format!("query string: {}", rejection.body_text()))
    })
}

pub(super) fn host_filter(raw: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    raw.map(|raw| {
        Uuid::try_parse(raw)
            .map_err(|_| ApiError::BadRequest(format!("host_id `{raw}` is not a uuid")))
    })
    .transpose()
}

fn health_filter(raw: Option<&str>) -> Result<Option<Health>, ApiError> {
    raw.map(|raw| {
        raw.parse::<Health>()
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    })
    .transpose()
}

fn list_filter(q: &StorageQuery) -> Result<ListFilter, ApiError> {
    Ok(ListFilter {
        host_id: host_filter(q.host_id.as_deref())?,
        health: health_filter(q.health.as_deref())?,
    })
}

/// Disks of the caller's tenant, by host and device path.
#[utoipa::path(
    get, path = "/api/v1/disks", tag = "storage",
    security(("bearer" = [])),
    params(StorageQuery),
    responses(
        (status = 200, description = "Disks (current state)", body = [DiskSummary],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_disks(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<StorageQuery>, QueryRejection>,
) -> Result<Paged<DiskSummary>, ApiError> {
    let q = query(q)?;
    let filter = list_filter(&q)?;
    let page = page(q.limit.as_deref(), q.cursor.as_deref())?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = disks::list(&mut tx, filter, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |d| {
        (d.host_id, d.device.clone(), d.id)
    }))
}

/// One disk: current state, the agent's full record, and recent history.
#[utoipa::path(
    get, path = "/api/v1/disks/{id}", tag = "storage",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Disk id"), HistoryQuery),
    responses(
        (status = 200, description = "The disk", body = DiskDetail),
        (status = 400, description = "Invalid limit", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such disk in this tenant", body = ErrorBody),
    )
)]
pub async fn get_disk(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<DiskDetail>, ApiError> {
    let id = parse_id(&id, "disk")?;
    let history = limit(query(q)?.limit.as_deref(), DEFAULT_HISTORY)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    disks::get(&mut tx, id, history)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("disk"))
}

/// ZFS pools of the caller's tenant.
#[utoipa::path(
    get, path = "/api/v1/pools", tag = "storage",
    security(("bearer" = [])),
    params(StorageQuery),
    responses(
        (status = 200, description = "Pools (current state)", body = [PoolSummary],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_pools(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<StorageQuery>, QueryRejection>,
) -> Result<Paged<PoolSummary>, ApiError> {
    let q = query(q)?;
    let filter = list_filter(&q)?;
    let page = page(q.limit.as_deref(), q.cursor.as_deref())?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = pools::list(&mut tx, filter, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |p| {
        (p.host_id, p.name.clone(), p.id)
    }))
}

/// One pool: current state, the agent's full record (vdev tree), and recent history.
#[utoipa::path(
    get, path = "/api/v1/pools/{id}", tag = "storage",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Pool id"), HistoryQuery),
    responses(
        (status = 200, description = "The pool", body = PoolDetail),
        (status = 400, description = "Invalid limit", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such pool in this tenant", body = ErrorBody),
    )
)]
pub async fn get_pool(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<PoolDetail>, ApiError> {
    let id = parse_id(&id, "pool")?;
    let history = limit(query(q)?.limit.as_deref(), DEFAULT_HISTORY)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    pools::get(&mut tx, id, history)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("pool"))
}

/// md RAID arrays of the caller's tenant.
#[utoipa::path(
    get, path = "/api/v1/arrays", tag = "storage",
    security(("bearer" = [])),
    params(StorageQuery),
    responses(
        (status = 200, description = "Arrays (current state)", body = [ArraySummary],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_arrays(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<StorageQuery>, QueryRejection>,
) -> Result<Paged<ArraySummary>, ApiError> {
    let q = query(q)?;
    let filter = list_filter(&q)?;
    let page = page(q.limit.as_deref(), q.cursor.as_deref())?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = arrays::list(&mut tx, filter, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |a| {
        (a.host_id, a.name.clone(), a.id)
    }))
}

/// One array: current state, the agent's full record (members), and recent history.
#[utoipa::path(
    get, path = "/api/v1/arrays/{id}", tag = "storage",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Array id"), HistoryQuery),
    responses(
        (status = 200, description = "The array", body = ArrayDetail),
        (status = 400, description = "Invalid limit", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such array in this tenant", body = ErrorBody),
    )
)]
pub async fn get_array(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<ArrayDetail>, ApiError> {
    let id = parse_id(&id, "array")?;
    let history = limit(query(q)?.limit.as_deref(), DEFAULT_HISTORY)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    arrays::get(&mut tx, id, history)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("array"))
}

/// Storage at a glance for one host: objects per health, and whether each collector works.
#[utoipa::path(
    get, path = "/api/v1/hosts/{id}/storage", tag = "storage",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host's storage summary", body = HostStorage),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such host in this tenant", body = ErrorBody),
    )
)]
pub async fn host_storage(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<HostStorage>, ApiError> {
    let id = parse_id(&id, "host")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    storage::host_storage(&mut tx, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("host"))
}

/// Alerts of the caller's tenant, newest first.
#[utoipa::path(
    get, path = "/api/v1/alerts", tag = "storage",
    security(("bearer" = [])),
    params(AlertQuery),
    responses(
        (status = 200, description = "Alerts, newest first", body = [Alert],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_alerts(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Paged<Alert>, ApiError> {
    let q = query(q)?;
    let since = q
        .since
        .as_deref()
        .map(|raw| {
            OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ApiError::BadRequest(format!("since `{raw}` is not an RFC 3339 time")))
        })
        .transpose()?;
    let filter = AlertFilter {
        host_id: host_filter(q.host_id.as_deref())?,
        since,
    };
    let page = page(q.limit.as_deref(), q.cursor.as_deref())?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = alerts::list(&mut tx, filter, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |a| (a.raised_at, a.id)))
}

/// Acknowledge an alert (scope `operate`): recorded with who and when, and no more reminders
/// are sent for it. Acknowledging twice keeps the first.
#[utoipa::path(
    post, path = "/api/v1/alerts/{id}/acknowledge", tag = "storage",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The alert, acknowledged", body = Alert),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such alert in this tenant", body = ErrorBody),
    )
)]
pub async fn acknowledge_alert(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<Alert>, ApiError> {
    auth.require(crate::auth::Scope::Operate)?;
    let id = parse_id(&id, "alert")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let alert = alerts::acknowledge(&mut tx, id, &format!("token:{}", auth.token_name))
        .await?
        .ok_or(ApiError::NotFound("alert"))?;
    super::commit(tx, "acknowledging an alert").await?;
    Ok(Json(alert))
}
