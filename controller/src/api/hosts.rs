//! `/api/v1/hosts`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::Uri;

use super::page::{PageQuery, Paged};
use super::storage::query;

use super::{ApiError, ApiState, ErrorBody, TenantAuth, parse_id};
use crate::store::{HostDetail, HostSummary, hosts};

/// Hosts of the caller's tenant, by hostname.
#[utoipa::path(
    get, path = "/api/v1/hosts", tag = "hosts",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Hosts of the tenant, by hostname", body = [HostSummary],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_hosts(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Paged<HostSummary>, ApiError> {
    let page = query(q)?.page()?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let hosts = hosts::list_hosts(&mut tx, &page).await?;
    Ok(Paged::new(hosts, &page, &uri, |h| {
        (h.hostname.clone(), h.id)
    }))
}

/// One host with its latest facts. Another tenant's host is reported as not found.
#[utoipa::path(
    get, path = "/api/v1/hosts/{id}", tag = "hosts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host", body = HostDetail),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such host in this tenant", body = ErrorBody),
    )
)]
pub async fn get_host(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<HostDetail>, ApiError> {
    let id = parse_id(&id, "host")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    hosts::get_host(&mut tx, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("host"))
}

/// Revoke a host (scope `admin`): its sessions are refused from now on; its data stays.
#[utoipa::path(
    post, path = "/api/v1/hosts/{id}/revoke", tag = "hosts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Host id")),
    responses(
        (status = 200, description = "Revoked", body = HostDetail),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such active host in this tenant", body = ErrorBody),
    )
)]
pub async fn revoke_host(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<HostDetail>, ApiError> {
    auth.require(crate::auth::Scope::Admin)?;
    let id = parse_id(&id, "host")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if !hosts::revoke_host(&mut tx, id).await? {
        return Err(ApiError::NotFound("host"));
    }
    let host = hosts::get_host(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("host"))?;
    super::commit(tx, "revoking a host").await?;
    tracing::info!(tenant_id = %auth.tenant_id, host_id = %id, by = %auth.token_name,
        "host revoked");
    Ok(Json(host))
}

/// Delete a host and everything it reported (scope `admin`): disks, pools, arrays and their
/// history, inventory, jobs, alerts. Its agent is refused from then on. Irreversible.
#[utoipa::path(
    delete, path = "/api/v1/hosts/{id}", tag = "hosts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Host id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such host in this tenant", body = ErrorBody),
    )
)]
pub async fn delete_host(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    auth.require(crate::auth::Scope::Admin)?;
    let id = parse_id(&id, "host")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if !hosts::delete_host(&mut tx, id).await? {
        return Err(ApiError::NotFound("host"));
    }
    super::commit(tx, "deleting a host").await?;
    tracing::warn!(tenant_id = %auth.tenant_id, host_id = %id, by = %auth.token_name,
        "host deleted with all its data");
    Ok(axum::http::StatusCode::NO_CONTENT)
}
