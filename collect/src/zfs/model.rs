//! What we know about a pool, independent of which `zpool` output it came from.
//!
//! Text and JSON status outputs land in the same [`Pool`], so the controller never cares
//! which OpenZFS version a host runs. Types travel over the wire with postcard: enums are
//! append-only, no `flatten`/`untagged`/`skip_serializing_if`, and free text that ZFS prints
//! (dates, durations, notes) is kept verbatim rather than guessed at.

use serde::{Deserialize, Serialize};

/// One pool from `zpool status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    /// The ` state:` line.
    pub state: VdevState,
    /// The `status:` paragraph, continuation lines joined with single spaces.
    pub status: Option<String>,
    /// The `action:` paragraph, joined like `status`.
    pub action: Option<String>,
    /// The `see:` URL (names the ZFS-8000-xx message).
    pub see: Option<String>,
    /// The `scan:` (or Solaris ` scrub:`) section; `None` when the pool never had one.
    pub scan: Option<Scan>,
    /// Further `scan:` sections of the same pool: OpenZFS 2.1+ prints one per dRAID vdev
    /// being rebuilt. Each is judged like the first.
    #[serde(default)]
    pub more_scans: Vec<Scan>,
    /// The pool's root vdev: its counters are the pool's, its children the data vdevs.
    pub root: Vdev,
    /// Members of the `logs` section (separate intent log).
    pub logs: Vec<Vdev>,
    /// Members of the `cache` section (L2ARC).
    pub cache: Vec<Vdev>,
    /// Members of the `spares` section; their counters are usually absent.
    pub spares: Vec<Vdev>,
    /// Members of the `special` allocation class.
    pub special: Vec<Vdev>,
    /// Members of the `dedup` allocation class.
    pub dedup: Vec<Vdev>,
    /// The `errors:` lines; `None` when the output had none (fragments, UNAVAIL pools).
    pub errors: Option<DataErrors>,
    /// Lines of this pool's block that could not be read, each naming its line. Non-empty
    /// means the record is partial: what parsed is kept, the verdict cannot be "healthy".
    #[serde(default)]
    pub notices: Vec<String>,
}

impl Pool {
    /// Every vdev of the pool, depth first, with the section it belongs to.
    pub fn all_vdevs(&self) -> Vec<(VdevClass, &Vdev)> {
        let mut out = Vec::new();
        fn walk<'a>(class: VdevClass, v: &'a Vdev, out: &mut Vec<(VdevClass, &'a Vdev)>) {
            out.push((class, v));
            for c in &v.children {
                walk(class, c, out);
            }
        }
        walk(VdevClass::Data, &self.root, &mut out);
        for (class, list) in [
            (VdevClass::Log, &self.logs),
            (VdevClass::Cache, &self.cache),
            (VdevClass::Spare, &self.spares),
            (VdevClass::Special, &self.special),
            (VdevClass::Dedup, &self.dedup),
        ] {
            for v in list {
                walk(class, v, &mut out);
            }
        }
        out
    }
}

/// Which section of the config a vdev sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VdevClass {
    Data,
    Log,
    Cache,
    Spare,
    Special,
    Dedup,
}

/// One row of the config tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vdev {
    pub name: String,
    pub kind: VdevKind,
    pub state: VdevState,
    /// READ/WRITE/CKSUM; `None` for rows that print no counters (spares, `AVAIL`).
    pub counters: Option<ErrorCounters>,
    /// Whatever ZFS printed after the counters: `was /dev/…`, `corrupted data`,
    /// `too many errors`, `(resilvering)`, `insufficient replicas`.
    pub note: Option<String>,
    /// The old path of a device ZFS now shows by GUID (`was /dev/…` note).
    pub was: Option<String>,
    pub children: Vec<Vdev>,
}

/// What a vdev is, from its name (text) or `vdev_type` (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VdevKind {
    /// The pool itself.
    Root,
    Mirror,
    Raidz1,
    Raidz2,
    Raidz3,
    /// A dRAID group; the name (`draid1:7d:8c:0s-0`) carries its geometry.
    Draid,
    /// `replacing-N`: old and new device while `zpool replace` runs.
    Replacing,
    /// `spare-N`: a hot spare temporarily standing in for a device.
    SpareGroup,
    /// A device (disk, partition, GUID of a missing disk).
    Disk,
    /// A plain file used as a vdev (absolute path outside `/dev`).
    File,
    /// A vdev kind this parser does not know; the name is kept.
    Other(String),
}

/// Vdev and pool states, as printed by ZFS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VdevState {
    Online,
    Degraded,
    Faulted,
    Offline,
    Unavail,
    Removed,
    /// A hot spare ready for use.
    Avail,
    /// A hot spare currently standing in for a device.
    Inuse,
    /// A pool whose I/O is suspended (failmode=wait).
    Suspended,
    /// `zpool split` leftovers.
    Split,
}

