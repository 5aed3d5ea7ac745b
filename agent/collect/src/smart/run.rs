//! The thin runner: `smartctl --scan-open`, then one `smartctl -x -n standby` per device.
//!
//! All process handling lives behind [`CommandRunner`], so tests replay recorded outputs
//! through the same code path. Each device gets its own timeout: one hung USB bridge or
//! dying disk must not stall every other disk's report. `-n standby` keeps spun-down disks
//! spun down; smartctl then exits 2 and says so, and we report "in standby, skipped".

use std::time::Duration;

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
    pub policy: VerdictPolicy,
}

impl Default for SmartRunConfig {
    fn default() -> Self {
        Self {
            program: "smartctl".to_owned(),
            format: OutputFormat::Text,
            device_timeout: Duration::from_secs(30),
            scan_timeout: Duration::from_secs(30),
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

/// Scans for devices and reads each one.
pub async fn collect<R: CommandRunner>(runner: &R, config: &SmartRunConfig) -> SmartCollection {
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
            let status = match &error {
                RunError::NotFound { program } => CollectorStatus::ToolMissing {
                    program: program.clone(),
                },
                RunError::PermissionDenied { .. } => CollectorStatus::PermissionDenied {
                    detail: error_chain(&error),
                },
                _ => CollectorStatus::ScanFailed {
                    detail: error_chain(&error),
                },
            };
            // Debug only: the status travels in the report and the agent logs it once per change.
            tracing::debug!(error = %error_chain(&error), "smartctl scan failed");
            return SmartCollection {
                status,
                devices: Vec::new(),
            };
        }
    };
    let entries = match config.format {
        OutputFormat::Text => scan::parse_scan_text(&output.stdout),
        OutputFormat::Json => json::parse_scan_json(&output.stdout),
    };
    let entries = match entries {
        Ok(entries) => entries,
        Err(error) => {
            return SmartCollection {
                status: CollectorStatus::ScanFailed {
                    detail: error_chain(&error),
                },
                devices: Vec::new(),
            };
        }
    };
    let mut devices = Vec::with_capacity(entries.len());
    for entry in entries {
        devices.push(read_device(runner, config, entry).await);
    }
    SmartCollection {
        status: CollectorStatus::Ok,
        devices,
    }
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
