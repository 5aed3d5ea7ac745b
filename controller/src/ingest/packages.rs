//! Applying a [`PackageReport`]: the host's row in `host_packages`, the collector state, and
//! the alerts — `reboot_required` when the flag appears (and when it clears), and
//! `security_updates_pending` once security updates have waited longer than the configured
//! age without a break (raised once per run, with an all-clear when they are applied).

use std::time::Duration;

use time::OffsetDateTime;
use unity_protocol::latest::{PackageReport, SourceState};

use super::log_alert;
use super::storage_alerts;
use crate::store::collectors;
use crate::store::host_rows::{HostScope, strip_nul};
use crate::store::packages::{self, PackagesRow, PreviousPackages};
use crate::store::storage::alerts::{self, NewAlert, ObjectKind, Severity};
use crate::store::{StoreError, TenantTx, hosts};

/// Security updates pending longer than this raise an alert, unless configured otherwise.
pub const DEFAULT_SECURITY_ALERT_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the rules decided for the new row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub alerts: Vec<NewAlert>,
    pub security_pending_since: Option<OffsetDateTime>,
    pub security_alerted: bool,
}

fn host_alert(
    kind: &'static str,
    previous: Option<String>,
    current: String,
    severity: Severity,
    message: String,
) -> NewAlert {
    NewAlert {
        object_kind: ObjectKind::Host,
        object_id: None,
        object_name: "packages".into(),
        kind,
        previous,
        current,
        severity,
        message,
    }
}

/// The rules, pure: previous row, this report, its collection time, the alert age.
pub fn decide(
    previous: Option<&PreviousPackages>,
    report: &PackageReport,
    collected_at: OffsetDateTime,
    security_alert_after: Duration,
) -> Decision {
    let mut alerts = Vec::new();
    // A round that could not read the packages says nothing about them: keep what we knew.
    if report.status.state != SourceState::Ok {
        return Decision {
            alerts,
            security_pending_since: previous.and_then(|p| p.security_pending_since),
            security_alerted: previous.is_some_and(|p| p.security_alerted),
        };
    }
    let was_required = previous.is_some_and(|p| p.reboot_required);
    if report.reboot_required && !was_required {
        let by = if report.reboot_required_by.is_empty() {
            String::new()
        } else {
            format!(" (by {})", report.reboot_required_by.join(", "))
        };
        alerts.push(host_alert(
            "reboot_required",
            previous.map(|_| "not_required".to_owned()),
            "required".into(),
            Severity::Warning,
            format!("the host needs a reboot to finish applying updates{by}"),
        ));
    } else if !report.reboot_required && was_required {
        alerts.push(host_alert(
            "reboot_required",
            Some("required".into()),
            "not_required".into(),
            Severity::Info,
            "the host no longer needs a reboot".into(),
        ));
    }
    let security = report.pending.iter().filter(|p| p.security).count();
    let (since, mut alerted) = match previous {
        Some(p) if security > 0 => (
            Some(p.security_pending_since.unwrap_or(collected_at)),
            p.security_alerted && p.security_pending_since.is_some(),
        ),
        None if security > 0 => (Some(collected_at), false),
        _ => (None, false),
    };
    if let Some(since) = since {
        let waited = collected_at - since;
        if !alerted && waited >= security_alert_after {
            alerted = true;
            let days = waited.whole_hours() as f64 / 24.0;
            alerts.push(host_alert(
                "security_updates_pending",
                Some("pending".into()),
                "pending_too_long".into(),
                Severity::Warning,
                format!("{security} security update(s) pending for {days:.1} days"),
            ));
        }
    } else if previous.is_some_and(|p| p.security_alerted) {
        alerts.push(host_alert(
            "security_updates_pending",
            Some("pending_too_long".into()),
            "none".into(),
            Severity::Info,
            "no security updates pending any more".into(),
        ));
    }
    Decision {
        alerts,
        security_pending_since: since,
        security_alerted: alerted,
    }
}

