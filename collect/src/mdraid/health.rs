//! One verdict per md array, with reasons. Rules and why: `docs/storage-health.md`.
//!
//! The key judgement is redundancy left, not just "degraded": a 3-way raid1 or a raid6
//! missing one member still survives another failure (warning), a 2-way raid1 or a raid5
//! missing one does not (critical).

use crate::verdict::{Assessment, Finding, Health, Severity};

use super::model::{
    Detail, DeviceState, MdArray, RaidLevel, ReadOnly, SyncAction, SyncState, SysfsState,
};

struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, severity: Severity, component: Option<&str>, message: String) {
        self.0.push(Finding {
            severity,
            component: component.map(str::to_owned),
            message,
        });
    }

    fn into_assessment(self, subject: &str) -> Assessment {
        let health = match self.0.iter().map(|f| f.severity).max() {
            Some(Severity::Critical) => Health::Critical,
            Some(Severity::Warning) => Health::Warning,
            _ => Health::Healthy,
        };
        Assessment {
            subject: subject.to_owned(),
            health,
            findings: self.0,
        }
    }

    /// Degraded: critical when no redundancy is left (or we cannot tell), else warning.
    fn missing(&mut self, level: Option<&RaidLevel>, raid_disks: Option<u32>, missing: u32) {
        if missing == 0 {
            return;
        }
        let tolerated = level.and_then(|l| l.tolerated_failures(raid_disks));
        let (severity, consequence) = match tolerated {
            Some(t) if missing < t => (
                Severity::Warning,
                "redundancy reduced, still survives another failure",
            ),
            Some(t) if missing == t => (
                Severity::Critical,
                "no redundancy left: one more failure loses data",
            ),
            Some(_) => (
                Severity::Critical,
                "more members missing than the level tolerates",
            ),
            None => (Severity::Critical, "redundancy reduced"),
        };
        self.add(
            severity,
            None,
            format!("array is degraded: {missing} member(s) missing, {consequence}"),
        );
    }

    fn sync(&mut self, action: SyncAction, percent: Option<f64>, state: SyncState) {
        let pct = percent.map_or_else(String::new, |p| format!(" {p:.1}%"));
        let (severity, what) = match (action, state) {
            (SyncAction::Check, _) => (Severity::Info, "consistency check (scrub)"),
            (SyncAction::Repair, _) => (Severity::Warning, "repair"),
            (SyncAction::Recovery, _) => {
                (Severity::Warning, "recovery (rebuild onto a new member)")
            }
            (SyncAction::Resync, _) => (Severity::Warning, "resync"),
            (SyncAction::Reshape, _) => (Severity::Warning, "reshape"),
        };
        let how = match state {
            SyncState::Running => format!("in progress{pct}"),
            SyncState::Delayed => "delayed (waits for another array on the same disks)".to_owned(),
            SyncState::Pending => "pending (starts on first write)".to_owned(),
        };
        self.add(severity, None, format!("{what} {how}"));
    }
}

/// Assesses an array from `/proc/mdstat`, plus its sysfs attributes when available (the only
/// source of `mismatch_cnt`).
pub fn assess_array(array: &MdArray, sysfs: Option<&SysfsState>) -> Assessment {
    let mut f = Findings(Vec::new());
    for notice in &array.notices {
        f.add(
            Severity::Warning,
            None,
            format!("partial record, part of /proc/mdstat could not be read: {notice}"),
        );
    }
    if let Some(format) = array.container_format() {
        container_findings(&mut f, format, &array.member_arrays);
        return f.into_assessment(&array.name);
    }
    if !array.active {
        f.add(
            Severity::Critical,
            None,
            "array is inactive: not assembled, its data is not available".to_owned(),
        );
    }
    if array.active {
        let missing = missing_members(&mut f, array);
        f.missing(array.level.as_ref(), array.raid_disks, missing);
    }
    for m in &array.members {
        if m.faulty {
            f.add(
                Severity::Warning,
                Some(&m.device),
                "member is marked faulty (F): replace it".to_owned(),
            );
        }
        if m.replacement {
            f.add(
                Severity::Info,
                Some(&m.device),
                "member is a replacement being built (R)".to_owned(),
            );
        }
    }
    if let Some(s) = &array.sync {
        f.sync(s.action, s.percent, s.state);
    }
    match array.read_only {
        ReadOnly::No => {}
        ReadOnly::AutoReadOnly => f.add(
            Severity::Info,
            None,
            "array is auto-read-only until first write".to_owned(),
        ),
        ReadOnly::ReadOnly => f.add(Severity::Info, None, "array is read-only".to_owned()),
    }
    if let Some(sys) = sysfs {
        sysfs_findings(&mut f, sys, array.sync.is_some());
    }
    f.into_assessment(&array.name)
}

