//! The pages that act: container updates (operator) and jobs. An update creates the same
//! signed `container_update` job `POST /api/v1/jobs` creates (`jobs::create_job`), pinned to
//! the digest the operator confirmed; its page follows the job until it ends.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
use time::OffsetDateTime;
use unity_protocol::latest::UpdateState;
use uuid::Uuid;

use super::layout::not_found;
use super::layout::{self, Section, ago};
use super::session::{self, ConsoleUser, CsrfForm, Refusal};
use super::store::{commit, tenant_tx, unavailable};
use crate::api::ApiState;
use crate::auth::Scope;
use crate::jobs::{Cancelled, CreateJobError, JobRequest, cancel, create_job};
use crate::store::inventory::containers::{self, ContainerFilter};
use crate::store::page::Page;
use crate::store::{TenantTx, hosts, jobs as job_store};

const PAGE_ROWS: i64 = 500;

/// A digest short enough for a table cell, whole in its tooltip.
fn digest(d: Option<&str>) -> Markup {
    match d {
        None => html! { span.muted { "—" } },
        Some(d) => {
            let short: String = d.trim_start_matches("sha256:").chars().take(12).collect();
            html! { code title=(d) { (short) } }
        }
    }
}

/// Containers with a newer image than the one they run.
pub async fn updates(State(state): State<ApiState>, who: ConsoleUser) -> Result<Response, Refusal> {
    let mut tx = tenant_tx(&state, &who).await?;
    let list = containers::list(
        &mut tx,
        &ContainerFilter {
            update: Some(UpdateState::UpdateAvailable),
            ..ContainerFilter::default()
        },
        &Page::first(PAGE_ROWS),
    )
    .await
    .map_err(unavailable)?;
    let names = host_names(&mut tx).await?;
    let may_update = who.user.role.scope() >= Scope::Operate;
    let body = html! {
        h1 { "Updates" }
        @if list.is_empty() { p.muted { "Every container runs the newest image its tag names." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Host" } th scope="col" { "Container" } th.wide scope="col" { "Image" }
                    th scope="col" { "Running" } th scope="col" { "Newer" } th scope="col" { span.visually-hidden { "Action" } } } }
                tbody { @for c in list.iter().filter(|c| c.present) {
                    tr {
                        td { a href={"/hosts/" (c.host_id)} { (names.get(&c.host_id).map(String::as_str).unwrap_or("?")) } }
                        td { (c.name) }
                        td.wide { code { (c.image) } }
                        td { (digest(c.repo_digest.as_deref().and_then(|d| d.rsplit_once('@').map(|(_, d)| d)).or(c.repo_digest.as_deref()))) }
                        td { (digest(c.update_new_digest.as_deref())) }
                        td { @if may_update { a href={"/updates/" (c.id)} { "Update…" } } }
                    }
                } }
            } }
            @if !may_update { p.muted { "Your role (" (who.user.role) ") may look, not update." } }
        }
    };
    Ok(layout::page(&who, Section::Updates, "Updates", body))
}

async fn host_names(tx: &mut TenantTx) -> Result<BTreeMap<Uuid, String>, Refusal> {
    hosts::names(tx).await.map_err(unavailable)
}

