//! The delivery loop. Every replica runs one; they share the outbox through `SKIP LOCKED`
//! claims, so each attempt is made by one of them. An attempt is `sending` while it runs; a
//! controller that dies mid-send leaves it so, and after a lease it is made again — the
//! receiver sees the same delivery id (`X-Unity-Delivery`, the email's `Message-ID`) and can
//! drop the repeat. That is the only way a message can arrive twice, and only when the
//! controller died between the service's answer and the commit.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use time::OffsetDateTime;

use super::channel;
use super::message::{AlertView, Notice, Reason, render};
use super::send::{SendError, Sender};
use super::{Sealer, seal_context};
use crate::store::Store;
use crate::store::notify::{self as store, Claimed};
use crate::store::storage::alerts::Severity;

/// How deliveries are retried (docs/notifications.md).
#[derive(Debug, Clone, Copy)]
pub struct NotifySettings {
    /// The first retry waits about this long; each further one twice as long…
    pub retry_base: Duration,
    /// …up to this.
    pub retry_max: Duration,
    /// After this many failed attempts the notification is `dead`.
    pub max_attempts: u32,
    /// One attempt's time limit (connect, TLS, request, answer).
    pub timeout: Duration,
    /// How long an attempt may stay `sending` before it is made again.
    pub lease: Duration,
    /// How often the outbox is looked at without a wake-up.
    pub poll: Duration,
    /// How often reminders are looked for.
    pub reminders_every: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        // 25 attempts: 5 s, 10 s, 20 s … capped at 15 min — about 4½ hours of trying (a
        // receiver down for an hour loses nothing) before a notification is dead.
        Self {
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(15 * 60),
            max_attempts: 25,
            timeout: Duration::from_secs(15),
            lease: Duration::from_secs(120),
            poll: Duration::from_secs(2),
            reminders_every: Duration::from_secs(60),
        }
    }
}

/// When attempt `attempts + 1` is made, `unit` in [0, 1) being the jitter: full jitter over
/// the upper half of the exponential delay, so a fleet's worth of retries spreads out.
pub fn retry_delay(settings: &NotifySettings, attempts: u32, unit: f64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let delay = settings
        .retry_base
        .saturating_mul(1u32 << exponent)
        .min(settings.retry_max);
    delay.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs the delivery loop and the reminder sweep until the task is dropped.
pub async fn run_forever(
    store: Store,
    sealer: Arc<Sealer>,
    sender: Sender,
    settings: NotifySettings,
) {
    let wake = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(listen(store.clone(), wake.clone()));
    let mut reminders = tokio::time::interval(settings.reminders_every);
    reminders.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(settings.poll) => {}
            _ = reminders.tick() => {
                match store::enqueue_reminders(store.admin()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(reminders = n, "reminders queued for open alerts"),
                    Err(error) => tracing::warn!(error = %crate::error_chain(&error),
                        "could not look for reminders"),
                }
            }
        }
        if let Err(error) = round(&store, &sealer, &sender, &settings).await {
            tracing::warn!(error = %crate::error_chain(&error),
                "notification round failed; retrying");
        }
    }
}

