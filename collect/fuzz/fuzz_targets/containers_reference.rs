//! Arbitrary bytes into the image reference parser and the update plan: none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::containers::{ImageReference, update};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Ok(reference) = ImageReference::parse(&input) {
        let _ = reference.to_string();
        let _ = reference.api_host();
        let _ = reference.is_loopback_registry();
        let digests = vec![input.to_string()];
        let _ = update::compare(&reference, &digests, "sha256:00");
    }
    let _ = update::plan(&input, &[input.to_string()]);
});
