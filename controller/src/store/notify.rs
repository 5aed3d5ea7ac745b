//! Notification channels and the outbox (migration 0015). A tenant's channels and its
//! notifications are read and written in a [`TenantTx`]; the delivery loop, which serves
//! every tenant, works on the owner's pool and touches only the outbox's delivery columns.

use super::page::{NameKey, NewestKey, Page};
use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::storage::alerts::Severity;
use super::{StoreError, TenantTx, query_error};

/// Quiet hours of a channel, in its time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, local time.
    pub start: String,
    /// `HH:MM`; before `start` means the quiet time spans midnight.
    pub end: String,
    /// An IANA zone (`Europe/Berlin`); default `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Critical alerts go out during quiet hours too (default true).
    #[serde(default = "yes")]
    pub allow_critical: bool,
}

fn utc() -> String {
    "UTC".into()
}

fn yes() -> bool {
    true
}

/// A channel as the API shows it: never its URL or secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Channel {
    pub id: Uuid,
    pub name: String,
    /// `webhook`, `ntfy`, `gotify`, `smtp`, `discord`, `slack`, `telegram` or `matrix`.
    pub scheme: String,
    /// The service and host, credentials and paths left out.
    pub target: String,
    pub min_severity: String,
    /// Alert kinds routed here; empty: all.
    pub kinds: Vec<String>,
    pub send_recoveries: bool,
    pub quiet_hours: Option<QuietHours>,
    pub remind_after_secs: Option<i32>,
    pub enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct ChannelRow {
    id: Uuid,
    name: String,
    scheme: String,
    target_redacted: String,
    min_severity: String,
    kinds: Vec<String>,
    send_recoveries: bool,
    quiet_start: Option<String>,
    quiet_end: Option<String>,
    quiet_timezone: String,
    quiet_allows_critical: bool,
    remind_after_secs: Option<i32>,
    enabled: bool,
    created_at: OffsetDateTime,
}

impl From<ChannelRow> for Channel {
    fn from(r: ChannelRow) -> Self {
        let quiet_hours = match (r.quiet_start, r.quiet_end) {
            (Some(start), Some(end)) => Some(QuietHours {
                start,
                end,
                timezone: r.quiet_timezone,
                allow_critical: r.quiet_allows_critical,
            }),
            _ => None,
        };
        Self {
            id: r.id,
            name: r.name,
            scheme: r.scheme,
            target: r.target_redacted,
            min_severity: r.min_severity,
            kinds: r.kinds,
            send_recoveries: r.send_recoveries,
            quiet_hours,
            remind_after_secs: r.remind_after_secs,
            enabled: r.enabled,
            created_at: r.created_at,
        }
    }
}

/// The listed columns of a channel (a macro: queries are static strings).
macro_rules! channel_columns {
    () => {
        "id, name, scheme, target_redacted, min_severity, kinds, send_recoveries, \
         to_char(quiet_start, 'HH24:MI') AS quiet_start, to_char(quiet_end, 'HH24:MI') AS quiet_end, \
         quiet_timezone, quiet_allows_critical, remind_after_secs, enabled, created_at"
    };
}

/// A channel about to be stored (sealed already).
#[derive(Debug, Clone)]
pub struct NewChannel<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: &'a str,
    pub scheme: &'a str,
    pub target_sealed: &'a [u8],
    pub target_redacted: &'a str,
    pub secret_sealed: Option<&'a [u8]>,
    pub routing: Routing<'a>,
}

/// Which alerts go to a channel and when (checked already).
#[derive(Debug, Clone, Copy)]
pub struct Routing<'a> {
    pub min_severity: Severity,
    pub kinds: &'a [String],
    pub send_recoveries: bool,
    pub quiet_hours: Option<&'a QuietHours>,
    pub remind_after_secs: Option<i32>,
    pub enabled: bool,
}

impl Routing<'_> {
    /// Quiet hours as columns: start, end, zone, whether critical alerts pass.
    fn quiet_columns(&self) -> (Option<&str>, Option<&str>, &str, bool) {
        match self.quiet_hours {
            Some(q) => (
                Some(q.start.as_str()),
                Some(q.end.as_str()),
                q.timezone.as_str(),
                q.allow_critical,
            ),
            None => (None, None, "UTC", true),
        }
    }
}

