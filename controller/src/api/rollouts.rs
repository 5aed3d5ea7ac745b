//! `/api/v1/rollouts` (create, pause, resume, abort need the `operate` scope; list and show
//! do not) and `/api/v1/hosts/{id}/labels`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::Uri;
use serde::{Deserialize, Serialize};

use super::page::{PageQuery, Paged};
use super::storage::query;
use super::{ApiError, ApiState, ErrorBody, TenantAuth, commit, parse_id};
use crate::auth::Scope;
use crate::rollouts::control::{self, Control, ControlError};
use crate::rollouts::create::{CreateRolloutError, Origin, RolloutRequest, create_rollout};
use crate::store::rollouts::{self, Rollout, RolloutHost};

impl From<CreateRolloutError> for ApiError {
    fn from(error: CreateRolloutError) -> Self {
        match error {
            CreateRolloutError::Invalid(detail) => ApiError::BadRequest(detail),
            CreateRolloutError::HostNotFound => ApiError::NotFound("host"),
            CreateRolloutError::Store(e) => ApiError::Store(e),
        }
    }
}

/// A rollout and every host of it, wave by wave.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutDetail {
    #[serde(flatten)]
    pub rollout: Rollout,
    pub hosts: Vec<RolloutHost>,
}

async fn detail(
    tx: &mut crate::store::TenantTx,
    id: uuid::Uuid,
) -> Result<RolloutDetail, ApiError> {
    let rollout = rollouts::get(tx, id)
        .await?
        .ok_or(ApiError::NotFound("rollout"))?;
    let hosts = rollouts::hosts(tx, id, None).await?;
    Ok(RolloutDetail { rollout, hosts })
}

/// Run one job kind over many hosts in waves.
#[utoipa::path(
    post, path = "/api/v1/rollouts", tag = "rollouts",
    security(("bearer" = [])),
    request_body = RolloutRequest,
    responses(
        (status = 201, description = "Created; its first wave starts within seconds", body = RolloutDetail),
        (status = 400, description = "Invalid kind, parameters, selector or waves; no host matches", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "A host named in host_ids is not in this tenant", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    auth: TenantAuth,
    body: Result<Json<RolloutRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<RolloutDetail>), ApiError> {
    auth.require(Scope::Operate)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rollout = create_rollout(
        &mut tx,
        auth.tenant_id,
        &request,
        &format!("token:{}", auth.token_name),
        Origin::default(),
    )
    .await?;
    let detail = detail(&mut tx, rollout.id).await?;
    commit(tx, "creating a rollout").await?;
    Ok((StatusCode::CREATED, Json(detail)))
}

/// Rollouts of the caller's tenant, newest first (at most 100).
#[utoipa::path(
    get, path = "/api/v1/rollouts", tag = "rollouts",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Rollouts", body = [Rollout],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Paged<Rollout>, ApiError> {
    let page = query(q)?.page()?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = rollouts::list(&mut tx, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |r| (r.created_at, r.id)))
}

/// One rollout with each host's wave, state, job and reason.
#[utoipa::path(
    get, path = "/api/v1/rollouts/{id}", tag = "rollouts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Rollout id")),
    responses(
        (status = 200, description = "The rollout", body = RolloutDetail),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such rollout in this tenant", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<RolloutDetail>, ApiError> {
    let id = parse_id(&id, "rollout")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    Ok(Json(detail(&mut tx, id).await?))
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        match error {
            ControlError::NotFound => ApiError::NotFound("rollout"),
            e @ ControlError::DoesNotApply { .. } => ApiError::Conflict(e.to_string()),
            ControlError::Store(e) => ApiError::Store(e),
        }
    }
}

async fn control(
    state: ApiState,
    auth: TenantAuth,
    id: String,
    control: Control,
) -> Result<Json<RolloutDetail>, ApiError> {
    auth.require(Scope::Operate)?;
    let id = parse_id(&id, "rollout")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    control::apply(&mut tx, id, control, &format!("token:{}", auth.token_name)).await?;
    let detail = detail(&mut tx, id).await?;
    commit(tx, "changing a rollout").await?;
    Ok(Json(detail))
}

