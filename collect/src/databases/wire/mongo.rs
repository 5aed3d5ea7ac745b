//! MongoDB: `hello` and `buildInfo` as OP_MSG, and a minimal BSON reader for the replies.
//!
//! OP_MSG (opcode 2013): a 16-byte header — messageLength, requestID, responseTo, opCode, all
//! i32 little-endian — then flagBits (u32) and sections; we send and read one kind-0 section,
//! a single BSON document. BSON: i32 total length, elements `<type byte><cstring name><value>`,
//! a terminating `0x00`. Only the top-level scalars we need are decoded; embedded documents,
//! arrays and binaries are skipped by their length.

use super::{Parse, describe_bytes};

pub const OP_MSG: i32 = 2013;
/// Largest reply we accept (the server's own maxMessageSizeBytes is 48 MB; hello and
/// buildInfo replies are well under 4 KiB).
const MAX_MESSAGE: usize = 1024 * 1024;

/// request id used for `hello`; `buildInfo` uses 2. Fixed, so recorded replies line up.
pub const HELLO_REQUEST_ID: i32 = 1;
pub const BUILD_INFO_REQUEST_ID: i32 = 2;

/// `{<command>: 1, $db: "admin"}` as an OP_MSG with `request_id`.
pub fn command(command: &str, request_id: i32) -> Vec<u8> {
    let mut doc = Vec::new();
    doc.extend_from_slice(&[0; 4]);
    doc.push(0x10);
    doc.extend_from_slice(command.as_bytes());
    doc.push(0);
    doc.extend_from_slice(&1i32.to_le_bytes());
    doc.push(0x02);
    doc.extend_from_slice(b"$db\0");
    doc.extend_from_slice(&6i32.to_le_bytes());
    doc.extend_from_slice(b"admin\0");
    doc.push(0);
    let doc_len = i32::try_from(doc.len()).unwrap_or(i32::MAX);
    doc[..4].copy_from_slice(&doc_len.to_le_bytes());

    let total = 16 + 4 + 1 + doc.len();
    let mut msg = Vec::with_capacity(total);
    msg.extend_from_slice(&i32::try_from(total).unwrap_or(i32::MAX).to_le_bytes());
    msg.extend_from_slice(&request_id.to_le_bytes());
    msg.extend_from_slice(&0i32.to_le_bytes());
    msg.extend_from_slice(&OP_MSG.to_le_bytes());
    msg.extend_from_slice(&0u32.to_le_bytes());
    msg.push(0);
    msg.extend_from_slice(&doc);
    msg
}

/// A top-level BSON value we can use.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Double(f64),
    String(String),
    Bool(bool),
    Int32(i32),
    Int64(i64),
    /// Any other type (documents, arrays, ids, dates…), skipped.
    Other(u8),
}

impl Value {
    fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int32(v) => Some(i64::from(*v)),
            Value::Int64(v) => Some(*v),
            Value::Double(v) if v.fract() == 0.0 && v.abs() < 1e15 => Some(*v as i64),
            _ => None,
        }
    }
}

/// The top-level elements of a BSON document, in order; `None` when it is not BSON.
pub fn parse_document(doc: &[u8]) -> Option<Vec<(String, Value)>> {
    let len = usize::try_from(i32::from_le_bytes(doc.get(..4)?.try_into().ok()?)).ok()?;
    if len < 5 || len > doc.len() || doc[len - 1] != 0 {
        return None;
    }
    let mut p = &doc[4..len - 1];
    let mut out = Vec::new();
    while let Some((&ty, rest)) = p.split_first() {
        let nul = rest.iter().position(|b| *b == 0)?;
        let name = String::from_utf8_lossy(&rest[..nul]).into_owned();
        let v = &rest[nul + 1..];
        let fixed = |n: usize| v.get(..n).map(|b| (b, &v[n..]));
        let (value, next) = match ty {
            0x01 => {
                let (b, n) = fixed(8)?;
                (Value::Double(f64::from_le_bytes(b.try_into().ok()?)), n)
            }
            0x02 | 0x0D | 0x0E => {
                let slen =
                    usize::try_from(i32::from_le_bytes(v.get(..4)?.try_into().ok()?)).ok()?;
                let s = v.get(4..4usize.checked_add(slen)?)?;
                if s.last() != Some(&0) {
                    return None;
                }
                let text = String::from_utf8_lossy(&s[..s.len() - 1]).into_owned();
                let value = if ty == 0x02 {
                    Value::String(text)
                } else {
                    Value::Other(ty)
                };
                (value, &v[4 + slen..])
            }
            0x03 | 0x04 => {
                let dlen =
                    usize::try_from(i32::from_le_bytes(v.get(..4)?.try_into().ok()?)).ok()?;
                if dlen < 5 {
                    return None;
                }
                (Value::Other(ty), v.get(dlen..)?)
            }
            0x05 => {
                let blen =
                    usize::try_from(i32::from_le_bytes(v.get(..4)?.try_into().ok()?)).ok()?;
                (Value::Other(ty), v.get(5usize.checked_add(blen)?..)?)
            }
            0x06 | 0x0A | 0x7F | 0xFF => (Value::Other(ty), v),
            0x07 => (Value::Other(ty), fixed(12)?.1),
            0x08 => {
                let (b, n) = fixed(1)?;
                (Value::Bool(b[0] != 0), n)
            }
            0x09 | 0x11 => (Value::Other(ty), fixed(8)?.1),
            0x10 => {
                let (b, n) = fixed(4)?;
                (Value::Int32(i32::from_le_bytes(b.try_into().ok()?)), n)
            }
            0x12 => {
                let (b, n) = fixed(8)?;
                (Value::Int64(i64::from_le_bytes(b.try_into().ok()?)), n)
            }
            0x13 => (Value::Other(ty), fixed(16)?.1),
            _ => return None,
        };
        out.push((name, value));
        p = next;
    }
    Some(out)
}