/// Replaces the routing of channel `id`; the channel as it is now, or `None` when the tenant
/// has no such channel. Notifications already queued keep the routing they were made with.
pub async fn update_routing(
    tx: &mut TenantTx,
    id: Uuid,
    r: &Routing<'_>,
) -> Result<Option<Channel>, ChannelError> {
    let (start, end, zone, allow) = r.quiet_columns();
    let row: Option<ChannelRow> = sqlx::query_as(concat!(
        "UPDATE notification_channels SET min_severity = $2, kinds = $3, send_recoveries = $4, \
             quiet_start = $5::time, quiet_end = $6::time, quiet_timezone = $7, \
             quiet_allows_critical = $8, remind_after_secs = $9, enabled = $10 \
         WHERE id = $1 RETURNING ",
        channel_columns!()
    ))
    .bind(id)
    .bind(r.min_severity.as_str())
    .bind(r.kinds)
    .bind(r.send_recoveries)
    .bind(start)
    .bind(end)
    .bind(zone)
    .bind(allow)
    .bind(r.remind_after_secs)
    .bind(r.enabled)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("changing a channel's routing"))?;
    Ok(row.map(Channel::from))
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("a channel named `{0}` exists already")]
    NameTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot seal the channel: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn insert_channel(
    tx: &mut TenantTx,
    c: &NewChannel<'_>,
) -> Result<Channel, ChannelError> {
    let (start, end, zone, allow) = c.routing.quiet_columns();
    let row: Result<ChannelRow, sqlx::Error> = sqlx::query_as(concat!(
        "INSERT INTO notification_channels (id, tenant_id, name, scheme, target_sealed, \
             target_redacted, secret_sealed, min_severity, kinds, send_recoveries, quiet_start, \
             quiet_end, quiet_timezone, quiet_allows_critical, remind_after_secs, enabled) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::time, $12::time, $13, $14, $15, \
             $16) \
         RETURNING ",
        channel_columns!()
    ))
    .bind(c.id)
    .bind(c.tenant_id)
    .bind(c.name)
    .bind(c.scheme)
    .bind(c.target_sealed)
    .bind(c.target_redacted)
    .bind(c.secret_sealed)
    .bind(c.routing.min_severity.as_str())
    .bind(c.routing.kinds)
    .bind(c.routing.send_recoveries)
    .bind(start)
    .bind(end)
    .bind(zone)
    .bind(allow)
    .bind(c.routing.remind_after_secs)
    .bind(c.routing.enabled)
    .fetch_one(&mut **tx)
    .await;
    match row {
        Ok(row) => Ok(row.into()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(ChannelError::NameTaken(c.name.to_owned()))
        }
        Err(sqlx::Error::Database(e))
            if e.code().as_deref() == Some("22007") || e.code().as_deref() == Some("22008") =>
        {
            Err(ChannelError::Invalid(
                "quiet hours must be HH:MM times".into(),
            ))
        }
        Err(source) => Err(StoreError::Query {
            action: "adding a notification channel",
            source,
        }
        .into()),
    }
}

/// By name.
pub async fn list_channels(
    tx: &mut TenantTx,
    page: &Page<NameKey>,
) -> Result<Vec<Channel>, StoreError> {
    let after = page.after.as_ref();
    let rows: Vec<ChannelRow> = sqlx::query_as(concat!(
        "SELECT ",
        channel_columns!(),
        " FROM notification_channels \
         WHERE ($1::text IS NULL OR (name, id) > ($1, $2)) ORDER BY name, id LIMIT $3"
    ))
    .bind(after.map(|k| &k.0))
    .bind(after.map(|k| k.1))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing notification channels"))?;
    Ok(rows.into_iter().map(Channel::from).collect())
}

pub async fn get_channel(tx: &mut TenantTx, id: Uuid) -> Result<Option<Channel>, StoreError> {
    let row: Option<ChannelRow> = sqlx::query_as(concat!(
        "SELECT ",
        channel_columns!(),
        " FROM notification_channels WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a notification channel"))?;
    Ok(row.map(Channel::from))
}

pub async fn channel_by_name(tx: &mut TenantTx, name: &str) -> Result<Option<Channel>, StoreError> {
    let row: Option<ChannelRow> = sqlx::query_as(concat!(
        "SELECT ",
        channel_columns!(),
        " FROM notification_channels WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a notification channel"))?;
    Ok(row.map(Channel::from))
}

/// Deletes a channel and its notifications; whether there was one.
pub async fn delete_channel(tx: &mut TenantTx, id: Uuid) -> Result<bool, StoreError> {
    let deleted = sqlx::query("DELETE FROM notification_channels WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(query_error("deleting a notification channel"))?;
    Ok(deleted.rows_affected() > 0)
}

/// Queues a test message on a channel.
pub async fn insert_test(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    channel_id: Uuid,
) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO notifications (id, tenant_id, channel_id, reason) VALUES ($1, $2, $3, 'test')",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(channel_id)
    .execute(&mut **tx)
    .await
    .map_err(query_error("queueing a test notification"))?;
    Ok(id)
}

