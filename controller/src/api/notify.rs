//! `/api/v1/channels` (where a tenant's alerts go) and `/api/v1/notifications` (the outbox:
//! what was sent, what waits, what gave up). Channels hold credentials: creating, deleting and
//! testing them needs the `admin` scope, and no response ever carries a channel's URL — the
//! webhook secret is shown once, in the creation's answer.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::storage::query;
use super::{ApiError, ApiState, ErrorBody, TenantAuth, commit, parse_id};
use crate::auth::Scope;
use crate::notify::{channel, seal_context};
use crate::store::notify::{
    self as store, Channel, ChannelError, NewChannel, Notification, NotificationFilter, QuietHours,
};

/// `POST /api/v1/channels` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelRequest {
    /// Lower-case letters, digits, `-`, `_`; unique in the tenant.
    pub name: String,
    /// Where to deliver (docs/notifications.md): `https://…` (signed JSON webhook),
    /// `ntfy://[:token@]host/topic`, `gotify://host/APP_TOKEN`, `discord://TOKEN@WEBHOOK_ID`,
    /// `slack://T…/B…/SECRET`, `telegram://BOT_TOKEN@telegram?chats=CHAT_ID`,
    /// `smtp://[user:password@]host[:port]/?from=…&to=…[&tls=starttls|tls|none]`, `smtps://…`.
    pub url: String,
    /// Least severity routed here: `info`, `warning` (default) or `critical`.
    pub min_severity: Option<String>,
    /// Only these alert kinds (default: all).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Send the recovery of an alert this channel was told about (default true).
    pub send_recoveries: Option<bool>,
    pub quiet_hours: Option<QuietHours>,
    /// Remind of an alert still open after this many seconds, and every as many (≥ 60).
    pub remind_after_secs: Option<i32>,
}

/// The answer to a creation: the channel, and for a webhook its HMAC secret — shown now and
/// never again.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedChannel {
    #[serde(flatten)]
    pub channel: Channel,
    pub secret: Option<String>,
}

impl From<ChannelError> for ApiError {
    fn from(error: ChannelError) -> Self {
        match error {
            ChannelError::NameTaken(_) => ApiError::Conflict(error.to_string()),
            ChannelError::Invalid(detail) => ApiError::BadRequest(detail),
            ChannelError::Store(e) => ApiError::Store(e),
        }
    }
}

const SEVERITIES: &[&str] = &["info", "warning", "critical"];

fn valid_time(text: &str) -> bool {
    let Some((h, m)) = text.split_once(':') else {
        return false;
    };
    h.len() == 2
        && m.len() == 2
        && h.parse::<u8>().is_ok_and(|h| h < 24)
        && m.parse::<u8>().is_ok_and(|m| m < 60)
}

