//! Logging in and out, and the account page (password change, logout everywhere).

use std::time::Instant;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;
use time::OffsetDateTime;

use super::address_throttle::{AddressKey, PeerAddress, client_ip};
use super::layout::{self, Section};
use super::session::{self, ConsoleUser, CsrfForm, Refusal};
use super::store::{commit, tenant_tx, unavailable};
use crate::api::ApiState;
use crate::auth::Scope;
use crate::store::users::{self, Login, UserError};

fn login_page(status: StatusCode, problem: Option<&str>, name: &str) -> Response {
    layout::bare(
        status,
        "Log in",
        html! {
            h1 { "Unity Fleet" }
            form.stack method="post" action="/login" {
                @if let Some(problem) = problem {
                    p.error role="alert" { (problem) }
                }
                label { "User name"
                    input name="name" autocomplete="username" required autofocus value=(name);
                }
                label { "Password"
                    input name="password" type="password" autocomplete="current-password" required;
                }
                button.primary type="submit" { "Log in" }
            }
        },
    )
}

pub async fn show_login(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(id) = session::cookie_value(&headers)
        && let Ok(Some(_)) = state.store.session(id).await
    {
        return Redirect::to("/").into_response();
    }
    login_page(StatusCode::OK, None, "")
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
}

/// The "wait" answer of both throttles.
fn throttled_page(name: &str, retry_after: std::time::Duration) -> Response {
    let secs = retry_after.as_secs().max(1);
    let mut response = login_page(
        StatusCode::TOO_MANY_REQUESTS,
        Some(&format!("Too many failed attempts. Try again in {secs} s.")),
        name,
    );
    if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

pub async fn login(
    State(state): State<ApiState>,
    peer: Option<Extension<PeerAddress>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, Refusal> {
    session::same_origin(&headers)?;
    let Form(form) = form.map_err(super::session::bad_form)?;
    let name = form.name.trim().to_ascii_lowercase();
    let client = client_ip(
        peer.map(|Extension(p)| p),
        &headers,
        state.console.behind_proxy,
    );
    let address = AddressKey::of(client);
    // Before any password is hashed: a sprayer spends no argon2 time once held back.
    if let Err(retry_after) = state.login_throttle.check(address, Instant::now()) {
        tracing::warn!(user = %name, client = ?client, retry_after_secs = retry_after.as_secs(),
            "console login refused: too many failures from this address");
        return Ok(throttled_page(&name, retry_after));
    }
    let outcome = state
        .store
        .login(&name, &form.password, OffsetDateTime::now_utc())
        .await;
    Ok(match outcome {
        Ok(Login::Ok { session_id, user }) => {
            tracing::info!(user = %user.name, tenant_id = %user.tenant_id, role = %user.role,
                client = ?client, "console login");
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session::set_cookie(&session_id, state.console.secure_cookies),
            );
            response
        }
        Ok(Login::Refused) => {
            state.login_throttle.failed(address, Instant::now());
            tracing::info!(user = %name, client = ?client, "console login refused");
            login_page(
                StatusCode::UNAUTHORIZED,
                Some("Wrong user name or password."),
                &name,
            )
        }
        Ok(Login::Throttled { retry_after }) => {
            state.login_throttle.failed(address, Instant::now());
            tracing::warn!(user = %name, client = ?client, retry_after_secs = retry_after.as_secs(),
                "console login throttled after repeated failures");
            throttled_page(&name, retry_after)
        }
        Err(error) => {
            tracing::warn!(error = %crate::error_chain(&error), "console login failed");
            return Err(Refusal::Unavailable);
        }
    })
}

pub async fn logout(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(super::session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Read)?;
    let mut tx = tenant_tx(&state, &who).await?;
    users::end_session(&mut tx, &who.session_id)
        .await
        .map_err(unavailable)?;
    commit(tx, "ending sessions").await?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_cookie(state.console.secure_cookies),
    );
    Ok(response)
}

fn account_page(who: &ConsoleUser, notice: Option<&str>, problem: Option<&str>) -> Response {
    layout::page(
        who,
        Section::Account,
        "Account",
        html! {
            h1 { "Account" }
            p { "Logged in as " strong { (who.user.name) } ", role " (who.user.role) "." }
            @if let Some(notice) = notice { p.notice role="status" { (notice) } }
            @if let Some(problem) = problem { p.error role="alert" { (problem) } }
            h2 { "Change password" }
            form.stack method="post" action="/account/password" {
                input type="hidden" name="csrf" value=(who.user.csrf_token);
                label { "Current password"
                    input name="current" type="password" autocomplete="current-password" required;
                }
                label { "New password (at least 12 characters)"
                    input name="new" type="password" autocomplete="new-password" required minlength="12";
                }
                button.primary type="submit" { "Change password" }
            }
            h2 { "Sessions" }
            form method="post" action="/account/logout-everywhere" {
                input type="hidden" name="csrf" value=(who.user.csrf_token);
                button type="submit" { "Log out everywhere" }
            }
        },
    )
}

pub async fn account(who: ConsoleUser) -> Response {
    account_page(&who, None, None)
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
}

pub async fn change_password(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(super::session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Read)?;
    let mut tx = tenant_tx(&state, &who).await?;
    let changed = users::change_password(
        &mut tx,
        who.user.user_id,
        Some(&who.session_id),
        &form.current,
        &form.new,
    )
    .await;
    Ok(match changed {
        Ok(()) => {
            commit(tx, "ending sessions").await?;
            tracing::info!(user = %who.user.name, "console password changed; other sessions ended");
            account_page(
                &who,
                Some("Password changed. Your other sessions have ended."),
                None,
            )
        }
        Err(e @ (UserError::WrongPassword | UserError::Password(_))) => {
            let mut response = account_page(&who, None, Some(&e.to_string()));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
        Err(error) => {
            tracing::warn!(error = %crate::error_chain(&error), "console password change failed");
            return Err(Refusal::Unavailable);
        }
    })
}

pub async fn logout_everywhere(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(super::session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Read)?;
    let mut tx = tenant_tx(&state, &who).await?;
    let ended = users::end_all_sessions(&mut tx, who.user.user_id)
        .await
        .map_err(unavailable)?;
    commit(tx, "ending sessions").await?;
    tracing::info!(user = %who.user.name, sessions = ended, "console: logged out everywhere");
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_cookie(state.console.secure_cookies),
    );
    Ok(response)
}