/// The confirmation: which container, which image, from which digest to which.
pub async fn confirm_update(
    State(state): State<ApiState>,
    who: ConsoleUser,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    who.require(Scope::Operate)?;
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(not_found("container"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let Some(c) = containers::get(&mut tx, id).await.map_err(unavailable)? else {
        return Ok(not_found("container"));
    };
    let c = c.summary;
    let names = host_names(&mut tx).await?;
    let Some(new_digest) = c
        .update_new_digest
        .clone()
        .filter(|_| c.update_state == "update_available")
    else {
        return Ok(layout::error_page(
            StatusCode::CONFLICT,
            "No update known",
            "The controller knows no newer image for this container.",
        ));
    };
    let body = html! {
        h1 { "Update " (c.name) "?" }
        dl.facts {
            dt { "Host" } dd { (names.get(&c.host_id).map(String::as_str).unwrap_or("?")) }
            dt { "Container" } dd { (c.name) }
            dt { "Image" } dd { code { (c.image) } }
            dt { "Running digest" } dd { code { (c.repo_digest.as_deref().unwrap_or("unknown")) } }
            dt { "New digest" } dd { code { (new_digest) } }
        }
        p { "The agent pulls the new image, recreates the container with the same configuration, "
            "waits for it to be healthy, and rolls back to the running image if it is not." }
        form method="post" action={"/updates/" (c.id)} {
            input type="hidden" name="csrf" value=(who.user.csrf_token);
            input type="hidden" name="digest" value=(new_digest);
            button.primary type="submit" { "Update to this digest" }
            " " a href="/updates" { "Cancel" }
        }
    };
    Ok(layout::page(&who, Section::Updates, "Confirm update", body))
}

#[derive(Debug, Deserialize)]
pub struct UpdateForm {
    csrf: String,
    digest: String,
}

/// Creates the signed job for the confirmed digest, then shows it.
pub async fn start_update(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<UpdateForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Operate)?;
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(not_found("container"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let Some(c) = containers::get(&mut tx, id).await.map_err(unavailable)? else {
        return Ok(not_found("container"));
    };
    let c = c.summary;
    if c.update_new_digest.as_deref() != Some(form.digest.as_str()) {
        return Ok(layout::error_page(
            StatusCode::CONFLICT,
            "The update changed",
            "A different image is known now than the one you confirmed. Review the update again.",
        ));
    }
    let request = JobRequest {
        host_id: c.host_id,
        kind: "container_update".into(),
        params: serde_json::json!({
            // The controller's id of the row the operator confirmed: no name can be ambiguous.
            "container": c.id.to_string(),
            "image": crate::jobs::create::pinned(&c.image, &form.digest),
        }),
        expires_in_secs: None,
        not_before: None,
    };
    let created = create_job(
        &mut tx,
        &state.job_keys,
        who.user.tenant_id,
        &request,
        &who.actor(),
        OffsetDateTime::now_utc(),
    )
    .await;
    match created {
        Ok(job) => {
            commit(tx, "queueing a job").await?;
            tracing::info!(user = %who.user.name, job_id = %job.id, container = %c.name,
                "console: container update queued");
            Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response())
        }
        Err(CreateJobError::Conflict(why) | CreateJobError::Invalid(why)) => Ok(
            layout::error_page(StatusCode::CONFLICT, "The update could not be queued", &why),
        ),
        Err(CreateJobError::HostNotFound) => Ok(not_found("host")),
        Err(other) => {
            tracing::error!(error = %crate::error_chain(&other), "console: could not create a job");
            Err(Refusal::Unavailable)
        }
    }
}

/// The tenant's jobs, newest first.
pub async fn jobs(State(state): State<ApiState>, who: ConsoleUser) -> Result<Response, Refusal> {
    let mut tx = tenant_tx(&state, &who).await?;
    let list = job_store::list(
        &mut tx,
        &job_store::JobFilter::default(),
        &Page::first(PAGE_ROWS),
    )
    .await
    .map_err(unavailable)?;
    let names = host_names(&mut tx).await?;
    let now = OffsetDateTime::now_utc();
    let body = html! {
        h1 { "Jobs" }
        @if list.is_empty() { p.muted { "No jobs yet." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Created" } th scope="col" { "Host" } th scope="col" { "Kind" } th scope="col" { "State" } th.wide scope="col" { "By" } } }
                tbody { @for j in list.iter().take(PAGE_ROWS as usize) {
                    tr {
                        td { a href={"/jobs/" (j.id)} { (ago(Some(j.created_at), now)) } }
                        td { (names.get(&j.host_id).map(String::as_str).unwrap_or("?")) }
                        td { (j.kind) @if let Some(t) = &j.target { " " code { (t) } } }
                        td { (layout::state_badge(&j.state)) }
                        td.wide { (j.requested_by) }
                    }
                } }
            } }
        }
    };
    Ok(layout::page(&who, Section::Jobs, "Jobs", body))
}

/// One job: state, events, result and receipt. While it runs the page reloads itself every
/// two seconds (a `refresh` meta tag: no script needed).
pub async fn job(
    State(state): State<ApiState>,
    who: ConsoleUser,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(not_found("job"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let Some(job) = job_store::get(&mut tx, id).await.map_err(unavailable)? else {
        return Ok(not_found("job"));
    };
    let names = host_names(&mut tx).await?;
    let now = OffsetDateTime::now_utc();
    let s = &job.summary;
    let running = !s
        .state
        .parse::<crate::jobs::state::JobState>()
        .is_ok_and(crate::jobs::state::JobState::is_terminal);
    let may_cancel = who.user.role.scope() >= Scope::Operate
        && matches!(s.state.as_str(), "queued" | "dispatched");
    let body = html! {
        @if running { (PreEscaped("<meta http-equiv=\"refresh\" content=\"2\">")) }
        h1 { "Job " (s.kind) " " (layout::state_badge(&s.state)) }
        dl.facts {
            dt { "Host" } dd { a href={"/hosts/" (s.host_id)} { (names.get(&s.host_id).map(String::as_str).unwrap_or("?")) } }
            @if let Some(t) = &s.target { dt { "Target" } dd { code { (t) } } }
            dt { "Requested" } dd { (ago(Some(s.created_at), now)) " by " (s.requested_by) }
            @if !s.detail.is_empty() { dt { "Detail" } dd { (s.detail) } }
            @if let Some(r) = &job.refusal { dt { "Refused" } dd { (r) } }
            dt { "Receipt" } dd { (job.receipt.status) }
            dt { "Spec digest" } dd { code { (job.spec_sha256) } }
        }
        @if running { p.muted role="status" { "Running — this page follows it." } }
        @if may_cancel {
            form method="post" action={"/jobs/" (s.id) "/cancel"} {
                input type="hidden" name="csrf" value=(who.user.csrf_token);
                button type="submit" { "Cancel" }
            }
        }
        h2 { "Events" }
        @if job.events.is_empty() { p.muted { "None yet." } } @else {
            ol { @for e in &job.events { li { (ago(Some(e.at), now)) " — " (e.kind) ": " (e.message) } } }
        }
        @if let Some(result) = &job.result {
            h2 { "Result" }
            pre.panel { (serde_json::to_string_pretty(result).unwrap_or_default()) }
        }
    };
    Ok(layout::page(&who, Section::Jobs, "Job", body))
}

pub async fn cancel_job(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Operate)?;
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(not_found("job"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let outcome = cancel(&mut tx, id, &who.actor(), OffsetDateTime::now_utc())
        .await
        .map_err(unavailable)?;
    commit(tx, "cancelling a job").await?;
    Ok(match outcome {
        Cancelled::Done => Redirect::to(&format!("/jobs/{id}")).into_response(),
        Cancelled::Refused { state, reason } => layout::error_page(
            StatusCode::CONFLICT,
            "The job cannot be cancelled",
            &format!("It is {state}: {reason}"),
        ),
        Cancelled::NotFound => not_found("job"),
    })
}
