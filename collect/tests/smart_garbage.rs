//! Garbage in never panics: every fixture, truncated at many offsets and with bytes
//! mutated, goes through every parser and the verdict. Deterministic (a fixed LCG), so a
//! failure reproduces; the fuzz targets in `fuzz/` explore further.

use std::fs;
use std::path::PathBuf;

use unity_collect::smart::{self, VerdictPolicy};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures");
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/smart");

fn fixtures() -> Vec<Vec<u8>> {
    let dirs = [
        format!("{SHARED}/smartctl-text"),
        format!("{SHARED}/smartctl-json"),
        OWN.to_owned(),
    ];
    let mut paths: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| fs::read_dir(d).unwrap_or_else(|e| panic!("{d}: {e}")))
        .map(|e| e.unwrap_or_else(|e| panic!("fixture entry: {e}")).path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt" || x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// Every entry point, as the agent's `parse` command and the runner use them.
fn feed(bytes: &[u8]) {
    let input = String::from_utf8_lossy(bytes);
    let policy = VerdictPolicy::default();
    if let Ok(report) = smart::parse_text(&input) {
        let _ = smart::assess(&report, None, &policy);
        let _ = smart::assess(&report, Some(smart::ExitStatus::from_code(0xff)), &policy);
    }
    if let Ok((report, exit)) = smart::parse_json(&input) {
        let _ = smart::assess(&report, exit, &policy);
    }
    let _ = smart::parse_scan_text(&input);
    let _ = smart::parse_scan_json(&input);
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn truncated_fixtures_never_panic() {
    let all = fixtures();
    assert!(
        all.len() > 90,
        "expected the full fixture set, found {}",
        all.len()
    );
    let mut fed = 0usize;
    for bytes in &all {
        let step = (bytes.len() / 48).max(1);
        let mut cut = 0;
        while cut <= bytes.len() {
            feed(&bytes[..cut]);
            feed(&bytes[cut..]);
            fed += 2;
            cut += step;
        }
    }
    assert!(fed > 8000, "only {fed} inputs fed");
}

#[test]
fn mutated_fixtures_never_panic() {
    const NASTY: &[u8] = b"\0\r\n\t :#%()[]-0x9\xff\xc3{}\",";
    let mut rng = Lcg(0x5eed_5a17);
    let mut fed = 0usize;
    for bytes in fixtures() {
        for _ in 0..24 {
            let mut m = bytes.clone();
            let edits = 1 + rng.next() as usize % 16;
            for _ in 0..edits {
                if m.is_empty() {
                    break;
                }
                let at = rng.next() as usize % m.len();
                match rng.next() % 4 {
                    0 => m[at] = NASTY[rng.next() as usize % NASTY.len()],
                    1 => m[at] = rng.next() as u8,
                    2 => {
                        m.remove(at);
                    }
                    _ => {
                        let digits = b"99999999999999999999999999999999999999999";
                        m.splice(at..at, digits.iter().copied());
                    }
                }
            }
            feed(&m);
            fed += 1;
        }
    }
    assert!(fed > 2000, "only {fed} inputs fed");
}

#[test]
fn pathological_inputs_never_panic() {
    let long_line = "9".repeat(100_000);
    for input in [
        "",
        "\r",
        "\r\r\r",
        ":",
        "smartctl",
        "smartctl 7",
        "=== START OF",
        "ID# ATTRIBUTE_NAME\n999 x 0x1 1 1 1 Pre-fail Always - 1",
        "ID# ATTRIBUTE_NAME\n  5 x 0xfffff 1 1 1 Pre-fail Always - 1",
        "SMART/Health Information (NVMe Log 0x02)\nCritical Warning: 0x1ff\nPercentage Used: 99999999999%",
        "Error counter log:\nread: 1 2 3",
        "SMART Self-test log\n# 1",
        "Self-test execution status: (999)",
        "{}",
        "[]",
        "{\"devices\": 1}",
        "{\"smartctl\": {\"exit_status\": -1}}",
        long_line.as_str(),
    ] {
        feed(input.as_bytes());
    }
}
