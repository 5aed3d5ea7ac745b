//! `/proc/net/{tcp,tcp6,unix}`, cmdline and stat parsing: any bytes, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::databases::procnet;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = procnet::parse_proc_net_tcp(&text);
    let _ = procnet::parse_proc_net_unix(&text);
    let _ = procnet::parse_cmdline(data);
    let _ = procnet::parse_stat(&text);
    let _ = procnet::parse_socket_link(&text);
});
