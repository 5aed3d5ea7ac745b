//! `mdadm --detail`: any bytes give `Ok` or `Err`, never a panic; parsed output is assessed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::mdraid;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(detail) = mdraid::parse_detail(&text) {
        let _ = mdraid::assess_detail(&detail);
    }
});
