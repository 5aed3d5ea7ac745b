//! A tenant's administration over the API (scope `admin`): its API tokens and enrollment
//! tokens — what `unity-controller api-token` and `enroll-token` do on the command line.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::page::{PageQuery, Paged};
use super::storage::query;
use super::{ApiError, ApiState, ErrorBody, TenantAuth, commit, parse_id};
use crate::auth::Scope;
use crate::store::page::{NewestKey, Page};
use crate::store::query_error;

/// One API token of the tenant (never the token itself: it is stored only as a hash).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TokenView {
    pub id: Uuid,
    pub name: String,
    /// `read`, `operate` or `admin`.
    pub scope: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// The tenant's API tokens, newest first.
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "admin",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Tokens, newest first", body = [TokenView],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
    )
)]
pub async fn list_tokens(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Paged<TokenView>, ApiError> {
    auth.require(Scope::Admin)?;
    let page: Page<NewestKey> = query(q)?.page()?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let tokens = token_page(&mut tx, &page).await?;
    Ok(Paged::new(tokens, &page, &uri, |t: &TokenView| {
        (t.created_at, t.id)
    }))
}

/// A page of the tenant's API tokens, newest first (the API and the console's settings).
pub(crate) async fn token_page(
    tx: &mut crate::store::TenantTx,
    page: &Page<NewestKey>,
) -> Result<Vec<TokenView>, crate::store::StoreError> {
    let after = page.after.as_ref();
    sqlx::query_as(
        "SELECT id, name, scope, created_at, last_used_at, revoked_at FROM api_tokens \
         WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2)) \
         ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| k.1))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing API tokens"))
}

/// Revokes token `id` of the tenant; `None` when there is no such live token.
pub(crate) async fn revoke(
    tx: &mut crate::store::TenantTx,
    id: Uuid,
) -> Result<Option<TokenView>, crate::store::StoreError> {
    sqlx::query_as(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL \
         RETURNING id, name, scope, created_at, last_used_at, revoked_at",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("revoking an API token"))
}

/// `POST /api/v1/tokens` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// A label: who or what uses it.
    pub name: String,
    /// `read` (default), `operate` or `admin`.
    pub scope: Option<String>,
}

/// A new token: shown now, never again.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    pub token: String,
    pub name: String,
    pub scope: String,
}

/// Create an API token for the tenant.
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "admin",
    security(("bearer" = [])),
    request_body = TokenRequest,
    responses(
        (status = 201, description = "Created; the token is shown only now", body = NewToken),
        (status = 400, description = "Invalid name or scope", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
    )
)]
pub async fn create_token(
    State(state): State<ApiState>,
    auth: TenantAuth,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    auth.require(Scope::Admin)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    // The tenant is the caller's own: the token can never be made for another.
    let token = new_token(
        &state,
        auth.tenant_id,
        &request.name,
        request.scope.as_deref(),
        &format!("token:{}", auth.token_name),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// Makes an API token of `tenant_id` named `name` with `scope` (default `read`) after checking
/// both: the API and the console's settings make theirs here.
pub(crate) async fn new_token(
    state: &ApiState,
    tenant_id: Uuid,
    name: &str,
    scope: Option<&str>,
    by: &str,
) -> Result<NewToken, ApiError> {
    if name.trim().is_empty() || name.len() > 128 {
        return Err(ApiError::BadRequest("name must be 1-128 characters".into()));
    }
    let scope: Scope = scope
        .unwrap_or("read")
        .parse()
        .map_err(|_| ApiError::BadRequest("scope is one of read, operate, admin".into()))?;
    let token = state
        .store
        .create_scoped_api_token(tenant_id, name, scope)
        .await?;
    tracing::info!(%tenant_id, %name, scope = scope.as_str(), %by, "API token created");
    Ok(NewToken {
        token,
        name: name.to_owned(),
        scope: scope.as_str().to_owned(),
    })
}

/// Revoke one of the tenant's API tokens: it is refused from now on.
#[utoipa::path(
    post, path = "/api/v1/tokens/{id}/revoke", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Token id")),
    responses(
        (status = 200, description = "Revoked", body = TokenView),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such live token in this tenant", body = ErrorBody),
    )
)]
pub async fn revoke_token(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    auth.require(Scope::Admin)?;
    let id = parse_id(&id, "token")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let revoked = revoke(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("token"))?;
    commit(tx, "revoking an API token").await?;
    tracing::info!(tenant_id = %auth.tenant_id, token = %revoked.name, by = %auth.token_name,
        "API token revoked");
    Ok(Json(revoked))
}

