//! Routes of the controller's operator, above every tenant: `GET`/`POST /api/v1/tenants`.
//! They take an operator token (`unity-controller operator-token create`), never a tenant's:
//! a tenant admin administers one tenant, the operator decides which tenants exist.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use serde::{Deserialize, Serialize};

use super::page::{PageQuery, Paged};
use super::storage::query;
use super::{ApiError, ApiState, ErrorBody};
use crate::auth::{self, Scope};
use crate::store::{StoreError, Tenant};

/// A request made with a live operator token.
#[derive(Debug, Clone)]
pub struct OperatorAuth {
    /// The token's name (logged with what it did).
    pub name: String,
}

impl FromRequestParts<ApiState> for OperatorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = super::auth::bearer(parts).ok_or(ApiError::Unauthorized)?;
        if token.starts_with(auth::API_TOKEN_PREFIX) {
            return Err(ApiError::Forbidden(
                "this route needs the controller's operator token \
                 (unity-controller operator-token create), not a tenant's API token"
                    .into(),
            ));
        }
        match state.store.authenticate_operator(token).await? {
            Some(name) => Ok(OperatorAuth { name }),
            None => {
                tracing::info!(path = %parts.uri.path(), "operator request with unknown or revoked token");
                Err(ApiError::Unauthorized)
            }
        }
    }
}

/// Every tenant, by name.
#[utoipa::path(
    get, path = "/api/v1/tenants", tag = "operator",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Tenants, by name", body = [Tenant],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 403, description = "A tenant's token, not the operator's", body = ErrorBody),
    )
)]
pub async fn list_tenants(
    State(state): State<ApiState>,
    _operator: OperatorAuth,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Paged<Tenant>, ApiError> {
    let page = query(q)?.page()?;
    let tenants = state.store.list_tenants(&page).await?;
    Ok(Paged::new(tenants, &page, &uri, |t: &Tenant| {
        t.name.clone()
    }))
}

/// `POST /api/v1/tenants` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    /// 1-63 lower-case letters, digits, `-` or `_`, starting with a letter or digit.
    pub name: String,
    /// Name of the tenant's first `admin` API token, made with it (default `admin`).
    pub admin_token_name: Option<String>,
}

/// A new tenant and its first admin token: shown now, never again.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewTenant {
    pub tenant: Tenant,
    /// An `admin` API token of the new tenant, to hand to whoever administers it.
    pub admin_token: String,
}

/// Create a tenant with its first admin API token.
#[utoipa::path(
    post, path = "/api/v1/tenants", tag = "operator",
    security(("bearer" = [])),
    request_body = TenantRequest,
    responses(
        (status = 201, description = "Created", body = NewTenant),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 403, description = "A tenant's token, not the operator's", body = ErrorBody),
        (status = 409, description = "A tenant of that name exists", body = ErrorBody),
    )
)]
pub async fn create_tenant(
    State(state): State<ApiState>,
    operator: OperatorAuth,
    body: Result<Json<TenantRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<NewTenant>), ApiError> {
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let token_name = request.admin_token_name.unwrap_or_else(|| "admin".into());
    if token_name.is_empty() || token_name.len() > 64 {
        return Err(ApiError::BadRequest(
            "admin_token_name must be 1-64 characters".into(),
        ));
    }
    let tenant = state
        .store
        .create_tenant(&request.name)
        .await
        .map_err(|e| match e {
            e @ StoreError::TenantExists { .. } => ApiError::Conflict(e.to_string()),
            e @ StoreError::InvalidTenantName { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Store(other),
        })?;
    let admin_token = state
        .store
        .create_scoped_api_token(tenant.id, &token_name, Scope::Admin)
        .await?;
    tracing::info!(operator = %operator.name, tenant = %tenant.name, tenant_id = %tenant.id,
        "tenant created over the API");
    Ok((
        StatusCode::CREATED,
        Json(NewTenant {
            tenant,
            admin_token,
        }),
    ))
}
