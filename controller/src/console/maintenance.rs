//! When the controller may update by itself, in Settings: maintenance windows (list, add,
//! remove — `weekly::create_window`, the API's path) and each container's update policy
//! (its `unity.update` label, an override set here or over the API, the one in force).
//! Changing either needs the `operate` role, as over the API.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{self, not_found};
use super::session::{self, ConsoleUser, CsrfForm, Refusal};
use super::store::{commit, tenant_tx, unavailable};
use crate::api::ApiState;
use crate::auth::Scope;
use crate::jobs::auto::{UpdatePolicy, effective};
use crate::store::{TenantTx, hosts, policies};
use crate::weekly::{self, WeeklyError, WindowSpec};

const ROWS: i64 = 500;

fn hhmm(minute: i32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// The windows and policies sections of Settings.
pub async fn section(tx: &mut TenantTx, csrf: &str) -> Result<Markup, Refusal> {
    let windows = policies::list_windows(tx, &crate::store::page::Page::first(ROWS))
        .await
        .map_err(unavailable)?;
    let names = hosts::names(tx).await.map_err(unavailable)?;
    let rows = policies::list_policies(tx, ROWS)
        .await
        .map_err(unavailable)?;
    let csrf_field = html! { input type="hidden" name="csrf" value=(csrf); };
    Ok(html! {
        h2 #windows { "Maintenance windows" }
        p.muted { "Automatic updates start only inside a window of their host or of every host, when any exists." }
        @if windows.is_empty() { p.muted { "None: automatic updates may start at any time." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Hosts" } th scope="col" { "Days" } th scope="col" { "From" }
                    th scope="col" { "For" } th.wide scope="col" { "Zone" } th scope="col" { span.visually-hidden { "Action" } } } }
                tbody { @for w in &windows {
                    tr {
                        td { @match w.host_id {
                            Some(h) => a href={"/hosts/" (h)} { (names.get(&h).map(String::as_str).unwrap_or("?")) },
                            None => "every host",
                        } }
                        td { (w.days.iter().map(|d| weekly::day_name(*d)).collect::<Vec<_>>().join(", ")) }
                        td { (hhmm(w.start_minute)) }
                        td { (w.duration_minutes) " min" }
                        td.wide { (w.time_zone) }
                        td { form method="post" action={"/settings/windows/" (w.id) "/delete"} {
                            (csrf_field) button type="submit" { "Remove" }
                        } }
                    }
                } }
            } }
        }
        form.stack method="post" action="/settings/windows" {
            (csrf_field)
            label { "Hosts"
                select name="host_id" {
                    option value="" { "every host" }
                    @for (id, name) in &names { option value=(id) { (name) } }
                }
            }
            fieldset {
                legend { "Days" }
                @for day in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
                    label.check { input type="checkbox" name={"day_" (day)}; " " (day) }
                }
            }
            label { "From (HH:MM, local time)" input name="start" required inputmode="numeric" placeholder="03:00"; }
            label { "For (minutes)" input name="duration_minutes" required inputmode="numeric" value="120"; }
            label { "Time zone" input name="time_zone" placeholder="UTC"; }
            button type="submit" { "Add window" }
        }
        h2 #policies { "Update policies" }
        p.muted { "Per container: the " code { "unity.update" } " label decides unless an override is set here. "
            "off and notify never update by themselves; digest follows the tag; patch, minor and major move to newer tags." }
        @if rows.is_empty() { p.muted { "No containers reported yet." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Host" } th scope="col" { "Container" } th scope="col" { "Label" }
                    th scope="col" { "In force" } th.wide scope="col" { "Override" } } }
                tbody { @for r in &rows {
                    tr {
                        td { a href={"/hosts/" (r.host_id)} { (r.hostname) } }
                        td { (r.name) }
                        td { (r.label_policy.as_deref().unwrap_or("—")) }
                        td { strong { (effective(r.override_policy.as_deref(), r.label_policy.as_deref())) } }
                        td.wide { form.inline method="post" action={"/settings/policies/" (r.container_id)} {
                            (csrf_field)
                            label { span.visually-hidden { "Override for " (r.name) }
                                select name="policy" {
                                    option value="" selected[r.override_policy.is_none()] { "— the label decides" }
                                    @for p in UpdatePolicy::ALL {
                                        option value=(p.as_str()) selected[r.override_policy.as_deref() == Some(p.as_str())] { (p.as_str()) }
                                    }
                                }
                            }
                            button type="submit" { "Set" }
                            @if let Some(by) = &r.override_by { " " span.muted { "by " (by) } }
                        } }
                    }
                } }
            } }
        }
    })
}

