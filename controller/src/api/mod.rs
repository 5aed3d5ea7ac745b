//! The HTTP API for people and scripts (axum). Everything under `/api/v1` except the OpenAPI
//! document needs a tenant's bearer token and sees only that tenant's data — enforced by the
//! database (see `store`), not only by these handlers.

pub(crate) mod admin;
mod auth;
mod error;
mod hosts;
mod inventory;
mod jobs;
mod metrics;
mod notify;
mod openapi;
mod operator;
mod packages;
mod page;
mod policies;
mod reference;
mod rollouts;
pub mod serve;
mod storage;
pub(crate) mod users;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse as _;
use axum::routing::{get, post};
use serde::Serialize;
use uuid::Uuid;

pub use auth::TenantAuth;
pub use error::{ApiError, ErrorBody};
pub use openapi::ApiDoc;

use crate::store::Store;

#[derive(Debug, Clone)]
pub struct ApiState {
    pub store: Store,
    /// Signs the jobs the API creates.
    pub job_keys: crate::jobs::JobKeys,
    /// Seals notification channels' URLs and secrets.
    pub sealer: std::sync::Arc<crate::notify::Sealer>,
    /// The sessions this replica holds (for `/metrics`).
    pub dispatcher: std::sync::Arc<crate::jobs::Dispatcher>,
    /// What an enrollment command names.
    pub enrollment: EnrollmentInfo,
    /// How the web console sets its cookie.
    pub console: crate::console::ConsoleOptions,
    /// Failed console logins per client address (this replica's; docs/console.md).
    pub login_throttle: std::sync::Arc<crate::console::address_throttle::AddressThrottle>,
}

/// The controller as agents enroll with it.
#[derive(Debug, Clone, Copy)]
pub struct EnrollmentInfo {
    pub quic_port: u16,
    pub ca_fingerprint: unity_pki::Fingerprint,
}

/// Every route of the API. Tests walk [`TENANT_ROUTES`] to prove isolation on each.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics::controller_metrics))
        .route("/api/docs", get(reference::page))
        .route("/api/docs/redoc.standalone.js", get(reference::script))
        .route("/api/v1/metrics", get(metrics::fleet_metrics))
        .route(
            "/api/v1/tenants",
            get(operator::list_tenants).post(operator::create_tenant),
        )
        .route("/api/v1/hosts", get(hosts::list_hosts))
        .route(
            "/api/v1/hosts/{id}",
            get(hosts::get_host).delete(hosts::delete_host),
        )
        .route("/api/v1/hosts/{id}/revoke", post(hosts::revoke_host))
        .route("/api/v1/hosts/{id}/storage", get(storage::host_storage))
        .route("/api/v1/hosts/{id}/packages", get(packages::host_packages))
        .route("/api/v1/agent-releases", get(packages::agent_releases))
        .route(
            "/api/v1/tokens",
            get(admin::list_tokens).post(admin::create_token),
        )
        .route("/api/v1/tokens/{id}/revoke", post(admin::revoke_token))
        .route(
            "/api/v1/users",
            get(users::list_users).post(users::create_user),
        )
        .route("/api/v1/users/{id}/disable", post(users::disable_user))
        .route("/api/v1/users/{id}/enable", post(users::enable_user))
        .route(
            "/api/v1/enrollment-tokens",
            post(admin::create_enrollment_token),
        )
        .route(
            "/api/v1/channels",
            get(notify::list_channels).post(notify::create_channel),
        )
        .route(
            "/api/v1/channels/{id}",
            get(notify::get_channel).delete(notify::delete_channel),
        )
        .route("/api/v1/channels/{id}/test", post(notify::test_channel))
        .route(
            "/api/v1/channels/{id}/routing",
            axum::routing::put(notify::put_routing),
        )
        .route("/api/v1/notifications", get(notify::list_notifications))
        .route("/api/v1/notifications/{id}", get(notify::get_notification))
        .route(
            "/api/v1/notifications/{id}/retry",
            post(notify::retry_notification),
        )
        .route(
            "/api/v1/hosts/{id}/labels",
            get(rollouts::get_labels).put(rollouts::put_labels),
        )
        .route(
            "/api/v1/rollouts",
            get(rollouts::list).post(rollouts::create),
        )
        .route("/api/v1/rollouts/{id}", get(rollouts::get))
        .route("/api/v1/rollouts/{id}/pause", post(rollouts::pause))
        .route("/api/v1/rollouts/{id}/resume", post(rollouts::resume))
        .route("/api/v1/rollouts/{id}/abort", post(rollouts::abort))
        .route(
            "/api/v1/rollout-schedules",
            get(rollouts::list_schedules).post(rollouts::create_schedule),
        )
        .route(
            "/api/v1/rollout-schedules/{id}",
            axum::routing::delete(rollouts::delete_schedule),
        )
        .route("/api/v1/disks", get(storage::list_disks))
        .route("/api/v1/disks/{id}", get(storage::get_disk))
        .route("/api/v1/pools", get(storage::list_pools))
        .route("/api/v1/pools/{id}", get(storage::get_pool))
        .route("/api/v1/arrays", get(storage::list_arrays))
        .route("/api/v1/arrays/{id}", get(storage::get_array))
        .route("/api/v1/alerts", get(storage::list_alerts))
        .route(
            "/api/v1/alerts/{id}/acknowledge",
            post(storage::acknowledge_alert),
        )
        .route(
            "/api/v1/hosts/{id}/inventory",
            get(inventory::host_inventory),
        )
        .route("/api/v1/containers", get(inventory::list_containers))
        .route("/api/v1/containers/{id}", get(inventory::get_container))
        .route("/api/v1/images", get(inventory::list_images))
        .route("/api/v1/databases", get(inventory::list_databases))
        .route("/api/v1/databases/{id}", get(inventory::get_database))
        .route("/api/v1/jobs", get(jobs::list_jobs).post(jobs::create_job))
        .route("/api/v1/jobs/{id}", get(jobs::get_job))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route(
            "/api/v1/containers/{id}/policy",
            get(policies::get_policy)
                .put(policies::put_policy)
                .delete(policies::delete_policy),
        )
        .route(
            "/api/v1/maintenance-windows",
            get(policies::list_windows).post(policies::create_window),
        )
        .route(
            "/api/v1/maintenance-windows/{id}",
            get(policies::get_window).delete(policies::delete_window),
        )
        .merge(crate::console::routes())
        .fallback(unknown_route)
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// For routes that take no query parameters: any is a 400 (a typo in a filter must not be
/// silently ignored and answer everything).
#[derive(Debug, Clone, Copy)]
pub struct NoQuery;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        match parts.uri.query() {
            Some(q) if !q.is_empty() => Err(ApiError::BadRequest(
                "this route takes no query parameters".into(),
            )),
            _ => Ok(NoQuery),
        }
    }
}

