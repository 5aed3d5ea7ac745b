//! Notification channels in Settings (admin): the list, adding one by URL, and a channel's
//! own page — its routing as a form, a test message, its recent deliveries with their
//! errors, removal. Every change goes through `notify::create`, the path the API takes.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::layout::{self, Section, ago, not_found, state_badge};
use super::session::{self, ConsoleUser, CsrfForm, Refusal};
use super::settings::{Shown, settings_page};
use super::store::{commit, tenant_tx, unavailable};
use crate::api::ApiState;
use crate::auth::Scope;
use crate::notify::create::{self, ChannelRequest, RoutingRequest};
use crate::store::TenantTx;
use crate::store::notify::{self as store, Channel, ChannelError, NotificationFilter, QuietHours};
use crate::store::page::Page;

/// The routing fields as a form sends them: text boxes and checkboxes (absent when
/// unchecked), empty meaning "not set".
#[derive(Debug, Default, Deserialize)]
pub struct RoutingFields {
    #[serde(default)]
    min_severity: String,
    #[serde(default)]
    kinds: String,
    send_recoveries: Option<String>,
    #[serde(default)]
    quiet_start: String,
    #[serde(default)]
    quiet_end: String,
    #[serde(default)]
    quiet_timezone: String,
    quiet_allow_critical: Option<String>,
    #[serde(default)]
    remind_minutes: String,
    enabled: Option<String>,
}

impl RoutingFields {
    fn to_request(&self) -> Result<RoutingRequest, String> {
        let quiet_hours = match (self.quiet_start.trim(), self.quiet_end.trim()) {
            ("", "") => None,
            (start, end) => Some(QuietHours {
                start: start.to_owned(),
                end: end.to_owned(),
                timezone: match self.quiet_timezone.trim() {
                    "" => "UTC".to_owned(),
                    zone => zone.to_owned(),
                },
                allow_critical: self.quiet_allow_critical.is_some(),
            }),
        };
        let remind_after_secs = match self.remind_minutes.trim() {
            "" => None,
            minutes => Some(
                minutes
                    .parse::<i32>()
                    .ok()
                    .and_then(|m| m.checked_mul(60))
                    .ok_or_else(|| {
                        format!("remind after `{minutes}` is not a number of minutes")
                    })?,
            ),
        };
        Ok(RoutingRequest {
            min_severity: Some(self.min_severity.trim().to_owned()).filter(|s| !s.is_empty()),
            kinds: self
                .kinds
                .split([',', ' '])
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
            send_recoveries: Some(self.send_recoveries.is_some()),
            quiet_hours,
            remind_after_secs,
            enabled: Some(self.enabled.is_some()),
        })
    }
}

/// The routing inputs, filled from `channel` (or a new channel's defaults).
fn routing_inputs(channel: Option<&Channel>) -> Markup {
    let severity = channel.map_or("warning", |c| c.min_severity.as_str());
    let quiet = channel.and_then(|c| c.quiet_hours.as_ref());
    html! {
        label { "Least severity sent"
            select name="min_severity" {
                @for s in ["info", "warning", "critical"] {
                    option value=(s) selected[s == severity] { (s) }
                }
            }
        }
        label { "Only these alert kinds (comma-separated; empty: all)"
            input name="kinds" autocomplete="off" value=(channel.map(|c| c.kinds.join(", ")).unwrap_or_default());
        }
        label.check { input type="checkbox" name="send_recoveries" checked[channel.is_none_or(|c| c.send_recoveries)]; " Send recoveries" }
        fieldset {
            legend { "Quiet hours (optional)" }
            label { "From (HH:MM)" input name="quiet_start" inputmode="numeric" value=(quiet.map(|q| q.start.as_str()).unwrap_or("")); }
            label { "Until (HH:MM)" input name="quiet_end" inputmode="numeric" value=(quiet.map(|q| q.end.as_str()).unwrap_or("")); }
            label { "Time zone" input name="quiet_timezone" placeholder="UTC" value=(quiet.map(|q| q.timezone.as_str()).unwrap_or("")); }
            label.check { input type="checkbox" name="quiet_allow_critical" checked[quiet.is_none_or(|q| q.allow_critical)]; " Critical alerts still go out" }
        }
        label { "Remind of a still-open alert after (minutes; empty: never)"
            input name="remind_minutes" inputmode="numeric" value=(channel.and_then(|c| c.remind_after_secs).map(|s| (s / 60).to_string()).unwrap_or_default());
        }
    }
}