/// One line of `GET /api/v1/notifications`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub alert_id: Option<Uuid>,
    /// `alert`, `recovery`, `reminder` or `test`.
    pub reason: String,
    /// `pending`, `sending`, `delivered` or `dead` (gave up; `POST …/retry` queues it again).
    pub state: String,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub channel_id: Option<Uuid>,
    pub alert_id: Option<Uuid>,
    pub state: Option<String>,
}

/// Newest first.
pub async fn list_notifications(
    tx: &mut TenantTx,
    f: &NotificationFilter,
    page: &Page<NewestKey>,
) -> Result<Vec<Notification>, StoreError> {
    let after = page.after.as_ref();
    sqlx::query_as(
        "SELECT id, channel_id, alert_id, reason, state, attempts, next_attempt_at, last_error, \
             created_at, delivered_at \
         FROM notifications \
         WHERE ($1::uuid IS NULL OR channel_id = $1) AND ($2::uuid IS NULL OR alert_id = $2) \
           AND ($3::text IS NULL OR state = $3) \
           AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
         ORDER BY created_at DESC, id DESC LIMIT $6",
    )
    .bind(f.channel_id)
    .bind(f.alert_id)
    .bind(&f.state)
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| k.1))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing notifications"))
}

pub async fn get_notification(
    tx: &mut TenantTx,
    id: Uuid,
) -> Result<Option<Notification>, StoreError> {
    sqlx::query_as(
        "SELECT id, channel_id, alert_id, reason, state, attempts, next_attempt_at, last_error, \
             created_at, delivered_at FROM notifications WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a notification"))
}

/// A dead notification is queued again from its first attempt; whether it was dead.
pub async fn retry(tx: &mut TenantTx, id: Uuid) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE notifications SET state = 'pending', attempts = 0, next_attempt_at = now(), \
             last_error = NULL WHERE id = $1 AND state = 'dead'",
    )
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(query_error("retrying a notification"))?;
    Ok(updated.rows_affected() > 0)
}

// --- The delivery loop (every tenant, the owner's pool) -----------------------------------

/// A notification claimed for one attempt, with what rendering needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub tenant: String,
    pub channel_id: Uuid,
    pub channel: String,
    pub target_sealed: Vec<u8>,
    pub secret_sealed: Option<Vec<u8>>,
    pub reason: String,
    /// Including this one.
    pub attempts: i32,
    pub alert_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
    pub hostname: Option<String>,
    pub object_kind: Option<String>,
    pub object_name: Option<String>,
    pub kind: Option<String>,
    pub previous: Option<String>,
    pub current: Option<String>,
    pub severity: Option<String>,
    pub message: Option<String>,
    pub observed_at: Option<OffsetDateTime>,
    pub raised_at: Option<OffsetDateTime>,
}

/// Attempts left `sending` longer than `lease` (their controller died mid-send) are due again.
pub async fn requeue_stale(pool: &PgPool, lease_secs: f64) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE notifications SET state = 'pending', next_attempt_at = now(), sending_since = NULL \
         WHERE state = 'sending' AND sending_since < now() - make_interval(secs => $1)",
    )
    .bind(lease_secs)
    .execute(pool)
    .await
    .map_err(query_error("requeueing interrupted notifications"))?;
    Ok(done.rows_affected())
}

/// The condition under which notification `n` of channel `c` (about alert `a`, if any) is held
/// now by the channel's quiet hours: a test is never held, and a critical alert (not its
/// recovery) passes when the channel lets critical ones through. One text for both the
/// statement that postpones and the claim, so a notification created between the two is
/// held all the same. The window itself is `unity_in_quiet_hours` (migration 0023).
macro_rules! held_by_quiet_hours {
    () => {
        "(c.quiet_start IS NOT NULL AND n.reason <> 'test' \
          AND NOT (c.quiet_allows_critical AND COALESCE(a.severity = 'critical', false) \
                   AND n.reason <> 'recovery') \
          AND unity_in_quiet_hours(c.quiet_start, c.quiet_end, c.quiet_timezone, now()))"
    };
}

/// Due notifications of channels now in their quiet hours wait for the end of them
/// (critical alerts too, unless the channel lets them through; tests never wait). This only
/// says when they will go; [`claim`] refuses them by the same condition whether or not this
/// has run since they were created.
pub async fn postpone_quiet(pool: &PgPool) -> Result<u64, StoreError> {
    let done = sqlx::query(concat!(
        "WITH local AS ( \
             SELECT n.id, c.quiet_end AS qe, (now() AT TIME ZONE c.quiet_timezone)::time AS t \
             FROM notifications n \
             JOIN notification_channels c ON c.id = n.channel_id \
             LEFT JOIN alerts a ON a.id = n.alert_id \
             WHERE n.state = 'pending' AND n.next_attempt_at <= now() AND ",
        held_by_quiet_hours!(),
        ") \
         UPDATE notifications n \
         SET next_attempt_at = now() + CASE WHEN l.qe > l.t THEN l.qe - l.t \
                                            ELSE l.qe - l.t + interval '24 hours' END \
         FROM local l \
         WHERE n.id = l.id"
    ))
    .execute(pool)
    .await
    .map_err(query_error("holding notifications for quiet hours"))?;
    Ok(done.rows_affected())
}

