//! `Authorization: Bearer <tenant API token>` → the tenant every query of the request is
//! confined to.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::{ApiError, ApiState};

/// The authenticated tenant of a request.
#[derive(Debug, Clone, Copy)]
pub struct TenantAuth {
    pub tenant_id: Uuid,
}

impl FromRequestParts<ApiState> for TenantAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        match state.store.authenticate_api_token(token).await? {
            Some(tenant_id) => Ok(TenantAuth { tenant_id }),
            None => {
                tracing::info!(path = %parts.uri.path(), "API request with unknown or revoked token");
                Err(ApiError::Unauthorized)
            }
        }
    }
}
