//! `Authorization: Bearer <tenant API token>` → the tenant every query of the request is
//! confined to.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::{ApiError, ApiState};
use crate::auth::Scope;

/// The authenticated tenant of a request, with what the token may do.
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub tenant_id: Uuid,
    pub scope: Scope,
    /// The token's name (the audit trail of jobs).
    pub token_name: String,
}

impl TenantAuth {
    /// `403` unless the token has `needed` (or a wider scope).
    pub fn require(&self, needed: Scope) -> Result<(), ApiError> {
        if self.scope >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this token has scope `{}`; `{needed}` is needed (api-token create --scope {needed})",
                self.scope
            )))
        }
    }
}

/// The token of an `Authorization: Bearer …` header, if the request has a non-empty one.
pub(super) fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
}

impl FromRequestParts<ApiState> for TenantAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        if token.starts_with(crate::auth::OPERATOR_TOKEN_PREFIX) {
            return Err(ApiError::Forbidden(
                "an operator token creates and lists tenants; this route needs a tenant's API token"
                    .into(),
            ));
        }
        match state.store.authenticate_api_caller(token).await? {
            Some(caller) => Ok(TenantAuth {
                tenant_id: caller.tenant_id,
                scope: caller.scope,
                token_name: caller.name,
            }),
            None => {
                tracing::info!(path = %parts.uri.path(), "API request with unknown or revoked token");
                Err(ApiError::Unauthorized)
            }
        }
    }
}
