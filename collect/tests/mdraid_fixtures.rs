//! Every real md output in `shared/fixtures/{mdstat,mdadm-detail}/` and `fixtures/mdraid/`
//! goes through the parsers: each must parse, or fail with the specific error documented in
//! `docs/storage-health.md`. New fixture files are picked up automatically.

// Test helpers panic on a broken fixture tree by design: that is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use unity_collect::mdraid::{
    self, DeviceState, MdArray, Mdstat, ParseError, RaidLevel, ReadOnly, SyncAction, SyncState,
};
use unity_collect::verdict::{Health, Severity};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mdraid");

fn files(sub: &str, own_prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let shared = format!("{SHARED}/{sub}");
    for dir in [shared.as_str(), OWN] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let from_own = dir == OWN;
            if p.is_file() && name.ends_with(".txt") && (!from_own || name.starts_with(own_prefix))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn mdstat(name: &str) -> Mdstat {
    let p = Path::new(SHARED).join("mdstat").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
    mdraid::parse_mdstat(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn detail(name: &str) -> mdraid::Detail {
    let p = Path::new(SHARED).join("mdadm-detail").join(name);
    mdraid::parse_detail(&std::fs::read_to_string(p).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn array<'a>(s: &'a Mdstat, name: &str) -> &'a MdArray {
    s.arrays
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn every_mdstat_fixture_parses() {
    let files = files("mdstat", "mdstat-");
    assert!(files.len() >= 21, "found {}", files.len());
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap();
        let s = mdraid::parse_mdstat(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        for a in &s.arrays {
            let assessment = mdraid::assess_array(a, None);
            assert_eq!(assessment.subject, a.name);
            assert_ne!(assessment.health, Health::Unknown);
        }
    }
}

#[test]
fn every_detail_fixture_parses_or_is_refused_as_examine() {
    let files = files("mdadm-detail", "detail-");
    assert!(files.len() >= 19, "found {}", files.len());
    for p in files {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&p).unwrap();
        let result = mdraid::parse_detail(&text);
        if name == "zz-mdadm-examine-raid1-replacing.txt" {
            // Documented: --examine output is refused precisely, not half-parsed.
            match result {
                Err(ParseError::ExamineOutput { line: 2, text }) => {
                    assert!(text.starts_with("Magic"))
                }
                other => panic!("{name}: {other:?}"),
            }
            continue;
        }
        let d = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(d.level.is_some(), "{name}");
        assert!(!d.devices.is_empty(), "{name}");
        assert_ne!(mdraid::assess_detail(&d).health, Health::Unknown);
    }
}

#[test]
fn degraded_raid5_missing_last_member() {
    let s = mdstat("raid5-degraded-4-3-UUU_-old-metadata-5space-indent.txt");
    let a = array(&s, "md0");
    assert_eq!(a.level, Some(RaidLevel::Raid5));
    assert_eq!((a.raid_disks, a.working_disks), (Some(4), Some(3)));
    assert_eq!(a.slot_map.as_deref(), Some("UUU_"));
    assert_eq!(a.missing_slots(), [3]);
    assert_eq!(a.superblock, None);
    assert_eq!((a.chunk_kib, a.algorithm), (Some(64), Some(2)));
    let h = mdraid::assess_array(a, None);
    assert_eq!(h.health, Health::Critical);
    assert!(
        h.findings[0].message.contains("no redundancy left"),
        "{h:?}"
    );
}

#[test]
fn raid5_recovery_progress() {
    let s = mdstat("raid5-recovery-6-5-UUUUU_.txt");
    let a = array(&s, "md127");
    let sync = a.sync.as_ref().unwrap();
    assert_eq!(
        (sync.action, sync.state),
        (SyncAction::Recovery, SyncState::Running)
    );
    assert_eq!(sync.percent, Some(12.6));
    assert_eq!(
        (sync.done, sync.total),
        (Some(37_043_392), Some(292_945_152))
    );
    assert_eq!(sync.finish_minutes, Some(127.5));
    assert_eq!(sync.speed_kib_per_sec, Some(33440));
    let h = mdraid::assess_array(a, None);
    assert!(
        h.findings
            .iter()
            .any(|f| f.message == "recovery (rebuild onto a new member) in progress 12.6%")
    );
}

#[test]
fn raid1_check_95_percent_is_info_only() {
    let s = mdstat("raid1-check-95pct-plus-two-clean-raid1.txt");
    assert_eq!(s.arrays.len(), 3);
    let md2 = array(&s, "md2");
    let sync = md2.sync.as_ref().unwrap();
    assert_eq!((sync.action, sync.percent), (SyncAction::Check, Some(95.7)));
    let h = mdraid::assess_array(md2, None);
    assert_eq!(h.health, Health::Healthy);
    assert_eq!(h.findings[0].severity, Severity::Info);
    assert_eq!(s.personalities.as_ref().unwrap().len(), 6);
}

#[test]
fn raid6_reshape_with_two_spares() {
    let s = mdstat("raid6-reshape-super-091-algorithm-18-two-spares.txt");
    let a = array(&s, "md0");
    assert_eq!(a.superblock.as_deref(), Some("0.91"));
    assert_eq!((a.chunk_kib, a.algorithm), (Some(4), Some(18)));
    assert_eq!(a.members.iter().filter(|m| m.spare).count(), 2);
    let sync = a.sync.as_ref().unwrap();
    assert_eq!(
        (sync.action, sync.percent),
        (SyncAction::Reshape, Some(48.4))
    );
    assert_eq!(a.missing_slots(), [4, 5]);
    // raid6 missing two: nothing left to lose.
    assert_eq!(mdraid::assess_array(a, None).health, Health::Critical);
}

#[test]
fn raid6_ten_disks_check_and_bitmap() {
    let s = mdstat("raid6-10disk-check-40pct-bitmap-no-trailer.txt");
    assert_eq!(s.unused_devices, None);
    let a = array(&s, "md127");
    assert_eq!(a.members.len(), 10);
    assert_eq!(a.level, Some(RaidLevel::Raid6));
    assert_eq!(a.blocks, Some(31_255_019_520));
    assert_eq!(a.slot_map.as_deref(), Some("UUUUUUUUUU"));
    let b = a.bitmap.as_ref().unwrap();
    assert_eq!(
        (b.pages_used, b.pages_total, b.memory_kib, b.chunk_kib),
        (1, 30, 4, 65536)
    );
    assert_eq!(a.sync.as_ref().unwrap().percent, Some(40.4));
}

#[test]
fn failed_member_with_holes_in_raid1() {
    let s = mdstat("raid1-6-4-failed-member-_UUUU_.txt");
    let a = array(&s, "md1");
    assert_eq!(a.missing_slots(), [0, 5]);
    let f = a.members.iter().find(|m| m.faulty).unwrap();
    assert_eq!((f.device.as_str(), f.index), ("sde1", 6));
    let h = mdraid::assess_array(a, None);
    // Six-way mirror missing two still has copies to spare.
    assert_eq!(h.health, Health::Warning);
    assert!(
        h.findings
            .iter()
            .any(|x| x.component.as_deref() == Some("sde1"))
    );
}

#[test]
fn inactive_arrays() {
    let s = mdstat("inactive-no-level-all-spares.txt");
    let md2 = array(&s, "md2");
    assert!(!md2.active);
    assert_eq!(md2.level, None);
    assert!(md2.members.iter().all(|m| m.spare));
    assert_eq!(md2.blocks, Some(5_860_553_984));
    assert_eq!(mdraid::assess_array(md2, None).health, Health::Critical);
    assert_eq!(
        mdraid::assess_array(array(&s, "md0"), None).health,
        Health::Healthy
    );

    let s = mdstat("inactive-raid5-with-level.txt");
    let md0 = array(&s, "md0");
    assert_eq!(
        (md0.active, md0.level.clone()),
        (false, Some(RaidLevel::Raid5))
    );

    let s = mdstat("inactive-mixed-spare-no-level.txt");
    let a = array(&s, "md127");
    assert_eq!(a.superblock.as_deref(), Some("1.2"));
    assert_eq!(
        a.members.iter().map(|m| m.spare).collect::<Vec<_>>(),
        [false, false, true]
    );
}

#[test]
fn composite_torture_file() {
    let s = mdstat(
        "composite-torture-raid0-1-5-6-linear-recovery-resync-check-reshape-inactive-imsm.txt",
    );
    assert_eq!(s.arrays.len(), 18);
    assert_eq!(s.unused_devices, Some(vec![]));
    let md6 = array(&s, "md6");
    assert_eq!(md6.sync.as_ref().unwrap().action, SyncAction::Recovery);
    assert_eq!(md6.slot_map.as_deref(), Some("U_"));
    let md9 = array(&s, "md9");
    assert_eq!(md9.sync.as_ref().unwrap().state, SyncState::Delayed);
    let md11 = array(&s, "md11");
    assert_eq!(md11.read_only, ReadOnly::AutoReadOnly);
    assert_eq!(md11.sync.as_ref().unwrap().state, SyncState::Pending);
    assert_eq!(array(&s, "md101").read_only, ReadOnly::ReadOnly);
    assert_eq!(array(&s, "md10").chunk_kib, Some(64));
    assert_eq!(
        array(&s, "md126").superblock.as_deref(),
        Some("external:/md127/0")
    );
    let md219 = array(&s, "md219");
    assert!(!md219.active && md219.level.is_none());
    assert_eq!(md219.superblock.as_deref(), Some("external:imsm"));
    let md120 = array(&s, "md120");
    assert_eq!(md120.level, Some(RaidLevel::Linear));
    assert_eq!(md120.layout, ["0k rounding"]);
    let md42 = array(&s, "md42");
    assert_eq!(md42.sync.as_ref().unwrap().action, SyncAction::Reshape);
    assert_eq!(md42.bitmap.as_ref().unwrap().pages_total, 15);
    let md7 = array(&s, "md7");
    assert_eq!(md7.missing_slots(), [1]);
    // raid6 missing one: still one failure away from data loss.
    assert_eq!(mdraid::assess_array(md7, None).health, Health::Warning);
}

#[test]
fn odd_layouts_parse() {
    let s = mdstat("raid6-raid1-no-indent-blocks-lines-synology-like.txt");
    assert_eq!(s.arrays.len(), 4);
    assert_eq!(array(&s, "md1").raid_disks, Some(8));
    let s = mdstat("fragment-raid5-degraded-resync-delayed-tab-indent.txt");
    assert_eq!(s.personalities, None);
    assert_eq!(
        array(&s, "md1").sync.as_ref().unwrap().state,
        SyncState::Delayed
    );
    assert_eq!(array(&s, "md0").sync.as_ref().unwrap().percent, Some(21.5));
    let s = mdstat("raid1-resync-51pct-2space-indent-old-metadata.txt");
    assert_eq!(array(&s, "md2").sync.as_ref().unwrap().percent, Some(51.4));
    let s = mdstat("empty-no-arrays-no-trailing-newline.txt");
    assert_eq!((s.arrays.len(), s.personalities.clone()), (0, Some(vec![])));
    let s = mdstat("raid5-partitionable-md_d0-bitmap.txt");
    assert_eq!(s.arrays[0].name, "md_d0");
    let s = mdstat("raid0-whole-disks-trailing-space-personalities.txt");
    assert_eq!(s.personalities, Some(vec!["raid0".to_owned()]));
    let s = mdstat("raid1-bitmap-raid0-nvme-3072k-chunks.txt");
    assert_eq!(array(&s, "md126").chunk_kib, Some(3072));
    let s = mdstat("raid1-x3-plus-raid5-10disk.txt");
    assert_eq!(array(&s, "md3").members.len(), 10);
    assert_eq!(array(&s, "md3").chunk_kib, Some(1024));
}

#[test]
fn mismatch_count_after_check_needs_sysfs() {
    let s = mdstat("raid1-check-95pct-plus-two-clean-raid1.txt");
    let md0 = array(&s, "md0");
    let sys = mdraid::parse_sysfs(&mdraid::SysfsFiles {
        array_state: Some("clean\n".into()),
        degraded: Some("0\n".into()),
        sync_action: Some("idle\n".into()),
        sync_completed: Some("none\n".into()),
        mismatch_cnt: Some("128\n".into()),
        raid_disks: Some("2\n".into()),
        level: Some("raid1\n".into()),
    })
    .unwrap();
    let h = mdraid::assess_array(md0, Some(&sys));
    assert_eq!(h.health, Health::Warning);
    assert!(h.findings[0].message.contains("128 mismatched sectors"));
}

#[test]
fn detail_recovering_with_faulty_failfast() {
    let d = detail("raid1-recovering-spare-rebuilding-24pct-faulty-failfast.txt");
    assert_eq!(d.device.as_deref(), Some("/dev/md127"));
    assert_eq!(d.state, ["clean", "degraded", "recovering"]);
    assert_eq!(d.level, Some(RaidLevel::Raid1));
    assert_eq!(
        (d.raid_devices, d.total_devices, d.failed_devices),
        (Some(2), Some(3), Some(1))
    );
    assert_eq!(
        d.sync.as_ref().map(|s| (s.action, s.percent)),
        Some((SyncAction::Recovery, 24))
    );
    assert_eq!(d.devices.len(), 3);
    assert_eq!(
        d.devices[1].state,
        [DeviceState::Spare, DeviceState::Rebuilding]
    );
    assert_eq!(
        d.devices[2].state,
        [DeviceState::Faulty, DeviceState::Failfast]
    );
    assert_eq!(d.devices[2].raid_device, None);
    let h = mdraid::assess_detail(&d);
    assert_eq!(h.health, Health::Critical);
    assert!(
        h.findings
            .iter()
            .any(|f| f.component.as_deref() == Some("/dev/vda2"))
    );
}

#[test]
fn detail_variants() {
    let d = detail("raid1-clean.txt");
    assert_eq!(d.array_size_kib, Some(101_376));
    assert_eq!(mdraid::assess_detail(&d).health, Health::Healthy);

    let d = detail("raid1-resyncing-4pct.txt");
    assert_eq!(
        d.sync.as_ref().map(|s| (s.action, s.percent)),
        Some((SyncAction::Resync, 4))
    );
    assert_eq!(mdraid::assess_detail(&d).health, Health::Warning);

    let d = detail("raid1-degraded-removed-only.txt");
    assert_eq!(d.devices[1].state, [DeviceState::Removed]);
    assert_eq!(d.devices[1].path, None);
    assert_eq!(mdraid::assess_detail(&d).health, Health::Critical);

    let d = detail("raid1-recovering-10pct-old-mdadm-no-consistency-policy-redacted.txt");
    assert_eq!(d.sync.as_ref().map(|s| s.percent), Some(10));
    assert_eq!(d.consistency_policy, None);

    let d = detail("raid1-metadata-090-preferred-minor-events-dotted.txt");
    assert_eq!(
        (d.version.as_deref(), d.events.as_deref()),
        (Some("0.90"), Some("0.18"))
    );
    assert!(
        d.other
            .iter()
            .any(|kv| kv.key == "Preferred Minor" && kv.value == "0")
    );

    let d = detail("raid5-left-symmetric-clean.txt");
    assert_eq!(
        (d.layout.as_deref(), d.chunk_size.as_deref()),
        (Some("left-symmetric"), Some("512K"))
    );
    assert_eq!(d.used_dev_size_kib, Some(202_752));

    let d = detail("raid1-active-sync-writemostly-failfast-plus-faulty.txt");
    assert_eq!(
        d.devices[1].state,
        [
            DeviceState::Active,
            DeviceState::Sync,
            DeviceState::WriteMostly,
            DeviceState::Failfast
        ]
    );
    assert_eq!(mdraid::assess_detail(&d).health, Health::Warning);

    let d = detail("raid1-with-hot-spare.txt");
    assert_eq!(d.devices[2].state, [DeviceState::Spare]);

    // Named `examine`, but it is `--detail` text (a check in progress): parsed.
    let d = detail("zz-mdadm-examine-raid1-checking.txt");
    assert_eq!(
        d.sync.as_ref().map(|s| (s.action, s.percent)),
        Some((SyncAction::Check, 21))
    );
    assert_eq!(mdraid::assess_detail(&d).health, Health::Healthy);
}

#[test]
fn ddf_containers() {
    let d = detail("ddf-container-root-two-members.txt");
    assert_eq!(d.level, Some(RaidLevel::Container));
    assert_eq!(d.member_arrays, ["/dev/md/vol0", "/dev/md/vol1"]);
    assert_eq!(d.devices.len(), 2);
    assert_eq!(
        (d.devices[0].number, d.devices[0].raid_device),
        (None, None)
    );
    assert!(d.devices[0].state.is_empty());
    let guid = d
        .other
        .iter()
        .find(|kv| kv.key == "Container GUID")
        .unwrap();
    assert!(guid.value.ends_with("(Linux-MD 08/16/22 16:33:34)"));
    assert_eq!(mdraid::assess_detail(&d).health, Health::Healthy);

    let d = detail("ddf-container-member-raid1.txt");
    assert_eq!(d.container.as_deref(), Some("/dev/md0, member 0"));
    assert_eq!(d.version, None);
    assert_eq!(mdraid::assess_detail(&d).health, Health::Healthy);
}

fn own_mdstat(name: &str) -> Mdstat {
    let text = std::fs::read_to_string(Path::new(OWN).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    mdraid::parse_mdstat(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn own_detail(name: &str) -> mdraid::Detail {
    let text = std::fs::read_to_string(Path::new(OWN).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    mdraid::parse_detail(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every own mdstat fixture: the records keep every array, and no healthy verdict comes
/// from a partial record or from counts and map that disagree.
#[test]
fn no_healthy_verdict_from_a_partial_record_or_a_hole_in_the_map() {
    for p in files("mdstat", "mdstat-") {
        let s = mdraid::parse_mdstat(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for a in &s.arrays {
            let verdict = mdraid::assess_array(a, None);
            if a.is_partial() || (a.active && !a.missing_slots().is_empty()) {
                assert!(
                    verdict.health >= Health::Warning,
                    "{}: {} {verdict:?}",
                    p.display(),
                    a.name
                );
            }
        }
    }
}

#[test]
fn counts_that_say_complete_do_not_hide_a_hole_in_the_slot_map() {
    let s = own_mdstat("mdstat-raid1-counts-say-complete-map-shows-holes.txt");
    assert_eq!(
        mdraid::assess_array(array(&s, "md1"), None).health,
        Health::Healthy
    );
    for name in ["md2", "md0"] {
        let verdict = mdraid::assess_array(array(&s, name), None);
        // A 2-way mirror with one slot out of sync has no redundancy left.
        assert_eq!(verdict.health, Health::Critical, "{name}: {verdict:?}");
        assert!(
            verdict
                .findings
                .iter()
                .any(|f| f.severity == Severity::Warning && f.message.contains("disagree")),
            "{name}: {verdict:?}"
        );
    }
}

#[test]
fn firmware_raid_containers_are_not_critical_and_their_volumes_are_judged() {
    let s = own_mdstat("mdstat-imsm-raid0-volume-nvme-container.txt");
    let container = array(&s, "md127");
    assert_eq!(container.container_format(), Some("imsm"));
    assert_eq!(container.member_arrays, ["md126"]);
    let verdict = mdraid::assess_array(container, None);
    assert_eq!(verdict.health, Health::Healthy, "{verdict:?}");
    assert!(verdict.findings[0].message.contains("md126"), "{verdict:?}");
    let volume = array(&s, "md126");
    assert_eq!(volume.container.as_deref(), Some("md127"));
    assert_eq!(mdraid::assess_array(volume, None).health, Health::Healthy);

    // A raid4 volume missing one of two members, marked by mdmon with `-`.
    let s = own_mdstat("mdstat-imsm-raid4-takeover-degraded-mdmon-dash-member.txt");
    let volume = array(&s, "md126");
    assert_eq!(volume.container.as_deref(), Some("md127"));
    assert_eq!(mdraid::assess_array(volume, None).health, Health::Critical);
    assert_eq!(array(&s, "md127").member_arrays, ["md126"]);

    // A volume that did not start is critical; a container with no volume is a warning.
    let s = own_mdstat("mdstat-imsm-raid5-volume-not-started-stray-container.txt");
    assert_eq!(
        mdraid::assess_array(array(&s, "md126"), None).health,
        Health::Critical
    );
    assert_eq!(
        mdraid::assess_array(array(&s, "md127"), None).health,
        Health::Healthy
    );
    let stray = mdraid::assess_array(array(&s, "md125"), None);
    assert_eq!(stray.health, Health::Warning, "{stray:?}");

    // Two volumes in one container, the status lines wrapped by a mail client: joined.
    let s = own_mdstat("mdstat-imsm-raid5-two-volumes-lines-wrapped-by-mail.txt");
    assert_eq!(array(&s, "md126").member_arrays, ["md124", "md125"]);
    for name in ["md124", "md125"] {
        let a = array(&s, name);
        assert_eq!(
            (a.raid_disks, a.slot_map.as_deref()),
            (Some(4), Some("UUUU"))
        );
        assert_eq!(
            mdraid::assess_array(a, None).health,
            Health::Healthy,
            "{name}"
        );
    }
    assert_eq!(array(&s, "md124").chunk_kib, Some(128));

    // The same host through `mdadm --detail`.
    let d = own_detail("detail-imsm-container-one-member.txt");
    assert_eq!(d.level, Some(RaidLevel::Container));
    assert_eq!(d.member_arrays, ["/dev/md126"]);
    assert_eq!(mdraid::assess_detail(&d).health, Health::Healthy);
    let d = own_detail("detail-imsm-container-no-member-arrays.txt");
    assert!(d.member_arrays.is_empty());
    assert_eq!(mdraid::assess_detail(&d).health, Health::Warning);
    let d = own_detail("detail-imsm-raid5-member-failed-not-started.txt");
    assert_eq!(d.container.as_deref(), Some("/dev/md/imsm0, member 0"));
    assert_eq!(mdraid::assess_detail(&d).health, Health::Critical);
}
