//! When a storage report raises an alert: pure comparisons of an object's stored state with
//! its new state. Alerts fire **once per change** — each rule compares with what is stored,
//! and the stored state is updated in the same transaction — so an unchanged unhealthy object
//! raises nothing on later reports. The rules are written out in `docs/alerts.md`.

use unity_protocol::latest::{ArrayReport, DiskReport, Health, PoolReport, SourceState};
use uuid::Uuid;

use crate::store::host_rows::Vanished;
use crate::store::storage::alerts::{NewAlert, ObjectKind, Severity};
use crate::store::storage::arrays::ArrayPrevious;
use crate::store::storage::disks::DiskPrevious;
use crate::store::storage::pools::PoolPrevious;

/// The object an alert is about.
#[derive(Debug, Clone)]
pub struct Subject {
    pub kind: ObjectKind,
    pub id: Uuid,
    /// How a person recognises it: `/dev/sdb (WDC WD40EFRX, WD-123)`, `tank`, `md0`.
    pub name: String,
}

impl Subject {
    pub(crate) fn alert(
        &self,
        kind: &'static str,
        previous: Option<String>,
        current: String,
        severity: Severity,
        message: String,
    ) -> NewAlert {
        NewAlert {
            object_kind: self.kind,
            object_id: Some(self.id),
            object_name: self.name.clone(),
            kind,
            previous,
            current,
            severity,
            message,
        }
    }
}

