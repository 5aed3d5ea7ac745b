//! Arbitrary bytes, split at an arbitrary point, through the frame decoder and every message
//! type the controller and agent decode from the network. Must return errors, never panic,
//! and never allocate beyond the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unity_protocol::latest::{
    ControlReply, ControlRequest, EnrollRequest, EnrollResponse, Hello, HelloReply, Report,
    ReportReply,
};
use unity_protocol::{FrameDecoder, decode_payload};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut decoder = FrameDecoder::new(64 * 1024);
    decoder.push(&data[..split]);
    decoder.push(&data[split..]);
    while let Ok(Some(payload)) = decoder.next_payload() {
        let _ = decode_payload::<Hello>(&payload);
        let _ = decode_payload::<HelloReply>(&payload);
        let _ = decode_payload::<EnrollRequest>(&payload);
        let _ = decode_payload::<EnrollResponse>(&payload);
        let _ = decode_payload::<Report>(&payload);
        let _ = decode_payload::<ReportReply>(&payload);
        let _ = decode_payload::<ControlRequest>(&payload);
        let _ = decode_payload::<ControlReply>(&payload);
    }
    let _ = decoder.finish();
});
