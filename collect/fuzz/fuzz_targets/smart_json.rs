//! Arbitrary bytes into the smartctl JSON and JSON-scan parsers and the verdict: none may
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::smart::{self, VerdictPolicy};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Ok((report, exit)) = smart::parse_json(&input) {
        let _ = smart::assess(&report, exit, &VerdictPolicy::default());
    }
    let _ = smart::parse_scan_json(&input);
});
