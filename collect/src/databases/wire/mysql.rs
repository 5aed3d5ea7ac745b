//! MySQL/MariaDB: the server's first packet (the client never speaks first).
//!
//! Packet: 3-byte little-endian payload length, 1-byte sequence id (0), payload. A greeting
//! payload (HandshakeV10) is: protocol version `0x0a`; server version, NUL-terminated;
//! connection id (u32 LE); 8 bytes of auth scramble; a filler `0x00`; capability flags low
//! (u16 LE); then optionally character set (u8), status flags (u16 LE), capability flags high
//! (u16 LE), scramble length (u8), 10 reserved bytes (MariaDB puts its extended capabilities
//! in the last 4), the rest of the scramble (max(13, len - 8) bytes) and the auth plugin name
//! (NUL-terminated). A server that refuses the client before any handshake sends an error
//! packet instead: `0xff`, error code (u16 LE), message (no SQL state at this stage).

use super::{Parse, describe_bytes};

/// Largest greeting we accept: real ones are ~100 bytes.
const MAX_PAYLOAD: usize = 4096;

/// The fields of a HandshakeV10 greeting we keep (the scramble is never kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub protocol_version: u8,
    pub server_version: String,
    pub connection_id: u32,
    pub capability_flags: u32,
    pub auth_plugin: Option<String>,
}

/// A server's first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstPacket {
    Greeting(Greeting),
    /// Error packet before the handshake (1129 host blocked, 1130 host not allowed, 1040 too
    /// many connections, …).
    Error {
        code: u16,
        message: String,
    },
}

/// Parses the bytes received so far as the server's first packet.
pub fn parse_first_packet(bytes: &[u8]) -> Parse<FirstPacket> {
    let Some(header) = bytes.get(..4) else {
        return if bytes.is_empty() || could_be_header_prefix(bytes) {
            Parse::Incomplete
        } else {
            Parse::NotThisProtocol(describe_bytes(bytes))
        };
    };
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len == 0 || len > MAX_PAYLOAD || header[3] != 0 {
        return Parse::NotThisProtocol(describe_bytes(bytes));
    }
    // The first payload byte decides early, so a text protocol is rejected without waiting
    // for `len` bytes that will never come.
    match bytes.get(4) {
        None => return Parse::Incomplete,
        Some(0x0a | 0xff) => {}
        Some(_) => return Parse::NotThisProtocol(describe_bytes(bytes)),
    }
    let Some(payload) = bytes.get(4..4 + len) else {
        return Parse::Incomplete;
    };
    if bytes.len() > 4 + len {
        // A MySQL server sends nothing after its greeting until the client answers.
        return Parse::NotThisProtocol(describe_bytes(bytes));
    }
    let parsed = if payload[0] == 0xff {
        parse_error(payload)
    } else {
        parse_greeting(payload)
    };
    match parsed {
        Some(p) => Parse::Done(p),
        None => Parse::NotThisProtocol(describe_bytes(bytes)),
    }
}

/// A 1–3 byte prefix is always a possible length; nothing to reject yet.
fn could_be_header_prefix(bytes: &[u8]) -> bool {
    bytes.len() < 4
}

fn parse_error(payload: &[u8]) -> Option<FirstPacket> {
    let code = payload.get(1..3)?;
    let code = u16::from_le_bytes([code[0], code[1]]);
    let mut msg = payload.get(3..)?;
    // After the handshake an error carries `#` + 5-byte SQL state; skip it if present.
    if msg.first() == Some(&b'#') && msg.len() >= 6 {
        msg = &msg[6..];
    }
    Some(FirstPacket::Error {
        code,
        message: String::from_utf8_lossy(msg).into_owned(),
    })
}

