//! Arbitrary bytes into the smartctl text and scan parsers and the verdict: none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::smart::{self, ExitStatus, VerdictPolicy};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Ok(report) = smart::parse_text(&input) {
        let code = i32::from(data.first().copied().unwrap_or_default());
        let _ = smart::assess(
            &report,
            Some(ExitStatus::from_code(code)),
            &VerdictPolicy::default(),
        );
        let _ = smart::assess(&report, None, &VerdictPolicy::default());
    }
    let _ = smart::parse_scan_text(&input);
});
