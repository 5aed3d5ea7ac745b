//! The thin runner: `smartctl --scan-open`, then one `smartctl -x -n standby` per device.
//!
//! All process handling lives behind [`CommandRunner`], so tests replay recorded outputs
//! through the same code path. Each device gets its own timeout: one hung USB bridge or
//! dying disk must not stall every other disk's report. `-n standby` keeps spun-down disks
//! spun down; smartctl then exits 2 and says so, and we report "in standby, skipped".

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error_chain;
use crate::runner::{CommandOutput, CommandRunner, RunError};
use crate::smart::exit_status::ExitStatus;
use crate::smart::model::{DeviceProblem, SmartReport};
use crate::smart::scan::ScanEntry;
use crate::smart::verdict::{Verdict, VerdictPolicy, assess};
use crate::smart::{json, scan, text};

/// Which smartctl output format to request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputFormat {
    Text,
    Json,
}

/// How to run smartctl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartRunConfig {
    /// Program name or path (`smartctl`).
    pub program: String,
    pub format: OutputFormat,
    /// Per-device limit; a device that takes longer is killed and reported `TimedOut`.
    pub device_timeout: Duration,
    /// Limit for the scan itself.
    pub scan_timeout: Duration,
    /// How long a scan is reused while the kernel shows the same devices
    /// ([`collect_with`]); a device added or removed means scanning at once.
    pub rescan_after: Duration,
    pub policy: VerdictPolicy,
}

impl Default for SmartRunConfig {
    fn default() -> Self {
        Self {
            program: "smartctl".to_owned(),
            format: OutputFormat::Text,
            device_timeout: Duration::from_secs(30),
            scan_timeout: Duration::from_secs(30),
            rescan_after: Duration::from_secs(3600),
            policy: VerdictPolicy::default(),
        }
    }
}

/// The collector as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CollectorStatus {
    Ok,
    /// smartctl is not installed: install smartmontools.
    ToolMissing {
        program: String,
    },
    /// The agent may not run smartctl or open disks.
    PermissionDenied {
        detail: String,
    },
    /// The scan did not run or could not be read.
    ScanFailed {
        detail: String,
    },
}

/// One device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceStatus {
    Ok,
    /// In standby, skipped (not spun up).
    InStandby,
    /// Killed after the per-device timeout.
    TimedOut {
        after_ms: u64,
    },
    /// smartctl could not open the device for lack of rights.
    PermissionDenied {
        detail: String,
    },
    /// smartctl could not open the device for another reason.
    OpenFailed {
        detail: String,
    },
    /// smartctl ran but its output could not be parsed; carries the parse error.
    Unparseable {
        error: String,
    },
    /// smartctl could not be run for this device.
    RunFailed {
        detail: String,
    },
}

/// What we learned about one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceResult {
    pub device: ScanEntry,
    pub status: DeviceStatus,
    pub report: Option<SmartReport>,
    pub exit: Option<ExitStatus>,
    pub verdict: Option<Verdict>,
}

/// Everything one collection round produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmartCollection {
    pub status: CollectorStatus,
    pub devices: Vec<DeviceResult>,
}

/// The storage devices the kernel shows, by name: `/sys/block`, `/sys/class/nvme`,
/// `/sys/class/scsi_generic` and `/sys/class/scsi_host` (the last two are how disks behind
/// RAID controllers appear). `smartctl --scan-open` finds devices among these, so while they
/// are the same its answer is too (but for a device type, which [`SmartRunConfig::rescan_after`]
/// catches up with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSet(Vec<String>);

impl DeviceSet {
    /// Reads the device names under `sysfs_root` (`/sys`). `None` when `/sys/block` cannot be
    /// listed: then every round scans.
    pub fn read(sysfs_root: &Path) -> Option<Self> {
        let mut names = Vec::new();
        for (class, required) in [
            ("block", true),
            ("class/nvme", false),
            ("class/scsi_generic", false),
            ("class/scsi_host", false),
        ] {
            match std::fs::read_dir(sysfs_root.join(class)) {
                Ok(entries) => names.extend(
                    entries
                        .flatten()
                        .map(|e| format!("{class}/{}", e.file_name().to_string_lossy())),
                ),
                Err(_) if !required => {}
                Err(error) => {
                    tracing::debug!(%error, class, "cannot list devices; scanning every round");
                    return None;
                }
            }
        }
        names.sort();
        Some(Self(names))
    }
}

