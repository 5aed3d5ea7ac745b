//! PostgreSQL: the 8-byte `SSLRequest` and its one-byte answer.
//!
//! The client sends Int32 length 8 and Int32 code 80877103 (`0x04D2162F`); the server answers
//! exactly one byte, `S` (will do TLS) or `N` (will not), and then waits for the client. A
//! server too old for SSLRequest answers an `ErrorResponse` (`E`, Int32 length, fields). No
//! startup packet is ever sent, so no user name travels and no session starts.

use super::Parse;
use super::describe_bytes;

/// The SSLRequest packet, byte for byte.
pub const SSL_REQUEST: [u8; 8] = [0x00, 0x00, 0x00, 0x08, 0x04, 0xD2, 0x16, 0x2F];

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SslReply {
    /// `S` or `N`.
    SslSupported(bool),
    /// An `ErrorResponse`: the message field (`M`).
    Error(String),
}

/// Parses the answer to [`SSL_REQUEST`]. More than one byte after `S`/`N` means something
/// else is talking (a PostgreSQL server says nothing more until the client speaks).
pub fn parse_ssl_reply(bytes: &[u8]) -> Parse<SslReply> {
    match bytes.first() {
        None => Parse::Incomplete,
        Some(b @ (b'S' | b'N')) if bytes.len() == 1 => {
            Parse::Done(SslReply::SslSupported(*b == b'S'))
        }
        Some(b'E') => parse_error_response(bytes),
        Some(_) => Parse::NotThisProtocol(describe_bytes(bytes)),
    }
}

/// `E`, Int32 length (including itself), then fields `<type byte><cstring>` ending in 0.
fn parse_error_response(bytes: &[u8]) -> Parse<SslReply> {
    let Some(len) = bytes.get(1..5) else {
        return Parse::Incomplete;
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if !(5..=8192).contains(&len) {
        return Parse::NotThisProtocol(describe_bytes(bytes));
    }
    let Some(body) = bytes.get(5..1 + len) else {
        return Parse::Incomplete;
    };
    let mut message = None;
    let mut severity = false;
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let Some(end) = tail.iter().position(|b| *b == 0) else {
            return Parse::NotThisProtocol(describe_bytes(bytes));
        };
        let value = String::from_utf8_lossy(&tail[..end]).into_owned();
        match field {
            b'M' => message = Some(value),
            b'S' | b'V' => severity = true,
            _ => {}
        }
        rest = &tail[end + 1..];
    }
    match (message, severity) {
        (Some(m), true) => Parse::Done(SslReply::Error(m)),
        _ => Parse::NotThisProtocol(describe_bytes(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(parse_ssl_reply(b""), Parse::Incomplete);
        assert_eq!(
            parse_ssl_reply(b"N"),
            Parse::Done(SslReply::SslSupported(false))
        );
        assert_eq!(
            parse_ssl_reply(b"S"),
            Parse::Done(SslReply::SslSupported(true))
        );
        assert!(matches!(
            parse_ssl_reply(b"NO WAY"),
            Parse::NotThisProtocol(_)
        ));
        assert!(matches!(
            parse_ssl_reply(b"HTTP/1.1 400"),
            Parse::NotThisProtocol(_)
        ));
        let mut e = b"E\0\0\0\x1eSFATAL\0MBad protocol\0\0".to_vec();
        e[4] = (e.len() - 1) as u8;
        assert_eq!(
            parse_ssl_reply(&e),
            Parse::Done(SslReply::Error("Bad protocol".into()))
        );
        assert_eq!(parse_ssl_reply(&e[..6]), Parse::Incomplete);
    }
}