/// Add a notification channel.
#[utoipa::path(
    post, path = "/api/v1/channels", tag = "notifications",
    security(("bearer" = [])),
    request_body = ChannelRequest,
    responses(
        (status = 201, description = "Created; `secret` is shown only now", body = CreatedChannel),
        (status = 400, description = "Invalid URL or routing", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 409, description = "A channel of that name exists", body = ErrorBody),
    )
)]
pub async fn create_channel(
    State(state): State<ApiState>,
    auth: TenantAuth,
    body: Result<Json<ChannelRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedChannel>), ApiError> {
    auth.require(Scope::Admin)?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let target = channel::parse(&request.url).map_err(ApiError::BadRequest)?;
    let min_severity = request.min_severity.as_deref().unwrap_or("warning");
    if !SEVERITIES.contains(&min_severity) {
        return Err(ApiError::BadRequest(format!(
            "min_severity `{min_severity}` is not one of info, warning, critical"
        )));
    }
    if request.kinds.len() > 64 || request.kinds.iter().any(|k| k.is_empty() || k.len() > 64) {
        return Err(ApiError::BadRequest(
            "kinds: at most 64 alert kinds of 1-64 characters".into(),
        ));
    }
    if request.remind_after_secs.is_some_and(|s| s < 60) {
        return Err(ApiError::BadRequest(
            "remind_after_secs must be at least 60".into(),
        ));
    }
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if let Some(quiet) = &request.quiet_hours {
        if !valid_time(&quiet.start) || !valid_time(&quiet.end) || quiet.start == quiet.end {
            return Err(ApiError::BadRequest(
                "quiet_hours start and end are two different HH:MM times".into(),
            ));
        }
        if !store::valid_timezone(&mut tx, &quiet.timezone).await? {
            return Err(ApiError::BadRequest(format!(
                "quiet_hours timezone `{}` is not a time zone (e.g. Europe/Berlin, UTC)",
                quiet.timezone
            )));
        }
    }
    let id = Uuid::new_v4();
    let context = seal_context(auth.tenant_id, id);
    let sealed = state
        .sealer
        .seal(request.url.trim().as_bytes(), &context)
        .map_err(|_| ApiError::Internal)?;
    let secret = match target {
        channel::Target::Webhook { .. } => {
            Some(state.sealer.new_secret().map_err(|_| ApiError::Internal)?)
        }
        _ => None,
    };
    let secret_sealed = match &secret {
        Some(secret) => Some(
            state
                .sealer
                .seal(secret.as_bytes(), &context)
                .map_err(|_| ApiError::Internal)?,
        ),
        None => None,
    };
    let redacted = target.redacted();
    let channel = store::insert_channel(
        &mut tx,
        &NewChannel {
            id,
            tenant_id: auth.tenant_id,
            name: &request.name,
            scheme: target.scheme(),
            target_sealed: &sealed,
            target_redacted: &redacted,
            secret_sealed: secret_sealed.as_deref(),
            min_severity,
            kinds: &request.kinds,
            send_recoveries: request.send_recoveries.unwrap_or(true),
            quiet_hours: request.quiet_hours.as_ref(),
            remind_after_secs: request.remind_after_secs,
        },
    )
    .await
    .map_err(|e| match e {
        // The table's name rule.
        ChannelError::Store(crate::store::StoreError::Query { source, .. })
            if source
                .as_database_error()
                .is_some_and(|d| d.is_check_violation()) =>
        {
            ApiError::BadRequest(
                "name: lower-case letters, digits, - and _, at most 63 characters".into(),
            )
        }
        other => other.into(),
    })?;
    commit(tx, "adding a notification channel").await?;
    tracing::info!(tenant_id = %auth.tenant_id, channel = %channel.name, scheme = %channel.scheme,
        "notification channel added");
    Ok((
        StatusCode::CREATED,
        Json(CreatedChannel { channel, secret }),
    ))
}

/// The tenant's notification channels (never their URLs).
#[utoipa::path(
    get, path = "/api/v1/channels", tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Channels", body = [Channel]),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_channels(
    State(state): State<ApiState>,
    auth: TenantAuth,
) -> Result<Json<Vec<Channel>>, ApiError> {
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    Ok(Json(store::list_channels(&mut tx).await?))
}

#[utoipa::path(
    get, path = "/api/v1/channels/{id}", tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Channel id")),
    responses(
        (status = 200, description = "The channel", body = Channel),
        (status = 404, description = "No such channel in this tenant", body = ErrorBody),
    )
)]
pub async fn get_channel(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<Channel>, ApiError> {
    let id = parse_id(&id, "channel")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    store::get_channel(&mut tx, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("channel"))
}

/// Remove a channel and its notifications.
#[utoipa::path(
    delete, path = "/api/v1/channels/{id}", tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Channel id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such channel in this tenant", body = ErrorBody),
    )
)]
pub async fn delete_channel(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Scope::Admin)?;
    let id = parse_id(&id, "channel")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if !store::delete_channel(&mut tx, id).await? {
        return Err(ApiError::NotFound("channel"));
    }
    commit(tx, "removing a notification channel").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The id of a queued notification.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Queued {
    pub notification_id: Uuid,
}

