//! What we know about md arrays, from `/proc/mdstat`, `mdadm --detail` and sysfs.
//!
//! These records travel as JSON in a report's `detail_json` (and are stored that way): enums
//! append-only, fields added later are `#[serde(default)]` so older records still read.
//! Words the kernel or `mdadm` print that we do not model are kept as text (`Other`), so
//! a new kernel never makes an array disappear from the report.

use serde::{Deserialize, Serialize};

/// All of `/proc/mdstat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mdstat {
    /// `Personalities :` list without brackets; `None` when the line is absent (fragment).
    pub personalities: Option<Vec<String>>,
    pub arrays: Vec<MdArray>,
    /// `unused devices:` list (`<none>` → empty); `None` when the trailer is absent.
    pub unused_devices: Option<Vec<String>>,
    /// Lines outside any array that could not be read, each naming its line; the rest of
    /// the file was kept. Lines before an array move to that array's notices (so they are
    /// reported with it); what stays here came after the last array or in a file with none.
    #[serde(default)]
    pub notices: Vec<String>,
}

/// RAID level (personality) of an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaidLevel {
    Linear,
    Raid0,
    Raid1,
    Raid4,
    Raid5,
    Raid6,
    Raid10,
    Multipath,
    Faulty,
    /// An external-metadata container (`mdadm --detail` "container").
    Container,
    Other(String),
}

impl RaidLevel {
    /// `raid5`, `level 5` number, `mdadm`'s `raid5`/`container`.
    pub fn from_word(word: &str) -> Self {
        match word {
            "linear" => Self::Linear,
            "raid0" | "0" => Self::Raid0,
            "raid1" | "1" => Self::Raid1,
            "raid4" | "4" => Self::Raid4,
            "raid5" | "5" => Self::Raid5,
            "raid6" | "6" => Self::Raid6,
            "raid10" | "10" => Self::Raid10,
            "multipath" => Self::Multipath,
            "faulty" => Self::Faulty,
            "container" => Self::Container,
            other => Self::Other(other.to_owned()),
        }
    }

    /// How many members may be missing before data is lost; `None` when it depends on
    /// layout we do not see (raid10) or the level has no redundancy notion.
    pub fn tolerated_failures(&self, raid_disks: Option<u32>) -> Option<u32> {
        match self {
            Self::Raid0 | Self::Linear => Some(0),
            Self::Raid1 => raid_disks.map(|n| n.saturating_sub(1)),
            Self::Raid4 | Self::Raid5 => Some(1),
            Self::Raid6 => Some(2),
            _ => None,
        }
    }
}

/// One array in `/proc/mdstat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MdArray {
    /// `md0`, `md_d0`, `md127`.
    pub name: String,
    pub active: bool,
    pub read_only: ReadOnly,
    /// Absent for inactive arrays assembled without a personality.
    pub level: Option<RaidLevel>,
    pub members: Vec<Member>,
    /// Usable size in 1 KiB blocks.
    pub blocks: Option<u64>,
    /// `super 1.2`, `super external:imsm`; `None` for 0.90 metadata (not printed).
    pub superblock: Option<String>,
    pub chunk_kib: Option<u64>,
    /// Parity algorithm number (raid4/5/6).
    pub algorithm: Option<u32>,
    /// raid10 layout words (`2 near-copies`) and any other layout text we do not model.
    pub layout: Vec<String>,
    /// `[n/m]`: members the array should have.
    pub raid_disks: Option<u32>,
    /// `[n/m]`: members currently in sync.
    pub working_disks: Option<u32>,
    /// `[UU_]`: `U` in sync, `_` missing or failed, one character per slot.
    pub slot_map: Option<String>,
    pub bitmap: Option<Bitmap>,
    pub sync: Option<SyncStatus>,
    /// For a member array of a firmware-RAID container (`super external:/md127/0`): the
    /// container's name (`md127`).
    #[serde(default)]
    pub container: Option<String>,
    /// For a firmware-RAID container (`super external:imsm`): the member arrays this file
    /// shows inside it.
    #[serde(default)]
    pub member_arrays: Vec<String>,
    /// What of this array's lines could not be read, each naming its line. Non-empty means
    /// the record is partial: what parsed is kept, and the verdict cannot be "healthy".
    #[serde(default)]
    pub notices: Vec<String>,
}