/// How a disk is named in alerts.
pub fn disk_name(disk: &DiskReport) -> String {
    let ids: Vec<&str> = [disk.model.as_deref(), disk.serial.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect();
    if ids.is_empty() {
        disk.device.clone()
    } else {
        format!("{} ({})", disk.device, ids.join(", "))
    }
}

fn severity_of(health: Health) -> Severity {
    match health {
        Health::Critical => Severity::Critical,
        Health::Warning => Severity::Warning,
        Health::Ok | Health::Unknown => Severity::Info,
    }
}

/// At least a warning: for changes that are bad news whatever the verdict says.
fn bad_news(health: Health) -> Severity {
    severity_of(health).max(Severity::Warning)
}

/// True if `new` is a known verdict worse than the last known one (or the first known one
/// and not `ok`).
fn worsened(previous_known: Option<Health>, new: Health) -> bool {
    new != Health::Unknown && new > previous_known.unwrap_or(Health::Ok)
}

fn with_reasons(message: String, reasons: &[String]) -> String {
    if reasons.is_empty() {
        message
    } else {
        format!("{message}: {}", reasons.join("; "))
    }
}

/// A change of health verdict. `unknown` (standby, unreadable) is no verdict: it never alerts
/// and does not reset the comparison, so a disk that spins down and up does not alert again.
/// Raises on any worsening (severity of the new verdict), on any improvement (`info`), and on
/// the first known verdict when it is not `ok` (`previous` is then null, or `unknown` if the
/// object was known but never had a verdict).
fn health_alert(
    subject: &Subject,
    kind: &'static str,
    previous_known: Option<Health>,
    previous_shown: Option<&str>,
    new: Health,
    reasons: &[String],
) -> Option<NewAlert> {
    if new == Health::Unknown || previous_known == Some(new) {
        return None;
    }
    let severity = match previous_known {
        None if new == Health::Ok => return None,
        None => severity_of(new),
        Some(previous) if new > previous => severity_of(new),
        Some(_) => Severity::Info,
    };
    let previous = previous_known
        .map(|h| h.as_str().to_owned())
        .or_else(|| previous_shown.map(str::to_owned));
    let what = subject.kind.as_str();
    let message = match &previous {
        None => format!("{what} {} first seen {}", subject.name, new.as_str()),
        Some(p) => format!("{what} {} health {p} → {}", subject.name, new.as_str()),
    };
    Some(subject.alert(
        kind,
        previous,
        new.as_str().to_owned(),
        severity,
        with_reasons(message, reasons),
    ))
}

/// An object listed again after it had been missing.
fn returned(subject: &Subject, kind: &'static str, was_present: Option<bool>) -> Option<NewAlert> {
    (was_present == Some(false)).then(|| {
        subject.alert(
            kind,
            Some("absent".into()),
            "present".into(),
            Severity::Info,
            format!("{} {} is back", subject.kind.as_str(), subject.name),
        )
    })
}

/// An object missing from a collection that worked: it was removed, died, or was exported.
pub fn vanished(kind: ObjectKind, object: &Vanished) -> NewAlert {
    let alert_kind = match kind {
        ObjectKind::Disk => "disk_presence",
        ObjectKind::Pool => "pool_presence",
        ObjectKind::Array => "array_presence",
        ObjectKind::Collector => "collector_presence",
        ObjectKind::Container => "container_presence",
        ObjectKind::Database => "database_presence",
        // Jobs are not inventoried objects; their alerts come from `jobs::outcome`.
        ObjectKind::Job => "job_presence",
        ObjectKind::Host => "host_presence",
        ObjectKind::Rollout => "rollout_presence",
    };
    NewAlert {
        object_kind: kind,
        object_id: Some(object.id),
        object_name: object.name.clone(),
        kind: alert_kind,
        previous: Some("present".into()),
        current: "absent".into(),
        severity: Severity::Warning,
        message: format!(
            "{} {} is no longer reported by its host",
            kind.as_str(),
            object.name
        ),
    }
}

/// A disk reported by `claimant` while its own host still reports it.
pub fn disk_claimed(owner: &DiskPrevious, disk: &DiskReport, claimant: Uuid) -> NewAlert {
    let name = disk_name(disk);
    NewAlert {
        object_kind: ObjectKind::Disk,
        object_id: Some(owner.id),
        object_name: name.clone(),
        kind: "disk_claimed_twice",
        previous: Some(owner.host_id.to_string()),
        current: claimant.to_string(),
        severity: Severity::Warning,
        message: format!(
            "disk {name} is reported by host {} and by host {claimant} at once; it stays with \
             host {} until that host stops reporting it (check for a cloned machine or a shared \
             enclosure)",
            owner.host_id, owner.host_id
        ),
    }
}

pub fn disk_alerts(
    subject: &Subject,
    previous: Option<&DiskPrevious>,
    disk: &DiskReport,
    host_id: Uuid,
) -> Vec<NewAlert> {
    let mut out = Vec::new();
    if let Some(p) = previous
        && p.host_id != host_id
    {
        out.push(subject.alert(
            "disk_moved",
            Some(p.host_id.to_string()),
            host_id.to_string(),
            Severity::Info,
            format!(
                "disk {} moved from host {} to host {host_id}",
                subject.name, p.host_id
            ),
        ));
    }
    out.extend(returned(
        subject,
        "disk_presence",
        previous.map(|p| p.present),
    ));
    out.extend(health_alert(
        subject,
        "disk_health",
        previous.and_then(DiskPrevious::known_health),
        previous.map(|p| p.health.as_str()),
        disk.health,
        &disk.reasons,
    ));
    out
}

/// A pool that is not `ONLINE` is degraded, faulted, offline, unavailable, …
const POOL_ONLINE: &str = "ONLINE";

pub fn pool_alerts(
    subject: &Subject,
    previous: Option<&PoolPrevious>,
    pool: &PoolReport,
) -> Vec<NewAlert> {
    let mut out = Vec::new();
    out.extend(returned(
        subject,
        "pool_presence",
        previous.map(|p| p.present),
    ));
    let previous_known = previous.and_then(PoolPrevious::known_health);
    let previous_state = previous.map(|p| p.state.as_str());
    // A state change and the health change it causes are one event: one alert, named after
    // the state (what zpool shows), with the severity of the new verdict.
    if previous_state != Some(pool.state.as_str())
        && (previous_state.is_some() || pool.state != POOL_ONLINE)
    {
        let severity = if pool.state == POOL_ONLINE && !worsened(previous_known, pool.health) {
            Severity::Info
        } else {
            bad_news(pool.health)
        };
        let message = match previous_state {
            None => format!("pool {} first seen {}", subject.name, pool.state),
            Some(p) => format!("pool {} state {p} → {}", subject.name, pool.state),
        };
        out.push(subject.alert(
            "pool_state",
            previous_state.map(str::to_owned),
            pool.state.clone(),
            severity,
            with_reasons(message, &pool.reasons),
        ));
    } else {
        out.extend(health_alert(
            subject,
            "pool_health",
            previous_known,
            previous.map(|p| p.health.as_str()),
            pool.health,
            &pool.reasons,
        ));
    }
    // `scan_errors` describes the last *completed* scan; while one runs it is absent. So a
    // rise from none/0 (or from a lower count) means a scrub or resilver just finished with
    // unrepaired errors.
    let previous_scan = previous.and_then(|p| p.scan_errors);
    if let Some(errors) = pool.scan_errors
        && errors > 0
        && i64::try_from(errors).unwrap_or(i64::MAX) > previous_scan.unwrap_or(0)
    {
        let scan = pool.scan_function.as_deref().unwrap_or("scan");
        out.push(subject.alert(
            "scrub_errors",
            previous.map(|_| previous_scan.map_or_else(|| "none".into(), |n| n.to_string())),
            errors.to_string(),
            Severity::Critical,
            format!(
                "{scan} of pool {} finished with {errors} unrepaired errors",
                subject.name
            ),
        ));
    }
    let previous_data = previous.and_then(|p| p.data_errors);
    if let Some(errors) = pool.data_errors
        && i64::try_from(errors).unwrap_or(i64::MAX) > previous_data.unwrap_or(0)
    {
        out.push(subject.alert(
            "data_errors",
            previous.map(|_| previous_data.unwrap_or(0).to_string()),
            errors.to_string(),
            Severity::Critical,
            format!(
                "pool {} reports {errors} permanent data errors (was {}): damaged files must be restored",
                subject.name,
                previous_data.unwrap_or(0)
            ),
        ));
    }
    out
}

fn degraded_word(degraded: bool) -> &'static str {
    if degraded { "degraded" } else { "clean" }
}

