//! Every real ZFS output in `shared/fixtures/zpool/` and `fixtures/zfs/` goes through the
//! parsers: each must parse, or fail with the specific error documented for it in
//! `docs/storage-health.md`. A new fixture file is picked up automatically; one no parser
//! accepts fails the test until it is handled or its error is documented here.

// Test helpers panic on a broken fixture tree by design: that is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use unity_collect::verdict::{Health, Severity};
use unity_collect::zfs::{self, ParseError, Pool, ScanFunction, ScanState, VdevKind, VdevState};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/zpool");
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/zfs");

fn files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [SHARED, OWN] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_file() && name != "MANIFEST.tsv" && !name.ends_with(".md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn read(name: &str) -> String {
    for dir in [SHARED, OWN] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return std::fs::read_to_string(p).unwrap();
        }
    }
    panic!("fixture {name} not found");
}

fn status(name: &str) -> Vec<Pool> {
    let text = read(name);
    if name.ends_with(".json") {
        zfs::parse_status_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    } else {
        zfs::parse_status(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

/// Which parser a fixture is for, from its file name; `Ok(count)` is how many records.
fn dispatch(name: &str, text: &str) -> Result<usize, ParseError> {
    if name.starts_with("zpool-status") && name.ends_with(".json") {
        zfs::parse_status_json(text).map(|v| v.len())
    } else if name.starts_with("zpool-list") && name.ends_with(".json") {
        zfs::parse_list_json(text).map(|v| v.len())
    } else if name.starts_with("zpool-status") || name.starts_with("zz-zpool-iostat") {
        zfs::parse_status(text).map(|v| v.len())
    } else if name.starts_with("zpool-list") {
        zfs::parse_list(text).map(|v| v.len())
    } else if name.starts_with("zfs-list") {
        zfs::parse_dataset_list(text).map(|v| v.len())
    } else {
        // Unknown kind of file: some parser must accept it.
        zfs::parse_status(text)
            .map(|v| v.len())
            .or_else(|_| zfs::parse_status_json(text).map(|v| v.len()))
            .or_else(|_| zfs::parse_list(text).map(|v| v.len()))
            .or_else(|_| zfs::parse_dataset_list(text).map(|v| v.len()))
    }
}

#[test]
fn every_fixture_parses_or_fails_as_documented() {
    let files = files();
    assert!(files.len() >= 29, "fixtures missing? found {}", files.len());
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let result = dispatch(&name, &text);
        if name.starts_with("zz-zpool-iostat") {
            // Documented: `zpool iostat` is not `zpool status`; we say so precisely.
            assert!(
                matches!(result, Err(ParseError::NotStatusOutput { .. })),
                "{name}: {result:?}"
            );
            continue;
        }
        match result {
            Ok(n) => assert!(n > 0, "{name}: parsed to nothing"),
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

#[test]
fn every_status_fixture_is_assessed() {
    for path in files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("zpool-status") {
            continue;
        }
        for pool in status(&name) {
            let a = zfs::assess_pool(&pool, None);
            assert_eq!(a.subject, pool.name);
            assert_ne!(a.health, Health::Unknown, "{name}");
            if pool.state != VdevState::Online {
                assert_eq!(a.health, Health::Critical, "{name}/{}", pool.name);
            }
        }
    }
}

#[test]
fn degraded_unavail_member_with_cksum_and_was_path() {
    let pools = status("zpool-status-degraded-unavail-cksum-100980-was-path.txt");
    assert_eq!(pools.len(), 1);
    let p = &pools[0];
    assert_eq!((p.name.as_str(), p.state), ("mypool", VdevState::Degraded));
    assert_eq!(
        p.see.as_deref(),
        Some("https://openzfs.github.io/openzfs-docs/msg/ZFS-8000-4J")
    );
    let mirror = &p.root.children[0];
    assert_eq!(
        (mirror.kind.clone(), mirror.state),
        (VdevKind::Mirror, VdevState::Degraded)
    );
    assert_eq!(mirror.children.len(), 3);
    let bad = &mirror.children[0];
    assert_eq!(bad.name, "12345678901234567890");
    assert_eq!(bad.state, VdevState::Unavail);
    assert_eq!(bad.counters.unwrap().checksum, 100980);
    assert!(!bad.counters.unwrap().approximate);
    assert_eq!(
        bad.was.as_deref(),
        Some("/dev/disk/by-id/ata-ST8000DM004-xxxxxx_redacted-part1")
    );
    let scan = p.scan.as_ref().unwrap();
    assert_eq!(
        (scan.function, scan.state),
        (ScanFunction::Scrub, ScanState::Finished)
    );
    assert_eq!((scan.processed_bytes, scan.errors), (Some(0), Some(0)));
    assert_eq!(scan.duration.as_deref(), Some("08:37:48"));
    let a = zfs::assess_pool(p, None);
    assert_eq!(a.health, Health::Critical);
    assert!(
        a.findings
            .iter()
            .any(|f| f.component.as_deref() == Some("12345678901234567890")
                && f.severity == Severity::Critical
                && f.message.contains("was /dev/disk/by-id/"))
    );
    assert!(
        a.findings
            .iter()
            .any(|f| f.message.contains("100980 checksum"))
    );
}

#[test]
fn scrub_in_progress_without_eta() {
    let p = &status("zpool-status-scrub-in-progress-no-eta.txt")[0];
    assert_eq!(p.name, "neptune");
    let scan = p.scan.as_ref().unwrap();
    assert_eq!(
        (scan.function, scan.state),
        (ScanFunction::Scrub, ScanState::InProgress)
    );
    let prog = scan.progress.as_ref().unwrap();
    assert_eq!(prog.percent_done, Some(0.0));
    assert!(prog.no_estimate);
    assert_eq!(prog.scanned_bytes, Some(704 << 30));
    assert_eq!(prog.total_bytes, Some(1_825_189_302_108));
    assert_eq!(zfs::assess_pool(p, None).health, Health::Healthy);
}

#[test]
fn resilver_in_progress_old_format_with_logs_and_cache() {
    let p = &status("zpool-status-resilver-in-progress-mirror-logs-mirror-cache-zol2015.txt")[0];
    assert_eq!(p.name, "tank");
    let scan = p.scan.as_ref().unwrap();
    assert_eq!(
        (scan.function, scan.state),
        (ScanFunction::Resilver, ScanState::InProgress)
    );
    let prog = scan.progress.as_ref().unwrap();
    assert_eq!(prog.percent_done, Some(0.39));
    assert_eq!(prog.eta.as_deref(), Some("0h46m"));
    assert_eq!(prog.rate.as_deref(), Some("126M/s"));
    assert_eq!(prog.total_bytes, Some(347 << 30));
    assert_eq!(p.logs.len(), 1);
    assert_eq!(p.logs[0].kind, VdevKind::Mirror);
    assert_eq!(p.logs[0].children.len(), 2);
    let cache: Vec<&str> = p.cache.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(cache, ["sda4", "sdb4"]);
    let a = zfs::assess_pool(p, None);
    assert_eq!(a.health, Health::Warning);
    assert!(
        a.findings
            .iter()
            .any(|f| f.message.starts_with("resilver in progress, 0.39% done"))
    );
}

#[test]
fn permanent_errors_listed_with_v() {
    let p = &status("zpool-status-v-online-permanent-errors-metadata-objects.txt")[0];
    let e = p.errors.as_ref().unwrap();
    assert_eq!(e.count, Some(2));
    assert_eq!(e.files, ["<metadata>:<0x0>", "<metadata>:<0x39>"]);
    assert_eq!(zfs::assess_pool(p, None).health, Health::Critical);
}

#[test]
fn data_errors_when_list_is_unavailable() {
    let p = &status("zpool-status-online-data-corruption-permission-denied-errors.txt")[0];
    let e = p.errors.as_ref().unwrap();
    assert_eq!(e.count, Some(1));
    assert_eq!(e.unavailable_reason.as_deref(), Some("permission denied"));
    let scan = p.scan.as_ref().unwrap();
    assert_eq!(
        (scan.errors, scan.duration.as_deref()),
        (Some(1), Some("14h7m"))
    );
    assert_eq!(zfs::assess_pool(p, None).health, Health::Critical);
}

#[test]
fn special_vdev_fragment_with_write_errors() {
    let p = &status("zpool-status-special-vdev-trailing-space-write-errors-9P-FRAGMENT.txt")[0];
    assert_eq!(p.name, "storage");
    assert!(p.errors.is_none(), "fragment ends before errors:");
    assert_eq!(p.special.len(), 1);
    assert_eq!(p.special[0].name, "mirror-2");
    let member = &p.special[0].children[0];
    assert_eq!(
        member.name,
        "ata-Samsung_SSD_860_QVO_1TB_S4CZNF0N459001M-part3"
    );
    assert_eq!(member.counters.unwrap().write, 5);
    let a = zfs::assess_pool(p, None);
    assert_eq!(a.health, Health::Warning);
    assert_eq!(
        a.findings
            .iter()
            .filter(|f| f.message.contains("5 write"))
            .count(),
        1,
        "{a:?}"
    );
}

#[test]
fn spares_without_counters() {
    let p = &status("zpool-status-4x-mirror-with-spares-avail.txt")[0];
    assert_eq!(p.root.children.len(), 4);
    assert_eq!(p.spares.len(), 1);
    assert_eq!(
        (p.spares[0].name.as_str(), p.spares[0].state),
        ("sdf", VdevState::Avail)
    );
    assert!(p.spares[0].counters.is_none());
    let scan = p.scan.as_ref().unwrap();
    assert_eq!(scan.duration.as_deref(), Some("<snip>"));
}

#[test]
fn solaris_two_pools_one_unavailable() {
    let pools = status("zpool-status-solaris-3way-mirror-resilvered-and-unavail-raidz1.txt");
    assert_eq!(pools.len(), 2);
    assert_eq!(
        pools[0].scan.as_ref().unwrap().function,
        ScanFunction::Resilver
    );
    assert_eq!(
        pools[0].scan.as_ref().unwrap().processed_bytes,
        Some(1_478_492)
    );
    let z = &pools[1];
    assert_eq!((z.name.as_str(), z.state), ("zpool", VdevState::Unavail));
    assert_eq!(z.root.note.as_deref(), Some("insufficient replicas"));
    assert_eq!(z.root.children[0].kind, VdevKind::Raidz1);
    assert_eq!(z.scan.as_ref().unwrap().state, ScanState::NoneRequested);
    assert!(z.errors.is_none());
    let old = &status("zpool-status-solaris-degraded-cannot-open-scrub-none-requested.txt")[0];
    assert_eq!(old.scan.as_ref().unwrap().state, ScanState::NoneRequested);
    assert_eq!(
        old.root.children[0].children[1].note.as_deref(),
        Some("cannot open")
    );
}

#[test]
fn macos_three_pools_without_blank_lines() {
    let pools = status("zpool-status-v-macos-o3x-three-pools-spaces-no-blank-lines.txt");
    let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["zhgstera6", "zint500", "zsam53"]);
    assert_eq!(pools[0].scan.as_ref().unwrap().state, ScanState::Canceled);
    assert_eq!(
        pools[1].scan.as_ref().unwrap().duration.as_deref(),
        Some("0 days 00:19:47")
    );
    assert_eq!(
        pools[2].root.children[0].name,
        "Portable_SSD_T5-S49WNP0N120517B:8"
    );
}

#[test]
fn illumos_logs_and_guid_member() {
    let p = &status("zpool-status-illumos-degraded-with-logs-vdev.txt")[0];
    assert_eq!(p.root.children.len(), 2);
    assert_eq!(p.logs[0].name, "c0t55CD2E404B73663Dd0");
    assert_eq!(
        p.root.children[0].children[0].was.as_deref(),
        Some("/dev/dsk/c0t5000C5006349E003d0s0")
    );
}

#[test]
fn removed_member_and_headers() {
    let p = &status("zpool-status-degraded-device-removed.txt")[0];
    assert_eq!(p.root.children[0].children[0].state, VdevState::Removed);
    assert!(
        p.status
            .as_deref()
            .unwrap()
            .starts_with("One or more devices has been removed")
    );
    assert!(p.action.as_deref().unwrap().ends_with("'zpool replace'."));
    let none = &status("zpool-status-degraded-no-scan-line.txt")[0];
    assert!(none.scan.is_none());
    let new = &status("zpool-status-new-pool-no-scan-line.txt")[0];
    assert_eq!(new.errors.as_ref().unwrap().count, Some(0));
    assert_eq!(zfs::assess_pool(new, None).health, Health::Healthy);
}

#[test]
fn raidz_and_repaired_scrub_two_pools() {
    let pools = status("zpool-status-p-raidz1-and-nvme-mirror-two-pools.txt");
    assert_eq!(pools[0].root.children[0].kind, VdevKind::Raidz1);
    assert_eq!(pools[0].root.children[0].children.len(), 3);
    assert_eq!(
        pools[1].scan.as_ref().unwrap().processed_bytes,
        Some(1 << 20)
    );
    let a = zfs::assess_pool(&pools[1], None);
    assert_eq!(a.health, Health::Warning);
    assert!(
        a.findings
            .iter()
            .any(|f| f.message.contains("repaired 1048576 bytes"))
    );
}

#[test]
fn json_int_and_string_variants() {
    let pools = status("zpool-status-j-json-int-ok-four-pools.json");
    let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["rpool", "zpool-hdd", "zpool-nvme", "zpool-ssd"]);
    let hdd = &pools[1];
    assert_eq!(hdd.root.children[0].kind, VdevKind::Draid);
    assert_eq!(hdd.root.children[0].children.len(), 8);
    let scan = hdd.scan.as_ref().unwrap();
    assert_eq!(
        (scan.function, scan.state),
        (ScanFunction::Scrub, ScanState::Finished)
    );
    assert_eq!(scan.ended, Some(zfs::ScanTime::UnixSeconds(1764050414)));
    assert_eq!(
        pools[0].scan.as_ref().unwrap().function,
        ScanFunction::Resilver
    );
    assert_eq!(pools[0].errors.as_ref().unwrap().count, Some(0));

    let pools = status("zpool-status-j-string-values-two-pools.json");
    assert_eq!(pools.len(), 2);
    let scan = pools[0].scan.as_ref().unwrap();
    assert_eq!(
        scan.started,
        Some(zfs::ScanTime::Text("Sun Nov 16 08:00:01 CET 2025".into()))
    );
    assert_eq!(pools[0].root.children[0].kind, VdevKind::Mirror);
    assert_eq!(pools[0].root.children[0].counters.unwrap().read, 0);
    for p in &pools {
        assert_eq!(zfs::assess_pool(p, None).health, Health::Healthy);
    }
}

#[test]
fn text_and_json_agree_on_shape() {
    // Different hosts, but both must give a root vdev whose kind is Root.
    for p in status("zpool-status-j-string-values-two-pools.json")
        .iter()
        .chain(status("zpool-status-two-pools-features-not-enabled.txt").iter())
    {
        assert_eq!(p.root.kind, VdevKind::Root);
        assert_eq!(p.root.name, p.name);
    }
}

#[test]
fn zpool_list_layouts() {
    let l = zfs::parse_list(&read("zpool-list-Hp-freebsd14-plain-numbers.txt")).unwrap();
    assert_eq!(l[0].name, "zroot");
    assert_eq!(l[0].health, Some(VdevState::Online));
    assert_eq!(l[0].size_bytes, Some(67_108_864_000));
    assert_eq!(l[0].allocated_bytes, Some(11_959_578_624));
    assert_eq!(l[0].free_bytes, Some(55_149_285_376));
    assert_eq!(
        (l[0].fragmentation_percent, l[0].capacity_percent),
        (Some(4), Some(17))
    );
    assert_eq!(l[0].dedup_ratio, Some(1.0));

    let l = zfs::parse_list(&read("zpool-list-Hp-unavail-pool-dashes.txt")).unwrap();
    assert_eq!(
        (l[0].name.as_str(), l[0].health),
        ("temp2", Some(VdevState::Unavail))
    );
    assert_eq!((l[0].size_bytes, l[0].capacity_percent), (None, None));

    let l = zfs::parse_list(&read("zpool-list-HPLv-with-log-and-cache.txt")).unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].capacity_percent, Some(28));
    assert_eq!(l[0].health, Some(VdevState::Online));
    let v: Vec<(&str, zfs::VdevClass, Option<u64>)> = l[0]
        .vdevs
        .iter()
        .map(|v| (v.name.as_str(), v.class, v.capacity_percent))
        .collect();
    assert_eq!(
        v,
        [
            ("/dev/sdc", zfs::VdevClass::Data, Some(28)),
            ("/dev/sdd1", zfs::VdevClass::Log, Some(0)),
            ("/dev/sdd2", zfs::VdevClass::Cache, Some(85)),
        ]
    );

    let l = zfs::parse_list_json(&read("zpool-list-j-two-pools.json")).unwrap();
    assert_eq!(l.len(), 2);
    let nvme = l.iter().find(|p| p.name == "zpool-nvme").unwrap();
    assert_eq!(nvme.fragmentation_percent, Some(3));
    assert_eq!(nvme.capacity_percent, Some(0));
    assert_eq!(nvme.health, Some(VdevState::Online));
}