/// A channel error as a page: the admin's mistakes are said, the rest is "unavailable".
fn channel_error(error: ChannelError) -> Result<Response, Refusal> {
    match error {
        ChannelError::NameTaken(_) | ChannelError::Invalid(_) => {
            Ok(layout::refused(&error.to_string()))
        }
        ChannelError::Store(e) => Err(unavailable(e)),
        ChannelError::Internal(detail) => {
            tracing::error!(%detail, "console: could not seal a channel");
            Err(Refusal::Unavailable)
        }
    }
}

/// The channels section of Settings.
pub async fn section(tx: &mut TenantTx, csrf: &str) -> Result<Markup, Refusal> {
    let channels = store::list_channels(tx, &Page::first(500))
        .await
        .map_err(unavailable)?;
    Ok(html! {
        h2 #channels { "Notification channels" }
        @if channels.is_empty() { p.muted { "None yet: alerts are only shown here." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th.wide scope="col" { "Where" }
                    th scope="col" { "Least severity" } th scope="col" { "State" } } }
                tbody { @for c in &channels {
                    tr {
                        td { a href={"/settings/channels/" (c.id)} { (c.name) } }
                        td { (c.scheme) }
                        td.wide { code { (c.target) } }
                        td { (layout::severity(&c.min_severity)) }
                        td { @if c.enabled { "on" } @else { span.badge.warning { "muted" } } }
                    }
                } }
            } }
        }
        form.stack method="post" action="/settings/channels" {
            input type="hidden" name="csrf" value=(csrf);
            label { "New channel's name (letters, digits, - and _)" input name="name" required autocomplete="off"; }
            label { "URL (docs/notifications.md: https://… webhook, ntfy://, gotify://, smtp://, discord://, slack://, telegram://, matrix://)"
                input name="url" required autocomplete="off" spellcheck="false"; }
            (routing_inputs(None))
            button type="submit" { "Add channel" }
        }
    })
}

#[derive(Debug, Deserialize)]
pub struct NewChannelForm {
    csrf: String,
    name: String,
    url: String,
    #[serde(flatten)]
    routing: RoutingFields,
}

pub async fn add(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    form: Result<Form<NewChannelForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Admin)?;
    let routing = match form.routing.to_request() {
        Ok(r) => r,
        Err(why) => return channel_error(ChannelError::Invalid(why)),
    };
    let request = ChannelRequest {
        name: form.name.trim().to_owned(),
        url: form.url.trim().to_owned(),
        min_severity: routing.min_severity,
        kinds: routing.kinds,
        send_recoveries: routing.send_recoveries,
        quiet_hours: routing.quiet_hours,
        remind_after_secs: routing.remind_after_secs,
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let created =
        match create::create_channel(&mut tx, &state.sealer, who.user.tenant_id, &request).await {
            Ok(created) => created,
            Err(error) => return channel_error(error),
        };
    commit(tx, "adding a notification channel").await?;
    tracing::info!(channel = %created.channel.name, by = %who.user.name, "console: channel added");
    match created.secret {
        Some(secret) => {
            settings_page(
                &state,
                &who,
                Some(Shown {
                    title: "The webhook's signing secret (shown once):",
                    value: secret,
                    hint: "The receiver checks X-Unity-Signature with it (docs/notifications.md).",
                }),
            )
            .await
        }
        None => {
            Ok(Redirect::to(&format!("/settings/channels/{}", created.channel.id)).into_response())
        }
    }
}

