//! The web console (issue 11, docs/console.md): server-rendered HTML on the API's listener,
//! no scripts, every asset built into the binary so it works on a network without internet.
//! People log in with a user of their tenant (`unity-controller user create`); every page
//! reads through the same store functions and row-level security as the API.

pub mod actions;
pub mod address_throttle;
pub mod channels;
pub mod charts;
pub mod layout;
pub mod login;
pub mod maintenance;
pub mod pages;
pub mod rollouts;
pub mod session;
pub mod settings;
pub mod store;
pub mod vdevs;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::api::ApiState;

/// How the console sets its cookie.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleOptions {
    /// Mark the session cookie `Secure`: the console is reached over HTTPS (a TLS proxy in
    /// front of the API listener, `api_behind_tls_proxy`).
    pub secure_cookies: bool,
    /// Requests arrive through a TLS proxy: the client's address for login throttling is the
    /// last `X-Forwarded-For` entry, not the proxy's.
    pub behind_proxy: bool,
}

/// The console's routes, merged into the API's router.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(pages::fleet))
        .route("/hosts/{id}", get(pages::host))
        .route("/disks/{id}", get(pages::disk))
        .route("/pools/{id}", get(pages::pool))
        .route("/alerts", get(pages::alerts))
        .route("/alerts/{id}/acknowledge", post(pages::acknowledge))
        .route("/updates", get(actions::updates))
        .route(
            "/updates/{id}",
            get(actions::confirm_update).post(actions::start_update),
        )
        .route("/jobs", get(actions::jobs))
        .route("/jobs/{id}", get(actions::job))
        .route("/jobs/{id}/cancel", post(actions::cancel_job))
        .route("/rollouts", get(rollouts::list))
        .route("/rollouts/{id}", get(rollouts::show))
        .route("/rollouts/{id}/{verb}", post(rollouts::control))
        .route("/login", get(login::show_login).post(login::login))
        .route("/logout", post(login::logout))
        .route("/settings", get(settings::settings))
        .route("/settings/enroll", post(settings::enroll))
        .route("/settings/users", post(settings::add_user))
        .route("/settings/users/{id}/{action}", post(settings::set_user))
        .route("/settings/tokens", post(settings::add_token))
        .route("/settings/tokens/{id}/revoke", post(settings::revoke_token))
        .route("/settings/channels", post(channels::add))
        .route("/settings/channels/{id}", get(channels::show))
        .route(
            "/settings/channels/{id}/routing",
            post(channels::set_routing),
        )
        .route("/settings/channels/{id}/{verb}", post(channels::act))
        .route("/settings/windows", post(maintenance::add_window))
        .route(
            "/settings/windows/{id}/delete",
            post(maintenance::delete_window),
        )
        .route("/settings/policies/{id}", post(maintenance::set_policy))
        .route("/account", get(login::account))
        .route("/account/password", post(login::change_password))
        .route("/account/logout-everywhere", post(login::logout_everywhere))
        .route("/console.css", get(stylesheet))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        layout::CSS,
    )
}