#[test]
fn capacity_thresholds_from_list() {
    let p = &status("zpool-status-new-pool-no-scan-line.txt")[0];
    let mut row = zfs::parse_list("milton\tONLINE\t100\t80\t20\t1\t80\t1.00\n").unwrap();
    assert_eq!(zfs::assess_pool(p, row.first()).health, Health::Warning);
    row[0].capacity_percent = Some(79);
    assert_eq!(zfs::assess_pool(p, row.first()).health, Health::Healthy);
    row[0].capacity_percent = Some(90);
    assert_eq!(zfs::assess_pool(p, row.first()).health, Health::Critical);
}

#[test]
fn zfs_list_layouts() {
    let d =
        zfs::parse_dataset_list(&read("zfs-list-Hp-name-avail-used-usedsnap-usedds.txt")).unwrap();
    assert_eq!(d.len(), 4);
    let storage = &d[3];
    assert_eq!(storage.name, "zata/storage");
    assert_eq!(storage.available_bytes, Some(10_741_741_326_336));
    assert_eq!(storage.used_bytes, Some(8_556_084_379_648));
    assert_eq!(storage.used_by_snapshots_bytes, Some(3_601_138_999_296));
    let d = zfs::parse_dataset_list(&read("zfs-list-Hp-freebsd14-dash-values.txt")).unwrap();
    assert_eq!(d.len(), 14);
    assert_eq!(d[0].used_by_snapshots_bytes, None);
}

