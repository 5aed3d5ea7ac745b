//! Pure parsers (and request builders) for each engine's first exchange. No I/O: each
//! function takes the bytes received so far and says `Incomplete` (read more), a parsed
//! answer, or why the bytes are not this protocol.

pub mod http;
pub mod mongo;
pub mod mysql;
pub mod postgres;
pub mod redis;

/// Result of feeding the bytes received so far to a parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<T> {
    /// More bytes are needed to decide.
    Incomplete,
    Done(T),
    /// These bytes are not this protocol; the string says what they look like.
    NotThisProtocol(String),
}

/// A short, printable description of bytes seen on the wire: text as text (first line,
/// escaped), anything else as hex. At most ~80 characters of content.
pub fn describe_bytes(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "no bytes".to_owned();
    }
    let head = &bytes[..bytes.len().min(48)];
    let printable = head
        .iter()
        .filter(|b| {
            b.is_ascii_graphic() || **b == b' ' || **b == b'\r' || **b == b'\n' || **b == b'\t'
        })
        .count();
    let body = if printable * 10 >= head.len() * 9 {
        let text = String::from_utf8_lossy(head);
        format!("text {:?}", text.chars().take(80).collect::<String>())
    } else {
        let hex: Vec<String> = head.iter().take(24).map(|b| format!("{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    };
    format!("{} bytes, {body}", bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        assert_eq!(describe_bytes(b""), "no bytes");
        assert_eq!(
            describe_bytes(b"HTTP/1.0 400 Bad\r\n"),
            "18 bytes, text \"HTTP/1.0 400 Bad\\r\\n\""
        );
        assert_eq!(describe_bytes(&[0, 1, 0xff]), "3 bytes, bytes 00 01 ff");
    }
}