impl MdArray {
    /// The metadata format (`imsm`, `ddf`) when this "array" is a firmware-RAID metadata
    /// container: md keeps it inactive by design, and the volumes inside it are the member
    /// arrays (`super external:/<container>/<n>`).
    pub fn container_format(&self) -> Option<&str> {
        let format = self.superblock.as_deref()?.strip_prefix("external:")?;
        (!format.is_empty() && !format.starts_with(['/', '-']) && !format.contains('/'))
            .then_some(format)
    }

    /// For a member array, the container named by `external:/md127/0`; mdmon marks a
    /// member whose metadata it is updating with `-` instead of the first `/`.
    pub fn container_of_superblock(&self) -> Option<&str> {
        let rest = self.superblock.as_deref()?.strip_prefix("external:")?;
        let rest = rest.strip_prefix(['/', '-'])?;
        let (container, _member) = rest.split_once('/')?;
        (!container.is_empty()).then_some(container)
    }

    /// Whether some of the array's lines could not be read.
    pub fn is_partial(&self) -> bool {
        !self.notices.is_empty()
    }

    /// Slot indexes shown as `_` in the status map.
    pub fn missing_slots(&self) -> Vec<usize> {
        self.slot_map
            .as_deref()
            .unwrap_or("")
            .chars()
            .enumerate()
            .filter(|(_, c)| *c == '_')
            .map(|(i, _)| i)
            .collect()
    }
}

/// `(read-only)` / `(auto-read-only)` after the state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadOnly {
    No,
    ReadOnly,
    /// Read-only until the first write; normal after boot for arrays not yet written.
    AutoReadOnly,
}

/// One member device `sda1[3](F)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub device: String,
    /// The number in brackets: the member's descriptor index (not the slot for spares).
    pub index: u32,
    pub faulty: bool,
    pub spare: bool,
    pub write_mostly: bool,
    /// `(R)`: a replacement being built for another member.
    pub replacement: bool,
    /// `(J)`: a raid5/6 write journal device.
    pub journal: bool,
}

/// `bitmap: 4/15 pages [16KB], 65536KB chunk[, file: /path]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bitmap {
    pub pages_used: u64,
    pub pages_total: u64,
    pub memory_kib: u64,
    pub chunk_kib: u64,
    pub file: Option<String>,
}

/// What md is doing to the array's redundancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncAction {
    /// Making redundancy consistent (new array, unclean shutdown).
    Resync,
    /// Rebuilding onto a new/spare member.
    Recovery,
    /// Changing level, size or layout.
    Reshape,
    /// Read-only comparison (scheduled scrub); counts mismatches.
    Check,
    /// Comparison that rewrites mismatches.
    Repair,
}

impl SyncAction {
    pub fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "resync" => Self::Resync,
            "recovery" | "recover" => Self::Recovery,
            "reshape" => Self::Reshape,
            "check" => Self::Check,
            "repair" => Self::Repair,
            _ => return None,
        })
    }
}

/// A sync operation's line in `/proc/mdstat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub action: SyncAction,
    pub state: SyncState,
    pub percent: Option<f64>,
    /// Position and total, in the sync's own unit (1 KiB blocks per member device).
    pub done: Option<u64>,
    pub total: Option<u64>,
    pub finish_minutes: Option<f64>,
    pub speed_kib_per_sec: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncState {
    Running,
    /// `resync=DELAYED`: waits for another array sharing a disk.
    Delayed,
    /// `resync=PENDING`: waits for the array to be written (auto-read-only).
    Pending,
}

