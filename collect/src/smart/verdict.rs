//! One health verdict per disk, with the evidence for it.
//!
//! The drive's own `PASSED` is not enough: drives report PASSED with thousands of pending
//! sectors, and RAID controllers hide the health command entirely. The rules below combine
//! the self-assessment, the attribute table, smartctl's exit status and the NVMe/SCSI logs.
//! Every rule is documented, with its reason, in `docs/disk-health.md`; keep the two in step.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::smart::exit_status::ExitStatus;
use crate::smart::model::{
    DeviceProblem, OverallHealth, Protocol, SelfTestOutcome, SmartReport, WhenFailed,
};

/// How worried to be, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VerdictStatus {
    Passed,
    /// We could not tell (no data, standby, open failed).
    Unknown,
    /// Look at this disk; plan a replacement.
    Warning,
    /// Replace this disk.
    Failing,
}

/// Thresholds an operator may tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictPolicy {
    /// Warn above this temperature for ATA and SCSI devices (HDDs are specified to 60 °C).
    pub max_temperature_c: u32,
    /// Warn above this temperature for NVMe devices (controllers run hotter; most throttle
    /// from 70 °C).
    pub max_nvme_temperature_c: u32,
}

impl Default for VerdictPolicy {
    fn default() -> Self {
        Self {
            max_temperature_c: 60,
            max_nvme_temperature_c: 70,
        }
    }
}

/// Which NVMe critical-warning bit fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NvmeWarningBit {
    SpareBelowThreshold,
    Temperature,
    ReliabilityDegraded,
    ReadOnly,
    VolatileBackupFailed,
    PersistentMemoryReadOnly,
}

impl NvmeWarningBit {
    fn describe(self) -> &'static str {
        match self {
            Self::SpareBelowThreshold => "bit 0: available spare below threshold",
            Self::Temperature => "bit 1: temperature outside thresholds",
            Self::ReliabilityDegraded => "bit 2: NVM subsystem reliability degraded",
            Self::ReadOnly => "bit 3: media placed in read-only mode",
            Self::VolatileBackupFailed => "bit 4: volatile memory backup failed",
            Self::PersistentMemoryReadOnly => "bit 5: persistent memory region read-only",
        }
    }
}

/// One piece of evidence. Each variant carries the values that triggered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    OverallHealthFailed,
    AttributeFailingNow {
        id: u8,
        name: String,
        value: Option<u16>,
        thresh: Option<u16>,
        raw: String,
    },
    AttributeFailedInPast {
        id: u8,
        name: String,
    },
    ExitDiskFailing,
    ExitPrefailBelowThreshold,
    ExitPastBelowThreshold,
    ExitErrorLogHasErrors,
    ExitSelfTestLogHasErrors,
    PredictiveAttribute {
        id: u8,
        name: String,
        raw: u64,
    },
    NvmeCriticalWarning {
        bit: NvmeWarningBit,
        raw: u8,
    },
    SpareBelowThreshold {
        spare_percent: u32,
        threshold_percent: u32,
    },
    EnduranceUsed {
        percent: u32,
    },
    MediaErrors {
        count: u128,
    },
    ErrorLogEntries {
        count: u64,
    },
    SelfTestFailed {
        num: u32,
        description: String,
        status: String,
    },
    GrownDefects {
        count: u64,
    },
    UncorrectedErrors {
        count: u64,
    },
    TemperatureHigh {
        celsius: i32,
        limit: u32,
    },
    /// The device could not be read; carries smartctl's explanation.
    DeviceProblem(DeviceProblem),
    /// Exit bit 2: a SMART command failed (often a RAID controller hiding the disk).
    SmartCommandFailed,
    /// The output holds no health data at all (e.g. `-i` or `-d test` only).
    NoSmartData,
}