impl VdevState {
    /// Parses the upper-case word ZFS prints; `None` for anything else.
    pub fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "ONLINE" => Self::Online,
            "DEGRADED" => Self::Degraded,
            "FAULTED" => Self::Faulted,
            "OFFLINE" => Self::Offline,
            "UNAVAIL" => Self::Unavail,
            "REMOVED" => Self::Removed,
            "AVAIL" => Self::Avail,
            "INUSE" => Self::Inuse,
            "SUSPENDED" => Self::Suspended,
            "SPLIT" => Self::Split,
            _ => return None,
        })
    }

    /// The word ZFS prints for this state.
    pub fn as_word(self) -> &'static str {
        match self {
            Self::Online => "ONLINE",
            Self::Degraded => "DEGRADED",
            Self::Faulted => "FAULTED",
            Self::Offline => "OFFLINE",
            Self::Unavail => "UNAVAIL",
            Self::Removed => "REMOVED",
            Self::Avail => "AVAIL",
            Self::Inuse => "INUSE",
            Self::Suspended => "SUSPENDED",
            Self::Split => "SPLIT",
        }
    }
}

/// READ/WRITE/CKSUM error counters of one vdev.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounters {
    pub read: u64,
    pub write: u64,
    pub checksum: u64,
    /// True when ZFS printed a rounded value such as `9.5K` (no `-p`): the numbers are
    /// then the nearest integer to value × 1024ⁿ, not exact counts.
    pub approximate: bool,
}

impl ErrorCounters {
    pub fn total(&self) -> u64 {
        self.read
            .saturating_add(self.write)
            .saturating_add(self.checksum)
    }
}

/// What the last or current scan (scrub/resilver) did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scan {
    pub function: ScanFunction,
    pub state: ScanState,
    /// The top-level vdev a sequential rebuild works on, when zpool names it
    /// (`resilver (draid3:19d:24c:2s-0) in progress since …`, OpenZFS 2.1+).
    #[serde(default)]
    pub vdev: Option<String>,
    /// When it started (`since …` / JSON `start_time`).
    pub started: Option<ScanTime>,
    /// When it ended or was cancelled (`on …` / JSON `end_time`).
    pub ended: Option<ScanTime>,
    /// Duration as printed (`10:42:32`, `14h7m`, `0 days 00:19:47`).
    pub duration: Option<String>,
    /// Bytes repaired (scrub) or resilvered (resilver).
    pub processed_bytes: Option<u64>,
    /// Errors the finished scan reported (`with N errors`).
    pub errors: Option<u64>,
    /// Progress of a running scan.
    pub progress: Option<ScanProgress>,
    /// The scan text exactly as printed (lines joined with ` / `), so wording we do not
    /// model is never lost.
    pub raw: String,
}

/// Which kind of scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScanFunction {
    /// No scan ever ran (`none requested`).
    None,
    Scrub,
    Resilver,
    /// OpenZFS 2.2+ `zpool scrub -e` (error blocks only).
    ErrorScrub,
    /// Wording this parser does not know; see [`Scan::raw`].
    Unknown,
}

/// Where the scan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScanState {
    NoneRequested,
    InProgress,
    Paused,
    Finished,
    Canceled,
    /// Wording this parser does not know; see [`Scan::raw`].
    Unknown,
}

/// A timestamp as ZFS gave it: JSON with `--json-int` gives Unix seconds, everything else
/// gives a locale-formatted date we keep verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScanTime {
    UnixSeconds(i64),
    Text(String),
}

/// Progress lines of a running scan.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScanProgress {
    pub scanned_bytes: Option<u64>,
    pub issued_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    /// Rate as printed (`5.67G/s`).
    pub rate: Option<String>,
    /// Repaired/resilvered so far.
    pub processed_bytes: Option<u64>,
    pub percent_done: Option<f64>,
    /// Time left as printed (`0h46m`, `01:23:45`); `None` with `no_estimate` when ZFS said
    /// `no estimated completion time`.
    pub eta: Option<String>,
    pub no_estimate: bool,
}

/// The `errors:` lines.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DataErrors {
    /// Number of data errors: 0 for `No known data errors`, N for `N data errors`, the
    /// number of listed entries for `Permanent errors …`; `None` when ZFS did not say.
    pub count: Option<u64>,
    /// Files/objects listed after `Permanent errors have been detected …` (`-v`).
    pub files: Vec<String>,
    /// Why the list could not be shown (`permission denied` when run as non-root).
    pub unavailable_reason: Option<String>,
}

/// One row of `zpool list -H`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolListEntry {
    pub name: String,
    pub size_bytes: Option<u64>,
    pub allocated_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub checkpoint_bytes: Option<u64>,
    pub expand_size_bytes: Option<u64>,
    pub fragmentation_percent: Option<u64>,
    pub capacity_percent: Option<u64>,
    pub dedup_ratio: Option<f64>,
    pub health: Option<VdevState>,
    pub altroot: Option<String>,
    /// Per-vdev rows of `zpool list -v`, in print order.
    pub vdevs: Vec<PoolListVdev>,
}

/// One per-vdev row of `zpool list -v`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolListVdev {
    pub name: String,
    pub class: VdevClass,
    pub size_bytes: Option<u64>,
    pub allocated_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub fragmentation_percent: Option<u64>,
    pub capacity_percent: Option<u64>,
}

/// One row of `zfs list -Hp -o name,avail,used,usedsnap,usedds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetListEntry {
    pub name: String,
    pub available_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub used_by_snapshots_bytes: Option<u64>,
    pub used_by_dataset_bytes: Option<u64>,
    /// Only with the default `zfs list -H` column set (`name used avail refer mountpoint`).
    pub referenced_bytes: Option<u64>,
    pub mountpoint: Option<String>,
}
