//! Arbitrary bytes as a pushed job or key statement, opened with a fixed trusted key: every
//! path (unknown key, bad signature, undecodable spec) must be an error, never a panic. The
//! spec decoder is also fed the bytes directly, as the agent does once a signature verified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_protocol::decode_payload;
use unity_protocol::latest::{JobOutcome, JobSpec, KeyStatement, Push, PushReply};

/// A fixed Ed25519 public key (any 32 bytes; signatures by it cannot be forged by the fuzzer,
/// so the decode-after-verify path is reached through `decode_payload` below).
const TRUSTED: [u8; 32] = [
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07,
    0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07,
    0x51, 0x1a,
];

fuzz_target!(|data: &[u8]| {
    if let Ok(push) = decode_payload::<Push>(data) {
        match push {
            Push::Job(job) => {
                let _ = job.open(&[TRUSTED]);
                let _ = job.spec_sha256();
            }
            Push::JobKeys(chain) => {
                for statement in chain {
                    let _ = statement.open(&[TRUSTED]);
                }
            }
        }
    }
    let _ = decode_payload::<PushReply>(data);
    let _ = decode_payload::<JobSpec>(data);
    let _ = decode_payload::<KeyStatement>(data);
    let _ = decode_payload::<JobOutcome>(data);
});
