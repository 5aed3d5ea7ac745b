//! `zpool list -H` / `-j` and `zfs list -H`: any bytes give `Ok` or `Err`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::zfs;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = zfs::parse_list(&text);
    let _ = zfs::parse_list_json(&text);
    let _ = zfs::parse_dataset_list(&text);
});