/// Real outputs captured from zfs-fuse on the build machine (`fixtures/zfs/MANIFEST.tsv`).
#[test]
fn zfs_fuse_captures() {
    let p = &status("zpool-status-zfsfuse-cksum-373-repaired-note.txt")[0];
    let v2 = &p.root.children[0].children[1];
    assert_eq!(
        (v2.name.as_str(), v2.kind.clone()),
        ("/tmp/zf/v2", VdevKind::File)
    );
    assert_eq!(v2.counters.unwrap().checksum, 373);
    assert_eq!(v2.note.as_deref(), Some("25.6M repaired"));
    let scan = p.scan.as_ref().unwrap();
    assert_eq!(
        (scan.function, scan.state),
        (ScanFunction::Scrub, ScanState::Finished)
    );
    assert_eq!(
        (scan.duration.as_deref(), scan.errors),
        (Some("0h0m"), Some(0))
    );
    assert_eq!(zfs::assess_pool(p, None).health, Health::Warning);

    let p = &status("zpool-status-zfsfuse-spare-inuse-resilver-completed.txt")[0];
    let group = &p.root.children[0].children[0];
    assert_eq!(
        (group.name.as_str(), group.kind.clone()),
        ("spare-0", VdevKind::SpareGroup)
    );
    assert_eq!(group.children[1].note.as_deref(), Some("41.1M resilvered"));
    assert_eq!(p.spares[0].state, VdevState::Inuse);
    assert_eq!(p.spares[0].note.as_deref(), Some("currently in use"));
    assert_eq!(p.scan.as_ref().unwrap().function, ScanFunction::Resilver);
    let a = zfs::assess_pool(p, None);
    assert_eq!(a.health, Health::Warning);
    assert!(
        a.findings
            .iter()
            .any(|f| f.message.starts_with("hot spare is in use"))
    );

    let p = &status("zpool-status-zfsfuse-raidz-unavail-was-path.txt")[0];
    let member = &p.root.children[0].children[2];
    assert_eq!(member.state, VdevState::Unavail);
    assert_eq!(member.was.as_deref(), Some("/tmp/zf/v6.gone"));
    assert_eq!(zfs::assess_pool(p, None).health, Health::Critical);

    let p = &status("zpool-status-zfsfuse-offline-degraded.txt")[0];
    let a = zfs::assess_pool(p, None);
    assert!(a.findings.iter().any(|f| f.message == "device is OFFLINE"));

    let pools = status("zpool-status-zfsfuse-two-pools-spare-avail-scrub-none.txt");
    assert_eq!(pools.len(), 2);
    assert_eq!(pools[0].spares[0].state, VdevState::Avail);
    assert_eq!(pools[1].root.children[0].kind, VdevKind::Raidz1);

    let l = zfs::parse_list(&read("zpool-list-H-zfsfuse-solaris-columns.txt")).unwrap();
    assert_eq!(l[0].capacity_percent, Some(33));
    assert_eq!(l[1].health, Some(VdevState::Degraded));
    assert_eq!(l[1].size_bytes, Some(370 << 20));
    let d = zfs::parse_dataset_list(&read("zfs-list-H-zfsfuse-default-columns.txt")).unwrap();
    assert_eq!(d[0].mountpoint.as_deref(), Some("/unitytest"));
}