/// The last scan, kept for [`collect_with`] while the host's devices stay the same: a scan is
/// a `smartctl` start (it parses its drive database each time, ~20 ms of CPU), and the devices
/// of a host rarely change between rounds. Hold one per host.
#[derive(Debug, Default)]
pub struct DeviceScanMemory {
    kept: Option<KeptScan>,
}

#[derive(Debug)]
struct KeptScan {
    devices: DeviceSet,
    at: Instant,
    entries: Vec<ScanEntry>,
}

/// Scans for devices and reads each one, remembering nothing between calls.
pub async fn collect<R: CommandRunner>(runner: &R, config: &SmartRunConfig) -> SmartCollection {
    let mut memory = DeviceScanMemory::default();
    collect_with(runner, config, &mut memory, None, Instant::now()).await
}

/// [`collect`] for a round of a series: the scan in `memory` is reused when `devices` (what
/// the kernel shows now, see [`DeviceSet::read`]) is what it was then, the scan is younger
/// than [`SmartRunConfig::rescan_after`], and every device of it could be opened; otherwise
/// smartctl scans again. Every device is read every round either way.
pub async fn collect_with<R: CommandRunner>(
    runner: &R,
    config: &SmartRunConfig,
    memory: &mut DeviceScanMemory,
    devices: Option<DeviceSet>,
    now: Instant,
) -> SmartCollection {
    let kept = memory.kept.take().filter(|k| {
        devices.as_ref() == Some(&k.devices)
            && now.saturating_duration_since(k.at) < config.rescan_after
    });
    let (entries, at) = match kept {
        Some(k) => (k.entries, k.at),
        None => match scan_devices(runner, config).await {
            Ok(entries) => (entries, now),
            Err(status) => {
                return SmartCollection {
                    status,
                    devices: Vec::new(),
                };
            }
        },
    };
    let mut results = Vec::with_capacity(entries.len());
    for entry in &entries {
        results.push(read_device(runner, config, entry.clone()).await);
    }
    // A device that could not be opened may be going or coming: scan again next round.
    let all_opened = results.iter().all(|r| {
        !matches!(
            r.status,
            DeviceStatus::OpenFailed { .. } | DeviceStatus::PermissionDenied { .. }
        )
    });
    if let Some(devices) = devices
        && all_opened
    {
        memory.kept = Some(KeptScan {
            devices,
            at,
            entries,
        });
    }
    SmartCollection {
        status: CollectorStatus::Ok,
        devices: results,
    }
}

/// `smartctl --scan-open`, parsed; a failure is the collector's status.
async fn scan_devices<R: CommandRunner>(
    runner: &R,
    config: &SmartRunConfig,
) -> Result<Vec<ScanEntry>, CollectorStatus> {
    let scan_args: &[&str] = match config.format {
        OutputFormat::Text => &["--scan-open"],
        OutputFormat::Json => &["--scan-open", "-j"],
    };
    let output = match runner
        .run(&config.program, scan_args, config.scan_timeout)
        .await
    {
        Ok(output) => output,
        Err(error) => {
            // Debug only: the status travels in the report and the agent logs it once per change.
            tracing::debug!(error = %error_chain(&error), "smartctl scan failed");
            return Err(match &error {
                RunError::NotFound { program } => CollectorStatus::ToolMissing {
                    program: program.clone(),
                },
                RunError::PermissionDenied { .. } => CollectorStatus::PermissionDenied {
                    detail: error_chain(&error),
                },
                _ => CollectorStatus::ScanFailed {
                    detail: error_chain(&error),
                },
            });
        }
    };
    let entries = match config.format {
        OutputFormat::Text => scan::parse_scan_text(&output.stdout),
        OutputFormat::Json => json::parse_scan_json(&output.stdout),
    };
    entries.map_err(|error| CollectorStatus::ScanFailed {
        detail: error_chain(&error),
    })
}