fn parse_greeting(payload: &[u8]) -> Option<FirstPacket> {
    let protocol_version = *payload.first()?;
    let rest = payload.get(1..)?;
    let nul = rest.iter().position(|b| *b == 0)?;
    let version = &rest[..nul];
    if version.is_empty() || !version.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return None;
    }
    let server_version = String::from_utf8_lossy(version).into_owned();
    let mut p = rest.get(nul + 1..)?;
    let connection_id = u32::from_le_bytes(p.get(..4)?.try_into().ok()?);
    p = p.get(4..)?;
    // 8 scramble bytes + filler.
    if *p.get(8)? != 0 {
        return None;
    }
    p = p.get(9..)?;
    let low = u16::from_le_bytes(p.get(..2)?.try_into().ok()?);
    p = p.get(2..)?;
    let mut capability_flags = u32::from(low);
    let mut auth_plugin = None;
    if p.len() >= 16 {
        let high = u16::from_le_bytes([p[3], p[4]]);
        capability_flags |= u32::from(high) << 16;
        let scramble_len = usize::from(p[5]);
        // charset(1) status(2) cap_high(2) scramble_len(1) reserved(10)
        let tail = &p[16..];
        const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
        const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
        let mut tail = tail;
        if capability_flags & CLIENT_SECURE_CONNECTION != 0 {
            let part2 = scramble_len.saturating_sub(8).max(13);
            tail = tail.get(part2..).unwrap_or(&[]);
        }
        if capability_flags & CLIENT_PLUGIN_AUTH != 0 && !tail.is_empty() {
            let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
            let name = String::from_utf8_lossy(&tail[..end]).into_owned();
            if !name.is_empty() {
                auth_plugin = Some(name);
            }
        }
    }
    Some(FirstPacket::Greeting(Greeting {
        protocol_version,
        server_version,
        connection_id,
        capability_flags,
        auth_plugin,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREETING: &[u8] =
        include_bytes!("../../../fixtures/databases/wire/mariadb-10.11-handshake-v10.bin");
    const ERROR_1130: &[u8] = include_bytes!(
        "../../../fixtures/databases/wire/mariadb-10.11-error-1130-host-not-allowed.bin"
    );

    #[test]
    fn real_mariadb_greeting() {
        let Parse::Done(FirstPacket::Greeting(g)) = parse_first_packet(GREETING) else {
            panic!("{:?}", parse_first_packet(GREETING));
        };
        assert_eq!(g.protocol_version, 10);
        assert_eq!(g.server_version, "5.5.5-10.11.14-MariaDB-0+deb12u2");
        assert_eq!(g.connection_id, 3);
        assert_eq!(g.auth_plugin.as_deref(), Some("mysql_native_password"));
        assert_ne!(g.capability_flags & 0x0000_0200, 0, "CLIENT_PROTOCOL_41");
        for cut in 0..GREETING.len() {
            assert_eq!(
                parse_first_packet(&GREETING[..cut]),
                Parse::Incomplete,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn real_host_not_allowed_error() {
        assert_eq!(
            parse_first_packet(ERROR_1130),
            Parse::Done(FirstPacket::Error {
                code: 1130,
                message: "Host '127.0.0.1' is not allowed to connect to this MariaDB server".into()
            })
        );
    }

    #[test]
    fn other_protocols_are_rejected_early() {
        assert!(matches!(
            parse_first_packet(b"HTTP/1.0 400 Bad request\r\n"),
            Parse::NotThisProtocol(_)
        ));
        assert!(matches!(
            parse_first_packet(b"+PONG\r\n"),
            Parse::NotThisProtocol(_)
        ));
        assert!(matches!(
            parse_first_packet(b"SSH-2.0-OpenSSH_9.2\r\n"),
            Parse::NotThisProtocol(_)
        ));
        assert!(matches!(parse_first_packet(b"N"), Parse::Incomplete));
        let mut trailing = GREETING.to_vec();
        trailing.push(0);
        assert!(matches!(
            parse_first_packet(&trailing),
            Parse::NotThisProtocol(_)
        ));
    }
}