impl Reason {
    /// How much this reason alone should worry the operator.
    pub fn severity(&self) -> VerdictStatus {
        use Reason::*;
        match self {
            OverallHealthFailed
            | AttributeFailingNow { .. }
            | ExitDiskFailing
            | ExitPrefailBelowThreshold
            | NvmeCriticalWarning { .. }
            | SpareBelowThreshold { .. } => VerdictStatus::Failing,
            AttributeFailedInPast { .. }
            | ExitPastBelowThreshold
            | ExitErrorLogHasErrors
            | ExitSelfTestLogHasErrors
            | PredictiveAttribute { .. }
            | EnduranceUsed { .. }
            | MediaErrors { .. }
            | ErrorLogEntries { .. }
            | SelfTestFailed { .. }
            | GrownDefects { .. }
            | UncorrectedErrors { .. }
            | TemperatureHigh { .. } => VerdictStatus::Warning,
            DeviceProblem(_) | SmartCommandFailed | NoSmartData => VerdictStatus::Unknown,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Reason::*;
        let opt = |v: &Option<u16>| v.map_or("---".to_owned(), |v| format!("{v:03}"));
        match self {
            OverallHealthFailed => write!(f, "the drive's SMART self-assessment is FAILED"),
            AttributeFailingNow {
                id,
                name,
                value,
                thresh,
                raw,
            } => write!(
                f,
                "attribute {id} {name} is failing now: value {} at or below threshold {} (raw {raw})",
                opt(value),
                opt(thresh)
            ),
            AttributeFailedInPast { id, name } => {
                write!(
                    f,
                    "attribute {id} {name} was below its threshold in the past"
                )
            }
            ExitDiskFailing => write!(f, "smartctl exit status bit 3: disk failing"),
            ExitPrefailBelowThreshold => {
                write!(
                    f,
                    "smartctl exit status bit 4: prefail attributes at or below threshold"
                )
            }
            ExitPastBelowThreshold => write!(
                f,
                "smartctl exit status bit 5: attributes were at or below threshold in the past"
            ),
            ExitErrorLogHasErrors => {
                write!(f, "smartctl exit status bit 6: the error log has errors")
            }
            ExitSelfTestLogHasErrors => {
                write!(
                    f,
                    "smartctl exit status bit 7: the self-test log has errors"
                )
            }
            PredictiveAttribute { id, name, raw } => write!(
                f,
                "attribute {id} {name} raw value is {raw} (non-zero predicts failure)"
            ),
            NvmeCriticalWarning { bit, raw } => {
                write!(f, "NVMe critical warning 0x{raw:02x}, {}", bit.describe())
            }
            SpareBelowThreshold {
                spare_percent,
                threshold_percent,
            } => write!(
                f,
                "available spare {spare_percent}% is below the threshold {threshold_percent}%"
            ),
            EnduranceUsed { percent } => write!(f, "{percent}% of rated endurance used"),
            MediaErrors { count } => write!(f, "{count} media and data integrity errors"),
            ErrorLogEntries { count } => write!(f, "the ATA error log holds {count} errors"),
            SelfTestFailed {
                num,
                description,
                status,
            } => write!(f, "self-test #{num} ({description}) failed: {status}"),
            GrownDefects { count } => write!(f, "{count} elements in the grown defect list"),
            UncorrectedErrors { count } => {
                write!(f, "{count} uncorrected read/write/verify errors")
            }
            TemperatureHigh { celsius, limit } => {
                write!(
                    f,
                    "temperature {celsius} °C is above the limit of {limit} °C"
                )
            }
            DeviceProblem(p) => match p {
                crate::smart::model::DeviceProblem::OpenFailed {
                    device,
                    reason,
                    permission_denied,
                } => {
                    if *permission_denied {
                        write!(
                            f,
                            "could not open {device}: {reason} (run the agent with raw disk access)"
                        )
                    } else {
                        write!(f, "could not open {device}: {reason}")
                    }
                }
                crate::smart::model::DeviceProblem::UnknownUsbBridge { device, bridge } => write!(
                    f,
                    "{device} is behind an unknown USB bridge [{bridge}]: configure its -d type"
                ),
                crate::smart::model::DeviceProblem::Standby { mode } => {
                    write!(f, "device is in {mode} mode; skipped so it is not spun up")
                }
                crate::smart::model::DeviceProblem::SmartUnavailable { detail } => {
                    write!(f, "SMART is unavailable: {detail}")
                }
                crate::smart::model::DeviceProblem::SmartDisabled => {
                    write!(
                        f,
                        "SMART is disabled on the device (enable with smartctl -s on)"
                    )
                }
                crate::smart::model::DeviceProblem::SmartctlError { message } => {
                    write!(f, "smartctl reported: {message}")
                }
            },
            SmartCommandFailed => write!(
                f,
                "smartctl exit status bit 2: a SMART command failed (controller may hide the disk)"
            ),
            NoSmartData => write!(f, "the output holds no SMART health data"),
        }
    }
}

/// The verdict and every reason behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub status: VerdictStatus,
    pub reasons: Vec<Reason>,
}

impl Verdict {
    /// Human-readable reasons, in order.
    pub fn messages(&self) -> Vec<String> {
        self.reasons.iter().map(ToString::to_string).collect()
    }
}