#[derive(Debug, Deserialize)]
pub struct WindowForm {
    csrf: String,
    #[serde(default)]
    host_id: String,
    day_mon: Option<String>,
    day_tue: Option<String>,
    day_wed: Option<String>,
    day_thu: Option<String>,
    day_fri: Option<String>,
    day_sat: Option<String>,
    day_sun: Option<String>,
    start: String,
    duration_minutes: String,
    #[serde(default)]
    time_zone: String,
}

impl WindowForm {
    fn days(&self) -> Vec<String> {
        [
            ("mon", &self.day_mon),
            ("tue", &self.day_tue),
            ("wed", &self.day_wed),
            ("thu", &self.day_thu),
            ("fri", &self.day_fri),
            ("sat", &self.day_sat),
            ("sun", &self.day_sun),
        ]
        .into_iter()
        .filter(|(_, ticked)| ticked.is_some())
        .map(|(day, _)| day.to_owned())
        .collect()
    }
}

pub async fn add_window(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    form: Result<Form<WindowForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Operate)?;
    let host_id = match form.host_id.trim() {
        "" => None,
        id => match Uuid::try_parse(id) {
            Ok(id) => Some(id),
            Err(_) => return Ok(not_found("host")),
        },
    };
    let Ok(duration_minutes) = form.duration_minutes.trim().parse::<i32>() else {
        return Ok(layout::refused(
            "The duration is a whole number of minutes.",
        ));
    };
    let days = form.days();
    let mut tx = tenant_tx(&state, &who).await?;
    let created = weekly::create_window(
        &mut tx,
        who.user.tenant_id,
        &WindowSpec {
            host_id,
            days: &days,
            start: form.start.trim(),
            duration_minutes,
            // An empty box is "not given" (UTC), as an absent field is over the API.
            time_zone: Some(form.time_zone.trim()).filter(|z| !z.is_empty()),
        },
        &who.actor(),
    )
    .await;
    match created {
        Ok(window) => {
            commit(tx, "creating a maintenance window").await?;
            tracing::info!(window_id = %window.id, by = %who.user.name, "console: maintenance window added");
            Ok(Redirect::to("/settings#windows").into_response())
        }
        Err(WeeklyError::Invalid(why)) => Ok(layout::refused(&why)),
        Err(WeeklyError::HostNotFound) => Ok(not_found("host")),
        Err(WeeklyError::Store(e)) => Err(unavailable(e)),
    }
}

pub async fn delete_window(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Operate)?;
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(not_found("window"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    if !policies::delete_window(&mut tx, id)
        .await
        .map_err(unavailable)?
    {
        return Ok(not_found("window"));
    }
    commit(tx, "removing a maintenance window").await?;
    Ok(Redirect::to("/settings#windows").into_response())
}

#[derive(Debug, Deserialize)]
pub struct PolicyForm {
    csrf: String,
    #[serde(default)]
    policy: String,
}

/// Sets (or, with an empty choice, clears) a container's override.
pub async fn set_policy(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<PolicyForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Operate)?;
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(not_found("container"));
    };
    let policy = match form.policy.trim() {
        "" => None,
        p => match p.parse::<UpdatePolicy>() {
            Ok(p) => Some(p),
            Err(e) => return Ok(layout::refused(&e.to_string())),
        },
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let found = policies::override_container(
        &mut tx,
        who.user.tenant_id,
        id,
        policy.map(UpdatePolicy::as_str),
        &who.actor(),
    )
    .await
    .map_err(unavailable)?;
    if !found {
        return Ok(not_found("container"));
    }
    commit(tx, "setting an update policy").await?;
    tracing::info!(container_id = %id, policy = ?policy.map(UpdatePolicy::as_str),
        by = %who.user.name, "console: update policy set");
    Ok(Redirect::to("/settings#policies").into_response())
}
