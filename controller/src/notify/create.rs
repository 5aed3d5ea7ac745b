//! Adding a channel, for the API and the command line alike: the URL parsed and checked, the
//! routing checked, URL and webhook secret sealed, the row stored.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Sealer, channel, seal_context};
use crate::store::TenantTx;
use crate::store::notify::{self as store, Channel, ChannelError, NewChannel, QuietHours};

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

/// Checks `request`, seals what it holds, stores the channel in `tx` (the caller commits).
pub async fn create_channel(
    tx: &mut TenantTx,
    sealer: &Sealer,
    tenant_id: Uuid,
    request: &ChannelRequest,
) -> Result<CreatedChannel, ChannelError> {
    let invalid = |detail: &str| ChannelError::Invalid(detail.to_owned());
    let target = channel::parse(&request.url).map_err(ChannelError::Invalid)?;
    let min_severity = request.min_severity.as_deref().unwrap_or("warning");
    if !SEVERITIES.contains(&min_severity) {
        return Err(ChannelError::Invalid(format!(
            "min_severity `{min_severity}` is not one of info, warning, critical"
        )));
    }
    if request.kinds.len() > 64 || request.kinds.iter().any(|k| k.is_empty() || k.len() > 64) {
        return Err(invalid("kinds: at most 64 alert kinds of 1-64 characters"));
    }
    if request.remind_after_secs.is_some_and(|s| s < 60) {
        return Err(invalid("remind_after_secs must be at least 60"));
    }
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
    if let Some(quiet) = &request.quiet_hours {
        if !valid_time(&quiet.start) || !valid_time(&quiet.end) || quiet.start == quiet.end {
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
            min_severity,
            kinds: &request.kinds,
            send_recoveries: request.send_recoveries.unwrap_or(true),
            quiet_hours: request.quiet_hours.as_ref(),
            remind_after_secs: request.remind_after_secs,
        },
    )
    .await?;
    tracing::info!(%tenant_id, channel = %channel.name, scheme = %channel.scheme,
        "notification channel added");
    Ok(CreatedChannel { channel, secret })
}