/// illumos / old OpenZFS: the damaged files without indentation, the `errors:` line with a
/// trailing space and its message on the next line. The pool used to be refused whole.
#[test]
fn unindented_permanent_error_files_are_read_and_the_pool_is_reported() {
    let pools =
        status("zpool-status-v-illumos-unavail-permanent-errors-unindented-RECONSTRUCTED.txt");
    let pool = &pools[0];
    assert_eq!(pool.state, VdevState::Unavail);
    let errors = pool.errors.as_ref().unwrap();
    assert_eq!(
        errors.files,
        [
            "/tank/photos/2018/IMG_0412.JPG",
            "tank/home:<0x1f>",
            "<metadata>:<0x0>"
        ]
    );
    assert_eq!(errors.count, Some(3));
    assert!(pool.notices.is_empty(), "{:?}", pool.notices);
    assert_eq!(zfs::assess_pool(pool, None).health, Health::Critical);
}

/// A header line nobody knows becomes a notice on its pool; the pool is kept and cannot be
/// healthy, and the other pools in the file are untouched.
#[test]
fn an_unreadable_header_line_makes_a_partial_pool_not_a_failed_file() {
    let mut text = read("zpool-status-linux-2x-mirror-wwn-features.txt");
    let at = text.find("config:").unwrap();
    text.insert_str(at, "zap: something a future release prints\n");
    let pools = zfs::parse_status(&text).unwrap();
    let pool = &pools[0];
    assert_eq!(pool.notices.len(), 1, "{:?}", pool.notices);
    assert!(
        pool.notices[0].contains("zap: something"),
        "{:?}",
        pool.notices
    );
    let verdict = zfs::assess_pool(pool, None);
    assert!(verdict.health >= Health::Warning, "{verdict:?}");
    assert!(
        verdict
            .findings
            .iter()
            .any(|f| f.message.starts_with("partial record")),
        "{verdict:?}"
    );
}

