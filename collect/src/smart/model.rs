//! The normalized SMART record.
//!
//! smartctl prints the same facts in two shapes (text and `--json`) and three protocol
//! dialects (ATA, NVMe, SCSI). Everything downstream — the verdict, the wire protocol, the
//! controller's tables — wants one shape, so both parsers produce a [`SmartReport`].
//!
//! These types travel over the wire as postcard, which is not self-describing: plain
//! structs, enums, `Option` and `Vec` only — no `flatten`, `untagged`, `skip_serializing_if`
//! or `serde_json::Value`. Enum variants are append-only.

use serde::{Deserialize, Serialize};

/// Everything one smartctl invocation told us about one device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmartReport {
    /// The smartctl build that produced the output (absent on banner-less pastes).
    pub smartctl: Option<SmartctlInfo>,
    pub device: DeviceIdentity,
    /// Power state as reported by `-n`, when smartctl printed one.
    pub power_mode: Option<PowerMode>,
    pub smart_support: SmartSupport,
    pub health: OverallHealth,
    /// Temperature in °C, normalized across ATA (attribute 194/190 or SCT), NVMe and SCSI.
    pub temperature_c: Option<i32>,
    /// Power-on time in hours, normalized across protocols.
    pub power_on_hours: Option<u64>,
    /// Power cycles / start-stop count, normalized across protocols.
    pub power_cycles: Option<u64>,
    pub ata: Option<AtaSmart>,
    pub nvme: Option<NvmeHealth>,
    pub scsi: Option<ScsiHealth>,
    /// Why smartctl could not give us data (open failed, standby, no SMART, …).
    pub problems: Vec<DeviceProblem>,
    /// Informational lines smartctl printed that change how to read the rest (e.g.
    /// "This result is based on an Attribute check").
    pub notices: Vec<String>,
}

impl SmartReport {
    /// True when the report carries any health data at all (a health line, attributes,
    /// an NVMe log or SCSI counters). Without it the verdict can only be `Unknown`.
    pub fn has_health_data(&self) -> bool {
        self.health != OverallHealth::Unknown
            || self.ata.as_ref().is_some_and(|a| !a.attributes.is_empty())
            || self.nvme.is_some()
            || self
                .scsi
                .as_ref()
                .is_some_and(|s| s.grown_defects.is_some() || s.read.is_some())
    }
}

/// The smartctl build, from the banner or the JSON `smartctl` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmartctlInfo {
    /// As printed: `7.3`, or non-numeric such as `pre-7.4` on CI builds.
    pub version: String,
    /// Subversion revision without the `r` (`5338`).
    pub revision: Option<String>,
    /// `x86_64-linux-5.4.0-80-generic`, `x86_64-w64-mingw32-w10-21H2`, `Darwin 16.4.0 x86_64`.
    pub platform: Option<String>,
    /// `(local build)`, `(sf-7.3-1)`.
    pub build: Option<String>,
}

/// Which command set the device speaks; decides which health block applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    Ata,
    Nvme,
    Scsi,
}

/// Spindle speed, or "this is flash".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rotation {
    SolidState,
    Rpm(u32),
}

/// Who the device is. Every field is optional because every smartctl mode omits some.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIdentity {
    /// Device path smartctl opened (`/dev/sda`, `/dev/bus/0`, an IOService path).
    pub name: Option<String>,
    /// smartctl `-d` type (`sat`, `nvme`, `megaraid,16`).
    pub device_type: Option<String>,
    pub protocol: Option<Protocol>,
    pub model_family: Option<String>,
    /// ATA `Device Model`, NVMe `Model Number`, or SCSI vendor + product.
    pub model: Option<String>,
    /// SCSI vendor (ATA and NVMe have none in smartctl's output).
    pub vendor: Option<String>,
    /// SCSI product.
    pub product: Option<String>,
    pub serial: Option<String>,
    /// World-wide name as contiguous hex (`5000cca284e50e06`), ATA `LU WWN Device Id` or
    /// SCSI `Logical Unit id` (without `0x`).
    pub wwn: Option<String>,
    /// ATA/NVMe firmware version, SCSI revision.
    pub firmware: Option<String>,
    pub capacity_bytes: Option<u64>,
    pub logical_block_size: Option<u32>,
    pub physical_block_size: Option<u32>,
    pub rotation: Option<Rotation>,
    pub form_factor: Option<String>,
    pub ata_version: Option<String>,
    /// `SATA 3.3` (speed split out into `interface_speed`).
    pub sata_version: Option<String>,
    /// Current link speed (`6.0 Gb/s`).
    pub interface_speed: Option<String>,
    /// SCSI transport (`SAS (SPL-3)`, `Parallel SCSI (SPI-4)`).
    pub transport: Option<String>,
    /// Whether the drive is in smartctl's drive database.
    pub in_smartctl_database: Option<bool>,
}

/// Power state reported by smartctl `-n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerMode {
    ActiveOrIdle,
    Idle,
    Standby,
    Sleep,
    Other(String),
}

/// `SMART support is:` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmartSupport {
    pub available: Option<bool>,
    pub enabled: Option<bool>,
}

