//! `GET /api/v1/hosts/{id}/packages`: the host's pending updates and reboot flag;
//! `GET /api/v1/agent-releases`: the agent releases `agent_update` jobs can install.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::Uri;

use super::page::{PageQuery, Paged};
use super::storage::query;
use super::{ApiError, ApiState, ErrorBody, TenantAuth, parse_id};
use crate::store::packages::{self, HostPackages};
use crate::store::releases::{self, Release};

/// Pending package updates (security ones marked), packages held back, and whether the host
/// needs a reboot, as of the agent's last package report.
#[utoipa::path(
    get, path = "/api/v1/hosts/{id}/packages", tag = "packages",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host's packages", body = HostPackages),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such host in this tenant, or no package report from it yet", body = ErrorBody),
    )
)]
pub async fn host_packages(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<HostPackages>, ApiError> {
    let id = parse_id(&id, "host")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    packages::get(&mut tx, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("package report for this host"))
}

/// The agent releases stored on this controller (`unity-controller agent-release add`), which
/// `agent_update` jobs and rollouts name by version. The same for every tenant.
#[utoipa::path(
    get, path = "/api/v1/agent-releases", tag = "jobs",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Stored releases, newest first per architecture", body = Vec<Release>,
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn agent_releases(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Paged<Release>, ApiError> {
    let page = query(q)?.page()?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = releases::list(&mut *tx, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |r| {
        (r.architecture.clone(), r.created_at, r.version.clone())
    }))
}
