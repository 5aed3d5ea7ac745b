//! `/api/v1/channels` (where a tenant's alerts go) and `/api/v1/notifications` (the outbox:
//! what was sent, what waits, what gave up). Channels hold credentials: creating, deleting and
//! testing them needs the `admin` scope, and no response ever carries a channel's URL — the
//! webhook secret is shown once, in the creation's answer.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::Uri;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::page::{PageQuery, Paged};
use super::storage::query;
use super::{ApiError, ApiState, ErrorBody, TenantAuth, commit, parse_id};
use crate::auth::Scope;
use crate::notify::create::{self, ChannelRequest, CreatedChannel};
use crate::store::notify::{
    self as store, Channel, ChannelError, Notification, NotificationFilter,
};

impl From<ChannelError> for ApiError {
    fn from(error: ChannelError) -> Self {
        match error {
            ChannelError::NameTaken(_) => ApiError::Conflict(error.to_string()),
            ChannelError::Invalid(detail) => ApiError::BadRequest(detail),
            ChannelError::Store(e) => ApiError::Store(e),
            ChannelError::Internal(detail) => {
                tracing::error!(%detail, "could not seal a channel");
                ApiError::Internal
            }
        }
    }
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
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let created = create::create_channel(&mut tx, &state.sealer, auth.tenant_id, &request).await?;
    commit(tx, "adding a notification channel").await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The tenant's notification channels (never their URLs).
#[utoipa::path(
    get, path = "/api/v1/channels", tag = "notifications",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Channels", body = [Channel],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_channels(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Paged<Channel>, ApiError> {
    let page = query(q)?.page()?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = store::list_channels(&mut tx, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |c| (c.name.clone(), c.id)))
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

/// Replace a channel's routing (scope `admin`): severities, kinds, recoveries, quiet hours,
/// reminders, muted or not. Its URL and secret stay; notifications already queued keep the
/// routing they were made with.
#[utoipa::path(
    put, path = "/api/v1/channels/{id}/routing", tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Channel id")),
    request_body = create::RoutingRequest,
    responses(
        (status = 200, description = "The channel with its new routing", body = Channel),
        (status = 400, description = "Invalid routing", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such channel in this tenant", body = ErrorBody),
    )
)]
pub async fn put_routing(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
    body: Result<Json<create::RoutingRequest>, JsonRejection>,
) -> Result<Json<Channel>, ApiError> {
    auth.require(Scope::Admin)?;
    let id = parse_id(&id, "channel")?;
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let channel = create::update_routing(&mut tx, id, &request)
        .await?
        .ok_or(ApiError::NotFound("channel"))?;
    commit(tx, "changing a channel's routing").await?;
    Ok(Json(channel))
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
    /// Rows on the page, newest first (1-1000, default 100).
    limit: Option<String>,
    /// Where the page starts: the `cursor` of the previous page's `Link: rel="next"`.
    cursor: Option<String>,
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
        (status = 200, description = "Notifications, newest first", body = [Notification],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_notifications(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<NotificationQuery>, QueryRejection>,
) -> Result<Paged<Notification>, ApiError> {
    let q = query(q)?;
    if let Some(s) = q.state.as_deref()
        && !["pending", "sending", "delivered", "dead"].contains(&s)
    {
        return Err(ApiError::BadRequest(format!(
            "state `{s}` is not one of pending, sending, delivered, dead"
        )));
    }
    let page = super::page::page(q.limit.as_deref(), q.cursor.as_deref())?;
    let filter = NotificationFilter {
        channel_id: uuid_filter(q.channel_id.as_deref(), "channel_id")?,
        alert_id: uuid_filter(q.alert_id.as_deref(), "alert_id")?,
        state: q.state,
    };
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = store::list_notifications(&mut tx, &filter, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |n| (n.created_at, n.id)))
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
