//! Storage health for the wire: runs the SMART, ZFS and md RAID collectors of
//! `unity-collect` and maps their records onto `unity_protocol`'s [`StorageReport`].
//!
//! The mapping keeps a stable summary per object (what the controller indexes, alerts on and
//! keeps history of) and puts the collector's complete record in `detail_json`, so the
//! controller can serve everything the parsers know without the wire freezing every field.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use unity_collect::mdraid::run::MdReport;
use unity_collect::mdraid::{MdArray, RaidLevel, ReadOnly, SyncAction};
use unity_collect::runner::CommandRunner;
use unity_collect::smart::run::{
    CollectorStatus as SmartStatus, DeviceResult, DeviceScanMemory, DeviceSet, DeviceStatus,
    SmartCollection, SmartRunConfig,
};
use unity_collect::smart::{Protocol, Rotation, SmartReport, VerdictStatus};
use unity_collect::source_status::SourceOutcome;
use unity_collect::verdict::{Assessment, Health as CollectHealth};
use unity_collect::zfs::run::ZfsReport;
use unity_collect::zfs::{Pool, PoolListEntry};
use unity_protocol::latest::{
    ArrayReport, DiskReport, Health, Metric, PoolReport, SourceState, SourceStatus, StorageReport,
};

/// Where storage facts come from: the program runner (the real [`SystemRunner`] or, in
/// tests, recorded outputs through the same seam) and the md files.
///
/// [`SystemRunner`]: unity_collect::runner::SystemRunner
#[derive(Debug, Clone)]
pub struct StorageSources<R> {
    pub runner: R,
    pub smart: SmartRunConfig,
    /// `/proc/mdstat`.
    pub mdstat_path: PathBuf,
    /// `/sys` (md arrays' attributes live under `block/<md>/md/`; the device names that say
    /// whether the last SMART scan still holds are there too).
    pub sysfs_root: PathBuf,
    /// The last SMART device scan, reused while the devices stay the same (shared by clones).
    pub smart_scan: Arc<Mutex<DeviceScanMemory>>,
}

impl<R: CommandRunner> StorageSources<R> {
    /// The real host.
    pub fn system(runner: R) -> Self {
        Self {
            runner,
            smart: SmartRunConfig::default(),
            mdstat_path: PathBuf::from(unity_collect::mdraid::run::PROC_MDSTAT),
            sysfs_root: PathBuf::from(unity_collect::mdraid::run::SYSFS_ROOT),
            smart_scan: Arc::default(),
        }
    }

    /// One collection round over every source. Never fails: a source that cannot be read says
    /// so in its [`SourceStatus`].
    pub async fn collect(&self) -> StorageReport {
        let smart = self.collect_smart().await;
        let zfs = unity_collect::zfs::run::collect(&self.runner).await;
        let md = unity_collect::mdraid::run::collect(&self.mdstat_path, &self.sysfs_root);
        let (smart_status, disks) = map_smart(&smart);
        let (zfs_status, pools) = map_zfs(&zfs);
        let (md_status, arrays) = map_md(&md);
        StorageReport {
            smart: smart_status,
            disks,
            zfs: zfs_status,
            pools,
            mdraid: md_status,
            arrays,
        }
    }

    /// SMART for this round, with the device scan of an earlier round when it still holds.
    /// The memory is taken out for the round (rounds do not overlap; a second one at the same
    /// time would scan for itself) and put back after.
    async fn collect_smart(&self) -> SmartCollection {
        let mut memory = self
            .smart_scan
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        let devices = DeviceSet::read(&self.sysfs_root);
        let smart = unity_collect::smart::run::collect_with(
            &self.runner,
            &self.smart,
            &mut memory,
            devices,
            Instant::now(),
        )
        .await;
        if let Ok(mut kept) = self.smart_scan.lock() {
            *kept = memory;
        }
        smart
    }
}

/// Object-safe face of [`StorageSources`], so the run loop does not care which runner it has.
pub trait StorageCollector: Send + Sync {
    fn collect_storage(&self) -> Pin<Box<dyn Future<Output = StorageReport> + Send + '_>>;
}

