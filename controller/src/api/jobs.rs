//! `/api/v1/jobs`: create (operate scope), list, show, cancel (operate scope).
//!
//! The handlers only parse, authorize and call `jobs::create` / the state machine; the job
//! the agent runs is the signed spec, never this JSON.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::Uri;
use serde::Deserialize;
use time::OffsetDateTime;

use super::page::{Paged, page};
use super::storage::{host_filter, query};
use super::{ApiError, ApiState, ErrorBody, TenantAuth, commit, parse_id};
use crate::auth::Scope;
use crate::jobs::state::JobState;
use crate::jobs::{Cancelled, CreateJobError, JobRequest, cancel, create_job as queue_job};
use crate::store::jobs::{self as job_store, JobDetail, JobFilter, JobSummary};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs of this host (uuid).
    host_id: Option<String>,
    /// Only jobs in this state: `queued`, `dispatched`, `running`, `succeeded`, `failed`,
    /// `rolled_back`, `refused`, `expired`, `cancelled`.
    state: Option<String>,
    /// Only jobs of this kind: `ping`, `container_update`.
    kind: Option<String>,
    /// Rows on the page, newest first (1-1000, default 100).
    limit: Option<String>,
    /// Where the page starts: the `cursor` of the previous page's `Link: rel="next"`.
    cursor: Option<String>,
}

const KINDS: &[&str] = &[
    "ping",
    "container_update",
    "package_upgrade",
    "agent_update",
];

impl From<CreateJobError> for ApiError {
    fn from(error: CreateJobError) -> Self {
        match error {
            CreateJobError::HostNotFound => ApiError::NotFound("host"),
            CreateJobError::Invalid(detail) => ApiError::BadRequest(detail),
            CreateJobError::Conflict(detail) => ApiError::Conflict(detail),
            CreateJobError::Store(e) => ApiError::Store(e),
            other @ (CreateJobError::Key(_) | CreateJobError::Encode(_)) => {
                tracing::error!(error = %crate::error_chain(&other), "could not sign a job");
                ApiError::Internal
            }
        }
    }
}

/// Queue a signed job for one of the tenant's hosts.
#[utoipa::path(
    post, path = "/api/v1/jobs", tag = "jobs",
    security(("bearer" = [])),
    request_body = JobRequest,
    responses(
        (status = 201, description = "Queued; delivered to the host as soon as it is connected", body = JobDetail),
        (status = 400, description = "Invalid kind or parameters", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such host in this tenant", body = ErrorBody),
        (status = 409, description = "Revoked host, no known update, or another job on the same container", body = ErrorBody),
    )
)]
pub async fn create_job(
    State(state): State<ApiState>,
    auth: TenantAuth,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobDetail>), ApiError> {
    auth.require(Scope::Operate)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let created = queue_job(
        &mut tx,
        &state.job_keys,
        auth.tenant_id,
        &request,
        &format!("token:{}", auth.token_name),
        OffsetDateTime::now_utc(),
    )
    .await?;
    let detail = job_store::get(&mut tx, created.id)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    commit(tx, "queueing a job").await?;
    Ok((StatusCode::CREATED, Json(detail)))
}

/// Jobs of the caller's tenant, newest first.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs",
    security(("bearer" = [])),
    params(JobQuery),
    responses(
        (status = 200, description = "Jobs, newest first", body = [JobSummary],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_jobs(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<JobQuery>, QueryRejection>,
) -> Result<Paged<JobSummary>, ApiError> {
    let q = query(q)?;
    let state_filter = q
        .state
        .as_deref()
        .map(|raw| {
            raw.parse::<JobState>().map_err(|_| {
                let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::BadRequest(format!("state `{raw}` is not one of {}", names.join(", ")))
            })
        })
        .transpose()?;
    let kind = q
        .kind
        .as_deref()
        .map(|raw| {
            KINDS
                .iter()
                .find(|k| **k == raw)
                .map(|k| (*k).to_owned())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("kind `{raw}` is not one of {}", KINDS.join(", ")))
                })
        })
        .transpose()?;
    let filter = JobFilter {
        host_id: host_filter(q.host_id.as_deref())?,
        state: state_filter,
        kind,
    };
    let page = page(q.limit.as_deref(), q.cursor.as_deref())?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = job_store::list(&mut tx, &filter, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |j| (j.created_at, j.id)))
}

/// One job: its spec digest, state, events, result and receipt status.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobDetail),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such job in this tenant", body = ErrorBody),
    )
)]
pub async fn get_job(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, ApiError> {
    let id = parse_id(&id, "job")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    job_store::get(&mut tx, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("job"))
}

/// Cancel a job that has not been sent to its host yet.
#[utoipa::path(
    post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "Cancelled", body = JobDetail),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "The token lacks the `operate` scope", body = ErrorBody),
        (status = 404, description = "No such job in this tenant", body = ErrorBody),
        (status = 409, description = "Already sent to the host, or already ended", body = ErrorBody),
    )
)]
pub async fn cancel_job(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, ApiError> {
    let id = parse_id(&id, "job")?;
    auth.require(Scope::Operate)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let by = format!("token:{}", auth.token_name);
    match cancel(&mut tx, id, &by, OffsetDateTime::now_utc()).await? {
        Cancelled::Done => {}
        Cancelled::NotFound => return Err(ApiError::NotFound("job")),
        Cancelled::Refused { state, reason } => {
            return Err(ApiError::Conflict(format!("job is `{state}`: {reason}")));
        }
    }
    let detail = job_store::get(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    commit(tx, "cancelling a job").await?;
    Ok(Json(detail))
}