/// Pause: no new jobs start; running ones finish.
#[utoipa::path(
    post, path = "/api/v1/rollouts/{id}/pause", tag = "rollouts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Rollout id")),
    responses(
        (status = 200, description = "Paused", body = RolloutDetail),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such rollout in this tenant", body = ErrorBody),
        (status = 409, description = "Not running", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<RolloutDetail>, ApiError> {
    control(state, auth, id, Control::Pause).await
}

/// Resume a paused rollout, or a halted one (its failed wave accepted: the next wave starts).
#[utoipa::path(
    post, path = "/api/v1/rollouts/{id}/resume", tag = "rollouts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Rollout id")),
    responses(
        (status = 200, description = "Running again", body = RolloutDetail),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such rollout in this tenant", body = ErrorBody),
        (status = 409, description = "Neither paused nor halted", body = ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<RolloutDetail>, ApiError> {
    control(state, auth, id, Control::Resume).await
}

/// Abort: hosts not yet started are skipped; jobs already dispatched finish.
#[utoipa::path(
    post, path = "/api/v1/rollouts/{id}/abort", tag = "rollouts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Rollout id")),
    responses(
        (status = 200, description = "Aborted", body = RolloutDetail),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such rollout in this tenant", body = ErrorBody),
        (status = 409, description = "Already completed or aborted", body = ErrorBody),
    )
)]
pub async fn abort(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<RolloutDetail>, ApiError> {
    control(state, auth, id, Control::Abort).await
}

/// A host's labels.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    pub labels: BTreeMap<String, String>,
}

/// A host's labels as rollouts see them, and which of them the host declares itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LabelsView {
    /// In effect: the operator's labels, and the host's own for keys the operator did not set.
    pub labels: BTreeMap<String, String>,
    /// What the host's config declares (`[host] labels` in agent.toml).
    pub agent_labels: BTreeMap<String, String>,
}

async fn labels_view(
    tx: &mut crate::store::TenantTx,
    id: uuid::Uuid,
) -> Result<LabelsView, ApiError> {
    Ok(LabelsView {
        labels: rollouts::labels(tx, id).await?,
        agent_labels: rollouts::agent_labels(tx, id).await?,
    })
}

/// A host's labels (`role=nas`, `site=garage`), which rollouts select hosts by: the
/// operator's (`PUT`), and those the host declares in its config for other keys.
#[utoipa::path(
    get, path = "/api/v1/hosts/{id}/labels", tag = "hosts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Host id")),
    responses(
        (status = 200, description = "The labels", body = LabelsView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such host in this tenant", body = ErrorBody),
    )
)]
pub async fn get_labels(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<LabelsView>, ApiError> {
    let id = parse_id(&id, "host")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if crate::store::hosts::get_host(&mut tx, id).await?.is_none() {
        return Err(ApiError::NotFound("host"));
    }
    Ok(Json(labels_view(&mut tx, id).await?))
}

/// Replace the operator's labels of a host (keys: lower-case letters, digits, `. _ / -`, at
/// most 63; values at most 128 characters); they win over the host's own of the same key.
/// Needs the `operate` scope: labels decide what rollouts touch.
#[utoipa::path(
    put, path = "/api/v1/hosts/{id}/labels", tag = "hosts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Host id")),
    request_body = Labels,
    responses(
        (status = 200, description = "The labels now", body = LabelsView),
        (status = 400, description = "An invalid key or value", body = ErrorBody),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such host in this tenant", body = ErrorBody),
    )
)]
pub async fn put_labels(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
    body: Result<Json<Labels>, JsonRejection>,
) -> Result<Json<LabelsView>, ApiError> {
    auth.require(Scope::Operate)?;
    let id = parse_id(&id, "host")?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    unity_protocol::latest::HostLabels {
        labels: request.labels.clone(),
    }
    .validate()
    .map_err(ApiError::BadRequest)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if crate::store::hosts::get_host(&mut tx, id).await?.is_none() {
        return Err(ApiError::NotFound("host"));
    }
    rollouts::set_labels(&mut tx, auth.tenant_id, id, &request.labels).await?;
    let view = labels_view(&mut tx, id).await?;
    commit(tx, "setting host labels").await?;
    Ok(Json(view))
}

