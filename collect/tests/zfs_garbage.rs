//! Garbage never panics: every ZFS parser is fed every fixture truncated at many byte
//! offsets and with bytes flipped (a deterministic PRNG, so failures reproduce), plus
//! hostile shapes. An `Err` is fine; a panic or hang is the bug. The fuzz targets in
//! `fuzz/` explore further; this keeps the guarantee in plain `cargo test`.

// Test helpers panic on a broken fixture tree by design: that is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use unity_collect::zfs;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/zpool");
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/zfs");

fn fixtures() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in [SHARED, OWN] {
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
    assert!(!out.is_empty());
    out
}

fn all_parsers(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(pools) = zfs::parse_status(&text) {
        for p in &pools {
            let _ = zfs::assess_pool(p, None);
        }
    }
    if let Ok(pools) = zfs::parse_status_json(&text) {
        for p in &pools {
            let _ = zfs::assess_pool(p, None);
        }
    }
    let _ = zfs::parse_list(&text);
    let _ = zfs::parse_list_json(&text);
    let _ = zfs::parse_dataset_list(&text);
}

/// xorshift64*: deterministic, no dependency.
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
        let step = (f.len() / 400).max(1);
        for cut in (0..=f.len()).step_by(step) {
            all_parsers(&f[..cut]);
        }
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = Rng(0x5eed_0f25);
    const INTERESTING: &[u8] = b"\t \n\r:-/%[]{}\",0123456789KMGTx.";
    for f in fixtures() {
        for _ in 0..300 {
            let mut m = f.clone();
            for _ in 0..1 + rng.next() % 8 {
                let i = (rng.next() as usize) % m.len().max(1);
                if m.is_empty() {
                    break;
                }
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
fn hostile_shapes_are_errors_not_crashes() {
    // 2 000 rows, each more indented than the last: the tree builder must refuse, not recurse.
    let mut deep =
        String::from("  pool: t\n state: ONLINE\nconfig:\n\tNAME STATE READ WRITE CKSUM\n");
    for i in 0..2_000 {
        deep.push_str(&" ".repeat(i + 1));
        deep.push_str("\tsda ONLINE 0 0 0\n");
    }
    assert!(matches!(
        zfs::parse_status(&deep),
        Err(zfs::ParseError::BadVdevRow { .. })
    ));
    // Deeply nested JSON: serde_json's recursion limit answers first.
    let json = format!("{}{}", "{\"vdevs\":".repeat(5000), "}".repeat(5000));
    assert!(zfs::parse_status_json(&json).is_err());
    // Huge counters and sizes saturate or fail, never overflow.
    let big = "  pool: t\n state: ONLINE\nconfig:\n\tt ONLINE 99999999999999999999E 1 1\n";
    assert!(zfs::parse_status(big).is_err());
    let huge = "  pool: t\n state: ONLINE\nconfig:\n\tt ONLINE 18446744073709551615 18446744073709551615 1\n";
    let pools = zfs::parse_status(huge).unwrap();
    assert_eq!(
        zfs::assess_pool(&pools[0], None).health,
        unity_collect::verdict::Health::Warning
    );
}
