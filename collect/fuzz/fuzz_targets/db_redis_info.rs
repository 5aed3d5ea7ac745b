//! Redis RESP replies and INFO text: any bytes give `Ok`/`Err`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::databases::wire::{self, redis};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let wire::Parse::Done((reply, used)) = redis::parse_reply(rest) {
        if let redis::Reply::Bulk(Some(text)) = reply {
            let _ = redis::parse_info(&String::from_utf8_lossy(&text));
        }
        if used == 0 || used > rest.len() {
            break;
        }
        rest = &rest[used..];
    }
    let _ = redis::parse_info(&String::from_utf8_lossy(data));
});