/// Wakes the loop when a notification is inserted (any replica's).
async fn listen(store: Store, wake: Arc<tokio::sync::Notify>) {
    loop {
        let listened = async {
            let mut listener = PgListener::connect_with(store.app()).await?;
            listener.listen("unity_notifications").await?;
            loop {
                listener.recv().await?;
                wake.notify_one();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        }
        .await;
        if let Err(error) = listened {
            tracing::debug!(%error, "notification listener lost; polling meanwhile");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Claims what is due and attempts each, concurrently (a hanging receiver delays only its
/// own notifications, by at most the timeout).
async fn round(
    store: &Store,
    sealer: &Arc<Sealer>,
    sender: &Sender,
    settings: &NotifySettings,
) -> Result<(), crate::store::StoreError> {
    let pool = store.admin();
    store::requeue_stale(pool, settings.lease.as_secs_f64()).await?;
    store::postpone_quiet(pool).await?;
    loop {
        let claimed = store::claim(pool, 32).await?;
        if claimed.is_empty() {
            return Ok(());
        }
        let mut attempts = tokio::task::JoinSet::new();
        for c in claimed {
            let (pool, sealer, sender, settings) =
                (pool.clone(), sealer.clone(), sender.clone(), *settings);
            attempts.spawn(async move { attempt(&pool, &sealer, &sender, &settings, c).await });
        }
        while let Some(done) = attempts.join_next().await {
            if let Ok(Err(error)) = done {
                tracing::warn!(error = %crate::error_chain(&error), "could not record a delivery");
            }
        }
    }
}

/// The alert's severity word read back. The column's CHECK allows only [`Severity`]'s words,
/// so another word means a newer controller wrote it: logged, and sent as critical rather
/// than risk under-reporting it.
fn severity_of(c: &Claimed) -> Severity {
    let word = c.severity.as_deref().unwrap_or_default();
    word.parse().unwrap_or_else(|error| {
        tracing::warn!(notification = %c.id, %error, "alert severity unreadable; sending it as critical");
        Severity::Critical
    })
}

fn notice(c: &Claimed, reason: Reason) -> Notice {
    let alert = match (c.alert_id, c.host_id) {
        (Some(id), Some(host_id)) => Some(AlertView {
            id,
            host_id,
            hostname: c.hostname.clone().unwrap_or_default(),
            object_kind: c.object_kind.clone().unwrap_or_default(),
            object_name: c.object_name.clone().unwrap_or_default(),
            kind: c.kind.clone().unwrap_or_default(),
            previous: c.previous.clone(),
            current: c.current.clone().unwrap_or_default(),
            severity: severity_of(c),
            message: c.message.clone().unwrap_or_default(),
            observed_at: c.observed_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            raised_at: c.raised_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }),
        _ => None,
    };
    Notice {
        id: c.id,
        reason,
        tenant: c.tenant.clone(),
        channel: c.channel.clone(),
        alert,
    }
}

async fn attempt(
    pool: &sqlx::PgPool,
    sealer: &Sealer,
    sender: &Sender,
    settings: &NotifySettings,
    c: Claimed,
) -> Result<(), crate::store::StoreError> {
    let context = seal_context(c.tenant_id, c.channel_id);
    let prepared = sealer
        .open(&c.target_sealed, &context)
        .map_err(|e| SendError::Permanent(e.to_string()))
        .and_then(|url| {
            channel::parse(&String::from_utf8_lossy(&url)).map_err(SendError::Permanent)
        })
        .and_then(|target| {
            let secret = match &c.secret_sealed {
                Some(sealed) => sealer
                    .open(sealed, &context)
                    .map_err(|e| SendError::Permanent(e.to_string()))?,
                None => Vec::new(),
            };
            Ok((target, secret))
        });
    // The column's CHECK constraint holds exactly Reason's words; a row from a newer
    // controller mid-upgrade is still worth delivering, as an alert.
    let reason = c.reason.parse().unwrap_or_else(|e| {
        tracing::warn!(notification = %c.id, error = %e, "unknown reason; delivering as an alert");
        Reason::Alert
    });
    let scheme = prepared
        .as_ref()
        .map(|(target, _)| target.scheme())
        .unwrap_or("unknown");
    let count = |outcome: &str| {
        if let Some(m) = crate::metrics::get() {
            m.notification_attempts
                .with_label_values(&[scheme, outcome])
                .inc();
        }
    };
    let result = match prepared {
        Ok((target, secret)) => {
            let delivery = render(
                &notice(&c, reason),
                &target,
                &secret,
                OffsetDateTime::now_utc(),
            );
            sender.send(delivery).await
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => {
            count("delivered");
            tracing::info!(notification = %c.id, tenant_id = %c.tenant_id, channel = %c.channel,
                reason = %c.reason, attempts = c.attempts, "notification delivered");
            store::delivered(pool, c.id).await
        }
        Err(error) => {
            let attempts = u32::try_from(c.attempts).unwrap_or(u32::MAX);
            let retry_at = match &error {
                SendError::Retry(_) if attempts < settings.max_attempts => {
                    Some(OffsetDateTime::now_utc() + retry_delay(settings, attempts, random_unit()))
                }
                _ => None,
            };
            count(if retry_at.is_some() { "retry" } else { "dead" });
            match retry_at {
                Some(at) => tracing::warn!(notification = %c.id, tenant_id = %c.tenant_id,
                    channel = %c.channel, attempts, %error, retry_at = %at,
                    "notification not delivered; will retry"),
                None => tracing::error!(notification = %c.id, tenant_id = %c.tenant_id,
                    channel = %c.channel, attempts, %error,
                    "notification not delivered; giving up (dead: see GET /api/v1/notifications?state=dead)"),
            }
            store::attempt_failed(pool, c.id, &error.to_string(), retry_at).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_cap() {
        let s = NotifySettings::default();
        assert_eq!(retry_delay(&s, 1, 1.0), Duration::from_secs(5));
        assert_eq!(retry_delay(&s, 1, 0.0), Duration::from_millis(2500));
        assert_eq!(retry_delay(&s, 3, 1.0), Duration::from_secs(20));
        assert_eq!(retry_delay(&s, 20, 1.0), Duration::from_secs(900));
        assert_eq!(retry_delay(&s, u32::MAX, 1.0), Duration::from_secs(900));
        // The whole schedule outlasts an hour's outage by far.
        let total: Duration = (1..s.max_attempts).map(|a| retry_delay(&s, a, 0.0)).sum();
        assert!(total > Duration::from_secs(2 * 3600), "{total:?}");
    }
}
