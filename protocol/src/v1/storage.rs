//! Storage health: disks (SMART), ZFS pools and md RAID arrays, as the agent reports them.
//!
//! The wire carries a stable **summary** of each object — identity, health verdict with
//! reasons, the numbers the controller keeps history of — plus `detail_json`, the agent's full
//! normalized record as JSON text. The summary is frozen with this protocol version; the detail
//! is self-describing, so parsers can learn new fields without a protocol change, and the
//! controller serves it as-is.

use serde::{Deserialize, Serialize};

/// One storage collection round. Each source says whether it worked, so "no pools" and
/// "could not ask" are different things.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageReport {
    pub smart: SourceStatus,
    pub disks: Vec<DiskReport>,
    pub zfs: SourceStatus,
    pub pools: Vec<PoolReport>,
    pub mdraid: SourceStatus,
    pub arrays: Vec<ArrayReport>,
}

/// Whether a collector could run, and if not, why (once per change in the agent's log, every
/// round on the wire so the controller can show it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceStatus {
    pub state: SourceState,
    /// Operator-facing explanation; empty when `Ok`, unless part of the output could not be
    /// read (what was read is reported; the rest is named here or on its object).
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    Ok,
    /// Nothing of this kind on the host (no md driver, no ZFS module).
    NotPresent,
    /// The tool is not installed (smartctl, zpool).
    ToolMissing,
    PermissionDenied,
    /// The tool ran but failed or printed something we could not parse.
    Failed,
}

crate::word_enum!(SourceState, UnknownSourceState, "source state", {
    Ok => "ok",
    NotPresent => "not_present",
    ToolMissing => "tool_missing",
    PermissionDenied => "permission_denied",
    Failed => "failed",
});

impl SourceState {
    /// The collector should work but does not. `NotPresent` (nothing of that kind on the
    /// host) and `ToolMissing` (e.g. no smartctl in a VM) are normal set-ups.
    pub fn is_broken(self) -> bool {
        matches!(self, SourceState::Failed | SourceState::PermissionDenied)
    }
}

/// Health of one object, in increasing order of concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Disk `passed`, pool or array healthy.
    Ok,
    /// Could not tell (standby, no data, unreadable).
    Unknown,
    Warning,
    /// Disk failing, pool or array without redundancy or faulted.
    Critical,
}

// In increasing order of concern, as the enum is.
crate::word_enum!(Health, UnknownHealth, "health", {
    Ok => "ok",
    Unknown => "unknown",
    Warning => "warning",
    Critical => "critical",
});

/// One disk as smartctl saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskReport {
    /// Device path at collection time (`/dev/sdb`); changes across reboots — not an identity.
    pub device: String,
    /// smartctl `-d` type (`sat`, `nvme`, `megaraid,3`), empty when auto-detected.
    pub device_type: String,
    /// `ata`, `nvme`, `scsi` or empty when unknown.
    pub protocol: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub firmware: Option<String>,
    pub capacity_bytes: Option<u64>,
    /// Spindle speed; `Some(0)` for solid-state.
    pub rotation_rpm: Option<u32>,
    /// Whether the disk could be read this round (`ok`, `in_standby`, `timed_out`, …).
    pub read_status: String,
    pub read_detail: String,
    pub health: Health,
    pub reasons: Vec<String>,
    pub temperature_c: Option<i32>,
    pub power_on_hours: Option<u64>,
    /// Numbers worth a history: ATA attribute raw values as `ata.<id>.<name>`, NVMe and SCSI
    /// counters by name (`nvme.percentage_used`, `scsi.grown_defects`, …).
    pub metrics: Vec<Metric>,
    /// The full normalized SMART record and verdict, JSON.
    pub detail_json: String,
}

/// A named numeric reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Metric {
    pub name: String,
    pub value: i64,
}

/// One ZFS pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolReport {
    pub name: String,
    /// As zpool prints it: `ONLINE`, `DEGRADED`, `FAULTED`, …
    pub state: String,
    pub health: Health,
    pub reasons: Vec<String>,
    pub size_bytes: Option<u64>,
    pub allocated_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub capacity_percent: Option<u8>,
    pub fragmentation_percent: Option<u8>,
    /// `scrub` or `resilver`, with its state, when zpool reported one.
    pub scan_function: Option<String>,
    pub scan_state: Option<String>,
    pub scan_progress_percent: Option<f32>,
    /// Errors the last completed scan found.
    pub scan_errors: Option<u64>,
    /// Permanent data errors zpool reports.
    pub data_errors: Option<u64>,
    /// The full parsed pool (vdev tree, error counters, scan line), JSON.
    pub detail_json: String,
}

/// One md RAID array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArrayReport {
    /// `md0`, `md127`, …
    pub name: String,
    /// `raid1`, `raid5`, … (empty for an inactive array of unknown level).
    pub level: String,
    /// `active`, `inactive`, plus read-only flags.
    pub state: String,
    pub health: Health,
    pub reasons: Vec<String>,
    pub raid_disks: Option<u32>,
    pub active_disks: Option<u32>,
    pub degraded: bool,
    /// `resync`, `recovery`, `reshape`, `check` while one runs.
    pub sync_action: Option<String>,
    pub sync_progress_percent: Option<f32>,
    /// The full parsed array (members, roles, bitmap, sysfs state), JSON.
    pub detail_json: String,
}
