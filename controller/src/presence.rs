//! Hosts that stopped reporting: the alert homelab operators miss most (a dead NAS tells
//! no one). A sweep marks active hosts not seen for `silent_after` and raises `host_silent`
//! once; the host's next check-in (`link::session`) clears it with a recovery alert.
//!
//! `silent_after` defaults to three report intervals but at least 5 minutes, so an agent
//! restart or a quick reboot stays quiet.

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error_chain;
use crate::store::host_rows::HostScope;
use crate::store::storage::alerts::{self, NewAlert, ObjectKind, Severity};
use crate::store::{Store, StoreError, TenantTx, hosts, policies};

/// Three report intervals, at least 5 minutes.
pub fn default_silent_after(report_interval: Duration) -> Duration {
    (report_interval * 3).max(Duration::from_secs(300))
}

pub async fn sweep_forever(store: Store, silent_after: Duration) {
    let every = (silent_after / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
    loop {
        tokio::time::sleep(every).await;
        if let Err(error) = sweep(&store, silent_after, OffsetDateTime::now_utc()).await {
            tracing::warn!(error = %error_chain(&error), "silent-host sweep failed; next round retries");
        }
    }
}

pub async fn sweep(
    store: &Store,
    silent_after: Duration,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let cutoff = now - silent_after;
    for tenant_id in policies::tenant_ids(store).await? {
        let mut tx = store.tenant_tx(tenant_id).await?;
        for host in hosts::mark_newly_silent(&mut tx, cutoff).await? {
            let quiet = now - host.last_seen_at;
            let alert = NewAlert {
                object_kind: ObjectKind::Host,
                object_id: Some(host.id),
                object_name: host.hostname.clone(),
                kind: "host_silent",
                previous: Some("reporting".into()),
                current: "silent".into(),
                severity: Severity::Warning,
                message: format!(
                    "{} has not reported for {} minutes (last seen {})",
                    host.hostname,
                    quiet.whole_minutes(),
                    host.last_seen_at
                ),
            };
            tracing::warn!(%tenant_id, host_id = %host.id, hostname = %host.hostname,
                quiet_secs = quiet.whole_seconds(), "host stopped reporting");
            alerts::insert(
                &mut tx,
                HostScope {
                    tenant_id,
                    host_id: host.id,
                },
                &alert,
                now,
            )
            .await?;
        }
        tx.commit()
            .await
            .map_err(crate::store::query_error("committing silent hosts"))?;
    }
    Ok(())
}

/// Called when a host checks in: a host that was silent raises its recovery.
pub async fn host_returned(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    host_id: Uuid,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    if let Some((since, hostname)) = hosts::clear_silence(tx, host_id).await? {
        let alert = NewAlert {
            object_kind: ObjectKind::Host,
            object_id: Some(host_id),
            object_name: hostname.clone(),
            kind: "host_silent",
            previous: Some("silent".into()),
            current: "reporting".into(),
            severity: Severity::Info,
            message: format!("{hostname} reports again (silent since {since})"),
        };
        tracing::info!(%tenant_id, %host_id, "silent host reports again");
        alerts::insert(tx, HostScope { tenant_id, host_id }, &alert, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_three_intervals_but_never_under_five_minutes() {
        assert_eq!(
            default_silent_after(Duration::from_secs(60)),
            Duration::from_secs(300)
        );
        assert_eq!(
            default_silent_after(Duration::from_secs(600)),
            Duration::from_secs(1800)
        );
        assert_eq!(
            default_silent_after(Duration::from_secs(1)),
            Duration::from_secs(300)
        );
    }
}
