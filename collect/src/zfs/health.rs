//! One verdict per pool, with the reasons, so alerts say *why* and not just *red*, in the
//! vocabulary every storage collector shares ([`crate::verdict`]).
//!
//! The rules and their thresholds are documented, with the reasoning, in
//! `docs/storage-health.md`; keep the two in step.

use crate::verdict::{Assessment, Finding, Health, Severity};

use super::model::{
    Pool, PoolListEntry, Scan, ScanFunction, ScanState, Vdev, VdevClass, VdevState,
};

/// Capacity at or above which a pool is a warning: ZFS allocation slows and fragments
/// noticeably past ~80 % full.
pub const CAPACITY_WARNING_PERCENT: u64 = 80;
/// Capacity at or above which a pool is critical: near-full copy-on-write pools can stall
/// and even deletes need free space.
pub const CAPACITY_CRITICAL_PERCENT: u64 = 90;

/// Assesses one pool from `zpool status`, plus its `zpool list` row when available (the only
/// source of capacity).
pub fn assess_pool(pool: &Pool, list: Option<&PoolListEntry>) -> Assessment {
    let mut f = Vec::new();
    let mut add = |severity, vdev: Option<&str>, message: String| {
        f.push(Finding {
            severity,
            component: vdev.map(str::to_owned),
            message,
        })
    };

    for notice in &pool.notices {
        add(
            Severity::Warning,
            None,
            format!("partial record, part of `zpool status` could not be read: {notice}"),
        );
    }
    match pool.state {
        VdevState::Online => {}
        VdevState::Degraded => add(
            Severity::Critical,
            None,
            "pool is DEGRADED: redundancy is reduced, replace or bring back the missing device"
                .to_owned(),
        ),
        VdevState::Offline => add(Severity::Warning, None, "pool is OFFLINE".to_owned()),
        other => add(
            Severity::Critical,
            None,
            format!("pool is {}: data may be inaccessible", other.as_word()),
        ),
    }

    for (class, vdev) in pool.all_vdevs() {
        if std::ptr::eq(vdev, &pool.root) {
            continue;
        }
        let name = Some(vdev.name.as_str());
        let was = vdev
            .was
            .as_deref()
            .map_or_else(String::new, |w| format!(" (was {w})"));
        match (vdev.state, class) {
            (
                VdevState::Faulted | VdevState::Unavail | VdevState::Removed,
                VdevClass::Cache | VdevClass::Spare,
            ) => add(
                Severity::Warning,
                name,
                format!(
                    "{} device is {}{was}",
                    if class == VdevClass::Cache {
                        "cache"
                    } else {
                        "spare"
                    },
                    vdev.state.as_word()
                ),
            ),
            (VdevState::Faulted | VdevState::Unavail | VdevState::Removed, _) => add(
                Severity::Critical,
                name,
                format!(
                    "{} {}{was}{}",
                    if vdev.children.is_empty() {
                        "device is"
                    } else {
                        "vdev is"
                    },
                    vdev.state.as_word(),
                    vdev.note
                        .as_deref()
                        .map_or_else(String::new, |n| format!(": {n}"))
                ),
            ),
            (VdevState::Offline, _) => add(Severity::Warning, name, "device is OFFLINE".to_owned()),
            (VdevState::Inuse, VdevClass::Spare) => add(
                Severity::Warning,
                name,
                "hot spare is in use: replace the failed device it stands in for".to_owned(),
            ),
            _ => {}
        }
        if vdev.note.as_deref() == Some("(resilvering)") {
            add(Severity::Info, name, "device is resilvering".to_owned());
        }
    }

    counter_findings(&pool.root, &mut add);
    for list in [
        &pool.logs,
        &pool.cache,
        &pool.spares,
        &pool.special,
        &pool.dedup,
    ] {
        for v in list {
            counter_findings(v, &mut add);
        }
    }

    match &pool.scan {
        None => add(
            Severity::Info,
            None,
            "pool has never been scrubbed".to_owned(),
        ),
        Some(scan) => scan_findings(scan, &mut add),
    }
    // OpenZFS 2.1+ prints one `scan:` line per rebuilt dRAID vdev: each is judged.
    for scan in &pool.more_scans {
        scan_findings(scan, &mut add);
    }

    if let Some(errors) = &pool.errors {
        let count = errors.count.unwrap_or(0).max(errors.files.len() as u64);
        if count > 0 {
            add(
                Severity::Critical,
                None,
                format!(
                    "{count} permanent data errors: files are damaged, restore them from backup"
                ),
            );
        }
        if let Some(reason) = &errors.unavailable_reason {
            add(
                Severity::Info,
                None,
                format!("list of damaged files unavailable: {reason}"),
            );
        }
    }

    if let Some(cap) = list.and_then(|l| l.capacity_percent) {
        if cap >= CAPACITY_CRITICAL_PERCENT {
            add(Severity::Critical, None, format!("pool is {cap}% full"));
        } else if cap >= CAPACITY_WARNING_PERCENT {
            add(Severity::Warning, None, format!("pool is {cap}% full"));
        }
    }

    let health = match f.iter().map(|x| x.severity).max() {
        Some(Severity::Critical) => Health::Critical,
        Some(Severity::Warning) => Health::Warning,
        _ => Health::Healthy,
    };
    Assessment {
        subject: pool.name.clone(),
        health,
        findings: f,
    }
}

