//! Certificates that will lapse. An agent renews its host certificate over its session at two
//! thirds of its life; a host that has not done so with a quarter of the life left (offline
//! for weeks, a broken clock, renewals refused) will be locked out when it expires —
//! `certificate_expiring` says so while there is time to bring the host back, and an `info`
//! alert follows once a renewal landed. The controller's own CA is checked too: alerts belong
//! to a host, and the CA is no host's, so its last 90 days are an error in the log once a day
//! (docs/alerts.md).
//!
//! "A quarter left" is of each certificate's own lifetime (`host_certificates.issued_at` to
//! its end), so step-ca's 24 h certificates and the built-in CA's 30-day ones are judged
//! alike; `validity` (the configured built-in lifetime) only stands in for certificates with
//! no issue record.

use std::time::Duration;

use time::OffsetDateTime;

use crate::error_chain;
use crate::store::host_rows::HostScope;
use crate::store::storage::alerts::{self, NewAlert, ObjectKind, Severity};
use crate::store::{Store, StoreError, hosts, policies};

/// How long before the CA's end the log says so.
const CA_WARNING: time::Duration = time::Duration::days(90);

pub async fn sweep_forever(store: Store, validity: Duration, ca_not_after: Option<OffsetDateTime>) {
    let every = (validity / 16).clamp(Duration::from_millis(200), Duration::from_secs(60));
    let mut ca_logged: Option<OffsetDateTime> = None;
    if let (Some(end), Some(metrics)) = (ca_not_after, crate::metrics::get()) {
        metrics.ca_not_after.set(end.unix_timestamp());
    }
    loop {
        tokio::time::sleep(every).await;
        let now = OffsetDateTime::now_utc();
        if let Some(end) = ca_not_after
            && end - now < CA_WARNING
            && ca_logged.is_none_or(|at| now - at >= time::Duration::days(1))
        {
            ca_logged = Some(now);
            tracing::error!(ca_not_after = %end, days_left = (end - now).whole_days(),
                "the controller's CA expires soon: every host certificate ends with it; plan \
                 a new CA and re-enroll the hosts (docs/operations.md)");
        }
        if let Err(error) = sweep(&store, validity, OffsetDateTime::now_utc()).await {
            tracing::warn!(error = %error_chain(&error),
                "certificate expiry sweep failed; next round retries");
        }
    }
}

pub async fn sweep(
    store: &Store,
    validity: Duration,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for tenant_id in policies::tenant_ids(store).await? {
        let mut tx = store.tenant_tx(tenant_id).await?;
        for host in hosts::mark_lapsing_certificates(&mut tx, now, validity).await? {
            let left = host.cert_not_after - now;
            let message = if left.is_negative() {
                format!(
                    "the host certificate of {} expired at {}: the host can no longer connect; \
                     re-enroll it",
                    host.hostname, host.cert_not_after
                )
            } else {
                format!(
                    "the host certificate of {} expires at {} ({} hours left) and was not renewed \
                     (a connected agent renews at two thirds of its life): bring the host online \
                     before then or re-enroll it",
                    host.hostname,
                    host.cert_not_after,
                    left.whole_hours()
                )
            };
            tracing::warn!(%tenant_id, host_id = %host.id, not_after = %host.cert_not_after,
                "host certificate will lapse");
            let alert = certificate_alert(&host, ("valid", "expiring"), Severity::Warning, message);
            let scope = HostScope {
                tenant_id,
                host_id: host.id,
            };
            alerts::insert(&mut tx, scope, &alert, now).await?;
        }
        for host in hosts::clear_renewed_certificates(&mut tx, now, validity).await? {
            let message = format!(
                "the host certificate of {} was renewed (valid until {})",
                host.hostname, host.cert_not_after
            );
            let alert = certificate_alert(&host, ("expiring", "valid"), Severity::Info, message);
            let scope = HostScope {
                tenant_id,
                host_id: host.id,
            };
            alerts::insert(&mut tx, scope, &alert, now).await?;
        }
        tx.commit()
            .await
            .map_err(crate::store::query_error("committing certificate alerts"))?;
    }
    Ok(())
}

fn certificate_alert(
    host: &hosts::LapsingCertificate,
    (previous, current): (&str, &str),
    severity: Severity,
    message: String,
) -> NewAlert {
    NewAlert {
        object_kind: ObjectKind::Host,
        object_id: Some(host.id),
        object_name: host.hostname.clone(),
        kind: "certificate_expiring",
        previous: Some(previous.into()),
        current: current.into(),
        severity,
        message,
    }
}
