//! Garbage never panics: every md parser is fed every fixture truncated at many byte
//! offsets and with bytes flipped (deterministic PRNG), plus hostile shapes. An `Err` is
//! fine; a panic is the bug. `fuzz/` explores further.

// Test helpers panic on a broken fixture tree by design: that is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use unity_collect::mdraid;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/mdraid");

fn fixtures() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let dirs = [
        format!("{SHARED}/mdstat"),
        format!("{SHARED}/mdadm-detail"),
        OWN.to_owned(),
    ];
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_file() {
                out.push(std::fs::read(p).unwrap());
            }
        }
    }
    assert!(out.len() >= 40);
    out
}

fn all_parsers(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(s) = mdraid::parse_mdstat(&text) {
        for a in &s.arrays {
            let _ = mdraid::assess_array(a, None);
        }
    }
    if let Ok(d) = mdraid::parse_detail(&text) {
        let _ = mdraid::assess_detail(&d);
    }
    let files = mdraid::SysfsFiles {
        array_state: Some(text.to_string()),
        degraded: Some(text.to_string()),
        sync_action: Some(text.to_string()),
        sync_completed: Some(text.to_string()),
        mismatch_cnt: Some(text.to_string()),
        raid_disks: Some(text.to_string()),
        level: Some(text.to_string()),
    };
    let _ = mdraid::parse_sysfs(&files);
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn truncated_fixtures_never_panic() {
    for f in fixtures() {
        for cut in 0..=f.len() {
            all_parsers(&f[..cut]);
        }
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = Rng(0x0dd_ba11);
    const INTERESTING: &[u8] = b"\t \n:=/%[]()FSWRJU_,0123456789k.";
    for f in fixtures() {
        for _ in 0..300 {
            let mut m = f.clone();
            for _ in 0..1 + rng.next() % 8 {
                if m.is_empty() {
                    break;
                }
                let i = (rng.next() as usize) % m.len();
                match rng.next() % 4 {
                    0 => m[i] ^= 1 << (rng.next() % 8),
                    1 => m[i] = INTERESTING[(rng.next() as usize) % INTERESTING.len()],
                    2 => {
                        m.remove(i);
                    }
                    _ => m.insert(i, INTERESTING[(rng.next() as usize) % INTERESTING.len()]),
                }
            }
            all_parsers(&m);
        }
    }
}

#[test]
fn hostile_shapes_are_partial_records_not_crashes() {
    // A member token that is not `name[index]`: the array is kept without it, partial.
    let s = mdraid::parse_mdstat("md0 : active raid1 sda[99999999999]\n").unwrap();
    let md0 = &s.arrays[0];
    assert!(md0.members.is_empty() && md0.is_partial(), "{md0:?}");
    assert!(
        md0.notices[0].starts_with("line 1: member"),
        "{:?}",
        md0.notices
    );
    assert!(mdraid::assess_array(md0, None).health >= unity_collect::verdict::Health::Warning);

    let s = mdraid::parse_mdstat("md0 : active raid1 sda[0]\n 1 blocks [4294967295/0] [____]\n")
        .unwrap();
    assert_eq!(
        mdraid::assess_array(&s.arrays[0], None).health,
        unity_collect::verdict::Health::Critical
    );
    // An unreadable progress line: the sync is unknown, the record partial, never healthy.
    let s = mdraid::parse_mdstat(
        "md0 : active raid1 sda[0] sdb[1]\n 1 blocks [2/2] [UU]\n [=>]  resync = 1e400% (1/2)\n",
    )
    .unwrap();
    let md0 = &s.arrays[0];
    assert_eq!(md0.sync, None);
    assert!(
        md0.notices[0].starts_with("line 3: progress line"),
        "{:?}",
        md0.notices
    );
    let verdict = mdraid::assess_array(md0, None);
    assert_eq!(
        verdict.health,
        unity_collect::verdict::Health::Warning,
        "{verdict:?}"
    );
    // Multi-byte characters where ASCII is expected.
    let s = mdraid::parse_mdstat("md0 : active raid1 sdé[0](Fé)\n").unwrap();
    assert!(s.arrays[0].is_partial());
    // Nothing recognisable as mdstat at all is still an error.
    assert!(mdraid::parse_mdstat("hello\nworld\n").is_err());
    assert!(
        mdraid::parse_detail(
            "/dev/md0:\n Raid Level : raid1\n Number Major Minor RaidDevice State\n é\n"
        )
        .is_err()
    );
}
