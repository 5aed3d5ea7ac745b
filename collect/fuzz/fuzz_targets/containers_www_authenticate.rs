//! Arbitrary bytes into the `WWW-Authenticate` parser: none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::containers::auth::{bearer, parse_www_authenticate};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Ok(challenges) = parse_www_authenticate(&input) {
        let _ = bearer(&challenges);
    }
});