/// `mdadm --detail` of one array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    /// The `/dev/md0:` header.
    pub device: Option<String>,
    /// Metadata version (`1.2`, `0.90`, `ddf`, `imsm`).
    pub version: Option<String>,
    pub creation_time: Option<String>,
    pub level: Option<RaidLevel>,
    pub array_size_kib: Option<u64>,
    pub used_dev_size_kib: Option<u64>,
    pub raid_devices: Option<u32>,
    pub total_devices: Option<u32>,
    pub persistence: Option<String>,
    pub intent_bitmap: Option<String>,
    pub update_time: Option<String>,
    /// `State :` split on commas, trimmed: `clean`, `degraded`, `recovering`, …
    pub state: Vec<String>,
    pub active_devices: Option<u32>,
    pub working_devices: Option<u32>,
    pub failed_devices: Option<u32>,
    pub spare_devices: Option<u32>,
    pub layout: Option<String>,
    pub chunk_size: Option<String>,
    pub consistency_policy: Option<String>,
    /// `Rebuild/Resync/Reshape/Check Status : N% complete`.
    pub sync: Option<DetailSync>,
    pub name: Option<String>,
    pub uuid: Option<String>,
    /// Event counter as printed (`0.18` for 0.90 metadata).
    pub events: Option<String>,
    /// DDF/IMSM member: `Container : /dev/md0, member 0`.
    pub container: Option<String>,
    /// DDF/IMSM container: `Member Arrays : /dev/md/vol0 …`.
    pub member_arrays: Vec<String>,
    pub devices: Vec<DetailDevice>,
    /// Every other `key : value` line, in order, so nothing printed is dropped.
    pub other: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetailSync {
    pub action: SyncAction,
    pub percent: u8,
}

/// A row of the `mdadm --detail` device table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetailDevice {
    /// `Number`; `None` for `-` (removed slots, container members).
    pub number: Option<u32>,
    pub major: u32,
    pub minor: u32,
    /// `RaidDevice` slot; `None` for `-` (spares, faulty, container members).
    pub raid_device: Option<u32>,
    pub state: Vec<DeviceState>,
    /// `None` for a `removed` placeholder.
    pub path: Option<String>,
}

/// One word of the device table's State column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceState {
    Active,
    Sync,
    Spare,
    Rebuilding,
    Faulty,
    Removed,
    WriteMostly,
    Failfast,
    Replacement,
    Journal,
    Blocked,
    Other(String),
}

impl DeviceState {
    pub fn from_word(word: &str) -> Self {
        match word {
            "active" => Self::Active,
            "sync" => Self::Sync,
            "spare" => Self::Spare,
            "rebuilding" => Self::Rebuilding,
            "faulty" => Self::Faulty,
            "removed" => Self::Removed,
            "writemostly" => Self::WriteMostly,
            "failfast" => Self::Failfast,
            "replacement" => Self::Replacement,
            "journal" => Self::Journal,
            "blocked" => Self::Blocked,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// The md sysfs attributes of one array (`/sys/block/mdX/md/`), parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysfsState {
    /// `array_state`: `clean`, `active`, `inactive`, `read-auto`, `readonly`, `broken`, …
    pub array_state: Option<String>,
    /// `degraded`: number of missing members (absent for raid0/linear).
    pub degraded: Option<u32>,
    /// `sync_action`: `idle`, `resync`, `recover`, `check`, `repair`, `reshape`, `frozen`.
    pub sync_action: Option<String>,
    /// `sync_completed`: `done / total` sectors; `None` for `none`.
    pub sync_completed: Option<(u64, u64)>,
    /// `mismatch_cnt`: sectors found inconsistent by the last check/repair.
    pub mismatch_cnt: Option<u64>,
    pub raid_disks: Option<u32>,
    pub level: Option<RaidLevel>,
}