/// `POST /api/v1/enrollment-tokens` body.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentRequest {
    /// How long the token stays valid, in seconds (default 3600; 60 to 30 days).
    pub ttl_secs: Option<u64>,
}

/// A single-use enrollment token and the command that enrolls a host with it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Enrollment {
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// What agents pin: the SHA-256 fingerprint of the controller's CA.
    pub ca_fingerprint: String,
    /// The controller's QUIC address as this request reached it (the API's host name, the
    /// QUIC port).
    pub controller: String,
    /// Run on the host, as root.
    pub command: String,
}

/// The host part of a `Host` header (`name`, `name:port`, `[v6]:port`).
fn request_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(axum::http::header::HOST)?.to_str().ok()?.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        format!("[{}]", rest.split(']').next()?)
    } else {
        host.rsplit_once(':')
            .map_or(host, |(name, _)| name)
            .to_owned()
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
    ok.then_some(name)
}

/// Create a single-use enrollment token; the answer carries the `unity-agent enroll` command
/// with this controller's address and CA fingerprint.
#[utoipa::path(
    post, path = "/api/v1/enrollment-tokens", tag = "admin",
    security(("bearer" = [])),
    request_body = EnrollmentRequest,
    responses(
        (status = 201, description = "Created; the token is shown only now", body = Enrollment),
        (status = 400, description = "A lifetime out of range", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
    )
)]
pub async fn create_enrollment_token(
    State(state): State<ApiState>,
    auth: TenantAuth,
    headers: HeaderMap,
    body: Result<Json<EnrollmentRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Enrollment>), ApiError> {
    auth.require(Scope::Admin)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let ttl = std::time::Duration::from_secs(request.ttl_secs.unwrap_or(3600));
    let enrollment =
        new_enrollment(&state, auth.tenant_id, &headers, ttl, &auth.token_name).await?;
    Ok((StatusCode::CREATED, Json(enrollment)))
}

/// A single-use enrollment token and the one command a new host runs, naming the controller
/// as this request reached it (the API's host name and the QUIC port). The API and the
/// console's "add a host" both make theirs here.
pub(crate) async fn new_enrollment(
    state: &ApiState,
    tenant_id: Uuid,
    headers: &HeaderMap,
    ttl: std::time::Duration,
    by: &str,
) -> Result<Enrollment, ApiError> {
    let (token, expires_at) = state
        .store
        .create_enrollment_token(tenant_id, ttl)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::InvalidTtl { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Store(other),
        })?;
    let host = request_host(headers).unwrap_or_else(|| "CONTROLLER-ADDRESS".into());
    let controller = format!("{host}:{}", state.enrollment.quic_port);
    let fingerprint = state.enrollment.ca_fingerprint.to_string();
    let command = format!(
        "unity-agent enroll --controller {controller} --token {token} --ca-fingerprint {fingerprint}"
    );
    tracing::info!(%tenant_id, %expires_at, %by, "enrollment token created");
    Ok(Enrollment {
        token,
        expires_at,
        ca_fingerprint: fingerprint,
        controller,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_gives_the_name_agents_reach() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            if let Ok(v) = axum::http::HeaderValue::from_str(value) {
                h.insert(axum::http::header::HOST, v);
            }
            request_host(&h)
        };
        assert_eq!(
            with("controller.lan:7080").as_deref(),
            Some("controller.lan")
        );
        assert_eq!(with("192.168.1.5").as_deref(), Some("192.168.1.5"));
        assert_eq!(with("[fd00::5]:7080").as_deref(), Some("[fd00::5]"));
        assert_eq!(with("a b").as_deref(), None);
        assert_eq!(request_host(&HeaderMap::new()), None);
    }
}