/// The device's own overall self-assessment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverallHealth {
    Passed,
    Failed,
    #[default]
    Unknown,
}

/// Why a report has no (or partial) data. Each variant carries smartctl's own words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceProblem {
    /// `Smartctl open device: DEV failed: REASON`.
    OpenFailed {
        device: String,
        reason: String,
        permission_denied: bool,
    },
    /// `DEV: Unknown USB bridge [0x152d:0xb581 (0x4403)]` — needs `-d`.
    UnknownUsbBridge { device: String, bridge: String },
    /// `Device is in STANDBY mode, exit(2)` — skipped so the disk is not spun up.
    Standby { mode: String },
    /// `SMART support is: Unavailable - …`.
    SmartUnavailable { detail: String },
    /// `SMART support is: Disabled`.
    SmartDisabled,
    /// Any other error smartctl reported (JSON `messages` with severity `error`, or
    /// `SMART command failed` style lines).
    SmartctlError { message: String },
}

/// ATA SMART data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtaSmart {
    pub attributes_revision: Option<u32>,
    pub attributes: Vec<AtaAttribute>,
    /// `ATA Error Count` / `Device Error Count`; `Some(0)` for "No Errors Logged".
    pub error_log_count: Option<u64>,
    pub self_test_execution: Option<SelfTestExecution>,
    pub self_tests: Vec<SelfTestEntry>,
}

impl AtaSmart {
    /// The attribute with this id (the first one, if a drive lists an id twice).
    pub fn attribute(&self, id: u8) -> Option<&AtaAttribute> {
        self.attributes.iter().find(|a| a.id == id)
    }
}

/// One row of the ATA attribute table, every column kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtaAttribute {
    pub id: u8,
    pub name: String,
    pub flags: AttributeFlags,
    /// Normalized value; `None` when printed as `---`.
    pub value: Option<u16>,
    pub worst: Option<u16>,
    /// `None` when printed as `---` (no threshold).
    pub thresh: Option<u16>,
    pub kind: AttributeKind,
    pub updated: AttributeUpdated,
    pub when_failed: WhenFailed,
    pub raw: RawValue,
}

/// The FLAG(S) column. The verbose format prints the full word (`0x0033`), the brief
/// format six letters (`PO--CK`); both decode to the same named bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeFlags {
    /// Exactly as printed (`0x0033`, `PO--CK`; JSON gives the letters).
    pub raw: String,
    /// The numeric flag word when the output carried it (verbose text, JSON).
    pub value: Option<u16>,
    pub prefailure: bool,
    pub updated_online: bool,
    pub performance: bool,
    pub error_rate: bool,
    pub event_count: bool,
    pub auto_keep: bool,
}

impl AttributeFlags {
    /// Decodes the ATA flag word: bit0 prefailure, bit1 online, bit2 performance,
    /// bit3 error rate, bit4 event count, bit5 self-preserving (auto-keep).
    pub fn from_word(raw: &str, value: u16) -> Self {
        Self {
            raw: raw.to_owned(),
            value: Some(value),
            prefailure: value & 0x01 != 0,
            updated_online: value & 0x02 != 0,
            performance: value & 0x04 != 0,
            error_rate: value & 0x08 != 0,
            event_count: value & 0x10 != 0,
            auto_keep: value & 0x20 != 0,
        }
    }

    /// Decodes the brief letters `POSRCK` (a `-` means the bit is clear).
    pub fn from_letters(raw: &str) -> Self {
        let has = |c: char| raw.contains(c);
        Self {
            raw: raw.to_owned(),
            value: None,
            prefailure: has('P'),
            updated_online: has('O'),
            performance: has('S'),
            error_rate: has('R'),
            event_count: has('C'),
            auto_keep: has('K'),
        }
    }
}

/// TYPE column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttributeKind {
    PreFail,
    OldAge,
}

/// UPDATED column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttributeUpdated {
    Always,
    Offline,
}

/// WHEN_FAILED (verbose) / FAIL (brief) column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WhenFailed {
    /// `-` (or empty in JSON): value has never been at or below threshold.
    Never,
    /// `FAILING_NOW` / `NOW`: value is at or below threshold right now.
    Now,
    /// `In_the_past` / `Past`: worst value was at or below threshold once.
    InThePast,
}

/// RAW_VALUE as printed plus the leading number smartctl decoded from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawValue {
    /// As printed: `29 (Min/Max 19/46)`, `0/0`, `5670 (1 343)`, `1259h+06m+33.546s`.
    pub string: String,
    /// The primary number: the leading integer, hours for `h+m+s` durations, a hex value
    /// for `0x…`. `None` when the string has no leading number.
    pub value: Option<u64>,
    /// The packed 48-bit raw integer; only JSON carries it.
    pub packed: Option<u64>,
}

/// ATA `Self-test execution status` byte, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTestExecution {
    /// The status byte (`243`).
    pub code: u8,
    /// High nibble 0xF: a self-test is running now.
    pub in_progress: bool,
    /// Low nibble × 10 while in progress.
    pub remaining_percent: Option<u8>,
    /// smartctl's words (text and JSON word them differently).
    pub description: Option<String>,
}

