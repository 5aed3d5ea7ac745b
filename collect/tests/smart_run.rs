//! The runner over recorded real smartctl outputs: scan, then one `-x -n standby` per
//! device, with per-device outcomes (ok, standby, open failed, timed out, unparseable) and
//! collector-level ones (smartctl missing, permission denied).

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use unity_collect::runner::{CommandOutput, CommandRunner, RunError};
use unity_collect::smart::{
    CollectorStatus, DeviceStatus, OutputFormat, SmartRunConfig, VerdictStatus, collect,
};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/smart");

/// What the fake smartctl does for one command line.
enum Reply {
    /// Print this recorded real output and exit with this code.
    Output(String, i32),
    Hang,
    Fail(fn(&str) -> RunError),
}

/// A [`CommandRunner`] that replays recorded real smartctl outputs (the shared fixtures)
/// keyed by the exact argument list, so the runner is tested through the same seam the
/// real `SystemRunner` uses.
struct FixtureRunner {
    replies: HashMap<String, Reply>,
    calls: std::sync::Mutex<Vec<String>>,
}

fn fixture(dir: &str, name: &str) -> String {
    String::from_utf8_lossy(
        &fs::read(Path::new(dir).join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}")),
    )
    .into_owned()
}

impl FixtureRunner {
    fn new(replies: Vec<(&str, Reply)>) -> Self {
        Self {
            replies: replies
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            calls: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl CommandRunner for FixtureRunner {
    async fn run(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<CommandOutput, RunError> {
        let key = args.join(" ");
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(key.clone());
        }
        match self.replies.get(&key) {
            Some(Reply::Output(stdout, code)) => Ok(CommandOutput {
                exit_code: Some(*code),
                stdout: stdout.clone(),
                stderr: String::new(),
            }),
            Some(Reply::Hang) => Err(RunError::TimedOut {
                program: program.to_owned(),
                timeout,
            }),
            Some(Reply::Fail(make)) => Err(make(program)),
            None => panic!("unexpected smartctl invocation: {key}"),
        }
    }
}

/// `/dev/sda` answers with a recorded failing HGST disk (exit 24: failing, prefail below
/// threshold), the device most runner tests need.
fn failing_sda() -> (&'static str, Reply) {
    (
        "-x -n standby -d sat /dev/sda",
        Reply::Output(
            fixture(
                &format!("{SHARED}/smartctl-text"),
                "ata-hdd-hgst-7k4000-failed-realloc-pending-errlog-12038.txt",
            ),
            24,
        ),
    )
}

#[tokio::test]
async fn scan_then_each_device_with_its_own_outcome() {
    let scan = "/dev/sda -d sat # /dev/sda [SAT], ATA device\n\
                /dev/sdb -d sat # /dev/sdb [SAT], ATA device\n\
                /dev/nvme0 -d nvme # /dev/nvme0, NVMe device\n\
                /dev/nvme1 -d nvme # /dev/nvme1, NVMe device\n\
                /dev/bus/0 -d megaraid,65 # /dev/bus/0 [megaraid_disk_65], SCSI device\n\
                /dev/sdc -d scsi # /dev/sdc, SCSI device\n\
                # /dev/sdd -d scsi # /dev/sdd, SCSI device open failed: Permission denied\n";
    let text = |name| fixture(&format!("{SHARED}/smartctl-text"), name);
    let runner = FixtureRunner::new(vec![
        ("--scan-open", Reply::Output(scan.to_owned(), 0)),
        failing_sda(),
        (
            "-x -n standby -d sat /dev/sdb",
            Reply::Output(fixture(OWN, "ata-standby-n-standby-smartctl72.txt"), 2),
        ),
        (
            "-x -n standby -d nvme /dev/nvme0",
            Reply::Output(text("nvme-wdc-sn730.txt"), 0),
        ),
        ("-x -n standby -d nvme /dev/nvme1", Reply::Hang),
        (
            "-x -n standby -d megaraid,65 /dev/bus/0",
            Reply::Output(
                text("open-failed-operation-not-permitted-smartctl75-haos.txt"),
                2,
            ),
        ),
        (
            "-x -n standby -d scsi /dev/sdc",
            Reply::Output("Segmentation fault\n".to_owned(), 139),
        ),
    ]);
    let config = SmartRunConfig::default();
    let c = collect(&runner, &config).await;
    assert_eq!(c.status, CollectorStatus::Ok);
    let by_device: HashMap<&str, &unity_collect::smart::DeviceResult> = c
        .devices
        .iter()
        .map(|d| (d.device.device.as_str(), d))
        .collect();
    assert_eq!(c.devices.len(), 7);

    let sda = by_device["/dev/sda"];
    assert_eq!(sda.status, DeviceStatus::Ok);
    let exit = sda.exit.expect("exit status");
    assert!(exit.disk_failing && exit.prefail_below_threshold);
    assert_eq!(
        sda.verdict.as_ref().map(|v| v.status),
        Some(VerdictStatus::Failing)
    );

    let sdb = by_device["/dev/sdb"];
    assert_eq!(sdb.status, DeviceStatus::InStandby);
    assert_eq!(
        sdb.verdict.as_ref().map(|v| v.status),
        Some(VerdictStatus::Unknown)
    );

    let nvme0 = by_device["/dev/nvme0"];
    assert_eq!(nvme0.status, DeviceStatus::Ok);
    assert_eq!(
        nvme0
            .report
            .as_ref()
            .and_then(|r| r.device.serial.as_deref()),
        Some("211515805454")
    );

    // The hung device is reported and did not stop the devices after it.
    assert_eq!(
        by_device["/dev/nvme1"].status,
        DeviceStatus::TimedOut { after_ms: 30_000 }
    );
    assert!(matches!(
        &by_device["/dev/bus/0"].status,
        DeviceStatus::PermissionDenied { detail } if detail.contains("Operation not permitted")
    ));
    assert!(matches!(
        &by_device["/dev/sdc"].status,
        DeviceStatus::Unparseable { error } if error.contains("Segmentation fault")
    ));
    // `--scan-open` could not open sdd: reported, and smartctl is not run for it.
    assert!(matches!(
        &by_device["/dev/sdd"].status,
        DeviceStatus::PermissionDenied { .. }
    ));
    let calls = runner.calls.lock().expect("lock");
    assert!(!calls.iter().any(|c| c.ends_with("/dev/sdd")));
    assert_eq!(calls.len(), 7);
}

#[tokio::test]
async fn json_mode_uses_json_scan_and_json_exit_status() {
    let json = |name| fixture(&format!("{SHARED}/smartctl-json"), name);
    let scan = "{\"smartctl\":{\"version\":[7,3],\"exit_status\":0},\"devices\":[\
                {\"name\":\"/dev/sdc\",\"info_name\":\"/dev/sdc\",\"type\":\"nvme\",\"protocol\":\"NVMe\"},\
                {\"name\":\"/dev/sda\",\"info_name\":\"/dev/sda\",\"type\":\"sat\",\"protocol\":\"ATA\"}]}";
    let runner = FixtureRunner::new(vec![
        ("--scan-open -j", Reply::Output(scan.to_owned(), 0)),
        (
            "-j -x -n standby -d nvme /dev/sdc",
            Reply::Output(json("nvme-wd-black-sn770-windows.json"), 0),
        ),
        (
            "-j -x -n standby -d sat /dev/sda",
            Reply::Output(json("windows-open-failed-permission-error5.json"), 2),
        ),
    ]);
    let config = SmartRunConfig {
        format: OutputFormat::Json,
        ..SmartRunConfig::default()
    };
    let c = collect(&runner, &config).await;
    assert_eq!(c.status, CollectorStatus::Ok);
    assert_eq!(c.devices[0].status, DeviceStatus::Ok);
    assert_eq!(
        c.devices[0].verdict.as_ref().map(|v| v.status),
        Some(VerdictStatus::Passed)
    );
    assert!(
        matches!(&c.devices[1].status, DeviceStatus::PermissionDenied { detail } if detail.contains("Error=5"))
    );
    assert!(c.devices[1].exit.is_some_and(|e| e.device_open_failed));
}

#[tokio::test]
async fn missing_smartctl_and_denied_scan_are_collector_statuses() {
    let runner = FixtureRunner::new(vec![(
        "--scan-open",
        Reply::Fail(|p| RunError::NotFound {
            program: p.to_owned(),
        }),
    )]);
    let c = collect(&runner, &SmartRunConfig::default()).await;
    assert_eq!(
        c.status,
        CollectorStatus::ToolMissing {
            program: "smartctl".into()
        }
    );
    assert!(c.devices.is_empty());

    let runner = FixtureRunner::new(vec![(
        "--scan-open",
        Reply::Fail(|p| RunError::PermissionDenied {
            program: p.to_owned(),
        }),
    )]);
    let c = collect(&runner, &SmartRunConfig::default()).await;
    assert!(matches!(c.status, CollectorStatus::PermissionDenied { .. }));

    let runner = FixtureRunner::new(vec![(
        "--scan-open",
        Reply::Output(
            "smartctl: command line garbage\nmore garbage\n".to_owned(),
            1,
        ),
    )]);
    let c = collect(&runner, &SmartRunConfig::default()).await;
    assert!(
        matches!(&c.status, CollectorStatus::ScanFailed { detail } if detail.contains("line 1"))
    );
}

#[tokio::test]
async fn real_scan_fixture_drives_the_device_list() {
    let scan = fixture(
        &format!("{SHARED}/smartctl-text"),
        "scan-non-root-misses-megaraid-devices.txt",
    );
    let sas = fixture(
        &format!("{SHARED}/smartctl-text"),
        "sas-hdd-anonymized-vendor-rhel8.txt",
    );
    let runner = FixtureRunner::new(vec![
        ("--scan-open", Reply::Output(scan, 0)),
        (
            "-x -n standby -d scsi /dev/sda",
            Reply::Output(sas.clone(), 0),
        ),
        (
            "-x -n standby -d scsi /dev/sdb",
            Reply::Output(sas.clone(), 0),
        ),
        ("-x -n standby -d scsi /dev/sdd", Reply::Output(sas, 0)),
    ]);
    let c = collect(&runner, &SmartRunConfig::default()).await;
    let devices: Vec<&str> = c.devices.iter().map(|d| d.device.device.as_str()).collect();
    assert_eq!(devices, vec!["/dev/sda", "/dev/sdb", "/dev/sdd"]);
    assert!(c.devices.iter().all(|d| d.status == DeviceStatus::Ok));
}

/// A series of rounds scans once while the kernel shows the same devices, and again when a
/// device appears, when a device of the scan could not be opened, and when the scan is older
/// than `rescan_after`; every device is read every round. The device names come from a
/// directory laid out like `/sys`.
#[tokio::test]
async fn a_series_of_rounds_scans_again_only_when_the_devices_change() {
    use std::time::Instant;
    use unity_collect::smart::{DeviceScanMemory, DeviceSet, SmartCollection, collect_with};

    /// One round with the device set read from `sys` (a directory laid out like `/sys`).
    async fn round_over(
        runner: &FixtureRunner,
        memory: &mut DeviceScanMemory,
        sys: &Path,
        at: Instant,
    ) -> SmartCollection {
        let config = SmartRunConfig::default();
        collect_with(runner, &config, memory, DeviceSet::read(sys), at).await
    }

    let text = |name| fixture(&format!("{SHARED}/smartctl-text"), name);
    let scan = "/dev/sda -d sat # /dev/sda [SAT], ATA device\n\
                /dev/nvme0 -d nvme # /dev/nvme0, NVMe device\n";
    let runner = FixtureRunner::new(vec![
        ("--scan-open", Reply::Output(scan.to_owned(), 0)),
        failing_sda(),
        (
            "-x -n standby -d nvme /dev/nvme0",
            Reply::Output(text("nvme-wdc-sn730.txt"), 0),
        ),
    ]);
    let sys = tempfile::tempdir().unwrap();
    for dir in ["block/sda", "block/nvme0n1", "class/nvme/nvme0"] {
        fs::create_dir_all(sys.path().join(dir)).unwrap();
    }
    let config = SmartRunConfig::default();
    let mut memory = DeviceScanMemory::default();
    let start = Instant::now();
    let mut round = async |at: Instant| {
        let c = round_over(&runner, &mut memory, sys.path(), at).await;
        assert_eq!(c.status, CollectorStatus::Ok);
        assert_eq!(c.devices.len(), 2, "{c:?}");
        let calls = std::mem::take(&mut *runner.calls.lock().unwrap());
        let scans = calls.iter().filter(|c| *c == "--scan-open").count();
        assert_eq!(calls.len() - scans, 2, "each device read: {calls:?}");
        scans
    };
    assert_eq!(round(start).await, 1, "the first round scans");
    assert_eq!(
        round(start + Duration::from_secs(300)).await,
        0,
        "same devices"
    );
    fs::create_dir_all(sys.path().join("block/sdb")).unwrap();
    assert_eq!(
        round(start + Duration::from_secs(600)).await,
        1,
        "a disk appeared"
    );
    assert_eq!(round(start + Duration::from_secs(900)).await, 0);
    fs::remove_dir(sys.path().join("block/sdb")).unwrap();
    assert_eq!(
        round(start + Duration::from_secs(1200)).await,
        1,
        "a disk went"
    );
    assert_eq!(
        round(start + Duration::from_secs(1200) + config.rescan_after).await,
        1,
        "the scan is an hour old"
    );
    // No /sys to compare with: every round scans.
    let unreadable = round_over(&runner, &mut memory, &sys.path().join("missing"), start).await;
    assert_eq!(unreadable.devices.len(), 2);
    let calls = std::mem::take(&mut *runner.calls.lock().unwrap());
    assert!(calls.iter().any(|c| c == "--scan-open"), "{calls:?}");

    // A scan listing a device it could not open is not kept.
    let denied = "/dev/sda -d sat # /dev/sda [SAT], ATA device\n\
                  # /dev/sdd -d scsi # /dev/sdd, SCSI device open failed: Permission denied\n";
    let runner = FixtureRunner::new(vec![
        ("--scan-open", Reply::Output(denied.to_owned(), 0)),
        failing_sda(),
    ]);
    let mut memory = DeviceScanMemory::default();
    for at in [start, start + Duration::from_secs(300)] {
        round_over(&runner, &mut memory, sys.path(), at).await;
    }
    let calls = runner.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|c| *c == "--scan-open").count(),
        2,
        "{calls:?}"
    );
}