/// Attributes whose non-zero raw value Backblaze found predictive of failure.
const PREDICTIVE_ATTRIBUTES: [u8; 5] = [5, 187, 188, 197, 198];

/// Assesses one report. `exit` is smartctl's exit status when known (the JSON carries it;
/// for text the runner knows it).
pub fn assess(report: &SmartReport, exit: Option<ExitStatus>, policy: &VerdictPolicy) -> Verdict {
    let mut reasons = Vec::new();
    if report.health == OverallHealth::Failed {
        reasons.push(Reason::OverallHealthFailed);
    }
    if let Some(exit) = exit {
        exit_reasons(exit, &mut reasons);
    }
    if let Some(ata) = &report.ata {
        for a in &ata.attributes {
            match a.when_failed {
                WhenFailed::Now => reasons.push(Reason::AttributeFailingNow {
                    id: a.id,
                    name: a.name.clone(),
                    value: a.value,
                    thresh: a.thresh,
                    raw: a.raw.string.clone(),
                }),
                WhenFailed::InThePast => reasons.push(Reason::AttributeFailedInPast {
                    id: a.id,
                    name: a.name.clone(),
                }),
                WhenFailed::Never => {}
            }
        }
        for id in PREDICTIVE_ATTRIBUTES {
            if let Some(a) = ata.attribute(id)
                && let Some(raw) = a.raw.value.filter(|r| *r > 0)
            {
                reasons.push(Reason::PredictiveAttribute {
                    id,
                    name: a.name.clone(),
                    raw,
                });
            }
        }
        if let Some(count) = ata.error_log_count.filter(|c| *c > 0) {
            reasons.push(Reason::ErrorLogEntries { count });
        }
        self_test_reasons(&ata.self_tests, &mut reasons);
    }
    if let Some(n) = &report.nvme {
        if let Some(cw) = n.critical_warning {
            let bits = [
                (
                    cw.spare_below_threshold,
                    NvmeWarningBit::SpareBelowThreshold,
                ),
                (cw.temperature, NvmeWarningBit::Temperature),
                (cw.reliability_degraded, NvmeWarningBit::ReliabilityDegraded),
                (cw.read_only, NvmeWarningBit::ReadOnly),
                (
                    cw.volatile_backup_failed,
                    NvmeWarningBit::VolatileBackupFailed,
                ),
                (
                    cw.persistent_memory_read_only,
                    NvmeWarningBit::PersistentMemoryReadOnly,
                ),
            ];
            for (set, bit) in bits {
                if set {
                    reasons.push(Reason::NvmeCriticalWarning { bit, raw: cw.raw });
                }
            }
        }
        if let (Some(spare), Some(threshold)) = (
            n.available_spare_percent,
            n.available_spare_threshold_percent,
        ) && spare < threshold
        {
            reasons.push(Reason::SpareBelowThreshold {
                spare_percent: spare,
                threshold_percent: threshold,
            });
        }
        if let Some(percent) = n.percentage_used.filter(|p| *p >= 100) {
            reasons.push(Reason::EnduranceUsed { percent });
        }
        if let Some(count) = n.media_errors.filter(|c| *c > 0) {
            reasons.push(Reason::MediaErrors { count });
        }
        self_test_reasons(&n.self_tests, &mut reasons);
    }
    if let Some(s) = &report.scsi {
        if let Some(count) = s.grown_defects.filter(|c| *c > 0) {
            reasons.push(Reason::GrownDefects { count });
        }
        let uncorrected: u64 = [&s.read, &s.write, &s.verify]
            .iter()
            .filter_map(|c| c.as_ref().and_then(|c| c.total_uncorrected))
            .fold(0u64, u64::saturating_add);
        if uncorrected > 0 {
            reasons.push(Reason::UncorrectedErrors { count: uncorrected });
        }
        if let Some(percent) = s.percentage_used_endurance.filter(|p| *p >= 100) {
            reasons.push(Reason::EnduranceUsed { percent });
        }
        self_test_reasons(&s.self_tests, &mut reasons);
    }
    if let Some(celsius) = report.temperature_c {
        let limit = match report.device.protocol {
            Some(Protocol::Nvme) => policy.max_nvme_temperature_c,
            _ => policy.max_temperature_c,
        };
        if i64::from(celsius) > i64::from(limit) {
            reasons.push(Reason::TemperatureHigh { celsius, limit });
        }
    }

    let worst = reasons.iter().map(Reason::severity).max();
    if let Some(status @ (VerdictStatus::Warning | VerdictStatus::Failing)) = worst {
        return Verdict { status, reasons };
    }
    // SMART disabled: whatever counters were still readable, the drive's own failure
    // prediction is off, so "passed" cannot be claimed (docs/disk-health.md promises
    // Unknown with the reason); evidence of trouble above still wins.
    let disabled = report
        .problems
        .iter()
        .any(|p| matches!(p, crate::smart::model::DeviceProblem::SmartDisabled));
    if report.has_health_data() && !disabled {
        return Verdict {
            status: VerdictStatus::Passed,
            reasons,
        };
    }
    // No evidence either way: say why.
    reasons.extend(report.problems.iter().cloned().map(Reason::DeviceProblem));
    if exit.is_some_and(|e| e.smart_command_failed) {
        reasons.push(Reason::SmartCommandFailed);
    }
    if reasons.is_empty() {
        reasons.push(Reason::NoSmartData);
    }
    Verdict {
        status: VerdictStatus::Unknown,
        reasons,
    }
}

