//! `/api/v1/hosts`.

use axum::Json;
use axum::extract::{Path, State};

use super::{ApiError, ApiState, ErrorBody, TenantAuth, parse_id};
use crate::store::{HostDetail, HostSummary, hosts};

/// Hosts of the caller's tenant.
#[utoipa::path(
    get, path = "/api/v1/hosts", tag = "hosts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Hosts of the tenant", body = [HostSummary]),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_hosts(
    State(state): State<ApiState>,
    auth: TenantAuth,
    _: super::NoQuery,
) -> Result<Json<Vec<HostSummary>>, ApiError> {
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let hosts = hosts::list_hosts(&mut tx).await?;
    Ok(Json(hosts))
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