impl<R: CommandRunner + 'static> StorageCollector for StorageSources<R> {
    fn collect_storage(&self) -> Pin<Box<dyn Future<Output = StorageReport> + Send + '_>> {
        Box::pin(self.collect())
    }
}

fn ok() -> SourceStatus {
    SourceStatus {
        state: SourceState::Ok,
        detail: String::new(),
    }
}

fn status(state: SourceState, detail: impl Into<String>) -> SourceStatus {
    SourceStatus {
        state,
        detail: detail.into(),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("could not serialize detail: {e}") }).to_string()
    })
}

// ---------------------------------------------------------------------------------------
// SMART

/// Maps a SMART collection. A missing smartctl is `ToolMissing` (every host has disks, so it
/// is something for the operator to fix), not `NotPresent`.
pub fn map_smart(collection: &SmartCollection) -> (SourceStatus, Vec<DiskReport>) {
    let source = match &collection.status {
        SmartStatus::Ok => ok(),
        SmartStatus::ToolMissing { program } => status(
            SourceState::ToolMissing,
            format!("`{program}` is not installed: install smartmontools to monitor disks"),
        ),
        SmartStatus::PermissionDenied { detail } => status(
            SourceState::PermissionDenied,
            format!("smartctl needs root (CAP_SYS_RAWIO): {detail}"),
        ),
        SmartStatus::ScanFailed { detail } => status(SourceState::Failed, detail.clone()),
    };
    (source, collection.devices.iter().map(disk_report).collect())
}

/// One device's result on the wire.
pub fn disk_report(result: &DeviceResult) -> DiskReport {
    let (read_status, read_detail) = match &result.status {
        DeviceStatus::Ok => ("ok", String::new()),
        DeviceStatus::InStandby => ("in_standby", "in standby, skipped (not spun up)".into()),
        DeviceStatus::TimedOut { after_ms } => {
            ("timed_out", format!("smartctl killed after {after_ms} ms"))
        }
        DeviceStatus::PermissionDenied { detail } => ("permission_denied", detail.clone()),
        DeviceStatus::OpenFailed { detail } => ("open_failed", detail.clone()),
        DeviceStatus::Unparseable { error } => ("unparseable", error.clone()),
        DeviceStatus::RunFailed { detail } => ("run_failed", detail.clone()),
    };
    let (health, reasons) = match &result.verdict {
        Some(verdict) => (
            match verdict.status {
                VerdictStatus::Passed => Health::Ok,
                VerdictStatus::Unknown => Health::Unknown,
                VerdictStatus::Warning => Health::Warning,
                VerdictStatus::Failing => Health::Critical,
            },
            verdict.messages(),
        ),
        None => (
            Health::Unknown,
            vec![if read_detail.is_empty() {
                "no SMART data this round".to_owned()
            } else {
                read_detail.clone()
            }],
        ),
    };
    let report = result.report.as_ref();
    let identity = report.map(|r| &r.device);
    DiskReport {
        device: result.device.device.clone(),
        device_type: result.device.device_type.clone().unwrap_or_default(),
        protocol: identity
            .and_then(|d| d.protocol)
            .map(|p| match p {
                Protocol::Ata => "ata",
                Protocol::Nvme => "nvme",
                Protocol::Scsi => "scsi",
            })
            .unwrap_or_default()
            .to_owned(),
        model: identity.and_then(|d| d.model.clone()),
        serial: identity.and_then(|d| d.serial.clone()),
        wwn: identity.and_then(|d| d.wwn.clone()),
        firmware: identity.and_then(|d| d.firmware.clone()),
        capacity_bytes: identity.and_then(|d| d.capacity_bytes),
        rotation_rpm: identity.and_then(|d| d.rotation).map(|r| match r {
            Rotation::SolidState => 0,
            Rotation::Rpm(rpm) => rpm,
        }),
        read_status: read_status.to_owned(),
        read_detail,
        health,
        reasons,
        temperature_c: report.and_then(|r| r.temperature_c),
        power_on_hours: report.and_then(|r| r.power_on_hours),
        metrics: report.map(disk_metrics).unwrap_or_default(),
        detail_json: to_json(result),
    }
}

