//! The collectors against the **real** `smartctl` and `mdadm` of this machine (Debian's
//! smartmontools and mdadm, installed by `.ci/run`). What these VMs allow: smartctl runs and
//! scans, but the virtio disk has no SMART; the kernel has no md driver, so `mdadm --detail`
//! can only fail to open an array. The tests pin how those real answers are reported. Outside
//! CI a missing tool skips with a message; in CI (`CI=true`) it fails, so a broken install
//! step cannot pass silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use unity_collect::mdraid;
use unity_collect::runner::SystemRunner;
use unity_collect::smart::run::{CollectorStatus, DeviceStatus, SmartRunConfig, read_device};
use unity_collect::smart::{ScanEntry, VerdictStatus};

fn tool_present(program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(program).is_file());
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "{program} must be installed in CI (.ci/run installs it)"
        );
        eprintln!("skipped: {program} is not installed on this machine");
    }
    found
}

fn smartctl_config() -> SmartRunConfig {
    let program = ["/usr/sbin/smartctl", "/sbin/smartctl"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or("smartctl");
    SmartRunConfig {
        program: program.to_owned(),
        device_timeout: Duration::from_secs(20),
        scan_timeout: Duration::from_secs(20),
        ..SmartRunConfig::default()
    }
}

#[tokio::test]
async fn real_smartctl_scan_completes_and_every_device_has_a_status() {
    if !tool_present("smartctl") {
        return;
    }
    let collection = unity_collect::smart::run::collect(&SystemRunner, &smartctl_config()).await;
    // As root the scan works; whatever devices it lists (none on a virtio VM) each carry a
    // status and, when read, a verdict.
    assert_eq!(collection.status, CollectorStatus::Ok, "{collection:?}");
    for device in &collection.devices {
        if device.status == DeviceStatus::Ok {
            assert!(device.verdict.is_some(), "{device:?}");
        }
    }
}

#[tokio::test]
async fn real_smartctl_on_a_disk_without_smart_is_unknown_not_an_error() {
    if !tool_present("smartctl") {
        return;
    }
    let Some(disk) = ["/dev/vda", "/dev/sda", "/dev/nvme0"]
        .into_iter()
        .find(|d| std::path::Path::new(d).exists())
    else {
        eprintln!("skipped: no block device to point smartctl at");
        return;
    };
    let result = read_device(
        &SystemRunner,
        &smartctl_config(),
        ScanEntry {
            device: disk.to_owned(),
            device_type: None,
            comment: None,
            open_error: None,
        },
    )
    .await;
    // A virtio disk: "Unable to detect device type". A real disk: a verdict. Never a panic,
    // never a silent pass.
    match &result.status {
        DeviceStatus::Ok => {
            let verdict = result.verdict.as_ref().unwrap();
            eprintln!("{disk}: {:?} {:?}", verdict.status, verdict.messages());
            assert!(
                verdict.status != VerdictStatus::Unknown || !verdict.reasons.is_empty(),
                "{verdict:?}"
            );
        }
        DeviceStatus::TimedOut { .. } => panic!("smartctl hung on {disk}"),
        other => {
            // Open failures and unreadable output are reported with smartctl's own words.
            let detail = format!("{other:?}");
            assert!(
                detail.len() > "OpenFailed { detail: \"\" }".len(),
                "{detail}"
            );
        }
    }
}

#[tokio::test]
async fn real_mdadm_detail_of_a_missing_array_is_a_clear_failure() {
    if !tool_present("mdadm") {
        return;
    }
    let outcome = mdraid::run::detail(&SystemRunner, "/dev/md-unity-does-not-exist").await;
    let status = outcome.unwrap_err();
    let text = format!("{status:?}");
    assert!(text.contains("md-unity-does-not-exist"), "{text}");
}

#[tokio::test]
async fn real_proc_mdstat_is_read_or_reported_absent() {
    let report = mdraid::run::collect(
        std::path::Path::new(mdraid::run::PROC_MDSTAT),
        std::path::Path::new(mdraid::run::SYSFS_ROOT),
    );
    if std::path::Path::new(mdraid::run::PROC_MDSTAT).exists() {
        assert!(report.mdstat.is_some(), "{report:?}");
    } else {
        // This kernel has no md driver: the collector says so instead of failing.
        assert!(
            matches!(
                report.outcome,
                unity_collect::source_status::SourceOutcome::ToolMissing { .. }
            ),
            "{report:?}"
        );
    }
}