/// Applies a package report for `scope.host_id`. Returns false if the host is revoked or
/// unknown.
pub async fn apply(
    tx: &mut TenantTx,
    scope: HostScope,
    report: &PackageReport,
    collected_at: OffsetDateTime,
    security_alert_after: Duration,
) -> Result<bool, StoreError> {
    if !hosts::touch_active(tx, scope.host_id).await? {
        return Ok(false);
    }
    let state = report.status.state.as_str();
    let previous_state = collectors::record(
        tx,
        scope,
        "packages",
        state,
        &strip_nul(&report.status.detail),
        collected_at,
    )
    .await?;
    let mut raised: Vec<NewAlert> = storage_alerts::collector_alert(
        "packages",
        previous_state.as_deref(),
        report.status.state,
        &report.status.detail,
    )
    .into_iter()
    .collect();
    let previous = packages::previous(tx, scope.host_id).await?;
    let decision = decide(
        previous.as_ref(),
        report,
        collected_at,
        security_alert_after,
    );
    raised.extend(decision.alerts.iter().cloned());
    let pending: Vec<serde_json::Value> = report
        .pending
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": strip_nul(&p.name),
                "current_version": p.current_version.as_deref().map(strip_nul),
                "new_version": strip_nul(&p.new_version),
                "architecture": strip_nul(&p.architecture),
                "origins": p.origins.iter().map(|o| strip_nul(o)).collect::<Vec<_>>(),
                "security": p.security,
            })
        })
        .collect();
    let names =
        |list: &[String]| serde_json::json!(list.iter().map(|n| strip_nul(n)).collect::<Vec<_>>());
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let manager = strip_nul(&report.manager);
    let detail = strip_nul(&report.status.detail);
    packages::upsert(
        tx,
        scope,
        &PackagesRow {
            manager: &manager,
            source_state: state,
            source_detail: &detail,
            pending: serde_json::Value::Array(pending),
            pending_count: count(report.pending.len()),
            security_count: count(report.pending.iter().filter(|p| p.security).count()),
            held_back: names(&report.held_back),
            reboot_required: report.reboot_required,
            reboot_required_by: names(&report.reboot_required_by),
            lists_updated_at: crate::store::inventory::ms_time(report.lists_updated_at_ms),
            security_pending_since: decision.security_pending_since,
            security_alerted: decision.security_alerted,
            collected_at,
        },
    )
    .await?;
    for alert in &raised {
        alerts::insert(tx, scope, alert, collected_at).await?;
        log_alert(scope, alert);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use unity_protocol::latest::{PendingUpdate, SourceStatus};

    fn report(security: usize, other: usize, reboot: bool) -> PackageReport {
        let update = |i: usize, security: bool| PendingUpdate {
            name: format!("p{i}"),
            current_version: Some("1".into()),
            new_version: "2".into(),
            architecture: "amd64".into(),
            origins: vec![],
            security,
        };
        PackageReport {
            status: SourceStatus {
                state: SourceState::Ok,
                detail: String::new(),
            },
            manager: "apt".into(),
            pending: (0..security)
                .map(|i| update(i, true))
                .chain((0..other).map(|i| update(100 + i, false)))
                .collect(),
            held_back: vec![],
            lists_updated_at_ms: None,
            reboot_required: reboot,
            reboot_required_by: if reboot {
                vec!["linux-image-amd64".into()]
            } else {
                vec![]
            },
        }
    }

    fn row(d: &Decision, reboot: bool, security: i32) -> PreviousPackages {
        PreviousPackages {
            reboot_required: reboot,
            security_count: security,
            security_pending_since: d.security_pending_since,
            security_alerted: d.security_alerted,
        }
    }

    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

    #[test]
    fn security_updates_alert_once_after_the_age_and_clear_when_applied() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let day = time::Duration::days(1);
        let first = decide(None, &report(2, 3, false), t0, WEEK);
        assert!(first.alerts.is_empty());
        assert_eq!(first.security_pending_since, Some(t0));
        let mid = decide(
            Some(&row(&first, false, 2)),
            &report(2, 3, false),
            t0 + 6 * day,
            WEEK,
        );
        assert!(mid.alerts.is_empty(), "six days is under a week");
        let due = decide(
            Some(&row(&mid, false, 2)),
            &report(3, 3, false),
            t0 + 7 * day,
            WEEK,
        );
        assert_eq!(due.alerts.len(), 1);
        assert_eq!(due.alerts[0].kind, "security_updates_pending");
        assert!(
            due.alerts[0]
                .message
                .starts_with("3 security update(s) pending for 7.0 days")
        );
        let again = decide(
            Some(&row(&due, false, 3)),
            &report(3, 0, false),
            t0 + 8 * day,
            WEEK,
        );
        assert!(again.alerts.is_empty(), "raised once per run");
        let applied = decide(
            Some(&row(&again, false, 3)),
            &report(0, 1, false),
            t0 + 9 * day,
            WEEK,
        );
        assert_eq!(applied.alerts.len(), 1);
        assert_eq!(applied.alerts[0].current, "none");
        assert_eq!(applied.security_pending_since, None);
        // A new run starts its own clock.
        let new_run = decide(
            Some(&row(&applied, false, 0)),
            &report(1, 0, false),
            t0 + 10 * day,
            WEEK,
        );
        assert_eq!(new_run.security_pending_since, Some(t0 + 10 * day));
        assert!(new_run.alerts.is_empty());
    }

    #[test]
    fn reboot_required_alerts_on_the_change_only() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let set = decide(None, &report(0, 0, true), t, WEEK);
        assert_eq!(set.alerts.len(), 1);
        assert!(set.alerts[0].message.contains("linux-image-amd64"));
        let still = decide(Some(&row(&set, true, 0)), &report(0, 0, true), t, WEEK);
        assert!(still.alerts.is_empty());
        let cleared = decide(Some(&row(&still, true, 0)), &report(0, 0, false), t, WEEK);
        assert_eq!(cleared.alerts[0].severity, Severity::Info);
    }

    #[test]
    fn a_failed_round_keeps_what_was_known() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let first = decide(None, &report(1, 0, false), t, WEEK);
        let mut failed = report(0, 0, false);
        failed.status.state = SourceState::Failed;
        let after = decide(
            Some(&row(&first, false, 1)),
            &failed,
            t + time::Duration::days(8),
            WEEK,
        );
        assert!(after.alerts.is_empty());
        assert_eq!(after.security_pending_since, Some(t));
    }
}