fn saturating(value: u128) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The numbers the controller keeps history of.
pub fn disk_metrics(report: &SmartReport) -> Vec<Metric> {
    let mut metrics = Vec::new();
    let mut push = |name: String, value: Option<u128>| {
        if let Some(value) = value {
            metrics.push(Metric {
                name,
                value: saturating(value),
            });
        }
    };
    if let Some(ata) = &report.ata {
        for attribute in &ata.attributes {
            push(
                format!("ata.{}.{}", attribute.id, attribute.name),
                attribute.raw.value.map(u128::from),
            );
        }
        push(
            "ata.error_log_count".into(),
            ata.error_log_count.map(u128::from),
        );
    }
    if let Some(nvme) = &report.nvme {
        push(
            "nvme.critical_warning".into(),
            nvme.critical_warning.as_ref().map(|w| u128::from(w.raw)),
        );
        push(
            "nvme.available_spare_percent".into(),
            nvme.available_spare_percent.map(u128::from),
        );
        push(
            "nvme.percentage_used".into(),
            nvme.percentage_used.map(u128::from),
        );
        push("nvme.media_errors".into(), nvme.media_errors);
        push("nvme.error_log_entries".into(), nvme.error_log_entries);
        push("nvme.unsafe_shutdowns".into(), nvme.unsafe_shutdowns);
        push("nvme.data_units_written".into(), nvme.data_units_written);
        push("nvme.data_units_read".into(), nvme.data_units_read);
    }
    if let Some(scsi) = &report.scsi {
        push(
            "scsi.grown_defects".into(),
            scsi.grown_defects.map(u128::from),
        );
        for (name, counters) in [
            ("read", &scsi.read),
            ("write", &scsi.write),
            ("verify", &scsi.verify),
        ] {
            push(
                format!("scsi.{name}_uncorrected"),
                counters
                    .as_ref()
                    .and_then(|c| c.total_uncorrected)
                    .map(u128::from),
            );
        }
        push(
            "scsi.start_stop_cycles".into(),
            scsi.start_stop_cycles.map(u128::from),
        );
        push(
            "scsi.percentage_used_endurance".into(),
            scsi.percentage_used_endurance.map(u128::from),
        );
    }
    metrics
}

// ---------------------------------------------------------------------------------------
// ZFS and md share the collector-status and assessment types.

fn map_health(health: CollectHealth) -> Health {
    match health {
        CollectHealth::Healthy => Health::Ok,
        CollectHealth::Warning => Health::Warning,
        CollectHealth::Critical => Health::Critical,
        CollectHealth::Unknown => Health::Unknown,
    }
}

/// A missing `zpool` or `/proc/mdstat` means the host has no ZFS or md: `NotPresent`.
fn map_status(outcome: &SourceOutcome) -> SourceStatus {
    match outcome {
        SourceOutcome::Ok => ok(),
        SourceOutcome::ToolMissing { program } => {
            status(SourceState::NotPresent, format!("`{program}` not found"))
        }
        SourceOutcome::PermissionDenied { program, detail } => status(
            SourceState::PermissionDenied,
            format!("`{program}`: {detail}"),
        ),
        SourceOutcome::TimedOut {
            program,
            timeout_ms,
        } => status(
            SourceState::Failed,
            format!("`{program}` did not answer within {timeout_ms} ms"),
        ),
        SourceOutcome::Failed {
            program,
            exit_code,
            stderr,
        } => status(
            SourceState::Failed,
            format!("`{program}` failed (exit {exit_code:?}): {}", stderr.trim()),
        ),
        SourceOutcome::Unparseable { program, error } => status(
            SourceState::Failed,
            format!("output of `{program}` could not be parsed: {error}"),
        ),
    }
}

fn assessment_for<'a>(assessments: &'a [Assessment], subject: &str) -> Option<&'a Assessment> {
    assessments.iter().find(|a| a.subject == subject)
}

