//! Redis/Valkey: `PING` and `INFO server` in RESP, and the INFO text.
//!
//! Requests are inline commands (`PING\r\n`, `INFO server\r\n`) sent together. Replies are RESP2:
//! `+PONG\r\n` (simple string), `-NOAUTH Authentication required.\r\n` (error), and for INFO a
//! bulk string `$<len>\r\n<len bytes>\r\n` of `key:value` lines under `# Section` headers.

use super::{Parse, describe_bytes};

/// Both requests, pipelined.
pub const PING_AND_INFO: &[u8] = b"PING\r\nINFO server\r\n";

/// INFO replies of real servers are a few KiB; refuse to buffer more.
const MAX_BULK: usize = 256 * 1024;

/// One RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
}

/// Parses one RESP reply from the front of `bytes`; `Done` carries the reply and the number
/// of bytes it used. Arrays and RESP3 types are not expected from PING/INFO and are rejected.
pub fn parse_reply(bytes: &[u8]) -> Parse<(Reply, usize)> {
    let Some(&first) = bytes.first() else {
        return Parse::Incomplete;
    };
    if !matches!(first, b'+' | b'-' | b':' | b'$') {
        return Parse::NotThisProtocol(describe_bytes(bytes));
    }
    let Some(eol) = find_crlf(bytes) else {
        // A header line is short; a long line without CRLF is not RESP.
        return if bytes.len() > 4096 {
            Parse::NotThisProtocol(describe_bytes(bytes))
        } else {
            Parse::Incomplete
        };
    };
    let line = &bytes[1..eol];
    let text = String::from_utf8_lossy(line).into_owned();
    match first {
        b'+' => Parse::Done((Reply::Simple(text), eol + 2)),
        b'-' => Parse::Done((Reply::Error(text), eol + 2)),
        b':' => match text.parse() {
            Ok(n) => Parse::Done((Reply::Integer(n), eol + 2)),
            Err(_) => Parse::NotThisProtocol(describe_bytes(bytes)),
        },
        _ => {
            let Ok(len) = text.parse::<i64>() else {
                return Parse::NotThisProtocol(describe_bytes(bytes));
            };
            if len == -1 {
                return Parse::Done((Reply::Bulk(None), eol + 2));
            }
            let Ok(len) = usize::try_from(len) else {
                return Parse::NotThisProtocol(describe_bytes(bytes));
            };
            if len > MAX_BULK {
                return Parse::NotThisProtocol(format!("bulk reply of {len} bytes is too large"));
            }
            let start = eol + 2;
            let Some(end) = start.checked_add(len) else {
                return Parse::NotThisProtocol(describe_bytes(bytes));
            };
            match bytes.get(end..end + 2) {
                None => Parse::Incomplete,
                Some(b"\r\n") => {
                    Parse::Done((Reply::Bulk(Some(bytes[start..end].to_vec())), end + 2))
                }
                Some(_) => Parse::NotThisProtocol(describe_bytes(bytes)),
            }
        }
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// The `INFO server` fields discovery keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// `valkey` when `valkey_version` or `server_name:valkey` is present, else `redis`.
    pub flavour: String,
    pub version: Option<String>,
    pub mode: Option<String>,
    pub os: Option<String>,
    pub tcp_port: Option<u16>,
    pub process_id: Option<u32>,
    pub executable: Option<String>,
    pub config_file: Option<String>,
}

/// Parses the INFO text (`# Server\r\nredis_version:7.0.15\r\n…`). Unknown and malformed
/// lines are ignored; `None` when no line looks like INFO at all.
pub fn parse_info(text: &str) -> Option<ServerInfo> {
    let mut info = ServerInfo {
        flavour: "redis".to_owned(),
        ..ServerInfo::default()
    };
    let mut fields = 0usize;
    let mut valkey_version = None;
    let mut redis_version = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        fields += 1;
        let value = value.trim();
        let keep = || (!value.is_empty()).then(|| value.to_owned());
        match key {
            "redis_version" => redis_version = keep(),
            "valkey_version" => valkey_version = keep(),
            "server_name" if value.eq_ignore_ascii_case("valkey") => {
                info.flavour = "valkey".to_owned();
            }
            "redis_mode" | "server_mode" => info.mode = keep(),
            "os" => info.os = keep(),
            "tcp_port" => info.tcp_port = value.parse().ok(),
            "process_id" => info.process_id = value.parse().ok(),
            "executable" => info.executable = keep(),
            "config_file" => info.config_file = keep(),
            _ => fields -= 1,
        }
    }
    if valkey_version.is_some() {
        info.flavour = "valkey".to_owned();
        info.version = valkey_version;
    } else {
        info.version = redis_version;
    }
    (fields > 0).then_some(info)
}

/// True for the errors a server sends when it wants credentials or refuses this client:
/// `NOAUTH`, `NOPERM`, `WRONGPASS`, `DENIED` (protected mode).
pub fn is_auth_error(message: &str) -> bool {
    ["NOAUTH", "NOPERM", "WRONGPASS", "DENIED"]
        .iter()
        .any(|p| message.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &[u8] =
        include_bytes!("../../../fixtures/databases/wire/redis-7.0-ping-info-server.bin");

    #[test]
    fn real_redis_ping_and_info() {
        let Parse::Done((Reply::Simple(pong), used)) = parse_reply(CAPTURED) else {
            panic!()
        };
        assert_eq!(pong, "PONG");
        let Parse::Done((Reply::Bulk(Some(info)), used2)) = parse_reply(&CAPTURED[used..]) else {
            panic!()
        };
        assert_eq!(used + used2, CAPTURED.len());
        let info = parse_info(&String::from_utf8_lossy(&info)).unwrap();
        assert_eq!(info.flavour, "redis");
        assert_eq!(info.version.as_deref(), Some("7.0.15"));
        assert_eq!(info.mode.as_deref(), Some("standalone"));
        assert_eq!(info.tcp_port, Some(36379));
        assert!(info.os.unwrap().starts_with("Linux"));
        for cut in 0..CAPTURED.len() - 1 {
            if let Parse::Done((_, n)) = parse_reply(&CAPTURED[..cut]) {
                assert!(n <= cut);
            }
        }
    }

    #[test]
    fn valkey_and_errors() {
        let info = parse_info(
            "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n",
        )
        .unwrap();
        assert_eq!(
            (info.flavour.as_str(), info.version.as_deref()),
            ("valkey", Some("8.0.1"))
        );
        assert_eq!(parse_info("hello world"), None);
        assert!(is_auth_error("NOAUTH Authentication required."));
        assert!(is_auth_error("DENIED Redis is running in protected mode"));
        assert!(!is_auth_error("ERR unknown command"));
        assert!(matches!(
            parse_reply(b"HTTP/1.1 200 OK\r\n"),
            Parse::NotThisProtocol(_)
        ));
        assert!(matches!(
            parse_reply(b"$99999999999\r\n"),
            Parse::NotThisProtocol(_)
        ));
        assert!(matches!(parse_reply(b"$-5\r\n"), Parse::NotThisProtocol(_)));
        assert_eq!(parse_reply(b"$3\r\nab"), Parse::Incomplete);
        assert!(matches!(
            parse_reply(b"$3\r\nabcde"),
            Parse::NotThisProtocol(_)
        ));
    }
}
