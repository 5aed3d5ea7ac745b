//! `/api/v1/users`: a tenant's console users over the API (scope `admin`), what
//! `unity-controller user` does on the command line.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use serde::{Deserialize, Serialize};

use super::page::{PageQuery, Paged};
use super::storage::query;
use super::{ApiError, ApiState, ErrorBody, TenantAuth, commit, parse_id};
use crate::auth::Scope;
use crate::store::users::{self, Role, User, UserError};

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::NameTaken(_) => ApiError::Conflict(error.to_string()),
            UserError::InvalidName(_) | UserError::Password(_) | UserError::WrongPassword => {
                ApiError::BadRequest(error.to_string())
            }
            UserError::Store(e) => ApiError::Store(e),
            other => {
                tracing::error!(error = %crate::error_chain(&other), "user operation failed");
                ApiError::Internal
            }
        }
    }
}

/// The tenant's users by name (never a password or its hash).
#[utoipa::path(
    get, path = "/api/v1/users", tag = "admin",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Users, by name", body = [User],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
    )
)]
pub async fn list_users(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Paged<User>, ApiError> {
    auth.require(Scope::Admin)?;
    let page = query(q)?.page()?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = users::list_users(&mut tx, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |u| (u.name.clone(), u.id)))
}

/// `POST /api/v1/users` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    /// Unique on the controller: 1-64 lower-case letters, digits, `.`, `_`, `@`, `+`, `-`.
    pub name: String,
    /// `viewer` (default), `operator` or `admin`.
    pub role: Option<String>,
    /// At least 12 characters; when absent the controller makes one and returns it once.
    pub password: Option<String>,
}

/// A new user, and the password the controller made for it (when it made one).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewUser {
    pub user: User,
    pub password: Option<String>,
}

/// Add a console user to the tenant.
#[utoipa::path(
    post, path = "/api/v1/users", tag = "admin",
    security(("bearer" = [])),
    request_body = UserRequest,
    responses(
        (status = 201, description = "Created", body = NewUser),
        (status = 400, description = "Invalid name, role or password", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 409, description = "The name is taken (names are unique on the controller)", body = ErrorBody),
    )
)]
pub async fn create_user(
    State(state): State<ApiState>,
    auth: TenantAuth,
    body: Result<Json<UserRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<NewUser>), ApiError> {
    auth.require(Scope::Admin)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let (user, password) = add_user(
        &state,
        auth.tenant_id,
        &request.name,
        request.role.as_deref(),
        request.password,
        &format!("token:{}", auth.token_name),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(NewUser { user, password })))
}

/// Adds a user (API and console): the role parsed, a password made when none is given
/// (returned then, and only then).
pub(crate) async fn add_user(
    state: &ApiState,
    tenant_id: uuid::Uuid,
    name: &str,
    role: Option<&str>,
    password: Option<String>,
    by: &str,
) -> Result<(User, Option<String>), ApiError> {
    let role = match role {
        None => Role::Viewer,
        Some(raw) => raw
            .parse::<Role>()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
    };
    let (password, made) = match password {
        Some(p) => (p, false),
        None => (
            crate::auth::generate_token("").map_err(|_| ApiError::Internal)?,
            true,
        ),
    };
    let mut tx = state.store.tenant_tx(tenant_id).await?;
    let user = users::create_user(&mut tx, tenant_id, name, role, &password).await?;
    commit(tx, "adding a user").await?;
    tracing::info!(%tenant_id, user = %user.name, role = %user.role, %by, "console user added");
    Ok((user, made.then_some(password)))
}

async fn set_disabled(
    state: &ApiState,
    auth: &TenantAuth,
    id: &str,
    disabled: bool,
) -> Result<Json<User>, ApiError> {
    auth.require(Scope::Admin)?;
    let id = parse_id(id, "user")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let user = users::set_disabled(&mut tx, id, disabled)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    commit(tx, "disabling a user").await?;
    tracing::info!(tenant_id = %auth.tenant_id, user = %user.name, disabled, by = %auth.token_name,
        "console user changed");
    Ok(Json(user))
}

/// Disable a user: refused at login from now on, every session ended.
#[utoipa::path(
    post, path = "/api/v1/users/{id}/disable", tag = "admin",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "Disabled", body = User),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such user in this tenant", body = ErrorBody),
    )
)]
pub async fn disable_user(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    set_disabled(&state, &auth, &id, true).await
}

/// Enable a disabled user.
#[utoipa::path(
    post, path = "/api/v1/users/{id}/enable", tag = "admin",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "Enabled", body = User),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such user in this tenant", body = ErrorBody),
    )
)]
pub async fn enable_user(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    set_disabled(&state, &auth, &id, false).await
}
