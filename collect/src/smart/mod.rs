//! Disk health from smartctl.
//!
//! smartctl is the one tool that speaks to ATA, NVMe and SCSI disks on every platform our
//! operators run (Linux, FreeBSD, macOS, Windows) and through RAID controllers and USB
//! bridges. It prints two formats: text, which every version has, and `--json`, which only
//! 7.0+ has. We parse both into one [`SmartReport`] so that old NAS firmware and new hosts
//! report the same way, then judge it with [`assess`] (rules and reasons in
//! `docs/disk-health.md`).
//!
//! Layout, after omicron's collector template: pure parsers ([`text`], [`json`], [`scan`]),
//! the record ([`model`]), the judgement ([`verdict`]), the exit-status decoding
//! ([`exit_status`]) and the thin runner over [`crate::runner::CommandRunner`] ([`run`]).

pub mod error;
pub mod exit_status;
pub mod json;
pub mod model;
pub mod run;
pub mod scan;
pub mod text;
mod values;
pub mod verdict;

pub use error::{Section, SmartParseError};
pub use exit_status::ExitStatus;
pub use model::*;
pub use run::{
    CollectorStatus, DeviceResult, DeviceScanMemory, DeviceSet, DeviceStatus, OutputFormat,
    SmartCollection, SmartRunConfig, collect, collect_with,
};
pub use scan::ScanEntry;
pub use values::raw_value;
pub use verdict::{NvmeWarningBit, Reason, Verdict, VerdictPolicy, VerdictStatus, assess};

/// Parses smartctl text output (`-a`, `-x`, `-H`, `-A`, `-f brief`, `-i`, error outputs).
pub fn parse_text(input: &str) -> Result<SmartReport, SmartParseError> {
    text::parse_text(input)
}

/// Parses `smartctl --json` output; the exit status comes from `smartctl.exit_status`.
pub fn parse_json(input: &str) -> Result<(SmartReport, Option<ExitStatus>), SmartParseError> {
    json::parse_json(input)
}

/// Parses `smartctl --scan` / `--scan-open` text output.
pub fn parse_scan_text(input: &str) -> Result<Vec<ScanEntry>, SmartParseError> {
    scan::parse_scan_text(input)
}

/// Parses `smartctl --scan -j` / `--scan-open -j` output.
pub fn parse_scan_json(input: &str) -> Result<Vec<ScanEntry>, SmartParseError> {
    json::parse_scan_json(input)
}