/// The arguments for one device, in the order smartctl documents them.
pub fn device_args(entry: &ScanEntry, format: OutputFormat) -> Vec<&str> {
    let mut args = Vec::with_capacity(7);
    if format == OutputFormat::Json {
        args.push("-j");
    }
    args.extend(["-x", "-n", "standby"]);
    if let Some(kind) = entry.device_type.as_deref() {
        args.extend(["-d", kind]);
    }
    args.push(entry.device.as_str());
    args
}

/// Reads one device. Never fails: every outcome is a [`DeviceStatus`].
pub async fn read_device<R: CommandRunner>(
    runner: &R,
    config: &SmartRunConfig,
    entry: ScanEntry,
) -> DeviceResult {
    let result = |status, report, exit, verdict| DeviceResult {
        device: entry.clone(),
        status,
        report,
        exit,
        verdict,
    };
    if let Some(error) = &entry.open_error {
        let detail = error.clone();
        let status = if error.to_ascii_lowercase().contains("permission denied") {
            DeviceStatus::PermissionDenied { detail }
        } else {
            DeviceStatus::OpenFailed { detail }
        };
        return result(status, None, None, None);
    }
    let args = device_args(&entry, config.format);
    let output = match runner
        .run(&config.program, &args, config.device_timeout)
        .await
    {
        Ok(output) => output,
        Err(RunError::TimedOut { timeout, .. }) => {
            tracing::debug!(device = %entry.device, ?timeout, "smartctl timed out; device skipped");
            let after_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
            return result(DeviceStatus::TimedOut { after_ms }, None, None, None);
        }
        Err(error) => {
            let detail = error_chain(&error);
            let status = if matches!(error, RunError::PermissionDenied { .. }) {
                DeviceStatus::PermissionDenied { detail }
            } else {
                DeviceStatus::RunFailed { detail }
            };
            return result(status, None, None, None);
        }
    };
    let (report, exit) = match parse_output(&output, config.format) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::debug!(device = %entry.device, error = %error, "smartctl output unparseable");
            return result(
                DeviceStatus::Unparseable { error },
                None,
                output.exit_code.map(ExitStatus::from_code),
                None,
            );
        }
    };
    let verdict = assess(&report, exit, &config.policy);
    let status = device_status(&report, exit, &output);
    result(status, Some(report), exit, Some(verdict))
}

fn parse_output(
    output: &CommandOutput,
    format: OutputFormat,
) -> Result<(SmartReport, Option<ExitStatus>), String> {
    let stdout = if output.stdout.trim().is_empty() {
        &output.stderr
    } else {
        &output.stdout
    };
    let process_exit = output.exit_code.map(ExitStatus::from_code);
    match format {
        OutputFormat::Text => text::parse_text(stdout)
            .map(|r| (r, process_exit))
            .map_err(|e| error_chain(&e)),
        OutputFormat::Json => json::parse_json(stdout)
            .map(|(r, exit)| (r, exit.or(process_exit)))
            .map_err(|e| error_chain(&e)),
    }
}

fn device_status(
    report: &SmartReport,
    exit: Option<ExitStatus>,
    output: &CommandOutput,
) -> DeviceStatus {
    let standby_exit = exit.is_some_and(|e| e.device_open_failed);
    let says_standby = output.stdout.contains("STANDBY") || output.stdout.contains("SLEEP");
    if report
        .problems
        .iter()
        .any(|p| matches!(p, DeviceProblem::Standby { .. }))
        || (standby_exit && says_standby)
    {
        return DeviceStatus::InStandby;
    }
    for problem in &report.problems {
        if let DeviceProblem::OpenFailed {
            device,
            reason,
            permission_denied,
        } = problem
        {
            let detail = format!("{device}: {reason}");
            return if *permission_denied {
                DeviceStatus::PermissionDenied { detail }
            } else {
                DeviceStatus::OpenFailed { detail }
            };
        }
    }
    DeviceStatus::Ok
}