pub fn array_alerts(
    subject: &Subject,
    previous: Option<&ArrayPrevious>,
    array: &ArrayReport,
) -> Vec<NewAlert> {
    let mut out = Vec::new();
    out.extend(returned(
        subject,
        "array_presence",
        previous.map(|p| p.present),
    ));
    let previous_known = previous.and_then(ArrayPrevious::known_health);
    let previous_degraded = previous.map(|p| p.degraded);
    // Becoming degraded (or clean again) and the health change it causes are one event.
    if previous_degraded != Some(array.degraded) && (previous.is_some() || array.degraded) {
        let severity = if array.degraded || worsened(previous_known, array.health) {
            bad_news(array.health)
        } else {
            Severity::Info
        };
        let current = degraded_word(array.degraded);
        let message = match previous_degraded {
            None => format!("array {} first seen {current}", subject.name),
            Some(p) => format!("array {} {} → {current}", subject.name, degraded_word(p)),
        };
        out.push(subject.alert(
            "array_degraded",
            previous_degraded.map(|p| degraded_word(p).to_owned()),
            current.to_owned(),
            severity,
            with_reasons(message, &array.reasons),
        ));
    } else {
        out.extend(health_alert(
            subject,
            "array_health",
            previous_known,
            previous.map(|p| p.health.as_str()),
            array.health,
            &array.reasons,
        ));
    }
    out
}

