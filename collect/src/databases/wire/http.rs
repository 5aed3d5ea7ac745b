//! MinIO: `GET /minio/health/live` over plain HTTP/1.1 and the response head.
//!
//! The liveness endpoint needs no credentials and always answers `200 OK` on a running node;
//! MinIO names itself in the `Server` header (`MinIO`, older releases `MinIO/<version>`).

use super::{Parse, describe_bytes};

/// Largest response head we read.
const MAX_HEAD: usize = 16 * 1024;

/// The request, for `host` (`127.0.0.1:9000`). `Connection: close` so the server ends the
/// exchange; no body, no credentials.
pub fn health_request(host: &str) -> Vec<u8> {
    format!(
        "GET /minio/health/live HTTP/1.1\r\nHost: {host}\r\nUser-Agent: unity-agent\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Status line and headers of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the bytes received so far as an HTTP/1.x response head (status line + headers up
/// to the blank line). The body is ignored.
pub fn parse_response_head(bytes: &[u8]) -> Parse<ResponseHead> {
    const PREFIX: &[u8] = b"HTTP/1.";
    let n = bytes.len().min(PREFIX.len());
    if bytes[..n] != PREFIX[..n] {
        return Parse::NotThisProtocol(describe_bytes(bytes));
    }
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if bytes.len() > MAX_HEAD {
            Parse::NotThisProtocol(format!("HTTP response head longer than {MAX_HEAD} bytes"))
        } else {
            Parse::Incomplete
        };
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s));
    let Some(status) = status else {
        return Parse::NotThisProtocol(describe_bytes(bytes));
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Parse::Done(ResponseHead { status, headers })
}

/// True when the `Server` header names MinIO.
pub fn is_minio(head: &ResponseHead) -> bool {
    head.header("server")
        .and_then(|s| s.get(..5))
        .is_some_and(|p| p.eq_ignore_ascii_case("minio"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconstructed_minio_reply() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/databases/wire/minio-health-live-200.spec.http"
        ))
        .unwrap();
        let Parse::Done(head) = parse_response_head(&bytes) else {
            panic!()
        };
        assert_eq!(head.status, 200);
        assert_eq!(head.header("Server"), Some("MinIO"));
        assert!(is_minio(&head));
        for cut in 0..bytes.len() - 1 {
            assert_eq!(parse_response_head(&bytes[..cut]), Parse::Incomplete);
        }
    }

    #[test]
    fn other_servers() {
        let Parse::Done(head) = parse_response_head(
            b"HTTP/1.0 404 File not found\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\n\r\n",
        ) else {
            panic!()
        };
        assert!(!is_minio(&head));
        assert!(matches!(
            parse_response_head(b"+PONG\r\n"),
            Parse::NotThisProtocol(_)
        ));
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 abc\r\n\r\n"),
            Parse::NotThisProtocol(_)
        ));
        let Parse::Done(odd) =
            parse_response_head("HTTP/1.1 200 OK\r\nServer: Mini\u{e9}\r\n\r\n".as_bytes())
        else {
            panic!()
        };
        assert!(!is_minio(&odd));
    }
}
