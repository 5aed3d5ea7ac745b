//! Rollouts in the console: the list, one rollout with its hosts wave by wave (each host's
//! job linked), and pause / resume / abort for operators — the same rule the API applies
//! (`rollouts::control`).

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{PreEscaped, html};
use time::OffsetDateTime;
use uuid::Uuid;

use super::layout::{self, Section, ago, not_found, state_badge};
use super::session::{self, ConsoleUser, CsrfForm, Refusal};
use super::store::{commit, tenant_tx, unavailable};
use crate::api::ApiState;
use crate::auth::Scope;
use crate::rollouts::control::{self, Control, ControlError};
use crate::store::page::Page;
use crate::store::rollouts;

const PAGE_ROWS: i64 = 500;

/// The tenant's rollouts, newest first.
pub async fn list(State(state): State<ApiState>, who: ConsoleUser) -> Result<Response, Refusal> {
    let mut tx = tenant_tx(&state, &who).await?;
    let list = rollouts::list(&mut tx, &Page::first(PAGE_ROWS))
        .await
        .map_err(unavailable)?;
    let now = OffsetDateTime::now_utc();
    let body = html! {
        h1 { "Rollouts" }
        @if list.is_empty() {
            p.muted { "No rollouts yet. They are created through the API (" code { "POST /api/v1/rollouts" } ") or by a schedule." }
        } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Created" } th scope="col" { "Kind" } th scope="col" { "State" }
                    th scope="col" { "Wave" } th.wide scope="col" { "By" } } }
                tbody { @for r in list.iter().take(PAGE_ROWS as usize) {
                    tr {
                        td { a href={"/rollouts/" (r.id)} { (ago(Some(r.created_at), now)) } }
                        td { (r.kind) }
                        td { (state_badge(&r.state)) }
                        td { (r.current_wave + 1) " of " (r.waves.0.as_array().map_or(0, Vec::len)) }
                        td.wide { (r.created_by) }
                    }
                } }
            } }
        }
    };
    Ok(layout::page(&who, Section::Rollouts, "Rollouts", body))
}

/// One rollout: what it runs, where it stands, every host by wave. While it runs the page
/// reloads itself every two seconds, like a job's.
pub async fn show(
    State(state): State<ApiState>,
    who: ConsoleUser,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(not_found("rollout"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let Some(r) = rollouts::get(&mut tx, id).await.map_err(unavailable)? else {
        return Ok(not_found("rollout"));
    };
    let hosts = rollouts::hosts(&mut tx, id, None)
        .await
        .map_err(unavailable)?;
    let now = OffsetDateTime::now_utc();
    let waves = r.waves.0.as_array().map_or(0, Vec::len);
    let running = r.state == "running";
    let controls: Vec<Control> = if who.user.role.scope() >= Scope::Operate {
        [Control::Pause, Control::Resume, Control::Abort]
            .into_iter()
            .filter(|c| c.applies_to(&r.state))
            .collect()
    } else {
        Vec::new()
    };
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let body = html! {
        @if running { (PreEscaped("<meta http-equiv=\"refresh\" content=\"2\">")) }
        h1 { "Rollout " (r.kind) " " (state_badge(&r.state)) }
        dl.facts {
            dt { "Wave" } dd { (r.current_wave + 1) " of " (waves) }
            dt { "Failure budget" } dd { (r.failure_budget) " failed host(s) per wave" }
            @if r.force { dt { "Forced" } dd { "yes: hosts with degraded storage are not held back" } }
            dt { "Requested" } dd { (ago(Some(r.created_at), now)) " by " (r.created_by) }
            @if let Some(reason) = &r.reason { dt { "Reason" } dd { (reason) } }
            @if let Some(deadline) = r.deadline { dt { "Deadline" } dd { (layout::until(deadline, now)) } }
        }
        @if running { p.muted role="status" { "Running — this page follows it." } }
        @if !controls.is_empty() {
            div.actions { @for c in &controls {
                form method="post" action={"/rollouts/" (r.id) "/" (c.verb())} {
                    input type="hidden" name="csrf" value=(who.user.csrf_token);
                    button type="submit" { (c.label()) }
                }
            } }
        }
        h2 { "Hosts" }
        div.scroll { table {
            thead { tr { th scope="col" { "Wave" } th scope="col" { "Host" } th scope="col" { "State" }
                th scope="col" { "Job" } th.wide scope="col" { "Reason" } } }
            tbody { @for h in &hosts {
                tr {
                    td { (h.wave + 1) }
                    td { a href={"/hosts/" (h.host_id)} { (h.hostname) } }
                    td { (state_badge(&h.state)) }
                    td { @if let Some(job) = h.job_id {
                        a href={"/jobs/" (job)} { (h.job_state.as_deref().unwrap_or("job").replace('_', " ")) }
                    } @else { span.muted { "—" } } }
                    td.wide { (h.reason.as_deref().unwrap_or("")) }
                }
            } }
        } }
        h2 { "Parameters" }
        pre.panel { (pretty(&r.params.0)) }
        h2 { "Hosts chosen by" }
        pre.panel { (pretty(&r.selector.0)) }
    };
    Ok(layout::page(&who, Section::Rollouts, "Rollout", body))
}

/// Pause, resume or abort (operator), then back to the rollout.
pub async fn control(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Operate)?;
    let (Ok(id), Some(control)) = (Uuid::try_parse(&id), Control::from_verb(&verb)) else {
        return Ok(not_found("rollout"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    match control::apply(&mut tx, id, control, &who.actor()).await {
        Ok(()) => {
            commit(tx, "changing a rollout").await?;
            Ok(Redirect::to(&format!("/rollouts/{id}")).into_response())
        }
        Err(ControlError::NotFound) => Ok(not_found("rollout")),
        Err(e @ ControlError::DoesNotApply { .. }) => Ok(layout::error_page(
            StatusCode::CONFLICT,
            "Not now",
            &e.to_string(),
        )),
        Err(ControlError::Store(e)) => Err(unavailable(e)),
    }
}