/// A collector starting to fail (or first seen failing), or working again after failing.
pub fn collector_alert(
    source: &'static str,
    previous: Option<&str>,
    state: SourceState,
    detail: &str,
) -> Option<NewAlert> {
    let current = state.as_str();
    if previous == Some(current) {
        return None;
    }
    // The stored word is one of `as_str`'s (the column's CHECK); anything else is not taken
    // as a failure that now recovered.
    let previously_broken = previous
        .and_then(|p| p.parse::<SourceState>().ok())
        .is_some_and(SourceState::is_broken);
    let (severity, message) = if state.is_broken() {
        (
            Severity::Warning,
            format!("{source} collector {current}: {detail}"),
        )
    } else if previously_broken {
        (Severity::Info, format!("{source} collector now {current}"))
    } else {
        return None;
    };
    Some(NewAlert {
        object_kind: ObjectKind::Collector,
        object_id: None,
        object_name: source.into(),
        kind: "collector_state",
        previous: previous.map(str::to_owned),
        current: current.into(),
        severity,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(kind: ObjectKind) -> Subject {
        Subject {
            kind,
            id: Uuid::nil(),
            name: "x".into(),
        }
    }

    fn disk_prev(health: Health, known: Option<Health>) -> DiskPrevious {
        DiskPrevious {
            id: Uuid::nil(),
            host_id: Uuid::nil(),
            health: health.as_str().into(),
            known_health: known.map(|h| h.as_str().into()),
            present: true,
            contested_by: None,
            detail_hash: None,
        }
    }

    fn disk(health: Health) -> DiskReport {
        DiskReport {
            device: "/dev/sdb".into(),
            device_type: String::new(),
            protocol: "ata".into(),
            model: Some("M".into()),
            serial: Some("S".into()),
            wwn: None,
            firmware: None,
            capacity_bytes: None,
            rotation_rpm: None,
            read_status: "ok".into(),
            read_detail: String::new(),
            health,
            reasons: vec!["why".into()],
            temperature_c: None,
            power_on_hours: None,
            metrics: Vec::new(),
            detail_json: "{}".into(),
        }
    }

    fn kinds(alerts: &[NewAlert]) -> Vec<(&'static str, Severity)> {
        alerts.iter().map(|a| (a.kind, a.severity)).collect()
    }

    #[test]
    fn disk_health_alerts_on_change_only() {
        let s = subject(ObjectKind::Disk);
        let ok = disk_prev(Health::Ok, Some(Health::Ok));
        let crit = disk_prev(Health::Critical, Some(Health::Critical));
        assert!(disk_alerts(&s, Some(&ok), &disk(Health::Ok), Uuid::nil()).is_empty());
        assert!(disk_alerts(&s, Some(&crit), &disk(Health::Critical), Uuid::nil()).is_empty());
        let worse = disk_alerts(&s, Some(&ok), &disk(Health::Critical), Uuid::nil());
        assert_eq!(kinds(&worse), [("disk_health", Severity::Critical)]);
        assert_eq!(worse[0].previous.as_deref(), Some("ok"));
        let better = disk_alerts(&s, Some(&crit), &disk(Health::Ok), Uuid::nil());
        assert_eq!(kinds(&better), [("disk_health", Severity::Info)]);
        let warn = disk_prev(Health::Warning, Some(Health::Warning));
        let worse = disk_alerts(&s, Some(&warn), &disk(Health::Critical), Uuid::nil());
        assert_eq!(kinds(&worse), [("disk_health", Severity::Critical)]);
    }

    #[test]
    fn unknown_is_no_verdict() {
        let s = subject(ObjectKind::Disk);
        let crit = disk_prev(Health::Critical, Some(Health::Critical));
        assert!(disk_alerts(&s, Some(&crit), &disk(Health::Unknown), Uuid::nil()).is_empty());
        // Back from standby, still critical: nothing new.
        let standby = disk_prev(Health::Unknown, Some(Health::Critical));
        assert!(disk_alerts(&s, Some(&standby), &disk(Health::Critical), Uuid::nil()).is_empty());
        // Never had a verdict, now critical: previous is "unknown".
        let never = disk_prev(Health::Unknown, None);
        let first = disk_alerts(&s, Some(&never), &disk(Health::Critical), Uuid::nil());
        assert_eq!(first[0].previous.as_deref(), Some("unknown"));
    }

    #[test]
    fn first_sighting_alerts_only_when_unhealthy() {
        let s = subject(ObjectKind::Disk);
        assert!(disk_alerts(&s, None, &disk(Health::Ok), Uuid::nil()).is_empty());
        let first = disk_alerts(&s, None, &disk(Health::Warning), Uuid::nil());
        assert_eq!(kinds(&first), [("disk_health", Severity::Warning)]);
        assert_eq!(first[0].previous, None);
    }

    #[test]
    fn moved_and_returned_disks_are_info() {
        let s = subject(ObjectKind::Disk);
        let mut p = disk_prev(Health::Ok, Some(Health::Ok));
        p.present = false;
        let other = Uuid::new_v4();
        let alerts = disk_alerts(&s, Some(&p), &disk(Health::Ok), other);
        assert_eq!(
            kinds(&alerts),
            [
                ("disk_moved", Severity::Info),
                ("disk_presence", Severity::Info)
            ]
        );
    }

    fn pool(state: &str, health: Health) -> PoolReport {
        PoolReport {
            name: "tank".into(),
            state: state.into(),
            health,
            reasons: Vec::new(),
            size_bytes: None,
            allocated_bytes: None,
            free_bytes: None,
            capacity_percent: None,
            fragmentation_percent: None,
            scan_function: Some("scrub".into()),
            scan_state: None,
            scan_progress_percent: None,
            scan_errors: None,
            data_errors: None,
            detail_json: "{}".into(),
        }
    }

    fn pool_prev(state: &str, health: Health) -> PoolPrevious {
        PoolPrevious {
            id: Uuid::nil(),
            state: state.into(),
            health: health.as_str().into(),
            known_health: Some(health.as_str().into()),
            scan_errors: None,
            data_errors: None,
            present: true,
            detail_hash: None,
        }
    }

    #[test]
    fn pool_state_change_is_one_alert() {
        let s = subject(ObjectKind::Pool);
        let online = pool_prev("ONLINE", Health::Ok);
        let alerts = pool_alerts(&s, Some(&online), &pool("DEGRADED", Health::Critical));
        assert_eq!(kinds(&alerts), [("pool_state", Severity::Critical)]);
        let degraded = pool_prev("DEGRADED", Health::Critical);
        assert!(pool_alerts(&s, Some(&degraded), &pool("DEGRADED", Health::Critical)).is_empty());
        let back = pool_alerts(&s, Some(&degraded), &pool("ONLINE", Health::Ok));
        assert_eq!(kinds(&back), [("pool_state", Severity::Info)]);
        let first = pool_alerts(&s, None, &pool("FAULTED", Health::Critical));
        assert_eq!(kinds(&first), [("pool_state", Severity::Critical)]);
        assert!(pool_alerts(&s, None, &pool("ONLINE", Health::Ok)).is_empty());
        // Health worsening without a state change (capacity, checksum errors).
        let full = pool_alerts(&s, Some(&online), &pool("ONLINE", Health::Warning));
        assert_eq!(kinds(&full), [("pool_health", Severity::Warning)]);
    }

    #[test]
    fn scan_and_data_errors_alert_when_they_rise() {
        let s = subject(ObjectKind::Pool);
        let mut prev = pool_prev("ONLINE", Health::Critical);
        let mut new = pool("ONLINE", Health::Critical);
        new.scan_errors = Some(0);
        assert!(pool_alerts(&s, Some(&prev), &new).is_empty());
        new.scan_errors = Some(3);
        new.data_errors = Some(2);
        let alerts = pool_alerts(&s, Some(&prev), &new);
        assert_eq!(
            kinds(&alerts),
            [
                ("scrub_errors", Severity::Critical),
                ("data_errors", Severity::Critical)
            ]
        );
        prev.scan_errors = Some(3);
        prev.data_errors = Some(2);
        assert!(pool_alerts(&s, Some(&prev), &new).is_empty());
        new.data_errors = Some(1);
        assert!(
            pool_alerts(&s, Some(&prev), &new).is_empty(),
            "a decrease is not news"
        );
    }

    #[test]
    fn array_degraded_is_one_alert_and_recovery_is_info() {
        let s = subject(ObjectKind::Array);
        let clean = ArrayPrevious {
            id: Uuid::nil(),
            health: "ok".into(),
            known_health: Some("ok".into()),
            degraded: false,
            present: true,
            detail_hash: None,
        };
        let mut array = ArrayReport {
            name: "md0".into(),
            level: "raid1".into(),
            state: "active".into(),
            health: Health::Critical,
            reasons: Vec::new(),
            raid_disks: Some(2),
            active_disks: Some(1),
            degraded: true,
            sync_action: None,
            sync_progress_percent: None,
            detail_json: "{}".into(),
        };
        assert_eq!(
            kinds(&array_alerts(&s, Some(&clean), &array)),
            [("array_degraded", Severity::Critical)]
        );
        assert_eq!(
            kinds(&array_alerts(&s, None, &array)),
            [("array_degraded", Severity::Critical)]
        );
        let degraded = ArrayPrevious {
            degraded: true,
            health: "critical".into(),
            known_health: Some("critical".into()),
            ..clean
        };
        assert!(array_alerts(&s, Some(&degraded), &array).is_empty());
        array.degraded = false;
        array.health = Health::Ok;
        assert_eq!(
            kinds(&array_alerts(&s, Some(&degraded), &array)),
            [("array_degraded", Severity::Info)]
        );
    }

    #[test]
    fn collectors_alert_when_they_break_and_recover() {
        assert!(collector_alert("smart", None, SourceState::Ok, "").is_none());
        assert!(collector_alert("zfs", None, SourceState::NotPresent, "").is_none());
        let broke = collector_alert("smart", Some("ok"), SourceState::PermissionDenied, "root");
        assert_eq!(broke.map(|a| a.severity), Some(Severity::Warning));
        assert!(collector_alert("smart", Some("failed"), SourceState::Failed, "").is_none());
        let fixed = collector_alert("smart", Some("failed"), SourceState::Ok, "");
        assert_eq!(fixed.map(|a| a.severity), Some(Severity::Info));
    }
}
