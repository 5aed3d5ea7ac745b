//! `/proc/mdstat`: any bytes give `Ok` or `Err`, never a panic; parsed arrays are assessed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::mdraid;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(mdstat) = mdraid::parse_mdstat(&text) {
        for array in &mdstat.arrays {
            let _ = mdraid::assess_array(array, None);
        }
    }
});
