//! `/api/v1/rollouts` (create, pause, resume, abort need the `operate` scope; list and show
//! do not) and `/api/v1/hosts/{id}/labels`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, ErrorBody, TenantAuth, commit, parse_id};
use crate::auth::Scope;
use crate::rollouts::create::{CreateRolloutError, RolloutRequest, create_rollout};
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
    responses(
        (status = 200, description = "Rollouts", body = [Rollout]),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    auth: TenantAuth,
) -> Result<Json<Vec<Rollout>>, ApiError> {
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    Ok(Json(rollouts::list(&mut tx, 100).await?))
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

/// What the operator asks of a rollout.
#[derive(Debug, Clone, Copy)]
enum Control {
    Pause,
    Resume,
    Abort,
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
    let rollout = rollouts::lock(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("rollout"))?;
    let wave = rollout.current_wave;
    let by = format!("token:{}", auth.token_name);
    match (control, rollout.state.as_str()) {
        (Control::Pause, "running") => {
            rollouts::set_state(
                &mut tx,
                id,
                "paused",
                wave,
                Some(&format!("paused by {by}")),
            )
            .await?;
        }
        (Control::Resume, "paused") => {
            rollouts::set_state(&mut tx, id, "running", wave, None).await?
        }
        // Resuming a halted rollout accepts the failed wave: the next one starts.
        (Control::Resume, "halted") => {
            let waves = rollouts::wave_count(&mut tx, id).await?;
            if wave + 1 < waves {
                rollouts::set_state(&mut tx, id, "running", wave + 1, None).await?;
            } else {
                rollouts::set_state(
                    &mut tx,
                    id,
                    "completed",
                    wave,
                    Some(&format!("last wave's failures accepted by {by}")),
                )
                .await?;
            }
        }
        (Control::Abort, "running" | "paused" | "halted") => {
            let reason = format!("aborted by {by}");
            rollouts::skip_waiting(&mut tx, id, &reason).await?;
            rollouts::set_state(&mut tx, id, "aborted", wave, Some(&reason)).await?;
        }
        (_, current) => {
            return Err(ApiError::Conflict(format!(
                "the rollout is {current}; {} does not apply",
                match control {
                    Control::Pause => "pause",
                    Control::Resume => "resume",
                    Control::Abort => "abort",
                }
            )));
        }
    }
    tracing::info!(rollout_id = %id, ?control, by, "rollout control");
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

/// A host's labels (`role=nas`, `site=garage`), which rollouts select hosts by.
#[utoipa::path(
    get, path = "/api/v1/hosts/{id}/labels", tag = "hosts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Host id")),
    responses(
        (status = 200, description = "The labels", body = Labels),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such host in this tenant", body = ErrorBody),
    )
)]
pub async fn get_labels(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<Labels>, ApiError> {
    let id = parse_id(&id, "host")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if crate::store::hosts::get_host(&mut tx, id).await?.is_none() {
        return Err(ApiError::NotFound("host"));
    }
    Ok(Json(Labels {
        labels: rollouts::labels(&mut tx, id).await?,
    }))
}

/// Replace a host's labels (keys: lower-case letters, digits, `. _ / -`, at most 63; values
/// at most 128 characters). Needs the `operate` scope: labels decide what rollouts touch.
#[utoipa::path(
    put, path = "/api/v1/hosts/{id}/labels", tag = "hosts",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Host id")),
    request_body = Labels,
    responses(
        (status = 200, description = "The labels now", body = Labels),
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
) -> Result<Json<Labels>, ApiError> {
    auth.require(Scope::Operate)?;
    let id = parse_id(&id, "host")?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    if request.labels.len() > 64 {
        return Err(ApiError::BadRequest("at most 64 labels per host".into()));
    }
    for (key, value) in &request.labels {
        if !rollouts::valid_label_key(key) || !rollouts::valid_label_value(value) {
            return Err(ApiError::BadRequest(format!(
                "label `{key}` is not valid (keys: a-z 0-9 . _ / -, at most 63; values at most 128, no control characters)"
            )));
        }
    }
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if crate::store::hosts::get_host(&mut tx, id).await?.is_none() {
        return Err(ApiError::NotFound("host"));
    }
    rollouts::set_labels(&mut tx, auth.tenant_id, id, &request.labels).await?;
    let labels = rollouts::labels(&mut tx, id).await?;
    commit(tx, "setting host labels").await?;
    Ok(Json(Labels { labels }))
}
