//! The SMART parsers over every real smartctl output in `shared/fixtures` and the project's
//! own `fixtures/smart`. Directories are iterated, so a new fixture is covered the moment it
//! is added: it must parse, or be one of the documented no-data outputs below.

use std::fs;
use std::path::{Path, PathBuf};

use unity_collect::smart::{
    self, AttributeKind, DeviceProblem, NvmeWarningBit, OverallHealth, PowerMode, Protocol, Reason,
    Rotation, SelfTestOutcome, SmartParseError, SmartReport, Verdict, VerdictPolicy, VerdictStatus,
    WhenFailed,
};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/smart");

fn files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("fixture directory {dir}: {e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{dir}: {e}")).path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt" || x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {dir}");
    files
}

/// Fixtures are read as bytes and decoded lossily: some Windows captures are Latin-1.
fn read(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn text(name: &str) -> SmartReport {
    let path = Path::new(SHARED).join("smartctl-text").join(name);
    smart::parse_text(&read(&path)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn json(name: &str) -> (SmartReport, Option<smart::ExitStatus>) {
    let path = Path::new(SHARED).join("smartctl-json").join(name);
    smart::parse_json(&read(&path)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn verdict(report: &SmartReport) -> Verdict {
    smart::assess(report, None, &VerdictPolicy::default())
}

/// Outputs that by design carry no health data, with the reason the verdict must give.
fn documented_no_data(name: &str, reasons: &[Reason]) -> bool {
    let first = reasons.first();
    let problem = |pred: fn(&DeviceProblem) -> bool| matches!(first, Some(Reason::DeviceProblem(p)) if pred(p));
    match name {
        "open-failed-operation-not-permitted-smartctl75-haos.txt"
        | "windows-open-failed-permission-error5.json" => problem(|p| {
            matches!(
                p,
                DeviceProblem::OpenFailed {
                    permission_denied: true,
                    ..
                }
            )
        }),
        "megaraid-open-failed-non-root-cannot-open-ioctl-node.txt" => problem(|p| {
            matches!(
                p,
                DeviceProblem::OpenFailed {
                    permission_denied: false,
                    ..
                }
            )
        }),
        "usb-unknown-bridge-error-smartctl72-no-usage-line.txt"
        | "usb-unknown-bridge-error-smartctl75-no-options.txt" => {
            problem(|p| matches!(p, DeviceProblem::UnknownUsbBridge { .. }))
        }
        "hp-smart-array-p840-controller-sg0-storage-array-no-smart.txt"
        | "megaraid-virtual-disk-avago-mr9361-no-smart.txt"
        | "megaraid-virtual-disk-intel-rs3dc080-no-smart.txt"
        | "vmware-virtual-disk-i-no-smart.txt"
        | "usb-sat-smartctl537-device-does-not-support-smart.txt" => {
            problem(|p| matches!(p, DeviceProblem::SmartUnavailable { .. }))
        }
        "ata-standby-n-standby-smartctl72.txt" => {
            problem(|p| matches!(p, DeviceProblem::Standby { .. }))
        }
        // SMART disabled on the drive: its log pages still read, but without the drive's own
        // prediction the verdict is Unknown with the reason (docs/disk-health.md).
        "scsi-parallel-u320-seagate-st373453lc.json" => {
            problem(|p| matches!(p, DeviceProblem::SmartDisabled))
        }
        "scsi-intel-raid1-volume-no-smart-exit4.json" => first == Some(&Reason::SmartCommandFailed),
        // `-d test`, no action flags, `-l background`/`-l sasphy`, `-i` only.
        "nvme-d-test.txt"
        | "sat-hdd-seagate-exos-sg-device-d-test.txt"
        | "sat-opened-no-action-flags-smartctl75.txt"
        | "sas-hdd-l-background-not-supported.txt"
        | "sas-hdd-l-sasphy.txt"
        | "nvme-kioxia-info-only.json" => first == Some(&Reason::NoSmartData),
        _ => false,
    }
}

#[test]
fn every_text_fixture_parses_or_is_a_documented_no_data_output() {
    let mut checked = 0;
    for path in files(&format!("{SHARED}/smartctl-text")).into_iter().chain(
        files(OWN)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "txt")),
    ) {
        let name = name(&path);
        let input = read(&path);
        if name.starts_with("scan-") {
            // Scan output is not a device report: the report parser says so precisely and
            // the scan parser reads it.
            let err = smart::parse_text(&input).expect_err(&name);
            assert!(
                matches!(err, SmartParseError::NotSmartctl { line: 1, .. }),
                "{name}: {err}"
            );
            let entries = smart::parse_scan_text(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!entries.is_empty(), "{name}: no devices");
            checked += 1;
            continue;
        }
        let report = smart::parse_text(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        let v = verdict(&report);
        assert!(
            !v.reasons.is_empty() || v.status == VerdictStatus::Passed,
            "{name}"
        );
        if v.status == VerdictStatus::Unknown {
            assert!(
                documented_no_data(&name, &v.reasons),
                "{name}: Unknown verdict not documented: {:?}",
                v.reasons
            );
        } else {
            assert!(report.has_health_data(), "{name}");
        }
        checked += 1;
    }
    assert!(checked >= 63, "only {checked} text fixtures checked");
}

#[test]
fn every_json_fixture_parses_or_is_a_documented_no_data_output() {
    let mut checked = 0;
    for path in files(&format!("{SHARED}/smartctl-json")) {
        let name = name(&path);
        let input = read(&path);
        if name.starts_with("scan-") {
            let err = smart::parse_json(&input).expect_err(&name);
            assert!(
                matches!(err, SmartParseError::NotSmartctlJson { .. }),
                "{name}: {err}"
            );
            let entries = smart::parse_scan_json(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!entries.is_empty(), "{name}: no devices");
            checked += 1;
            continue;
        }
        let (report, exit) = smart::parse_json(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        let v = smart::assess(&report, exit, &VerdictPolicy::default());
        if v.status == VerdictStatus::Unknown {
            assert!(
                documented_no_data(&name, &v.reasons),
                "{name}: Unknown verdict not documented: {:?}",
                v.reasons
            );
        }
        checked += 1;
    }
    assert!(checked >= 32, "only {checked} JSON fixtures checked");
}

#[test]
fn hgst_7k4000_failing_reallocated_sectors() {
    let r = text("ata-hdd-hgst-7k4000-failed-realloc-pending-errlog-12038.txt");
    assert_eq!(r.device.model.as_deref(), Some("HGST HUS724020ALA640"));
    assert_eq!(
        r.device.model_family.as_deref(),
        Some("Hitachi/HGST Ultrastar 7K4000")
    );
    assert_eq!(r.device.serial.as_deref(), Some("--"));
    assert_eq!(r.device.capacity_bytes, Some(2_000_398_934_016));
    assert_eq!(r.device.rotation, Some(Rotation::Rpm(7200)));
    assert_eq!(r.health, OverallHealth::Failed);
    assert_eq!(r.temperature_c, Some(29));
    let ata = r.ata.as_ref().expect("ATA data");
    let a5 = ata.attribute(5).expect("attribute 5");
    assert_eq!(a5.name, "Reallocated_Sector_Ct");
    assert_eq!((a5.value, a5.worst, a5.thresh), (Some(1), Some(1), Some(5)));
    assert_eq!(a5.when_failed, WhenFailed::Now);
    assert_eq!(a5.raw.value, Some(1303));
    assert_eq!(a5.flags.raw, "PO--CK");
    assert!(a5.flags.prefailure && a5.flags.auto_keep);
    assert_eq!(a5.kind, AttributeKind::PreFail);
    assert_eq!(ata.error_log_count, Some(12038));
    assert_eq!(ata.self_tests.len(), 2);
    assert_eq!(ata.self_tests[1].outcome, SelfTestOutcome::Failed);
    assert_eq!(ata.self_tests[1].failing_lba, Some(2_901_265_099));

    let v = verdict(&r);
    assert_eq!(v.status, VerdictStatus::Failing);
    assert_eq!(v.reasons[0], Reason::OverallHealthFailed);
    assert!(v.reasons.contains(&Reason::AttributeFailingNow {
        id: 5,
        name: "Reallocated_Sector_Ct".into(),
        value: Some(1),
        thresh: Some(5),
        raw: "1303".into(),
    }));
    assert!(v.reasons.contains(&Reason::PredictiveAttribute {
        id: 197,
        name: "Current_Pending_Sector".into(),
        raw: 86,
    }));
    assert!(
        v.reasons
            .contains(&Reason::ErrorLogEntries { count: 12038 })
    );
    // The read failure (#2) is older than a clean short test (#1): superseded.
    assert!(
        !v.reasons
            .iter()
            .any(|r| matches!(r, Reason::SelfTestFailed { .. }))
    );
}

#[test]
fn ironwolf_passed_but_end_to_end_now_and_recent_read_failures() {
    let r = text("ata-hdd-seagate-ironwolf-passed-end-to-end-now-1771-realloc.txt");
    assert_eq!(r.health, OverallHealth::Passed);
    let v = verdict(&r);
    assert_eq!(v.status, VerdictStatus::Failing);
    assert!(matches!(
        &v.reasons[0],
        Reason::AttributeFailingNow { id: 184, .. }
    ));
    assert!(v.reasons.contains(&Reason::PredictiveAttribute {
        id: 5,
        name: "Reallocated_Sector_Ct".into(),
        raw: 1771,
    }));
    let failed: Vec<u32> = v
        .reasons
        .iter()
        .filter_map(|r| match r {
            Reason::SelfTestFailed { num, .. } => Some(*num),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![2, 3]);
}

#[test]
fn hgst_ultrastar_passed_with_pending_sectors_is_a_warning() {
    let v = verdict(&text("ata-hdd-hgst-ultrastar-passed-784-pending.txt"));
    assert_eq!(v.status, VerdictStatus::Warning);
    assert!(v.reasons.contains(&Reason::PredictiveAttribute {
        id: 197,
        name: "Current_Pending_Sector".into(),
        raw: 784,
    }));
}

#[test]
fn crucial_p1_critical_warning_and_114_percent_used() {
    let r = text("nvme-crucial-p1-failed-crit-0x04-114pct-used.txt");
    assert_eq!(r.device.protocol, Some(Protocol::Nvme));
    assert_eq!(r.device.model.as_deref(), Some("CT500P1SSD8"));
    let n = r.nvme.as_ref().expect("NVMe log");
    let cw = n.critical_warning.expect("critical warning");
    assert_eq!(cw.raw, 0x04);
    assert!(cw.reliability_degraded && !cw.spare_below_threshold && !cw.read_only);
    assert_eq!(n.percentage_used, Some(114));
    assert_eq!(n.data_units_written, Some(337_802_357));
    assert_eq!(n.temperature_sensors_c, vec![45, 43, 73]);
    let v = verdict(&r);
    assert_eq!(v.status, VerdictStatus::Failing);
    assert_eq!(
        v.reasons,
        vec![
            Reason::OverallHealthFailed,
            Reason::NvmeCriticalWarning {
                bit: NvmeWarningBit::ReliabilityDegraded,
                raw: 4
            },
            Reason::EnduranceUsed { percent: 114 },
        ]
    );
    assert_eq!(
        v.messages()[1],
        "NVMe critical warning 0x04, bit 2: NVM subsystem reliability degraded"
    );
}

#[test]
fn dell_pm1725_media_errors_with_thousands_separator() {
    let r = text("nvme-dell-pm1725-failed-media-errors-comma.txt");
    assert_eq!(r.nvme.as_ref().and_then(|n| n.media_errors), Some(2137));
    assert_eq!(r.power_on_hours, Some(25_392));
    let v = verdict(&r);
    assert_eq!(v.status, VerdictStatus::Failing);
    assert!(v.reasons.contains(&Reason::MediaErrors { count: 2137 }));
}

#[test]
fn intel_p4510_bogus_two_to_the_32_media_errors_is_a_warning() {
    let r = text("nvme-intel-p4510-bogus-media-errors-2pow32-passed.txt");
    assert_eq!(r.health, OverallHealth::Passed);
    assert_eq!(
        r.nvme.as_ref().and_then(|n| n.media_errors),
        Some(4_294_967_296)
    );
    let v = verdict(&r);
    assert_eq!(v.status, VerdictStatus::Warning);
    assert_eq!(
        v.reasons,
        vec![Reason::MediaErrors {
            count: 4_294_967_296
        }]
    );
}

#[test]
fn samsung_pm1725a_spare_below_threshold() {
    let r = text("nvme-samsung-pm1725a-failed-crit-0x09-spare-4pct.txt");
    let n = r.nvme.as_ref().expect("NVMe log");
    assert_eq!(n.available_spare_percent, Some(4));
    assert_eq!(n.available_spare_threshold_percent, Some(10));
    let cw = n.critical_warning.expect("critical warning");
    assert!(cw.spare_below_threshold && cw.read_only && !cw.reliability_degraded);
    let v = verdict(&r);
    assert_eq!(v.status, VerdictStatus::Failing);
    for reason in [
        Reason::NvmeCriticalWarning {
            bit: NvmeWarningBit::SpareBelowThreshold,
            raw: 9,
        },
        Reason::NvmeCriticalWarning {
            bit: NvmeWarningBit::ReadOnly,
            raw: 9,
        },
        Reason::SpareBelowThreshold {
            spare_percent: 4,
            threshold_percent: 10,
        },
        Reason::MediaErrors { count: 4 },
    ] {
        assert!(
            v.reasons.contains(&reason),
            "missing {reason:?} in {:?}",
            v.reasons
        );
    }
}

#[test]
fn crucial_mx200_percent_lifetime_remain_failing_now() {
    let r = text("sata-ssd-crucial-mx200-failed-lifetime-remain-now.txt");
    assert_eq!(r.device.model.as_deref(), Some("Crucial_CT250MX200SSD1"));
    let a = r
        .ata
        .as_ref()
        .and_then(|a| a.attribute(202))
        .expect("attribute 202");
    assert_eq!(a.name, "Percent_Lifetime_Remain");
    assert_eq!((a.value, a.thresh), (Some(0), Some(1)));
    assert_eq!(a.when_failed, WhenFailed::Now);
    assert_eq!(a.raw.value, Some(100));
    let v = verdict(&r);
    assert_eq!(v.status, VerdictStatus::Failing);
    assert!(
        v.reasons
            .iter()
            .any(|r| matches!(r, Reason::AttributeFailingNow { id: 202, .. }))
    );
}

#[test]
fn self_test_in_progress_30_percent_remaining() {
    for name in [
        "ata-hdd-seagate-oos12000g-selftest-in-progress-not-in-db.txt",
        "ata-hdd-hitachi-selftest-in-progress-x.txt",
    ] {
        let r = text(name);
        let exec = r
            .ata
            .as_ref()
            .and_then(|a| a.self_test_execution.clone())
            .expect(name);
        assert_eq!(exec.code, 243, "{name}");
        assert!(exec.in_progress, "{name}");
        assert_eq!(exec.remaining_percent, Some(30), "{name}");
    }
    let r = text("ata-hdd-seagate-oos12000g-selftest-in-progress-not-in-db.txt");
    assert_eq!(r.device.serial.as_deref(), Some("00008AXB"));
    assert_eq!(r.device.in_smartctl_database, Some(false));
    assert_eq!(r.device.wwn.as_deref(), Some("5000c500a4847915"));
    let ata = r.ata.as_ref().expect("ATA");
    assert_eq!(ata.self_tests[0].outcome, SelfTestOutcome::InProgress);
    assert_eq!(ata.self_tests[0].remaining_percent, Some(30));
    assert_eq!(ata.self_tests.len(), 8);
    let a194 = ata.attribute(194).expect("194");
    assert_eq!(a194.raw.string, "38 (0 16 0 0 0)");
    assert_eq!(a194.raw.value, Some(38));
    assert_eq!(ata.attribute(190).map(|a| a.raw.value), Some(Some(38)));
    assert_eq!(ata.error_log_count, Some(0));
    assert_eq!(verdict(&r).status, VerdictStatus::Passed);
}

#[test]
fn standby_is_skipped_not_failed() {
    let r = smart::parse_text(&read(
        &Path::new(OWN).join("ata-standby-n-standby-smartctl72.txt"),
    ))
    .expect("standby output parses");
    assert_eq!(r.power_mode, Some(PowerMode::Standby));
    let v = smart::assess(
        &r,
        Some(smart::ExitStatus::from_code(2)),
        &VerdictPolicy::default(),
    );
    assert_eq!(v.status, VerdictStatus::Unknown);
    assert_eq!(
        v.reasons,
        vec![Reason::DeviceProblem(DeviceProblem::Standby {
            mode: "STANDBY".into()
        })]
    );
}

#[test]
fn open_failures_name_device_and_reason() {
    let r = text("open-failed-operation-not-permitted-smartctl75-haos.txt");
    assert_eq!(
        r.problems,
        vec![DeviceProblem::OpenFailed {
            device: "/dev/sda".into(),
            reason: "Operation not permitted".into(),
            permission_denied: true,
        }]
    );
    assert_eq!(r.smartctl.as_ref().map(|s| s.version.as_str()), Some("7.5"));
    let r = text("megaraid-open-failed-non-root-cannot-open-ioctl-node.txt");
    assert!(matches!(
        &r.problems[0],
        DeviceProblem::OpenFailed { device, permission_denied: false, .. }
            if device == "/dev/bus/0 [megaraid_disk_65]"
    ));
    let (r, exit) = json("windows-open-failed-permission-error5.json");
    assert!(exit.expect("exit status").device_open_failed);
    let v = smart::assess(&r, exit, &VerdictPolicy::default());
    assert_eq!(v.status, VerdictStatus::Unknown);
    assert!(v.messages()[0].contains("Error=5"));
    let r = text("usb-unknown-bridge-error-smartctl72-no-usage-line.txt");
    assert_eq!(
        r.problems,
        vec![DeviceProblem::UnknownUsbBridge {
            device: "/dev/sda".into(),
            bridge: "0x152d:0xb581 (0x4403)".into(),
        }]
    );
}

#[test]
fn crlf_captures_read_like_lf_ones() {
    for name in [
        "sata-ssd-apacer-as340-windows.txt",
        "nvme-kingston-a2000-windows.txt",
        "nvme-netac-2tb-windows11.txt",
        "nvme-toshiba-kbg30-smartctl74-fedora.txt",
    ] {
        let raw = read(&Path::new(SHARED).join("smartctl-text").join(name));
        assert!(
            raw.contains("\r\n"),
            "{name} is expected to have CRLF endings"
        );
        let crlf = smart::parse_text(&raw).expect(name);
        let lf = smart::parse_text(&raw.replace("\r\n", "\n")).expect(name);
        assert_eq!(crlf, lf, "{name}");
        assert!(
            crlf.device.model.is_some() && crlf.has_health_data(),
            "{name}"
        );
    }
    let r = text("sata-ssd-apacer-as340-windows.txt");
    assert_eq!(r.device.model.as_deref(), Some("Apacer AS340 240GB"));
    assert_eq!(r.device.serial.as_deref(), Some("LKC125R001176"));
    // Latin-1 no-break space as thousands separator, decoded lossily.
    let r = text("nvme-kingston-a2000-windows.txt");
    assert_eq!(r.power_on_hours, Some(3387));
}

#[test]
fn collapsed_whitespace_captures_keep_their_values() {
    let r = text("sas-hdd-hgst-he12-collapsed-whitespace.txt");
    assert_eq!(r.device.protocol, Some(Protocol::Scsi));
    assert_eq!(r.device.vendor.as_deref(), Some("HGST"));
    assert_eq!(r.device.model.as_deref(), Some("HGST HUH721212AL4204"));
    assert_eq!(r.device.serial.as_deref(), Some("8DG3J2ZD"));
    assert_eq!(r.device.capacity_bytes, Some(12_000_138_625_024));
    assert_eq!(r.temperature_c, Some(32));
    let s = r.scsi.as_ref().expect("SCSI");
    assert_eq!(s.grown_defects, Some(0));
    assert_eq!(s.start_stop_cycles, Some(1051));
    let read_log = s.read.as_ref().expect("read counters");
    assert_eq!(read_log.total_uncorrected, Some(0));
    assert_eq!(read_log.gigabytes_processed.as_deref(), Some("38280.029"));
    assert_eq!(verdict(&r).status, VerdictStatus::Passed);

    let r = text("nvme-kioxia-cm6-283-error-log-entries-collapsed.txt");
    let n = r.nvme.as_ref().expect("NVMe");
    assert_eq!(r.device.capacity_bytes, Some(1_600_321_314_816));
    assert_eq!(n.data_units_read, Some(81_966_502));
    assert_eq!(n.host_reads, Some(1_868_020_852));
    assert_eq!(n.error_log_entries, Some(283));
    assert_eq!(n.warning_temp_minutes, Some(284));
    assert_eq!(r.power_on_hours, Some(1998));

    let r = text("nvme-wdc-sn550-smartctl66-collapsed.txt");
    assert_eq!(r.device.serial.as_deref(), Some("220312800929"));
    assert_eq!(
        r.nvme.as_ref().and_then(|n| n.host_writes),
        Some(16_154_207)
    );
}

#[test]
fn brief_format_raw_value_shapes() {
    let r = text("sata-ssd-intel-dc-brief-HA.txt");
    let ata = r.ata.as_ref().expect("ATA");
    let a175 = ata.attribute(175).expect("175");
    assert_eq!(a175.raw.string, "5670 (1 343)");
    assert_eq!(a175.raw.value, Some(5670));
    let a234 = ata.attribute(234).expect("234");
    assert_eq!(a234.raw.string, "0/0");
    assert_eq!(a234.raw.value, Some(0));
    // Intel lists Unsafe_Shutdown_Count twice (174 and 192): both kept.
    let unsafe_ids: Vec<u8> = ata
        .attributes
        .iter()
        .filter(|a| a.name == "Unsafe_Shutdown_Count")
        .map(|a| a.id)
        .collect();
    assert_eq!(unsafe_ids, vec![174, 192]);

    let r = text("ata-hdd-seagate-brief-HA-proxmox.txt");
    let a240 = r.ata.as_ref().and_then(|a| a.attribute(240)).expect("240");
    assert_eq!(a240.raw.string, "1259h+06m+33.546s");
    assert_eq!(a240.raw.value, Some(1259));
    assert_eq!(a240.updated, smart::AttributeUpdated::Offline);

    let r = text("sata-ssd-unknown-attributes-no-thresholds.txt");
    let ata = r.ata.as_ref().expect("ATA");
    assert_eq!(ata.attribute(5).and_then(|a| a.thresh), None);
    assert_eq!(ata.attribute(232).and_then(|a| a.thresh), Some(4));
    let a244 = ata.attribute(244).expect("244");
    assert_eq!((a244.value, a244.worst), (Some(0), Some(100)));
}

#[test]
fn past_and_now_failures_in_brief_tables() {
    let r = text("ata-ssd-apple-darwin-check-power-mode-not-implemented-past-temp.txt");
    assert_eq!(
        r.smartctl.as_ref().and_then(|s| s.platform.as_deref()),
        Some("Darwin 16.4.0 x86_64")
    );
    assert!(
        r.notices
            .iter()
            .any(|n| n.starts_with("CHECK POWER MODE not implemented"))
    );
    let v = verdict(&r);
    assert_eq!(v.status, VerdictStatus::Warning);
    assert_eq!(
        v.reasons,
        vec![Reason::AttributeFailedInPast {
            id: 190,
            name: "Airflow_Temperature_Cel".into()
        }]
    );
    let v = verdict(&text("ata-hdd-seagate-brief-airflow-temp-failing-now.txt"));
    assert_eq!(v.status, VerdictStatus::Failing);
    assert!(matches!(
        &v.reasons[0],
        Reason::AttributeFailingNow { id: 190, .. }
    ));
}

#[test]
fn sas_identity_counters_and_self_test() {
    let r = text("megaraid-sas-hdd-hgst-hus726040al5210.txt");
    let d = &r.device;
    assert_eq!(d.vendor.as_deref(), Some("HGST"));
    assert_eq!(d.product.as_deref(), Some("HUS726040AL5210"));
    assert_eq!(d.firmware.as_deref(), Some("A907"));
    assert_eq!(d.wwn.as_deref(), Some("5000cca25c244870"));
    assert_eq!(d.transport.as_deref(), Some("SAS (SPL-3)"));
    assert_eq!(d.rotation, Some(Rotation::Rpm(7200)));
    assert_eq!(r.health, OverallHealth::Passed);
    let s = r.scsi.as_ref().expect("SCSI");
    assert_eq!(s.health_status.as_deref(), Some("OK"));
    assert_eq!(s.trip_temperature_c, Some(85));
    assert_eq!(s.write.as_ref().and_then(|w| w.total_corrected), Some(211));
    assert_eq!(s.self_tests.len(), 1);
    assert_eq!(s.self_tests[0].description, "Background short");
    assert_eq!(s.self_tests[0].lifetime_hours, Some(302));

    let r = text("sas-seagate-HA-fragment-no-banner.txt");
    assert_eq!(r.smartctl, None);
    assert_eq!(
        r.scsi.as_ref().and_then(|s| s.percentage_used_endurance),
        Some(0)
    );
    assert_eq!(r.power_on_hours, Some(7127));
    assert_eq!(r.temperature_c, Some(20));

    let r = text("sas-hdd-anonymized-vendor-rhel8.txt");
    assert_eq!(r.device.rotation, Some(Rotation::SolidState));
    assert_eq!(
        r.scsi.as_ref().and_then(|s| s.non_medium_errors),
        Some(84_893)
    );
}

#[test]
fn nvme_self_test_log_and_odd_versions() {
    let r = text("nvme-samsung-980-pro-windows-pre74.txt");
    assert_eq!(
        r.smartctl.as_ref().map(|s| s.version.as_str()),
        Some("pre-7.4")
    );
    let n = r.nvme.as_ref().expect("NVMe");
    assert_eq!(
        n.self_test_status.as_deref(),
        Some("Extended self-test in progress (28% completed)")
    );
    assert_eq!(n.self_tests.len(), 6);
    assert_eq!(n.self_tests[4].outcome, SelfTestOutcome::Aborted);
    assert_eq!(n.self_tests[0].lifetime_hours, Some(3441));
    let r = text("nvme-apple-silicon-macos.txt");
    assert_eq!(
        r.nvme
            .as_ref()
            .and_then(|n| n.available_spare_threshold_percent),
        Some(99)
    );
    assert_eq!(verdict(&r).status, VerdictStatus::Passed);
}

#[test]
fn json_scsi_73_naming_and_exit_statuses() {
    let (r, exit) = json("scsi-sas-ssd-hgst-husmr3280-a.json");
    assert!(exit.expect("exit").is_clean());
    assert_eq!(r.device.vendor.as_deref(), Some("HGST"));
    assert_eq!(r.device.model.as_deref(), Some("HGST HUSMR3280ASS200"));
    assert_eq!(r.device.firmware.as_deref(), Some("J172"));
    let s = r.scsi.as_ref().expect("SCSI");
    assert_eq!(s.percentage_used_endurance, Some(0));
    assert_eq!(s.self_tests.len(), 2);
    assert_eq!(s.self_tests[0].description, "Background long");

    let (r, exit) = json("megaraid-sat-wd4000fyyx-attribute-check-exit4.json");
    let exit = exit.expect("exit");
    assert!(exit.smart_command_failed && !exit.disk_failing);
    assert_eq!(r.device.device_type.as_deref(), Some("sat+megaraid,0"));
    assert!(
        r.notices
            .iter()
            .any(|n| n.contains("based on an Attribute check"))
    );
    assert_eq!(
        smart::assess(&r, Some(exit), &VerdictPolicy::default()).status,
        VerdictStatus::Passed
    );

    let (r, exit) = json("sat-hdd-hgst-exit64-error-log.json");
    let v = smart::assess(&r, exit, &VerdictPolicy::default());
    assert_eq!(v.status, VerdictStatus::Warning);
    assert_eq!(v.reasons[0], Reason::ExitErrorLogHasErrors);
    assert_eq!(r.ata.as_ref().and_then(|a| a.error_log_count), Some(12));

    let (r, exit) = json("scsi-sas-seagate-st4000nm0043-no-header.json");
    assert_eq!((r.smartctl.clone(), exit), (None, None));
    assert_eq!(r.scsi.as_ref().and_then(|s| s.grown_defects), Some(56));
    assert_eq!(
        verdict(&r).reasons,
        vec![Reason::GrownDefects { count: 56 }]
    );

    let (r, _) = json("nvme-samsung-970-evo-xall.json");
    assert_eq!(r.nvme.as_ref().and_then(|n| n.media_errors), Some(7));
}

#[test]
fn json_scan_outputs() {
    let entries = smart::parse_scan_json(&read(
        &Path::new(SHARED)
            .join("smartctl-json")
            .join("scan-megaraid.json"),
    ))
    .expect("scan");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].device, "/dev/bus/0");
    assert_eq!(entries[1].device_type.as_deref(), Some("megaraid,1"));
    let text_scan = smart::parse_scan_text(&read(
        &Path::new(SHARED)
            .join("smartctl-text")
            .join("scan-open-linux-nvme-and-megaraid.txt"),
    ))
    .expect("scan");
    assert_eq!(text_scan.len(), 3);
    assert_eq!(text_scan[2].device_type.as_deref(), Some("sat+megaraid,60"));
}

/// Field-by-field comparison of what text and JSON both carry; returns the names of the
/// fields that differ, with both values.
fn differences(t: &SmartReport, j: &SmartReport) -> Vec<String> {
    let mut out = Vec::new();
    macro_rules! same {
        ($name:expr, $a:expr, $b:expr) => {
            if $a.is_some() && $b.is_some() && $a != $b {
                out.push(format!("{}: text {:?} != json {:?}", $name, $a, $b));
            }
        };
    }
    let (td, jd) = (&t.device, &j.device);
    same!("device.model", td.model, jd.model);
    same!("device.model_family", td.model_family, jd.model_family);
    same!("device.serial", td.serial, jd.serial);
    same!("device.wwn", td.wwn, jd.wwn);
    same!("device.firmware", td.firmware, jd.firmware);
    same!(
        "device.capacity_bytes",
        td.capacity_bytes,
        jd.capacity_bytes
    );
    same!(
        "device.logical_block_size",
        td.logical_block_size,
        jd.logical_block_size
    );
    same!(
        "device.physical_block_size",
        td.physical_block_size,
        jd.physical_block_size
    );
    same!("device.rotation", td.rotation, jd.rotation);
    same!("device.form_factor", td.form_factor, jd.form_factor);
    same!("device.protocol", td.protocol, jd.protocol);
    same!(
        "device.interface_speed",
        td.interface_speed,
        jd.interface_speed
    );
    same!(
        "device.in_smartctl_database",
        td.in_smartctl_database,
        jd.in_smartctl_database
    );
    same!("device.sata_version", td.sata_version, jd.sata_version);
    same!("device.ata_version", td.ata_version, jd.ata_version);
    same!("smartctl", t.smartctl, j.smartctl);
    same!(
        "smart_support.available",
        t.smart_support.available,
        j.smart_support.available
    );
    same!(
        "smart_support.enabled",
        t.smart_support.enabled,
        j.smart_support.enabled
    );
    same!("health", Some(t.health), Some(j.health));
    same!("temperature_c", t.temperature_c, j.temperature_c);
    same!("power_on_hours", t.power_on_hours, j.power_on_hours);
    same!("power_cycles", t.power_cycles, j.power_cycles);
    if let (Some(ta), Some(ja)) = (&t.ata, &j.ata) {
        same!(
            "ata.attributes_revision",
            ta.attributes_revision,
            ja.attributes_revision
        );
        same!(
            "ata.error_log_count",
            ta.error_log_count,
            ja.error_log_count
        );
        same!(
            "ata.self_test_execution.code",
            ta.self_test_execution.as_ref().map(|e| e.code),
            ja.self_test_execution.as_ref().map(|e| e.code)
        );
        same!(
            "ata.self_tests.len",
            Some(ta.self_tests.len()),
            Some(ja.self_tests.len())
        );
        same!(
            "ata.attribute ids",
            Some(ta.attributes.iter().map(|a| a.id).collect::<Vec<_>>()),
            Some(ja.attributes.iter().map(|a| a.id).collect::<Vec<_>>())
        );
        for (a, b) in ta.attributes.iter().zip(&ja.attributes) {
            let id = a.id;
            same!(
                format!("ata.attribute[{id}].name"),
                Some(&a.name),
                Some(&b.name)
            );
            same!(
                format!("ata.attribute[{id}].flags.value"),
                a.flags.value,
                b.flags.value
            );
            same!(
                format!("ata.attribute[{id}].flags.prefailure"),
                Some(a.flags.prefailure),
                Some(b.flags.prefailure)
            );
            same!(format!("ata.attribute[{id}].value"), a.value, b.value);
            same!(format!("ata.attribute[{id}].worst"), a.worst, b.worst);
            same!(format!("ata.attribute[{id}].thresh"), a.thresh, b.thresh);
            same!(
                format!("ata.attribute[{id}].kind"),
                Some(a.kind),
                Some(b.kind)
            );
            same!(
                format!("ata.attribute[{id}].updated"),
                Some(a.updated),
                Some(b.updated)
            );
            same!(
                format!("ata.attribute[{id}].when_failed"),
                Some(a.when_failed),
                Some(b.when_failed)
            );
            same!(
                format!("ata.attribute[{id}].raw.string"),
                Some(&a.raw.string),
                Some(&b.raw.string)
            );
            same!(
                format!("ata.attribute[{id}].raw.value"),
                a.raw.value,
                b.raw.value
            );
        }
    }
    if let (Some(tn), Some(jn)) = (&t.nvme, &j.nvme) {
        same!(
            "nvme.critical_warning",
            tn.critical_warning,
            jn.critical_warning
        );
        same!("nvme.temperature_c", tn.temperature_c, jn.temperature_c);
        same!(
            "nvme.available_spare_percent",
            tn.available_spare_percent,
            jn.available_spare_percent
        );
        same!(
            "nvme.available_spare_threshold_percent",
            tn.available_spare_threshold_percent,
            jn.available_spare_threshold_percent
        );
        same!(
            "nvme.percentage_used",
            tn.percentage_used,
            jn.percentage_used
        );
        same!(
            "nvme.data_units_read",
            tn.data_units_read,
            jn.data_units_read
        );
        same!(
            "nvme.data_units_written",
            tn.data_units_written,
            jn.data_units_written
        );
        same!("nvme.host_reads", tn.host_reads, jn.host_reads);
        same!("nvme.host_writes", tn.host_writes, jn.host_writes);
        same!(
            "nvme.controller_busy_minutes",
            tn.controller_busy_minutes,
            jn.controller_busy_minutes
        );
        same!("nvme.power_cycles", tn.power_cycles, jn.power_cycles);
        same!("nvme.power_on_hours", tn.power_on_hours, jn.power_on_hours);
        same!(
            "nvme.unsafe_shutdowns",
            tn.unsafe_shutdowns,
            jn.unsafe_shutdowns
        );
        same!("nvme.media_errors", tn.media_errors, jn.media_errors);
        same!(
            "nvme.error_log_entries",
            tn.error_log_entries,
            jn.error_log_entries
        );
        same!(
            "nvme.warning_temp_minutes",
            tn.warning_temp_minutes,
            jn.warning_temp_minutes
        );
        same!(
            "nvme.critical_temp_minutes",
            tn.critical_temp_minutes,
            jn.critical_temp_minutes
        );
        same!(
            "nvme.temperature_sensors_c",
            Some(&tn.temperature_sensors_c),
            Some(&jn.temperature_sensors_c)
        );
    }
    out
}

#[test]
fn text_and_json_of_the_same_drive_agree() {
    // Each pair was captured from one drive minutes apart (the JSON ~1 h later for the
    // HC550, ~6 min later for the SN770): only counters that tick with time may differ, and
    // the comparison names them.
    let pairs: [(&str, &str, &[&str]); 2] = [
        (
            "ata-hdd-wdc-ultrastar-hc550-16tb-windows.txt",
            "ata-hdd-wdc-ultrastar-helium-windows.json",
            &["power_on_hours", "ata.attribute[9]."],
        ),
        (
            "nvme-wd-black-sn770-windows.txt",
            "nvme-wd-black-sn770-windows.json",
            &[
                "power_on_hours",
                "nvme.power_on_hours",
                "nvme.data_units_",
                "nvme.host_",
                "nvme.controller_busy_minutes",
                "nvme.temperature_sensors_c",
            ],
        ),
    ];
    for (text_name, json_name, time_varying) in pairs {
        let t = text(text_name);
        let (j, _) = json(json_name);
        let diffs = differences(&t, &j);
        let unexpected: Vec<&String> = diffs
            .iter()
            .filter(|d| !time_varying.iter().any(|prefix| d.starts_with(prefix)))
            .collect();
        assert!(
            unexpected.is_empty(),
            "{text_name} vs {json_name}: {unexpected:#?}"
        );
        // Both carry the identity; prove it was compared, not skipped.
        assert_eq!(t.device.serial, j.device.serial);
        assert!(t.device.serial.is_some() && t.device.model.is_some());
        assert_eq!(t.device.model, j.device.model);
        assert_eq!(t.device.capacity_bytes, j.device.capacity_bytes);
        assert_eq!(t.temperature_c, j.temperature_c);
        assert_eq!(t.health, j.health);
    }
    // And the comparison itself notices a difference.
    let t = text("nvme-wd-black-sn770-windows.txt");
    let mut j = t.clone();
    j.device.serial = Some("other".into());
    assert_eq!(
        differences(&t, &j),
        vec!["device.serial: text Some(\"22050Y803439\") != json Some(\"other\")".to_owned()]
    );
}

#[test]
fn reports_survive_json_and_serde_round_trip() {
    // The record is what crosses the wire: it must round-trip through serde unchanged.
    let r = text("ata-hdd-hgst-7k4000-failed-realloc-pending-errlog-12038.txt");
    let encoded = serde_json::to_string(&r).expect("serialize");
    let decoded: SmartReport = serde_json::from_str(&encoded).expect("deserialize");
    assert_eq!(decoded, r);
    let (n, _) = json("nvme-wd-black-sn770-windows.json");
    let decoded: SmartReport =
        serde_json::from_str(&serde_json::to_string(&n).expect("serialize")).expect("decode");
    assert_eq!(decoded, n);
}

/// A property over every JSON capture: wherever an attribute's raw string is made only of
/// numbers (one, the three words of `raw16`, the six bytes of `raw8`, `hi/lo` of
/// `raw24/raw24`), the value the text path would read from that string is exactly the
/// packed number smartctl's JSON carries. So a text capture and a JSON capture of the same
/// drive feed the verdict the same raw values.
#[test]
fn raw_strings_decode_to_the_number_json_packs() {
    let mut checked = 0;
    for dir in [format!("{SHARED}/smartctl-json"), OWN.to_owned()] {
        for path in files(&dir) {
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let Ok((report, _)) = smart::parse_json(&read(&path)) else {
                continue;
            };
            for a in report.ata.iter().flat_map(|ata| &ata.attributes) {
                let numeric = !a.raw.string.is_empty()
                    && a.raw
                        .string
                        .split([' ', '/'])
                        .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()));
                if let (true, Some(packed)) = (numeric, a.raw.packed) {
                    assert_eq!(
                        smart::raw_value(&a.raw.string),
                        Some(packed),
                        "{}: attribute {} {:?}",
                        name(&path),
                        a.id,
                        a.raw.string
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} attributes compared");
}

/// SCSI/SAS power-on time: log page 0x15's `Accumulated power on time, hours:minutes`
/// (what smartctl's JSON calls `power_on_time`) in both of smartctl's printings, wherever
/// it appears, with vendor factory counters only as a fallback; temperature in both forms.
#[test]
fn scsi_power_on_time_prefers_log_page_15_and_temperature_reads_both_forms() {
    let fragment = "sas-seagate-HA-fragment-no-banner.txt";
    let base =
        std::fs::read_to_string(Path::new(SHARED).join("smartctl-text").join(fragment)).unwrap();
    // The fragment has only the Seagate factory counter: it is the fallback.
    let r = smart::parse_text(&base).unwrap();
    assert_eq!(r.power_on_hours, Some(7127));
    assert_eq!(r.temperature_c, Some(20));

    // smartctl 7.x main section, before the factory log; hours grouped with a no-break space.
    let main = base.replace(
        "Manufactured in week",
        "Accumulated power on time, hours:minutes 7\u{a0}130:05\nManufactured in week",
    );
    let r = smart::parse_text(&main).unwrap();
    assert_eq!(r.power_on_hours, Some(7130), "{:?}", r.notices);

    // Inside the background scan results (scsiprint.cpp: `    Accumulated power on time,
    // hours:minutes %d:%02d [%d minutes]`), printed after the factory log.
    let background = format!(
        "{base}\nBackground scan results log\n  Status: waiting until BMS interval timer expires\n    Accumulated power on time, hours:minutes 7130:05 [427805 minutes]\n"
    );
    let r = smart::parse_text(&background).unwrap();
    assert_eq!(r.power_on_hours, Some(7130), "{:?}", r.notices);

    // A value that is there but cannot be read is a notice, not a silent null.
    let garbled = base.replace(
        "Manufactured in week",
        "Accumulated power on time, hours:minutes ??:05\nManufactured in week",
    );
    let r = smart::parse_text(&garbled).unwrap();
    assert!(
        r.notices
            .iter()
            .any(|n| n.starts_with("could not read the number in `accumulated power on time")),
        "{:?}",
        r.notices
    );

    // The newer temperature line.
    let newer = base.replace(
        "Current Drive Temperature:     20 C",
        "Current temperature = 31 C",
    );
    assert_eq!(smart::parse_text(&newer).unwrap().temperature_c, Some(31));
}

/// Capacity in every grouping smartctl's locales print; an unreadable one is a notice.
#[test]
fn capacity_reads_every_locale_grouping() {
    let name = "ata-hdd-wdc-ultrastar-hc550-16tb-windows.txt";
    let base = std::fs::read_to_string(Path::new(SHARED).join("smartctl-text").join(name)).unwrap();
    let printed = "16,000,900,661,248 bytes";
    assert!(base.contains(printed));
    for sep in [",", ".", " ", "\u{a0}", "\u{202f}", "'", "\u{2019}"] {
        let text = base.replace(
            printed,
            &format!("16{sep}000{sep}900{sep}661{sep}248 bytes"),
        );
        let r = smart::parse_text(&text).unwrap();
        assert_eq!(r.device.capacity_bytes, Some(16_000_900_661_248), "{sep:?}");
    }
    let r = smart::parse_text(&base.replace(printed, "16_000_900 bytes")).unwrap();
    assert_eq!(r.device.capacity_bytes, None);
    assert!(
        r.notices.iter().any(|n| n.contains("user capacity")),
        "{:?}",
        r.notices
    );
}

/// smartctl 5.x (SCSI) sentences for SMART support map to the same problems as 6.x/7.x's
/// `SMART support is:` lines.
#[test]
fn smartctl_5_smart_support_sentences() {
    let fragment = "sas-seagate-HA-fragment-no-banner.txt";
    let base =
        std::fs::read_to_string(Path::new(SHARED).join("smartctl-text").join(fragment)).unwrap();
    let unsupported = smart::parse_text(&read(
        &Path::new(OWN).join("usb-sat-smartctl537-device-does-not-support-smart.txt"),
    ))
    .unwrap();
    assert!(
        matches!(
            unsupported.problems.as_slice(),
            [DeviceProblem::SmartUnavailable { .. }]
        ),
        "{:?}",
        unsupported.problems
    );
    assert_eq!(verdict(&unsupported).status, VerdictStatus::Unknown);
    let disabled =
        smart::parse_text(&format!("Device supports SMART and is Disabled\n{base}")).unwrap();
    let v = verdict(&disabled);
    assert_eq!(v.status, VerdictStatus::Unknown, "{v:?}");
    assert!(
        v.reasons
            .contains(&Reason::DeviceProblem(DeviceProblem::SmartDisabled))
    );
    let enabled =
        smart::parse_text(&format!("Device supports SMART and is Enabled\n{base}")).unwrap();
    assert_eq!(enabled.smart_support.enabled, Some(true));
    assert_eq!(verdict(&enabled).status, VerdictStatus::Passed);
}
