//! Test support: a host's storage as **recorded real outputs**, fed through the same
//! [`CommandRunner`](unity_collect::runner::CommandRunner) seam the real tools use.
//!
//! Nothing here is invented: the smartctl scan and drive outputs come from
//! `../shared/fixtures/` (real drives, see its MANIFEST.tsv), the pool from a real zfs-fuse
//! pool with an offlined disk (`collect/fixtures/zfs/`, which also rejects `-j` and
//! `-p` exactly as that zfs-fuse did), the array from a real degraded `/proc/mdstat`. Used by
//! the agent's unit tests and the end-to-end tests, which need a failing disk, a degraded pool
//! and a degraded array that this VM cannot have.

use std::path::Path;
use std::time::Duration;

use unity_collect::runner::RecordedRunner;
use unity_collect::smart::run::SmartRunConfig;

use crate::reports::storage::StorageSources;

const SHARED_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/");
const PROJECT_ZFS_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../collect/fixtures/zfs/");

/// Reads a fixture, with the path in the error.
fn read(path: String) -> Result<String, std::io::Error> {
    std::fs::read(&path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))
}

/// A host with a failing NVMe drive (`/dev/nvme0`, Crucial P1: critical warning 0x04, 114 %
/// used), a healthy one (`/dev/nvme1`), a MegaRAID disk smartctl cannot read, a DEGRADED
/// zfs-fuse pool and a degraded raid5. `scratch` receives the mdstat file.
/// Fails only if a fixture is missing (a broken checkout), naming the file.
pub fn recorded_storage(scratch: &Path) -> Result<StorageSources<RecordedRunner>, std::io::Error> {
    let shared = |name: &str| read(format!("{SHARED_FIXTURES}{name}"));
    let zfs = |name: &str| read(format!("{PROJECT_ZFS_FIXTURES}{name}"));
    let usage = |option: char| format!("invalid option '{option}'\nusage:\n");
    let runner = RecordedRunner::new()
        .record(
            "smartctl --scan-open",
            0,
            &shared("smartctl-text/scan-open-linux-nvme-and-megaraid.txt")?,
            "",
        )
        .record(
            "smartctl -x -n standby -d nvme /dev/nvme0",
            8,
            &shared("smartctl-text/nvme-crucial-p1-failed-crit-0x04-114pct-used.txt")?,
            "",
        )
        .record(
            "smartctl -x -n standby -d nvme /dev/nvme1",
            0,
            &shared("smartctl-text/nvme-samsung-970-evo-plus-proxmox.txt")?,
            "",
        )
        .record("zpool status -j --json-int", 2, "", &usage('j'))
        .record("zpool status -p", 2, "", &usage('p'))
        .record(
            "zpool status",
            0,
            &zfs("zpool-status-zfsfuse-offline-degraded.txt")?,
            "",
        )
        .record(
            "zpool list -Hp -o name,health,size,allocated,free,fragmentation,capacity,dedupratio",
            2,
            "",
            &usage('p'),
        )
        .record(
            "zpool list -H",
            0,
            &zfs("zpool-list-H-zfsfuse-solaris-columns.txt")?,
            "",
        );
    let mdstat = scratch.join("mdstat");
    std::fs::write(
        &mdstat,
        shared("mdstat/raid5-degraded-4-3-UUU_-old-metadata-5space-indent.txt")?,
    )?;
    Ok(StorageSources {
        runner,
        smart: SmartRunConfig {
            device_timeout: Duration::from_secs(5),
            ..SmartRunConfig::default()
        },
        mdstat_path: mdstat,
        sysfs_root: scratch.join("sys"),
        smart_scan: Default::default(),
    })
}