fn health_and_reasons(assessment: Option<&Assessment>) -> (Health, Vec<String>) {
    match assessment {
        Some(a) => (
            map_health(a.health),
            a.findings
                .iter()
                .map(|f| match &f.component {
                    Some(component) => format!("{component}: {}", f.message),
                    None => f.message.clone(),
                })
                .collect(),
        ),
        None => (Health::Unknown, vec!["not assessed".to_owned()]),
    }
}

/// Maps a ZFS collection (pool status, with sizes from `zpool list` when it worked).
pub fn map_zfs(report: &ZfsReport) -> (SourceStatus, Vec<PoolReport>) {
    let source = map_status(&report.status_outcome);
    let pools = report
        .pools
        .iter()
        .map(|pool| {
            let list = report.list.iter().find(|l| l.name == pool.name);
            pool_report(pool, list, assessment_for(&report.assessments, &pool.name))
        })
        .collect();
    (source, pools)
}

fn pool_report(
    pool: &Pool,
    list: Option<&PoolListEntry>,
    assessment: Option<&Assessment>,
) -> PoolReport {
    let (health, reasons) = health_and_reasons(assessment);
    let percent = |v: Option<u64>| v.and_then(|v| u8::try_from(v.min(255)).ok());
    let scan = pool.scan.as_ref();
    PoolReport {
        name: pool.name.clone(),
        state: pool.state.as_word().to_owned(),
        health,
        reasons,
        size_bytes: list.and_then(|l| l.size_bytes),
        allocated_bytes: list.and_then(|l| l.allocated_bytes),
        free_bytes: list.and_then(|l| l.free_bytes),
        capacity_percent: percent(list.and_then(|l| l.capacity_percent)),
        fragmentation_percent: percent(list.and_then(|l| l.fragmentation_percent)),
        scan_function: scan.map(|s| enum_word(&s.function)),
        scan_state: scan.map(|s| enum_word(&s.state)),
        scan_progress_percent: scan
            .and_then(|s| s.progress.as_ref())
            .and_then(|p| p.percent_done)
            .map(|p| p as f32),
        scan_errors: scan.and_then(|s| s.errors),
        data_errors: pool.errors.as_ref().and_then(|e| e.count),
        detail_json: to_json(
            &serde_json::json!({ "status": pool, "list": list, "assessment": assessment }),
        ),
    }
}