fn exit_reasons(exit: ExitStatus, reasons: &mut Vec<Reason>) {
    let bits = [
        (exit.disk_failing, Reason::ExitDiskFailing),
        (
            exit.prefail_below_threshold,
            Reason::ExitPrefailBelowThreshold,
        ),
        (exit.past_below_threshold, Reason::ExitPastBelowThreshold),
        (exit.error_log_has_errors, Reason::ExitErrorLogHasErrors),
        (
            exit.self_test_log_has_errors,
            Reason::ExitSelfTestLogHasErrors,
        ),
    ];
    reasons.extend(bits.into_iter().filter(|(set, _)| *set).map(|(_, r)| r));
}

/// Failed self-tests newer than the most recent successful one. Older failures were
/// superseded by a clean run (smartctl's own rule for exit bit 7); logs list newest first.
fn self_test_reasons(entries: &[crate::smart::model::SelfTestEntry], reasons: &mut Vec<Reason>) {
    for e in entries {
        match e.outcome {
            SelfTestOutcome::Passed => break,
            SelfTestOutcome::Failed => reasons.push(Reason::SelfTestFailed {
                num: e.num,
                description: e.description.clone(),
                status: e.status.clone(),
            }),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smart::model::{CriticalWarning, NvmeHealth};

    #[test]
    fn empty_report_is_unknown_with_reason() {
        let v = assess(&SmartReport::default(), None, &VerdictPolicy::default());
        assert_eq!(v.status, VerdictStatus::Unknown);
        assert_eq!(v.reasons, vec![Reason::NoSmartData]);
    }

    #[test]
    fn exit_bits_alone_drive_the_verdict() {
        let r = SmartReport {
            health: OverallHealth::Passed,
            ..SmartReport::default()
        };
        let policy = VerdictPolicy::default();
        assert_eq!(
            assess(&r, Some(ExitStatus::from_code(0)), &policy).status,
            VerdictStatus::Passed
        );
        assert_eq!(
            assess(&r, Some(ExitStatus::from_code(8)), &policy).status,
            VerdictStatus::Failing
        );
        assert_eq!(
            assess(&r, Some(ExitStatus::from_code(16)), &policy).status,
            VerdictStatus::Failing
        );
        assert_eq!(
            assess(&r, Some(ExitStatus::from_code(32)), &policy).status,
            VerdictStatus::Warning
        );
        let v = assess(&r, Some(ExitStatus::from_code(192)), &policy);
        assert_eq!(v.status, VerdictStatus::Warning);
        assert_eq!(
            v.reasons,
            vec![
                Reason::ExitErrorLogHasErrors,
                Reason::ExitSelfTestLogHasErrors
            ]
        );
    }

    #[test]
    fn nvme_temperature_uses_its_own_limit() {
        let mut r = SmartReport {
            health: OverallHealth::Passed,
            temperature_c: Some(65),
            nvme: Some(NvmeHealth {
                critical_warning: Some(CriticalWarning::from_byte(0)),
                ..NvmeHealth::default()
            }),
            ..SmartReport::default()
        };
        r.device.protocol = Some(Protocol::Nvme);
        let policy = VerdictPolicy::default();
        assert_eq!(assess(&r, None, &policy).status, VerdictStatus::Passed);
        r.device.protocol = Some(Protocol::Ata);
        let v = assess(&r, None, &policy);
        assert_eq!(v.status, VerdictStatus::Warning);
        assert_eq!(
            v.reasons,
            vec![Reason::TemperatureHigh {
                celsius: 65,
                limit: 60
            }]
        );
        assert_eq!(
            v.messages(),
            vec!["temperature 65 °C is above the limit of 60 °C"]
        );
    }
}
