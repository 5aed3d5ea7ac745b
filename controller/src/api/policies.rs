//! `/api/v1/containers/{id}/policy` and `/api/v1/maintenance-windows`: when the controller
//! may update containers by itself. Reading needs any token; changing needs `operate`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::Uri;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::page::{PageQuery, Paged};
use super::storage::query;
use super::{ApiError, ApiState, ErrorBody, TenantAuth, commit, parse_id};
use crate::auth::Scope;
use crate::jobs::auto::{UnknownUpdatePolicy, UpdatePolicy, effective};
use crate::store::TenantTx;
use crate::store::inventory::containers;
use crate::store::policies::{self, Window};
use crate::weekly::{self, WeeklyError};

/// A container's update policy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyView {
    pub container_id: Uuid,
    pub host_id: Uuid,
    pub container: String,
    /// What the container's `unity.update` label says (as the agent read it).
    pub label: Option<String>,
    /// What the API set, overriding the label.
    pub override_policy: Option<String>,
    pub override_by: Option<String>,
    /// The policy in force: `off`, `notify`, `digest`, `patch`, `minor`, `major`.
    pub effective: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// `off`, `notify`, `digest`, `patch`, `minor` or `major`.
    pub policy: String,
}

async fn view(tx: &mut TenantTx, id: Uuid) -> Result<PolicyView, ApiError> {
    let container = containers::get(tx, id)
        .await?
        .ok_or(ApiError::NotFound("container"))?;
    let host_id = container.summary.host_id;
    let name = container.summary.name.clone();
    let label = container.detail["policy"].as_str().map(str::to_owned);
    let current = policies::policy_override(tx, host_id, &name).await?;
    let (override_policy, override_by) = match current {
        Some((policy, by, _)) => (Some(policy), Some(by)),
        None => (None, None),
    };
    Ok(PolicyView {
        container_id: id,
        host_id,
        effective: effective(override_policy.as_deref(), label.as_deref()).to_string(),
        container: name,
        label,
        override_policy,
        override_by,
    })
}

/// The update policy of a container: its label, the API's override, and the one in force.
#[utoipa::path(
    get, path = "/api/v1/containers/{id}/policy", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Container id (the controller's)")),
    responses(
        (status = 200, description = "The policy", body = PolicyView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such container in this tenant", body = ErrorBody),
    )
)]
pub async fn get_policy(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<PolicyView>, ApiError> {
    let id = parse_id(&id, "container")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    Ok(Json(view(&mut tx, id).await?))
}

/// Override a container's update policy (kept by host and container name, so it outlives
/// the container being recreated).
#[utoipa::path(
    put, path = "/api/v1/containers/{id}/policy", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Container id (the controller's)")),
    request_body = PolicyRequest,
    responses(
        (status = 200, description = "The policy now", body = PolicyView),
        (status = 400, description = "Not a policy", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such container in this tenant", body = ErrorBody),
    )
)]
pub async fn put_policy(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
    body: Result<Json<PolicyRequest>, JsonRejection>,
) -> Result<Json<PolicyView>, ApiError> {
    let id = parse_id(&id, "container")?;
    auth.require(Scope::Operate)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let policy: UpdatePolicy = request
        .policy
        .parse()
        .map_err(|e: UnknownUpdatePolicy| ApiError::BadRequest(e.to_string()))?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let actor = format!("token:{}", auth.token_name);
    if !policies::override_container(&mut tx, auth.tenant_id, id, Some(policy.as_str()), &actor)
        .await?
    {
        return Err(ApiError::NotFound("container"));
    }
    let view = view(&mut tx, id).await?;
    commit(tx, "setting an update policy").await?;
    Ok(Json(view))
}

/// Remove the override: the container's label decides again.
#[utoipa::path(
    delete, path = "/api/v1/containers/{id}/policy", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Container id (the controller's)")),
    responses(
        (status = 200, description = "The policy now", body = PolicyView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such container in this tenant", body = ErrorBody),
    )
)]
pub async fn delete_policy(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<PolicyView>, ApiError> {
    let id = parse_id(&id, "container")?;
    auth.require(Scope::Operate)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let actor = format!("token:{}", auth.token_name);
    if !policies::override_container(&mut tx, auth.tenant_id, id, None, &actor).await? {
        return Err(ApiError::NotFound("container"));
    }
    let view = view(&mut tx, id).await?;
    commit(tx, "clearing an update policy").await?;
    Ok(Json(view))
}

impl From<WeeklyError> for ApiError {
    fn from(error: WeeklyError) -> Self {
        match error {
            WeeklyError::Invalid(detail) => ApiError::BadRequest(detail),
            WeeklyError::HostNotFound => ApiError::NotFound("host"),
            WeeklyError::Store(e) => ApiError::Store(e),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowRequest {
    /// Only this host; absent: every host of the tenant.
    pub host_id: Option<Uuid>,
    /// Weekdays: `mon` … `sun` (or `daily`).
    pub days: Vec<String>,
    /// Local start time, `HH:MM`.
    pub start: String,
    pub duration_minutes: i32,
    /// IANA time zone (default `UTC`).
    pub time_zone: Option<String>,
}

/// The tenant's maintenance windows.
#[utoipa::path(
    get, path = "/api/v1/maintenance-windows", tag = "jobs",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Windows", body = [Window],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_windows(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Paged<Window>, ApiError> {
    let page = query(q)?.page()?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = policies::list_windows(&mut tx, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |w| (w.created_at, w.id)))
}

/// Add a maintenance window: automatic updates start only inside one (when any exists for
/// the host or its tenant).
#[utoipa::path(
    post, path = "/api/v1/maintenance-windows", tag = "jobs",
    security(("bearer" = [])),
    request_body = WindowRequest,
    responses(
        (status = 201, description = "Created", body = Window),
        (status = 400, description = "Invalid days, time, duration or time zone", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such host in this tenant", body = ErrorBody),
    )
)]
pub async fn create_window(
    State(state): State<ApiState>,
    auth: TenantAuth,
    body: Result<Json<WindowRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Window>), ApiError> {
    auth.require(Scope::Operate)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let window = weekly::create_window(
        &mut tx,
        auth.tenant_id,
        &weekly::WindowSpec {
            host_id: request.host_id,
            days: &request.days,
            start: &request.start,
            duration_minutes: request.duration_minutes,
            time_zone: request.time_zone.as_deref(),
        },
        &format!("token:{}", auth.token_name),
    )
    .await?;
    commit(tx, "creating a maintenance window").await?;
    Ok((StatusCode::CREATED, Json(window)))
}

/// One maintenance window.
#[utoipa::path(
    get, path = "/api/v1/maintenance-windows/{id}", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Window id")),
    responses(
        (status = 200, description = "The window", body = Window),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such window in this tenant", body = ErrorBody),
    )
)]
pub async fn get_window(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<Window>, ApiError> {
    let id = parse_id(&id, "maintenance window")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    policies::get_window(&mut tx, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("maintenance window"))
}

/// Delete a maintenance window.
#[utoipa::path(
    delete, path = "/api/v1/maintenance-windows/{id}", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Window id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such window in this tenant", body = ErrorBody),
    )
)]
pub async fn delete_window(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "maintenance window")?;
    auth.require(Scope::Operate)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if !policies::delete_window(&mut tx, id).await? {
        return Err(ApiError::NotFound("maintenance window"));
    }
    commit(tx, "deleting a maintenance window").await?;
    Ok(StatusCode::NO_CONTENT)
}