/// What a command reply said that discovery uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandReply {
    pub ok: bool,
    pub min_wire_version: Option<i32>,
    pub max_wire_version: Option<i32>,
    pub is_writable_primary: Option<bool>,
    pub version: Option<String>,
    pub errmsg: Option<String>,
    pub code_name: Option<String>,
    pub code: Option<i64>,
}

/// Parses the bytes received so far as an OP_MSG reply to `request_id`.
pub fn parse_reply(bytes: &[u8], request_id: i32) -> Parse<CommandReply> {
    let Some(len) = bytes.get(..4) else {
        return Parse::Incomplete;
    };
    let len = i32::from_le_bytes([len[0], len[1], len[2], len[3]]);
    let Ok(len) = usize::try_from(len) else {
        return Parse::NotThisProtocol(describe_bytes(bytes));
    };
    if !(21..=MAX_MESSAGE).contains(&len) {
        return Parse::NotThisProtocol(describe_bytes(bytes));
    }
    if let Some(op) = bytes.get(12..16)
        && i32::from_le_bytes([op[0], op[1], op[2], op[3]]) != OP_MSG
    {
        return Parse::NotThisProtocol(describe_bytes(bytes));
    }
    let Some(msg) = bytes.get(..len) else {
        return Parse::Incomplete;
    };
    if bytes.len() > len {
        return Parse::NotThisProtocol(describe_bytes(bytes));
    }
    let response_to = i32::from_le_bytes([msg[8], msg[9], msg[10], msg[11]]);
    if response_to != request_id {
        return Parse::NotThisProtocol(format!(
            "OP_MSG answering request {response_to}, not {request_id}"
        ));
    }
    let flags = u32::from_le_bytes([msg[16], msg[17], msg[18], msg[19]]);
    // checksumPresent: a CRC-32C trails the sections.
    let end = if flags & 1 != 0 {
        len.saturating_sub(4)
    } else {
        len
    };
    if msg.get(20) != Some(&0) || end <= 21 {
        return Parse::NotThisProtocol(describe_bytes(bytes));
    }
    let Some(fields) = parse_document(&msg[21..end]) else {
        return Parse::NotThisProtocol("OP_MSG whose body is not a BSON document".to_owned());
    };
    let mut reply = CommandReply::default();
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("ok", v) => reply.ok = v.as_i64() == Some(1),
            ("minWireVersion", v) => {
                reply.min_wire_version = v.as_i64().and_then(|n| i32::try_from(n).ok())
            }
            ("maxWireVersion", v) => {
                reply.max_wire_version = v.as_i64().and_then(|n| i32::try_from(n).ok())
            }
            ("isWritablePrimary" | "ismaster", Value::Bool(b)) => {
                reply.is_writable_primary = Some(b)
            }
            ("version", Value::String(s)) => reply.version = Some(s),
            ("errmsg", Value::String(s)) => reply.errmsg = Some(s),
            ("codeName", Value::String(s)) => reply.code_name = Some(s),
            ("code", v) => reply.code = v.as_i64(),
            _ => {}
        }
    }
    Parse::Done(reply)
}

/// True for `Unauthorized` (code 13) and authentication errors.
pub fn is_auth_error(reply: &CommandReply) -> bool {
    matches!(reply.code, Some(13 | 18))
        || reply.code_name.as_deref() == Some("Unauthorized")
        || reply
            .errmsg
            .as_deref()
            .is_some_and(|m| m.contains("requires authentication"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/databases/wire/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}{name}")).unwrap()
    }

    #[test]
    fn requests_match_an_independent_encoder() {
        // Built with pymongo's `bson.encode` and `struct.pack` from the OP_MSG spec.
        assert_eq!(
            command("hello", HELLO_REQUEST_ID),
            fixture("mongodb-opmsg-hello-request.spec.bin")
        );
        assert_eq!(
            command("buildInfo", BUILD_INFO_REQUEST_ID),
            fixture("mongodb-opmsg-buildinfo-request.spec.bin")
        );
    }

    #[test]
    fn reconstructed_replies() {
        let Parse::Done(hello) = parse_reply(&fixture("mongodb-7.0-opmsg-hello-reply.spec.bin"), 1)
        else {
            panic!()
        };
        assert!(hello.ok);
        assert_eq!(hello.max_wire_version, Some(21));
        assert_eq!(hello.min_wire_version, Some(0));
        assert_eq!(hello.is_writable_primary, Some(true));
        let Parse::Done(build) =
            parse_reply(&fixture("mongodb-7.0-opmsg-buildinfo-reply.spec.bin"), 2)
        else {
            panic!()
        };
        assert_eq!(build.version.as_deref(), Some("7.0.5"));
        let Parse::Done(denied) = parse_reply(
            &fixture("mongodb-7.0-opmsg-buildinfo-unauthorized-reply.spec.bin"),
            2,
        ) else {
            panic!()
        };
        assert!(!denied.ok && is_auth_error(&denied));
        // Wrong request id, HTTP, truncation.
        assert!(matches!(
            parse_reply(&fixture("mongodb-7.0-opmsg-hello-reply.spec.bin"), 9),
            Parse::NotThisProtocol(_)
        ));
        assert!(matches!(
            parse_reply(b"HTTP/1.1 400 Bad Request\r\n", 1),
            Parse::NotThisProtocol(_)
        ));
        let full = fixture("mongodb-7.0-opmsg-hello-reply.spec.bin");
        for cut in 0..full.len() {
            assert_eq!(parse_reply(&full[..cut], 1), Parse::Incomplete, "cut {cut}");
        }
    }
}
