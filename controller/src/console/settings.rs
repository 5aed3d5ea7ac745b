//! Settings (role admin): the tenant's users, API tokens, and "add a host". Each action is the
//! one the admin API does (`api::users::add_user`, `api::admin::new_enrollment`, …), so the
//! console and the API cannot drift apart.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::layout::{self, Section, ago};
use super::session::{self, ConsoleUser, CsrfForm, Refusal};
use super::store::{commit, tenant_tx, unavailable};
use crate::api::{ApiError, ApiState, admin};
use crate::auth::Scope;
use crate::store::page::Page;
use crate::store::users;

/// An API error as a page: the client's mistakes are said, the rest is "unavailable".
fn api_error(error: ApiError) -> Result<Response, Refusal> {
    match error {
        ApiError::BadRequest(why) | ApiError::Conflict(why) => Ok(layout::refused(&why)),
        ApiError::NotFound(what) => Ok(layout::error_page(
            StatusCode::NOT_FOUND,
            &format!("No such {what}"),
            "It may have been removed.",
        )),
        other => {
            tracing::warn!(error = %crate::error_chain(&other), "console settings action failed");
            Err(Refusal::Unavailable)
        }
    }
}

/// Something to show once (a password, a token, a command) above the settings.
pub(super) struct Shown {
    pub title: &'static str,
    pub value: String,
    pub hint: &'static str,
}

pub(super) async fn settings_page(
    state: &ApiState,
    who: &ConsoleUser,
    shown: Option<Shown>,
) -> Result<Response, Refusal> {
    who.require(Scope::Admin)?;
    let mut tx = tenant_tx(state, who).await?;
    let user_list = users::list_users(&mut tx, &Page::all())
        .await
        .map_err(unavailable)?;
    let tokens = admin::token_page(&mut tx, &Page::first(500))
        .await
        .map_err(unavailable)?;
    let channels = super::channels::section(&mut tx, &who.user.csrf_token).await?;
    let maintenance = super::maintenance::section(&mut tx, &who.user.csrf_token).await?;
    drop(tx);
    let now = OffsetDateTime::now_utc();
    let csrf = &who.user.csrf_token;
    let csrf_field = |csrf: &str| -> Markup {
        html! { input type="hidden" name="csrf" value=(csrf); }
    };
    let body = html! {
        h1 { "Settings" }
        @if let Some(shown) = &shown {
            div.notice role="status" {
                p { strong { (shown.title) } }
                p { code { (shown.value) } }
                p.muted { (shown.hint) }
            }
        }
        h2 #hosts { "Add a host" }
        p { "Creates a single-use enrollment token (valid one hour) and the one command to run, as root, on the new host." }
        form method="post" action="/settings/enroll" {
            (csrf_field(csrf))
            button.primary type="submit" { "Create the command" }
        }
        h2 #users { "Users" }
        div.scroll { table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Role" } th.wide scope="col" { "Password changed" } th scope="col" { "State" } th scope="col" { span.visually-hidden { "Action" } } } }
            tbody { @for u in &user_list {
                tr {
                    td { (u.name) }
                    td { (u.role) }
                    td.wide { (ago(Some(u.password_changed_at), now)) }
                    td { @if u.disabled_at.is_some() { span.badge.warning { "disabled" } } @else { "active" } }
                    td {
                        @if u.id != who.user.user_id {
                            form method="post" action={"/settings/users/" (u.id) (if u.disabled_at.is_some() { "/enable" } else { "/disable" })} {
                                (csrf_field(csrf))
                                button type="submit" { @if u.disabled_at.is_some() { "Enable" } @else { "Disable" } }
                            }
                        }
                    }
                }
            } }
        } }
        form.stack method="post" action="/settings/users" {
            (csrf_field(csrf))
            label { "New user's name" input name="name" required autocomplete="off"; }
            label { "Role"
                select name="role" {
                    option value="viewer" { "viewer — reads" }
                    option value="operator" { "operator — also updates, jobs, rollouts" }
                    option value="admin" { "admin — also users, tokens, hosts, channels" }
                }
            }
            button type="submit" { "Add user" }
        }
        h2 #tokens { "API tokens" }
        div.scroll { table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Scope" } th.wide scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { span.visually-hidden { "Action" } } } }
            tbody { @for t in &tokens {
                tr {
                    td { (t.name) }
                    td { (t.scope) }
                    td.wide { (ago(Some(t.created_at), now)) }
                    td { (ago(t.last_used_at, now)) }
                    td {
                        @if t.revoked_at.is_some() { span.muted { "revoked" } } @else {
                            form method="post" action={"/settings/tokens/" (t.id) "/revoke"} {
                                (csrf_field(csrf))
                                button type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            } }
        } }
        form.stack method="post" action="/settings/tokens" {
            (csrf_field(csrf))
            label { "New token's name (who or what uses it)" input name="name" required autocomplete="off"; }
            label { "Scope"
                select name="scope" {
                    option value="read" { "read" } option value="operate" { "operate" } option value="admin" { "admin" }
                }
            }
            button type="submit" { "Create token" }
        }
        (channels)
        (maintenance)
    };
    Ok(layout::page(who, Section::Settings, "Settings", body))
}

pub async fn settings(
    State(state): State<ApiState>,
    who: ConsoleUser,
) -> Result<Response, Refusal> {
    settings_page(&state, &who, None).await
}

pub async fn enroll(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Admin)?;
    let by = who.actor();
    match admin::new_enrollment(
        &state,
        who.user.tenant_id,
        &headers,
        std::time::Duration::from_secs(3600),
        &by,
    )
    .await
    {
        Ok(enrollment) => {
            settings_page(
                &state,
                &who,
                Some(Shown {
                    title: "Run this on the new host, as root, within the hour:",
                    value: enrollment.command,
                    hint: "The token works once. The host appears on the fleet page when its agent first reports.",
                }),
            )
            .await
        }
        Err(error) => api_error(error),
    }
}

#[derive(Debug, Deserialize)]
pub struct UserForm {
    csrf: String,
    name: String,
    role: String,
}

pub async fn add_user(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    form: Result<Form<UserForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Admin)?;
    let by = who.actor();
    match crate::api::users::add_user(
        &state,
        who.user.tenant_id,
        form.name.trim(),
        Some(&form.role),
        None,
        &by,
    )
    .await
    {
        Ok((user, Some(password))) => {
            settings_page(
                &state,
                &who,
                Some(Shown {
                    title: if user.role == users::Role::Admin {
                        "New admin's password (shown once):"
                    } else {
                        "New user's password (shown once):"
                    },
                    value: password,
                    hint: "Hand it over in person or over a channel you trust; they change it on their Account page.",
                }),
            )
            .await
        }
        Ok((_, None)) => Ok(Redirect::to("/settings#users").into_response()),
        Err(error) => api_error(error),
    }
}