/// Send a test message through a channel now (quiet hours do not hold it); follow it at
/// `GET /api/v1/notifications/{notification_id}`.
#[utoipa::path(
    post, path = "/api/v1/channels/{id}/test", tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Channel id")),
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such channel in this tenant", body = ErrorBody),
    )
)]
pub async fn test_channel(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    auth.require(Scope::Admin)?;
    let id = parse_id(&id, "channel")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if store::get_channel(&mut tx, id).await?.is_none() {
        return Err(ApiError::NotFound("channel"));
    }
    let notification_id = store::insert_test(&mut tx, auth.tenant_id, id).await?;
    commit(tx, "queueing a test notification").await?;
    Ok((StatusCode::ACCEPTED, Json(Queued { notification_id })))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    /// Only this channel's (uuid).
    channel_id: Option<String>,
    /// Only this alert's (uuid).
    alert_id: Option<String>,
    /// `pending`, `sending`, `delivered` or `dead`.
    state: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<String>,
}

fn uuid_filter(raw: Option<&str>, what: &str) -> Result<Option<Uuid>, ApiError> {
    raw.map(|raw| {
        Uuid::try_parse(raw)
            .map_err(|_| ApiError::BadRequest(format!("{what} `{raw}` is not a uuid")))
    })
    .transpose()
}

/// The outbox: every notification, its attempts and last error.
#[utoipa::path(
    get, path = "/api/v1/notifications", tag = "notifications",
    security(("bearer" = [])),
    params(NotificationQuery),
    responses(
        (status = 200, description = "Notifications", body = [Notification]),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_notifications(
    State(state): State<ApiState>,
    auth: TenantAuth,
    q: Result<Query<NotificationQuery>, QueryRejection>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let q = query(q)?;
    if let Some(s) = q.state.as_deref()
        && !["pending", "sending", "delivered", "dead"].contains(&s)
    {
        return Err(ApiError::BadRequest(format!(
            "state `{s}` is not one of pending, sending, delivered, dead"
        )));
    }
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit `{raw}` is not a number from 1 to 1000"))
            })?,
    };
    let filter = NotificationFilter {
        channel_id: uuid_filter(q.channel_id.as_deref(), "channel_id")?,
        alert_id: uuid_filter(q.alert_id.as_deref(), "alert_id")?,
        state: q.state,
        limit,
    };
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    Ok(Json(store::list_notifications(&mut tx, &filter).await?))
}

#[utoipa::path(
    get, path = "/api/v1/notifications/{id}", tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Notification id")),
    responses(
        (status = 200, description = "The notification", body = Notification),
        (status = 404, description = "No such notification in this tenant", body = ErrorBody),
    )
)]
pub async fn get_notification(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<Notification>, ApiError> {
    let id = parse_id(&id, "notification")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    store::get_notification(&mut tx, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("notification"))
}

/// Queue a dead notification again, from its first attempt (after fixing its channel).
#[utoipa::path(
    post, path = "/api/v1/notifications/{id}/retry", tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Notification id")),
    responses(
        (status = 202, description = "Queued again", body = Notification),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such notification in this tenant", body = ErrorBody),
        (status = 409, description = "The notification is not dead", body = ErrorBody),
    )
)]
pub async fn retry_notification(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Notification>), ApiError> {
    auth.require(Scope::Admin)?;
    let id = parse_id(&id, "notification")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    if store::get_notification(&mut tx, id).await?.is_none() {
        return Err(ApiError::NotFound("notification"));
    }
    if !store::retry(&mut tx, id).await? {
        return Err(ApiError::Conflict(
            "only a dead notification can be retried".into(),
        ));
    }
    let notification = store::get_notification(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("notification"))?;
    commit(tx, "retrying a notification").await?;
    Ok((StatusCode::ACCEPTED, Json(notification)))
}