/// Any route the API does not have: the same JSON error as everything else.
async fn unknown_route() -> ApiError {
    ApiError::NotFound("route")
}

/// Every error answer in the documented JSON shape, whoever produced it — axum's own
/// rejections (a path that is not UTF-8, a wrong method, a body that is not JSON) answer in
/// plain text and may echo the input; they are replaced by the code and a short message.
async fn json_errors(response: axum::response::Response) -> axum::response::Response {
    use axum::http::header::CONTENT_TYPE;
    let status = response.status();
    // JSON errors are ours already; HTML ones are the console's own pages.
    let is_ours = response.headers().get(CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
    });
    if !(status.is_client_error() || status.is_server_error()) || is_ours {
        return response;
    }
    let code = match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "bad_request",
        s if s >= 500 => "internal",
        _ => "bad_request",
    };
    let message = status
        .canonical_reason()
        .unwrap_or("request failed")
        .to_ascii_lowercase();
    let mut replaced = (status, Json(ErrorBody { code, message })).into_response();
    for (name, value) in response.headers() {
        if name != CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            replaced.headers_mut().insert(name.clone(), value.clone());
        }
    }
    replaced
}

/// Tenant-scoped routes as (method, path), with `{id}` standing for an object id of that
/// route's kind. The isolation test requests each one with another tenant's ids and expects
/// 404 (or an empty list); a new route missing here fails `every_routed_path_is_classified`.
pub const TENANT_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/metrics"),
    ("GET", "/api/v1/hosts"),
    ("GET", "/api/v1/hosts/{id}"),
    ("GET", "/api/v1/hosts/{id}/packages"),
    ("GET", "/api/v1/hosts/{id}/labels"),
    ("PUT", "/api/v1/hosts/{id}/labels"),
    ("GET", "/api/v1/rollouts"),
    ("POST", "/api/v1/rollouts"),
    ("GET", "/api/v1/rollouts/{id}"),
    ("POST", "/api/v1/rollouts/{id}/pause"),
    ("POST", "/api/v1/rollouts/{id}/resume"),
    ("POST", "/api/v1/rollouts/{id}/abort"),
    ("GET", "/api/v1/rollout-schedules"),
    ("POST", "/api/v1/rollout-schedules"),
    ("DELETE", "/api/v1/rollout-schedules/{id}"),
    ("GET", "/api/v1/hosts/{id}/storage"),
    ("GET", "/api/v1/disks"),
    ("GET", "/api/v1/disks/{id}"),
    ("GET", "/api/v1/pools"),
    ("GET", "/api/v1/pools/{id}"),
    ("GET", "/api/v1/arrays"),
    ("GET", "/api/v1/arrays/{id}"),
    ("GET", "/api/v1/alerts"),
    ("POST", "/api/v1/alerts/{id}/acknowledge"),
    ("GET", "/api/v1/hosts/{id}/inventory"),
    ("GET", "/api/v1/containers"),
    ("GET", "/api/v1/containers/{id}"),
    ("GET", "/api/v1/images"),
    ("GET", "/api/v1/databases"),
    ("GET", "/api/v1/databases/{id}"),
    ("GET", "/api/v1/jobs"),
    ("POST", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/{id}"),
    ("POST", "/api/v1/jobs/{id}/cancel"),
    ("GET", "/api/v1/containers/{id}/policy"),
    ("PUT", "/api/v1/containers/{id}/policy"),
    ("DELETE", "/api/v1/containers/{id}/policy"),
    ("GET", "/api/v1/maintenance-windows"),
    ("POST", "/api/v1/maintenance-windows"),
    ("GET", "/api/v1/maintenance-windows/{id}"),
    ("DELETE", "/api/v1/maintenance-windows/{id}"),
    ("GET", "/api/v1/channels"),
    ("POST", "/api/v1/channels"),
    ("GET", "/api/v1/channels/{id}"),
    ("POST", "/api/v1/channels/{id}/test"),
    ("PUT", "/api/v1/channels/{id}/routing"),
    ("GET", "/api/v1/notifications"),
    ("GET", "/api/v1/notifications/{id}"),
    ("POST", "/api/v1/notifications/{id}/retry"),
    ("DELETE", "/api/v1/channels/{id}"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("POST", "/api/v1/enrollment-tokens"),
    ("POST", "/api/v1/tokens/{id}/revoke"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/users/{id}/disable"),
    ("POST", "/api/v1/users/{id}/enable"),
    ("POST", "/api/v1/hosts/{id}/revoke"),
    ("DELETE", "/api/v1/hosts/{id}"),
];
/// Routes that need a tenant's token but show what the controller holds for all tenants
/// alike (the agent-release catalogue): no tenant's data.
pub const SHARED_ROUTES: &[(&str, &str)] = &[("GET", "/api/v1/agent-releases")];
/// Routes of the controller's operator (an operator token, no tenant).
pub const OPERATOR_ROUTES: &[(&str, &str)] =
    &[("GET", "/api/v1/tenants"), ("POST", "/api/v1/tenants")];
/// Routes that need no token.
pub const PUBLIC_ROUTES: &[&str] = &["/healthz", "/readyz", "/api/v1/openapi.json", "/metrics"];

/// Commits a handler's transaction; a failure is a store error naming `action`.
async fn commit(tx: crate::store::TenantTx, action: &'static str) -> Result<(), ApiError> {
    crate::store::commit(tx, action)
        .await
        .map_err(ApiError::Store)
}

fn parse_id(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    // A malformed id cannot name anything: same answer as an id of another tenant.
    Uuid::try_parse(raw).map_err(|_| ApiError::NotFound(what))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` when the controller can reach its database.
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness and database reachability; no token needed. `503` while the database cannot be
/// reached (load balancers and agents should retry later; everything resumes by itself).
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
async fn healthz(State(state): State<ApiState>) -> axum::response::Response {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(3), state.store.ping()).await;
    match ping.unwrap_or_else(|_| {
        Err(crate::store::StoreError::Unavailable(
            "no answer from the database within 3 s",
        ))
    }) {
        Ok(()) => Json(Health {
            status: "ok",
            version: crate::VERSION,
        })
        .into_response(),
        Err(error) => {
            tracing::warn!(error = %crate::error_chain(&error), "health check: database unreachable");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Json(ErrorBody {
                    code: "unavailable",
                    message: "the database cannot be reached; retry later".into(),
                }),
            )
                .into_response()
        }
    }
}

/// Readiness (for a load balancer or a Kubernetes probe): the database answers and carries
/// the schema this build runs on. `/healthz` is liveness: the process and its database.
#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
async fn readyz(State(state): State<ApiState>) -> axum::response::Response {
    let unavailable = |message: String| {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(ErrorBody {
                code: "unavailable",
                message,
            }),
        )
            .into_response()
    };
    let schema = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        state.store.schema_version(),
    )
    .await;
    match schema {
        Ok(Ok(version)) if version == crate::store::newest_known_schema() => Json(Health {
            status: "ready",
            version: crate::VERSION,
        })
        .into_response(),
        Ok(Ok(version)) => unavailable(format!(
            "the database schema is at {version}, this controller runs on {}",
            crate::store::newest_known_schema()
        )),
        Ok(Err(error)) => {
            tracing::warn!(error = %crate::error_chain(&error), "readiness: database unreachable");
            unavailable("the database cannot be reached; retry later".into())
        }
        Err(_) => unavailable("no answer from the database within 3 s".into()),
    }
}
