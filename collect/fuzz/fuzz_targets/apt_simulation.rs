//! Arbitrary bytes into the apt simulation parser: it may refuse, never panic; what it
//! accepts keeps its invariants (every planned package has a name, a version, an arch).
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_collect::packages::{apt::is_security_origin, parse_simulation};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Ok(sim) = parse_simulation(&input) {
        for p in &sim.installs {
            assert!(!p.name.is_empty() && !p.new.is_empty() && !p.architecture.is_empty());
            assert_eq!(p.security, p.origins.iter().any(|o| is_security_origin(o)));
        }
    }
});