/// `snake_case` name of a unit enum variant, via its serde name (`InProgress` → `in_progress`).
fn enum_word<T: serde::Serialize>(value: &T) -> String {
    let name = serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Maps an md collection.
pub fn map_md(report: &MdReport) -> (SourceStatus, Vec<ArrayReport>) {
    let mut source = map_status(&report.outcome);
    // Unreadable lines that belong to no array: said on the source (still `ok`: everything
    // else was read), never dropped.
    if let Some(notices) = report
        .mdstat
        .as_ref()
        .map(|m| &m.notices)
        .filter(|n| !n.is_empty())
    {
        source.detail = format!(
            "part of /proc/mdstat could not be read: {}",
            notices.join("; ")
        );
    }
    let arrays = report
        .mdstat
        .iter()
        .flat_map(|m| m.arrays.iter())
        .map(|array| array_report(array, assessment_for(&report.assessments, &array.name)))
        .collect();
    (source, arrays)
}

fn array_report(array: &MdArray, assessment: Option<&Assessment>) -> ArrayReport {
    let (health, reasons) = health_and_reasons(assessment);
    let level = match &array.level {
        None if array.container_format().is_some() => "container".to_owned(),
        None => String::new(),
        Some(RaidLevel::Other(word)) => word.clone(),
        Some(level) => enum_word(level).replace('_', ""),
    };
    let mut state = if array.active { "active" } else { "inactive" }.to_owned();
    match array.read_only {
        ReadOnly::No => {}
        ReadOnly::ReadOnly => state.push_str(" (read-only)"),
        ReadOnly::AutoReadOnly => state.push_str(" (auto-read-only)"),
    }
    ArrayReport {
        name: array.name.clone(),
        level,
        state,
        health,
        reasons,
        raid_disks: array.raid_disks,
        active_disks: array.working_disks,
        degraded: !array.missing_slots().is_empty()
            || array.members.iter().any(|m| m.faulty)
            || matches!((array.raid_disks, array.working_disks), (Some(r), Some(w)) if w < r),
        sync_action: array.sync.as_ref().map(|s| match s.action {
            SyncAction::Resync => "resync".to_owned(),
            SyncAction::Recovery => "recovery".to_owned(),
            SyncAction::Reshape => "reshape".to_owned(),
            SyncAction::Check => "check".to_owned(),
            SyncAction::Repair => "repair".to_owned(),
        }),
        sync_progress_percent: array
            .sync
            .as_ref()
            .and_then(|s| s.percent)
            .map(|p| p as f32),
        detail_json: to_json(&serde_json::json!({ "array": array, "assessment": assessment })),
    }
}

#[cfg(test)]
mod tests {
    use unity_collect::runner::RecordedRunner;

    use super::*;

    #[tokio::test]
    async fn recorded_host_maps_to_a_storage_report() {
        let dir = tempfile::tempdir().unwrap();
        let report = crate::testing::recorded_storage(dir.path())
            .unwrap()
            .collect()
            .await;

        assert_eq!(report.smart.state, SourceState::Ok, "{:?}", report.smart);
        let failing = report
            .disks
            .iter()
            .find(|d| d.device == "/dev/nvme0")
            .unwrap();
        assert_eq!(failing.health, Health::Critical, "{:?}", failing.reasons);
        assert_eq!(failing.protocol, "nvme");
        assert!(failing.serial.is_some());
        assert!(
            failing
                .metrics
                .iter()
                .any(|m| m.name == "nvme.percentage_used" && m.value == 114)
        );
        assert!(
            failing.reasons.iter().any(|r| r.contains("114")),
            "{:?}",
            failing.reasons
        );
        let detail: serde_json::Value = serde_json::from_str(&failing.detail_json).unwrap();
        assert_eq!(detail["status"], "Ok");
        // The megaraid disk had no recording: smartctl "missing" for it is a per-device error.
        let megaraid = report
            .disks
            .iter()
            .find(|d| d.device == "/dev/bus/0")
            .unwrap();
        assert_eq!(megaraid.health, Health::Unknown);
        assert_eq!(megaraid.read_status, "run_failed");

        assert_eq!(report.zfs.state, SourceState::Ok, "{:?}", report.zfs);
        let pool = &report.pools[0];
        assert_eq!(pool.state, "DEGRADED");
        assert_eq!(pool.health, Health::Critical, "{:?}", pool.reasons);
        assert!(
            pool.size_bytes.is_some(),
            "sizes come from the zpool list fallback"
        );

        assert_eq!(report.mdraid.state, SourceState::Ok);
        let array = &report.arrays[0];
        assert!(array.degraded, "{array:?}");
        assert_eq!(array.level, "raid5");
        assert_ne!(array.health, Health::Ok);
    }

    #[tokio::test]
    async fn a_host_without_tools_reports_why_for_each_source() {
        let dir = tempfile::tempdir().unwrap();
        let sources = StorageSources {
            runner: RecordedRunner::new(),
            smart: SmartRunConfig::default(),
            mdstat_path: dir.path().join("no-mdstat"),
            sysfs_root: dir.path().to_owned(),
            smart_scan: Default::default(),
        };
        let report = sources.collect().await;
        assert_eq!(report.smart.state, SourceState::ToolMissing);
        assert!(report.smart.detail.contains("smartmontools"));
        assert_eq!(report.zfs.state, SourceState::NotPresent);
        assert_eq!(report.mdraid.state, SourceState::NotPresent);
        assert!(report.disks.is_empty() && report.pools.is_empty() && report.arrays.is_empty());
    }

    #[test]
    fn enum_words_are_snake_case() {
        assert_eq!(
            enum_word(&unity_collect::zfs::ScanState::InProgress),
            "in_progress"
        );
        assert_eq!(enum_word(&unity_collect::zfs::ScanFunction::Scrub), "scrub");
    }
}