/// `POST /api/v1/rollout-schedules` body: a rollout request plus the window it runs in.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    pub name: String,
    /// What to run, as for `POST /api/v1/rollouts`.
    pub rollout: RolloutRequest,
    /// Weekdays: `mon` … `sun` (or `daily`).
    pub days: Vec<String>,
    /// Local start time, `HH:MM`.
    pub start: String,
    pub duration_minutes: i32,
    /// IANA time zone (default `UTC`).
    pub time_zone: Option<String>,
}

/// Start a rollout every time a window opens: e.g. security updates on `role=docker`,
/// Sundays 03:00 for two hours, one host at a time (`"waves": [{"each": 1}]`). Hosts not
/// started when the window closes are skipped.
#[utoipa::path(
    post, path = "/api/v1/rollout-schedules", tag = "rollouts",
    security(("bearer" = [])),
    request_body = ScheduleRequest,
    responses(
        (status = 201, description = "Created", body = crate::store::rollouts::Schedule),
        (status = 400, description = "Invalid rollout, days, time, duration or time zone", body = ErrorBody),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "A host named in host_ids is not in this tenant", body = ErrorBody),
    )
)]
pub async fn create_schedule(
    State(state): State<ApiState>,
    auth: TenantAuth,
    body: Result<Json<ScheduleRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<crate::store::rollouts::Schedule>), ApiError> {
    use crate::rollouts::create::{check_named_hosts, check_request};
    auth.require(Scope::Operate)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    if request.name.trim().is_empty() || request.name.len() > 128 {
        return Err(ApiError::BadRequest(
            "name must be 1 to 128 characters".into(),
        ));
    }
    let checked = check_request(&request.rollout)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let crate::weekly::WeeklyWindow {
        days,
        start_minute,
        time_zone,
    } = crate::weekly::WeeklyWindow::parse(
        &mut tx,
        &request.days,
        &request.start,
        request.duration_minutes,
        request.time_zone.as_deref(),
    )
    .await?;
    check_named_hosts(&mut tx, &request.rollout.hosts).await?;
    let id = uuid::Uuid::new_v4();
    rollouts::insert_schedule(
        &mut tx,
        &rollouts::NewSchedule {
            id,
            tenant_id: auth.tenant_id,
            name: request.name.trim(),
            kind: &request.rollout.kind,
            params: &request.rollout.params,
            selector: &checked.selector_json,
            waves: &checked.waves_json,
            failure_budget: checked.failure_budget,
            force: request.rollout.force,
            job_lifetime_secs: checked.job_lifetime_secs,
            days: &days,
            start_minute,
            duration_minutes: request.duration_minutes,
            time_zone: &time_zone,
            created_by: &format!("token:{}", auth.token_name),
        },
    )
    .await?;
    let schedule = rollouts::get_schedule(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("rollout schedule"))?;
    commit(tx, "creating a rollout schedule").await?;
    Ok((StatusCode::CREATED, Json(schedule)))
}

/// The tenant's rollout schedules, each with what it did last.
#[utoipa::path(
    get, path = "/api/v1/rollout-schedules", tag = "rollouts",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Schedules", body = [crate::store::rollouts::Schedule],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_schedules(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Paged<crate::store::rollouts::Schedule>, ApiError> {
    let page = query(q)?.page()?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = rollouts::list_schedules(&mut tx, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |s| (s.created_at, s.id)))
}

/// Delete a schedule (rollouts it started keep running).
#[utoipa::path(
    delete, path = "/api/v1/rollout-schedules/{id}", tag = "rollouts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Schedule id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such schedule in this tenant", body = ErrorBody),
    )
)]
pub async fn delete_schedule(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Scope::Operate)?;
    let id = parse_id(&id, "rollout schedule")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if !rollouts::delete_schedule(&mut tx, id).await? {
        return Err(ApiError::NotFound("rollout schedule"));
    }
    commit(tx, "deleting a rollout schedule").await?;
    Ok(StatusCode::NO_CONTENT)
}
