//! Adding a channel, for the API and the command line alike: the URL parsed and checked, the
//! routing checked, URL and webhook secret sealed, the row stored.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Sealer, channel, seal_context};
use crate::store::TenantTx;
use crate::store::notify::{self as store, Channel, ChannelError, NewChannel, QuietHours, Routing};
use crate::store::storage::alerts::Severity;

/// `POST /api/v1/channels` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelRequest {
    /// Lower-case letters, digits, `-`, `_`; unique in the tenant.
    pub name: String,
    /// Where to deliver (docs/notifications.md): `https://…` (signed JSON webhook),
    /// `ntfy://[:token@]host/topic`, `gotify://host/APP_TOKEN`, `discord://TOKEN@WEBHOOK_ID`,
    /// `slack://T…/B…/SECRET`, `telegram://BOT_TOKEN@telegram?chats=CHAT_ID`,
    /// `matrix://:ACCESS_TOKEN@homeserver/?rooms=!ROOM_ID:server`,
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

/// `PUT /api/v1/channels/{id}/routing` body: the whole routing, replaced (absent fields take
/// the defaults of a new channel). Read the channel first to change one field.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingRequest {
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
    /// `false` mutes the channel: no new notifications are routed to it and queued ones wait
    /// (default true).
    pub enabled: Option<bool>,
}

impl ChannelRequest {
    fn routing(&self) -> RoutingRequest {
        RoutingRequest {
            min_severity: self.min_severity.clone(),
            kinds: self.kinds.clone(),
            send_recoveries: self.send_recoveries,
            quiet_hours: self.quiet_hours.clone(),
            remind_after_secs: self.remind_after_secs,
            enabled: None,
        }
    }
}

/// The routing of `request`, checked (the time zone against the database's).
async fn check_routing<'a>(
    tx: &mut TenantTx,
    request: &'a RoutingRequest,
) -> Result<Routing<'a>, ChannelError> {
    let invalid = |detail: &str| ChannelError::Invalid(detail.to_owned());
    let min_severity = match request.min_severity.as_deref() {
        None => Severity::Warning,
        Some(word) => word
            .parse()
            .map_err(|e| ChannelError::Invalid(format!("min_severity: {e}")))?,
    };
    if request.kinds.len() > 64 || request.kinds.iter().any(|k| k.is_empty() || k.len() > 64) {
        return Err(invalid("kinds: at most 64 alert kinds of 1-64 characters"));
    }
    if request.remind_after_secs.is_some_and(|s| s < 60) {
        return Err(invalid("remind_after_secs must be at least 60"));
    }
    if let Some(quiet) = &request.quiet_hours {
        let start = crate::clock::parse_hhmm(&quiet.start);
        let end = crate::clock::parse_hhmm(&quiet.end);
        if start.is_none() || end.is_none() || start == end {
            return Err(invalid(
                "quiet_hours start and end are two different HH:MM times",
            ));
        }
        if !crate::store::policies::time_zone_exists(tx, &quiet.timezone).await? {
            return Err(ChannelError::Invalid(format!(
                "quiet_hours timezone `{}` is not a time zone (e.g. Europe/Berlin, UTC)",
                quiet.timezone
            )));
        }
    }
    Ok(Routing {
        min_severity,
        kinds: &request.kinds,
        send_recoveries: request.send_recoveries.unwrap_or(true),
        quiet_hours: request.quiet_hours.as_ref(),
        remind_after_secs: request.remind_after_secs,
        enabled: request.enabled.unwrap_or(true),
    })
}

/// Replaces channel `id`'s routing; `None` when the tenant has no such channel.
pub async fn update_routing(
    tx: &mut TenantTx,
    id: Uuid,
    request: &RoutingRequest,
) -> Result<Option<Channel>, ChannelError> {
    let routing = check_routing(tx, request).await?;
    let channel = store::update_routing(tx, id, &routing).await?;
    if let Some(channel) = &channel {
        tracing::info!(channel = %channel.name, min_severity = %channel.min_severity,
            enabled = channel.enabled, "notification channel routing changed");
    }
    Ok(channel)
}

/// Checks `request`, seals what it holds, stores the channel in `tx` (the caller commits).
pub async fn create_channel(
    tx: &mut TenantTx,
    sealer: &Sealer,
    tenant_id: Uuid,
    request: &ChannelRequest,
) -> Result<CreatedChannel, ChannelError> {
    let invalid = |detail: &str| ChannelError::Invalid(detail.to_owned());
    let target = channel::parse(&request.url).map_err(ChannelError::Invalid)?;
    let name_ok = (1..=63).contains(&request.name.len())
        && request
            .name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && request
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(invalid(
            "name: lower-case letters, digits, - and _, at most 63 characters",
        ));
    }
    let routing_request = request.routing();
    let routing = check_routing(tx, &routing_request).await?;
    let id = Uuid::new_v4();
    let context = seal_context(tenant_id, id);
    let seal = |bytes: &[u8]| {
        sealer
            .seal(bytes, &context)
            .map_err(|e| ChannelError::Internal(e.to_string()))
    };
    let sealed = seal(request.url.trim().as_bytes())?;
    let secret = match target {
        channel::Target::Webhook { .. } => Some(
            sealer
                .new_secret()
                .map_err(|e| ChannelError::Internal(e.to_string()))?,
        ),
        _ => None,
    };
    let secret_sealed = secret.as_deref().map(|s| seal(s.as_bytes())).transpose()?;
    let redacted = target.redacted();
    let channel = store::insert_channel(
        tx,
        &NewChannel {
            id,
            tenant_id,
            name: &request.name,
            scheme: target.scheme(),
            target_sealed: &sealed,
            target_redacted: &redacted,
            secret_sealed: secret_sealed.as_deref(),
            routing,
        },
    )
    .await?;
    tracing::info!(%tenant_id, channel = %channel.name, scheme = %channel.scheme,
        "notification channel added");
    Ok(CreatedChannel { channel, secret })
}