/// How many members are missing, by the worse of md's two accounts of it.
///
/// The kernel prints `[raid_disks/raid_disks - degraded]` from its `degraded` counter, and the
/// map one character per slot, `U` only when that slot's device is present and in sync
/// (`drivers/md/raid1.c`, `raid5.c`, `raid10.c` status functions). They are updated at
/// different moments (a failing member, a rebuilt spare being activated), so they can
/// disagree for a while, or for good when something is wrong. A `[2/2] [U_]` array has a
/// slot that is not in sync whatever the count says: the verdict takes the larger number
/// missing, and the disagreement is itself a finding.
fn missing_members(f: &mut Findings, array: &MdArray) -> u32 {
    let by_counts = match (array.raid_disks, array.working_disks) {
        (Some(n), Some(m)) => Some(n.saturating_sub(m)),
        _ => None,
    };
    let by_map = array
        .slot_map
        .as_ref()
        .map(|_| u32::try_from(array.missing_slots().len()).unwrap_or(u32::MAX));
    let map_slots = array
        .slot_map
        .as_deref()
        .map(|m| u32::try_from(m.chars().count()).unwrap_or(u32::MAX));
    if let (Some(counts), Some(map), Some(n), Some(m), Some(slots)) = (
        by_counts,
        by_map,
        array.raid_disks,
        array.working_disks,
        map_slots,
    ) && (counts != map || slots != n)
    {
        f.add(
            Severity::Warning,
            None,
            format!(
                "md's member counts [{n}/{m}] and its slot map [{}] disagree ({counts} vs \
                 {map} missing{}); judged by the worse",
                array.slot_map.as_deref().unwrap_or(""),
                if slots == n {
                    String::new()
                } else {
                    format!(", the map has {slots} slots for {n} members")
                }
            ),
        );
    }
    by_counts.max(by_map).unwrap_or(0)
}

/// A firmware-RAID metadata container (Intel IMSM/VROC, DDF): md keeps it inactive by design
/// and all its disks show as spares (S); the volumes are its member arrays, judged on their
/// own. A container with no member array assembled holds volumes nobody can reach.
fn container_findings(f: &mut Findings, format: &str, members: &[String]) {
    if members.is_empty() {
        f.add(
            Severity::Warning,
            None,
            format!(
                "{format} metadata container with no member array assembled: its volumes \
                 are not available (assemble them with `mdadm --assemble --scan`)"
            ),
        );
    } else {
        f.add(
            Severity::Info,
            None,
            format!(
                "{format} metadata container (firmware RAID), inactive by design; its \
                 volumes are judged as their own arrays: {}",
                members.join(", ")
            ),
        );
    }
}

fn sysfs_findings(f: &mut Findings, sys: &SysfsState, sync_seen: bool) {
    let idle = sys.sync_action.as_deref().is_none_or(|a| a == "idle");
    if let Some(n) = sys.mismatch_cnt.filter(|n| *n > 0)
        && idle
    {
        f.add(
            Severity::Warning,
            None,
            format!(
                "last check found {n} mismatched sectors (mismatch_cnt): run a repair and check the disks"
            ),
        );
    }
    if !sync_seen
        && !idle
        && let Some(action) = sys.sync_action.as_deref().and_then(SyncAction::from_word)
    {
        let percent = sys
            .sync_completed
            .filter(|(_, t)| *t > 0)
            .map(|(d, t)| d as f64 * 100.0 / t as f64);
        f.sync(action, percent, SyncState::Running);
    }
    if matches!(
        sys.array_state.as_deref(),
        Some("broken" | "inactive" | "clear")
    ) {
        f.add(
            Severity::Critical,
            None,
            format!(
                "sysfs array_state is {:?}",
                sys.array_state.as_deref().unwrap_or("")
            ),
        );
    }
}

/// Assesses an array from `mdadm --detail`.
pub fn assess_detail(detail: &Detail) -> Assessment {
    let mut f = Findings(Vec::new());
    let subject = detail.device.as_deref().unwrap_or("md");
    let has = |w: &str| detail.state.iter().any(|s| s.eq_ignore_ascii_case(w));
    if has("inactive") || has("FAILED") || has("Not Started") {
        f.add(
            Severity::Critical,
            None,
            format!("array state is {:?}", detail.state.join(", ")),
        );
    }
    if detail.level == Some(RaidLevel::Container) {
        let format = detail.version.as_deref().unwrap_or("external");
        let members: Vec<String> = detail
            .member_arrays
            .iter()
            .map(|m| m.trim_start_matches("/dev/").to_owned())
            .collect();
        container_findings(&mut f, format, &members);
    } else {
        let missing = match (detail.raid_devices, detail.active_devices) {
            (Some(n), Some(a)) => n.saturating_sub(a),
            _ => u32::from(has("degraded")),
        };
        f.missing(detail.level.as_ref(), detail.raid_devices, missing);
    }
    for d in &detail.devices {
        let name = d.path.as_deref();
        if d.state.contains(&DeviceState::Faulty) {
            f.add(
                Severity::Warning,
                name,
                "member is faulty: replace it".to_owned(),
            );
        }
    }
    if let Some(s) = &detail.sync {
        f.sync(s.action, Some(f64::from(s.percent)), SyncState::Running);
    } else if has("resyncing") || has("recovering") || has("reshaping") {
        let action = if has("recovering") {
            SyncAction::Recovery
        } else if has("reshaping") {
            SyncAction::Reshape
        } else {
            SyncAction::Resync
        };
        f.sync(action, None, SyncState::Running);
    }
    f.into_assessment(subject)
}