impl SelfTestExecution {
    /// Decodes the status byte the way ATA defines it.
    pub fn from_code(code: u8, description: Option<String>) -> Self {
        let in_progress = code >> 4 == 0x0f;
        Self {
            code,
            in_progress,
            remaining_percent: in_progress.then_some((code & 0x0f) * 10),
            description,
        }
    }
}

/// One self-test log row (ATA, NVMe or SCSI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTestEntry {
    pub num: u32,
    pub description: String,
    pub status: String,
    pub outcome: SelfTestOutcome,
    pub remaining_percent: Option<u8>,
    pub lifetime_hours: Option<u64>,
    pub failing_lba: Option<u64>,
}

/// The part of a self-test status that matters for health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelfTestOutcome {
    Passed,
    /// A read/electrical/servo/unknown failure — the device found a defect.
    Failed,
    InProgress,
    /// Aborted or interrupted by the host: says nothing about the disk.
    Aborted,
    Other,
}

impl SelfTestOutcome {
    /// Classifies smartctl's status text (`Completed: read failure`, `Interrupted (host
    /// reset)`, `Self-test routine in progress`).
    pub fn classify(status: &str) -> Self {
        let s = status.to_ascii_lowercase();
        if s.contains("in progress") {
            Self::InProgress
        } else if s.contains("failure") || s.contains("failed") {
            Self::Failed
        } else if s.contains("without error") || s == "completed" {
            Self::Passed
        } else if s.contains("abort") || s.contains("interrupt") {
            Self::Aborted
        } else {
            Self::Other
        }
    }
}

/// NVMe critical-warning byte, one named bool per defined bit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriticalWarning {
    pub raw: u8,
    /// bit 0: available spare below threshold.
    pub spare_below_threshold: bool,
    /// bit 1: temperature above or below a threshold.
    pub temperature: bool,
    /// bit 2: NVM subsystem reliability degraded.
    pub reliability_degraded: bool,
    /// bit 3: media placed in read-only mode.
    pub read_only: bool,
    /// bit 4: volatile memory backup device failed.
    pub volatile_backup_failed: bool,
    /// bit 5: persistent memory region read-only.
    pub persistent_memory_read_only: bool,
}

impl CriticalWarning {
    pub fn from_byte(raw: u8) -> Self {
        Self {
            raw,
            spare_below_threshold: raw & 0x01 != 0,
            temperature: raw & 0x02 != 0,
            reliability_degraded: raw & 0x04 != 0,
            read_only: raw & 0x08 != 0,
            volatile_backup_failed: raw & 0x10 != 0,
            persistent_memory_read_only: raw & 0x20 != 0,
        }
    }
}

/// NVMe SMART/Health Information log (log page 0x02). Counters are 128-bit in the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvmeHealth {
    pub critical_warning: Option<CriticalWarning>,
    pub temperature_c: Option<i32>,
    pub available_spare_percent: Option<u32>,
    pub available_spare_threshold_percent: Option<u32>,
    /// May exceed 100 (the spec allows up to 255).
    pub percentage_used: Option<u32>,
    pub data_units_read: Option<u128>,
    pub data_units_written: Option<u128>,
    pub host_reads: Option<u128>,
    pub host_writes: Option<u128>,
    pub controller_busy_minutes: Option<u128>,
    pub power_cycles: Option<u128>,
    pub power_on_hours: Option<u128>,
    pub unsafe_shutdowns: Option<u128>,
    pub media_errors: Option<u128>,
    pub error_log_entries: Option<u128>,
    pub warning_temp_minutes: Option<u64>,
    pub critical_temp_minutes: Option<u64>,
    pub temperature_sensors_c: Vec<i32>,
    /// `Self-test status:` line of the NVMe self-test log (7.4+).
    pub self_test_status: Option<String>,
    pub self_tests: Vec<SelfTestEntry>,
}

/// SCSI/SAS health pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScsiHealth {
    /// `SMART Health Status:` (`OK`, or the failure prediction text).
    pub health_status: Option<String>,
    pub grown_defects: Option<u64>,
    pub read: Option<ScsiErrorCounters>,
    pub write: Option<ScsiErrorCounters>,
    pub verify: Option<ScsiErrorCounters>,
    pub non_medium_errors: Option<u64>,
    pub current_temperature_c: Option<i32>,
    pub trip_temperature_c: Option<i32>,
    pub start_stop_cycles: Option<u64>,
    pub load_unload_cycles: Option<u64>,
    pub power_on_hours: Option<u64>,
    pub percentage_used_endurance: Option<u32>,
    pub self_tests: Vec<SelfTestEntry>,
}

/// One row of the SCSI error counter log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScsiErrorCounters {
    pub total_corrected: Option<u64>,
    pub total_uncorrected: Option<u64>,
    /// `Gigabytes processed [10^9 bytes]`, decimal point normalized to `.`.
    pub gigabytes_processed: Option<String>,
}