fn percent_text(scan: &super::model::Scan) -> String {
    scan.progress
        .as_ref()
        .and_then(|p| p.percent_done)
        .map_or_else(String::new, |p| format!(", {p:.2}% done"))
}

/// Reports error counters on the most specific vdev that has them, so one bad disk gives
/// one finding instead of one per ancestor (ancestors sum their children).
/// What one scan line (scrub, resilver, rebuild) says about the pool.
fn scan_findings(scan: &Scan, add: &mut impl FnMut(Severity, Option<&str>, String)) {
    match (scan.function, scan.state) {
        (_, ScanState::NoneRequested) => add(
            Severity::Info,
            None,
            "pool has never been scrubbed".to_owned(),
        ),
        (ScanFunction::Resilver, ScanState::InProgress) => add(
            Severity::Warning,
            None,
            format!(
                "resilver{} in progress{}: redundancy is being restored",
                scan.vdev
                    .as_deref()
                    .map_or_else(String::new, |v| format!(" of {v}")),
                percent_text(scan)
            ),
        ),
        (_, ScanState::InProgress) => add(
            Severity::Info,
            None,
            format!("scrub in progress{}", percent_text(scan)),
        ),
        (_, ScanState::Canceled) => add(Severity::Info, None, "last scrub was canceled".to_owned()),
        (_, ScanState::Unknown) => add(
            Severity::Info,
            None,
            format!("scan line not understood: {:?}", scan.raw),
        ),
        (function, ScanState::Finished) => {
            if let Some(errors) = scan.errors.filter(|e| *e > 0) {
                add(
                    Severity::Critical,
                    None,
                    format!("last scan finished with {errors} unrepaired errors"),
                );
            }
            if function == ScanFunction::Scrub
                && let Some(bytes) = scan.processed_bytes.filter(|b| *b > 0)
            {
                add(
                    Severity::Warning,
                    None,
                    format!("last scrub repaired {bytes} bytes: a device returned bad data"),
                );
            }
        }
        _ => {}
    }
}

/// Every vdev's READ/WRITE/CKSUM counters are its own: ZFS counts an I/O error at the level
/// where it could not be satisfied (a raidz that could not reconstruct, a pool-level write
/// that failed), not as a sum of the devices below. So a vdev's non-zero counters are a
/// finding whatever its children show: counters that "do not add up" to the children's are
/// exactly the errors no single device explains.
fn counter_findings(vdev: &Vdev, add: &mut impl FnMut(Severity, Option<&str>, String)) {
    if let Some(c) = vdev.counters.filter(|c| c.total() > 0) {
        let own = if vdev.children.iter().any(subtree_has_errors) {
            " (counted at this vdev, besides its devices' own)"
        } else {
            ""
        };
        add(
            Severity::Warning,
            Some(&vdev.name),
            format!(
                "{} read, {} write, {} checksum errors{}{own}",
                c.read,
                c.write,
                c.checksum,
                if c.approximate { " (rounded)" } else { "" }
            ),
        );
    }
    for c in &vdev.children {
        counter_findings(c, add);
    }
}

fn subtree_has_errors(v: &Vdev) -> bool {
    v.counters.is_some_and(|c| c.total() > 0) || v.children.iter().any(subtree_has_errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zfs::parse_status;

    #[test]
    fn a_vdevs_own_counters_are_a_finding_even_when_its_devices_have_errors_too() {
        let text = "  pool: t\n state: ONLINE\nconfig:\n\tNAME STATE READ WRITE CKSUM\n\tt ONLINE 0 0 0\n\t  raidz1-0 ONLINE 0 0 24\n\t    sda ONLINE 0 0 3\n\t    sdb ONLINE 0 0 0\n\t    sdc ONLINE 0 0 0\n";
        let a = assess_pool(&parse_status(text).unwrap()[0], None);
        let about = |vdev: &str| {
            a.findings
                .iter()
                .filter(|f| f.component.as_deref() == Some(vdev))
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            about("raidz1-0"),
            [
                "0 read, 0 write, 24 checksum errors (counted at this vdev, besides its devices' own)"
            ]
        );
        assert_eq!(about("sda"), ["0 read, 0 write, 3 checksum errors"]);
        assert_eq!(a.health, Health::Warning);
    }

    #[test]
    fn lost_spare_or_cache_is_a_warning_lost_data_device_is_critical() {
        let text = "  pool: t\n state: ONLINE\nconfig:\n\tNAME STATE READ WRITE CKSUM\n\tt ONLINE 0 0 0\n\t  sda ONLINE 0 0 0\n\tcache\n\t  sdc UNAVAIL 0 0 0\n\tspares\n\t  sdd UNAVAIL   cannot open\n";
        let pool = &parse_status(text).unwrap()[0];
        let a = assess_pool(pool, None);
        assert_eq!(a.health, Health::Warning, "{a:?}");
        let msgs: Vec<&str> = a.findings.iter().map(|f| f.message.as_str()).collect();
        assert!(msgs.contains(&"cache device is UNAVAIL"), "{msgs:?}");
        assert!(msgs.contains(&"spare device is UNAVAIL"), "{msgs:?}");

        let text = text.replace(
            "\t  sda ONLINE 0 0 0",
            "\t  sda FAULTED 0 0 0  too many errors",
        );
        let a = assess_pool(&parse_status(&text).unwrap()[0], None);
        assert_eq!(a.health, Health::Critical);
        assert!(
            a.findings
                .iter()
                .any(|f| f.message == "device is FAULTED: too many errors")
        );
    }
}