/// OpenZFS 2.1+ prints one `scan:` line per dRAID vdev being rebuilt, after the pool's last
/// scrub: every line is kept and judged, and the rebuilt vdev is named.
#[test]
fn every_scan_line_of_a_pool_is_kept_and_judged() {
    let pools = status("zpool-status-draid3-two-scan-lines-resilver-of-vdev-FRAGMENT.txt");
    let pool = &pools[0];
    let first = pool.scan.as_ref().unwrap();
    assert_eq!(
        (first.function, first.state),
        (ScanFunction::Scrub, ScanState::Finished)
    );
    assert_eq!(pool.more_scans.len(), 1);
    let rebuild = &pool.more_scans[0];
    assert_eq!(
        (rebuild.function, rebuild.state),
        (ScanFunction::Resilver, ScanState::InProgress)
    );
    assert_eq!(rebuild.vdev.as_deref(), Some("draid3:19d:24c:2s-0"));
    let percent = rebuild.progress.as_ref().and_then(|p| p.percent_done);
    assert_eq!(percent, Some(92.97));
    let verdict = zfs::assess_pool(pool, None);
    assert!(
        verdict
            .findings
            .iter()
            .any(|f| f.severity == Severity::Warning && f.message
                    == "resilver of draid3:19d:24c:2s-0 in progress, 92.97% done: redundancy is being restored"),
        "{verdict:?}"
    );
}