/// Claims up to `limit` due notifications for one attempt each (`sending`). Replicas claim
/// disjoint sets (`SKIP LOCKED`).
pub async fn claim(pool: &PgPool, limit: i64) -> Result<Vec<Claimed>, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(query_error("opening a transaction"))?;
    let mut claimed: Vec<Claimed> = sqlx::query_as(concat!(
        "SELECT n.id, n.tenant_id, t.name AS tenant, n.channel_id, c.name AS channel, \
             c.target_sealed, c.secret_sealed, n.reason, n.attempts, \
             a.id AS alert_id, a.host_id, h.hostname, a.object_kind, a.object_name, a.kind, \
             a.previous, a.current, a.severity, a.message, a.observed_at, a.raised_at \
         FROM notifications n \
         JOIN notification_channels c ON c.id = n.channel_id \
         JOIN tenants t ON t.id = n.tenant_id \
         LEFT JOIN alerts a ON a.id = n.alert_id \
         LEFT JOIN hosts h ON h.id = a.host_id \
         WHERE n.state = 'pending' AND n.next_attempt_at <= now() AND c.enabled \
           AND NOT ",
        held_by_quiet_hours!(),
        " \
         ORDER BY n.next_attempt_at \
         LIMIT $1 \
         FOR UPDATE OF n SKIP LOCKED"
    ))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(query_error("claiming notifications"))?;
    let ids: Vec<Uuid> = claimed.iter().map(|c| c.id).collect();
    sqlx::query(
        "UPDATE notifications SET state = 'sending', sending_since = now(), \
             attempts = attempts + 1 WHERE id = ANY($1)",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await
    .map_err(query_error("claiming notifications"))?;
    tx.commit()
        .await
        .map_err(query_error("claiming notifications"))?;
    for c in &mut claimed {
        c.attempts += 1;
    }
    Ok(claimed)
}

pub async fn delivered(pool: &PgPool, id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE notifications SET state = 'delivered', delivered_at = now(), \
             sending_since = NULL, last_error = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await
    .map_err(query_error("recording a delivery"))?;
    Ok(())
}

/// A failed attempt: due again at `retry_at`, or dead when `None`.
pub async fn attempt_failed(
    pool: &PgPool,
    id: Uuid,
    error: &str,
    retry_at: Option<OffsetDateTime>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE notifications SET state = CASE WHEN $3::timestamptz IS NULL THEN 'dead' \
                                           ELSE 'pending' END, \
             next_attempt_at = coalesce($3, next_attempt_at), sending_since = NULL, \
             last_error = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(retry_at)
    .execute(pool)
    .await
    .map_err(query_error("recording a failed delivery"))?;
    Ok(())
}

/// Queues a reminder for every alert still open (no later alert of the same object and kind)
/// that a channel with reminders was told about, and not reminded of within its interval.
pub async fn enqueue_reminders(pool: &PgPool) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "INSERT INTO notifications (id, tenant_id, channel_id, alert_id, reason) \
         SELECT gen_random_uuid(), c.tenant_id, c.id, a.id, 'reminder' \
         FROM notification_channels c \
         JOIN notifications first ON first.channel_id = c.id AND first.reason = 'alert' \
         JOIN alerts a ON a.id = first.alert_id \
         WHERE c.enabled AND c.remind_after_secs IS NOT NULL AND a.severity <> 'info' \
           AND a.acknowledged_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM alerts later \
                 WHERE later.host_id = a.host_id AND later.object_kind = a.object_kind \
                   AND later.kind = a.kind \
                   AND ((a.object_id IS NOT NULL AND later.object_id = a.object_id) \
                        OR (a.object_id IS NULL AND later.object_id IS NULL \
                            AND later.object_name = a.object_name)) \
                   AND (later.raised_at, later.id) > (a.raised_at, a.id)) \
           AND NOT EXISTS (SELECT 1 FROM notifications r \
                 WHERE r.channel_id = c.id AND r.alert_id = a.id \
                   AND r.created_at > now() - make_interval(secs => c.remind_after_secs))",
    )
    .execute(pool)
    .await
    .map_err(query_error("queueing reminders"))?;
    Ok(done.rows_affected())
}
