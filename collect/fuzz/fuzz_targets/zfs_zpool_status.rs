//! `zpool status` text and `-j` JSON: any bytes must give `Ok` or `Err`, never a panic, and
//! whatever parses must also be assessable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::zfs;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for pools in [zfs::parse_status(&text), zfs::parse_status_json(&text)]
        .into_iter()
        .flatten()
    {
        for pool in &pools {
            let _ = zfs::assess_pool(pool, None);
        }
    }
});