pub async fn set_user(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Admin)?;
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return api_error(ApiError::NotFound("action")),
    };
    let Ok(id) = Uuid::try_parse(&id) else {
        return api_error(ApiError::NotFound("user"));
    };
    if id == who.user.user_id {
        return api_error(ApiError::BadRequest(
            "You cannot disable yourself: another admin can.".into(),
        ));
    }
    let mut tx = tenant_tx(&state, &who).await?;
    let Some(user) = users::set_disabled(&mut tx, id, disabled)
        .await
        .map_err(unavailable)?
    else {
        return api_error(ApiError::NotFound("user"));
    };
    commit(tx, "disabling a user").await?;
    tracing::info!(user = %user.name, disabled, by = %who.user.name, "console user changed");
    Ok(Redirect::to("/settings#users").into_response())
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    csrf: String,
    name: String,
    scope: String,
}

pub async fn add_token(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Admin)?;
    let token = match admin::new_token(
        &state,
        who.user.tenant_id,
        form.name.trim(),
        Some(&form.scope),
        &who.actor(),
    )
    .await
    {
        Ok(token) => token.token,
        Err(error) => return api_error(error),
    };
    settings_page(
        &state,
        &who,
        Some(Shown {
            title: "The new token (shown once):",
            value: token,
            hint: "Send it as `Authorization: Bearer …`. Only its hash is stored.",
        }),
    )
    .await
}

pub async fn revoke_token(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Admin)?;
    let Ok(id) = Uuid::try_parse(&id) else {
        return api_error(ApiError::NotFound("token"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let Some(revoked) = admin::revoke(&mut tx, id).await.map_err(unavailable)? else {
        return api_error(ApiError::NotFound("token"));
    };
    commit(tx, "revoking an API token").await?;
    tracing::info!(token = %revoked.name, by = %who.user.name, "API token revoked in the console");
    Ok(Redirect::to("/settings#tokens").into_response())
}