/// One channel: routing form, test, recent deliveries, removal.
pub async fn show(
    State(state): State<ApiState>,
    who: ConsoleUser,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    who.require(Scope::Admin)?;
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(not_found("channel"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let Some(channel) = store::get_channel(&mut tx, id).await.map_err(unavailable)? else {
        return Ok(not_found("channel"));
    };
    let sent = store::list_notifications(
        &mut tx,
        &NotificationFilter {
            channel_id: Some(id),
            ..NotificationFilter::default()
        },
        &Page::first(50),
    )
    .await
    .map_err(unavailable)?;
    let now = OffsetDateTime::now_utc();
    let csrf = &who.user.csrf_token;
    let action = |verb: &str| format!("/settings/channels/{id}/{verb}");
    let body = html! {
        h1 { "Channel " (channel.name) }
        dl.facts {
            dt { "Kind" } dd { (channel.scheme) }
            dt { "Where" } dd { code { (channel.target) } }
            dt { "Added" } dd { (ago(Some(channel.created_at), now)) }
        }
        div.actions {
            form method="post" action=(action("test")) {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Send a test message" }
            }
            form method="post" action=(action("delete")) {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Remove the channel" }
            }
        }
        h2 { "Routing" }
        form.stack method="post" action=(action("routing")) {
            input type="hidden" name="csrf" value=(csrf);
            label.check { input type="checkbox" name="enabled" checked[channel.enabled]; " On (unchecked: muted, queued messages wait)" }
            (routing_inputs(Some(&channel)))
            button.primary type="submit" { "Save routing" }
        }
        h2 { "Recent messages" }
        @if sent.is_empty() { p.muted { "Nothing sent yet." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Queued" } th scope="col" { "Why" } th scope="col" { "State" }
                    th scope="col" { "Attempts" } th.wide scope="col" { "Last error" } } }
                tbody { @for n in &sent {
                    tr {
                        td { (ago(Some(n.created_at), now)) }
                        td { (n.reason) }
                        td { (state_badge(&n.state)) }
                        td { (n.attempts) }
                        td.wide { (n.last_error.as_deref().unwrap_or("")) }
                    }
                } }
            } }
        }
    };
    Ok(layout::page(&who, Section::Settings, "Channel", body))
}

#[derive(Debug, Deserialize)]
pub struct RoutingForm {
    csrf: String,
    #[serde(flatten)]
    routing: RoutingFields,
}

pub async fn set_routing(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<RoutingForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Admin)?;
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(not_found("channel"));
    };
    let request = match form.routing.to_request() {
        Ok(r) => r,
        Err(why) => return channel_error(ChannelError::Invalid(why)),
    };
    let mut tx = tenant_tx(&state, &who).await?;
    match create::update_routing(&mut tx, id, &request).await {
        Ok(Some(_)) => {
            commit(tx, "changing a channel's routing").await?;
            Ok(Redirect::to(&format!("/settings/channels/{id}")).into_response())
        }
        Ok(None) => Ok(not_found("channel")),
        Err(error) => channel_error(error),
    }
}

/// Test or remove a channel.
pub async fn act(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(session::bad_form)?;
    who.admit(&headers, &form.csrf, Scope::Admin)?;
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(not_found("channel"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    match verb.as_str() {
        "test" => {
            if store::get_channel(&mut tx, id)
                .await
                .map_err(unavailable)?
                .is_none()
            {
                return Ok(not_found("channel"));
            }
            store::insert_test(&mut tx, who.user.tenant_id, id)
                .await
                .map_err(unavailable)?;
            commit(tx, "queueing a test notification").await?;
            Ok(Redirect::to(&format!("/settings/channels/{id}")).into_response())
        }
        "delete" => {
            if !store::delete_channel(&mut tx, id)
                .await
                .map_err(unavailable)?
            {
                return Ok(not_found("channel"));
            }
            commit(tx, "removing a notification channel").await?;
            tracing::info!(channel_id = %id, by = %who.user.name, "console: channel removed");
            Ok(Redirect::to("/settings#channels").into_response())
        }
        _ => Ok(not_found("action")),
    }
}
