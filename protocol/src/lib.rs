//! The Unity Fleet wire protocol: messages, framing and versions. Sans-I/O.
//!
//! Both the agent and the controller depend on this crate; it depends on neither, and it does
//! no I/O of its own (the optional `io` feature adds two small async helpers that move one frame
//! over any tokio stream, which is all a codec needs).
//!
//! # Evolution
//! Messages live in frozen version modules ([`v1`]); [`latest`] re-exports the current one.
//! postcard encodes enum variants by position and is not self-describing, so wire enums are
//! **append-only**, and wire types never use `flatten`, `untagged` or `skip_serializing_if`.
//! Golden-byte tests in [`v1`] pin the encoding: if one of them fails, you changed the wire.
//!
//! # Framing
//! A frame is a 4-byte big-endian payload length followed by a postcard payload. The length is
//! checked against a maximum **before** any buffer is allocated (see [`frame`]).

pub mod words;

pub mod envelope;
pub mod frame;
pub mod v1;

#[cfg(feature = "io")]
pub mod io;

/// The current protocol version; re-exports the newest frozen module.
pub mod latest {
    pub use crate::v1::*;
}

pub use frame::{
    DecodeError, EncodeError, FrameDecoder, MAX_FRAME_LEN, decode_payload, encode_frame,
};

/// ALPN for the long-lived agent session (mutual TLS; the agent presents its host certificate).
pub const ALPN_AGENT: &[u8] = b"unity/1";
/// ALPN for enrollment: the agent has no certificate yet and proves itself with a single-use
/// token instead. A connection with this ALPN may carry exactly one enrollment exchange.
pub const ALPN_ENROLL: &[u8] = b"unity-enroll/1";
/// The protocol version this build speaks, sent in [`v1::Hello`] and [`v1::Welcome`].
pub const PROTOCOL_VERSION: u16 = 1;

/// The first controller release that decodes [`latest::ReportBody::Packages`]. A variant
/// appended to an enum is new bytes an older peer cannot decode (it would close the session
/// on every resend), so an agent sends such a report only to a controller whose `Welcome`
/// names this version or a later one.
pub const PACKAGES_SINCE: (u64, u64, u64) = (0, 2, 0);

/// The first release that knows [`latest::JobKind::AgentUpdate`] (agent) and
/// [`latest::ControlRequest::FetchRelease`] (controller). The controller refuses an
/// `agent_update` job for an older agent: it could only refuse the bytes as malformed.
pub const AGENT_UPDATE_SINCE: (u64, u64, u64) = (0, 3, 0);

/// The first controller release that decodes [`latest::ReportBody::Labels`].
pub const LABELS_SINCE: (u64, u64, u64) = (0, 3, 0);

/// The first release whose agent decodes [`latest::EnrollResponse::EnrolledChain`] and
/// [`latest::ControlReply::RenewedChain`] — certificates with intermediates (step-ca). A
/// controller issuing through step-ca refuses an older agent's enrollment or renewal with
/// that reason instead of sending bytes it cannot read.
pub const CHAIN_SINCE: (u64, u64, u64) = (0, 4, 0);

/// Whether `version` (`major.minor.patch`, with any `-pre`/`+build` suffix ignored) is at
/// least `since`. An unparseable version is treated as too old: sending less is safe.
pub fn version_at_least(version: &str, since: (u64, u64, u64)) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let mut parts = core.split('.').map(|p| p.parse::<u64>());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch))) => (major, minor, patch) >= since,
        _ => false,
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn versions_compare_numerically_and_garbage_is_too_old() {
        assert!(version_at_least("0.2.0", (0, 2, 0)));
        assert!(version_at_least("0.10.0", (0, 2, 0)));
        assert!(version_at_least("1.0.0-rc1", (0, 2, 0)));
        assert!(!version_at_least("0.1.9", (0, 2, 0)));
        assert!(!version_at_least("0.2", (0, 2, 0)));
        assert!(!version_at_least("", (0, 2, 0)));
        assert!(!version_at_least("x.y.z", (0, 2, 0)));
    }
}
