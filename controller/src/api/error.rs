//! One error type for every handler, mapped to a status and a JSON body that never carries
//! internal details (those go to the log).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Absent, or belonging to another tenant: the two are indistinguishable on purpose.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// Authenticated, but the token's scope does not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Valid, but not possible in the object's current state.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("internal error")]
    Store(#[from] StoreError),
    /// Failed inside the controller; already logged with its cause.
    #[error("internal error")]
    Internal,
    /// The client did not send its request body in time.
    #[error("the request body did not arrive in time")]
    Timeout,
}

impl ApiError {
    /// A JSON body that could not be read: `Timeout` when the client was too slow to send it
    /// (the body read timeout, see `api::serve`), `BadRequest` otherwise.
    pub fn from_json_rejection(rejection: axum::extract::rejection::JsonRejection) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
        while let Some(error) = source {
            if error
                .downcast_ref::<tower_http::timeout::TimeoutError>()
                .is_some()
            {
                return ApiError::Timeout;
            }
            source = error.source();
        }
        ApiError::BadRequest(rejection.body_text())
    }
}

/// Longest error message sent back.
const MAX_MESSAGE: usize = 300;

/// The JSON error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code: `unauthorized`, `forbidden`, `not_found`, `bad_request`,
    /// `conflict`, `timeout`, `internal`.
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Timeout => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ApiError::Store(error) => {
                tracing::error!(error = %crate::error_chain(error), "API request failed in the store");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        // A message may quote what the caller sent: never more than a line of it.
        let mut message = self.to_string();
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        let mut response = (status, Json(ErrorBody { code, message })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
