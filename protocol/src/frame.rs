//! Length-prefixed postcard frames.
//!
//! The decoder is a sans-I/O state machine: feed it whatever bytes arrived, ask it for complete
//! frames. The declared length is checked against the limit as soon as the 4-byte prefix is
//! known, so a peer cannot make us allocate more than `max_len` bytes by lying in a prefix.

use serde::{Serialize, de::DeserializeOwned};

/// Largest payload either side accepts (4 MiB): a full storage report of a 60-disk JBOD with
/// every attribute fits with a wide margin, and a hostile peer cannot ask for more.
pub const MAX_FRAME_LEN: u32 = 4 * 1024 * 1024;

/// Bytes in the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Why a message could not be framed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("message could not be serialized")]
    Serialize(#[source] postcard::Error),
    #[error("encoded message is {len} bytes, over the {max}-byte frame limit")]
    TooLarge { len: usize, max: u32 },
}

/// Why received bytes are not a valid frame or message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame declares {declared} bytes, over the {max}-byte limit")]
    TooLarge { declared: u32, max: u32 },
    #[error("stream ended inside a frame: {have} of {need} bytes received")]
    Truncated { have: usize, need: usize },
    #[error("frame payload of {len} bytes is not a valid {type_name}: {reason}")]
    Payload {
        len: usize,
        type_name: &'static str,
        reason: postcard::Error,
    },
    #[error("frame payload of {len} bytes has {trailing} trailing bytes after a {type_name}")]
    TrailingBytes {
        len: usize,
        trailing: usize,
        type_name: &'static str,
    },
}

/// Serializes `message` into one frame: length prefix + postcard payload.
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = postcard::to_allocvec(&Prefixed(message)).map_err(EncodeError::Serialize)?;
    let len = out.len() - PREFIX_LEN;
    let declared = u32::try_from(len)
        .ok()
        .filter(|l| *l <= MAX_FRAME_LEN)
        .ok_or(EncodeError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        })?;
    out[..PREFIX_LEN].copy_from_slice(&declared.to_be_bytes());
    Ok(out)
}

/// Serializes four placeholder bytes followed by the message, so the frame is built in one
/// allocation; [`encode_frame`] then overwrites the placeholder with the real length.
struct Prefixed<'a, T>(&'a T);

impl<T: Serialize> Serialize for Prefixed<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&[0u8; PREFIX_LEN])?;
        tuple.serialize_element(self.0)?;
        tuple.end()
    }
}

/// Decodes one complete payload (without prefix) into a message, rejecting trailing bytes:
/// a payload that decodes with bytes left over was produced by a different schema.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    let type_name = std::any::type_name::<T>();
    let (message, rest) =
        postcard::take_from_bytes::<T>(payload).map_err(|reason| DecodeError::Payload {
            len: payload.len(),
            type_name,
            reason,
        })?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            len: payload.len(),
            trailing: rest.len(),
            type_name,
        });
    }
    Ok(message)
}

/// Reads a frame's declared payload length from its prefix, enforcing `max_len`.
pub fn check_prefix(prefix: [u8; PREFIX_LEN], max_len: u32) -> Result<usize, DecodeError> {
    let declared = u32::from_be_bytes(prefix);
    if declared > max_len {
        return Err(DecodeError::TooLarge {
            declared,
            max: max_len,
        });
    }
    // u32 always fits in usize on the 32- and 64-bit targets we build for.
    Ok(declared as usize)
}

/// Incremental frame decoder: push bytes as they arrive, pop complete payloads.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max_len: u32,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder that refuses frames whose payload exceeds `max_len` bytes.
    pub fn new(max_len: u32) -> Self {
        Self {
            buf: Vec::new(),
            max_len,
        }
    }

    /// Appends received bytes. Nothing is decoded until [`Self::next_payload`] is called.
    ///
    /// The buffer only ever holds one partial frame plus what the caller pushed at once, and
    /// [`Self::next_payload`] fails as soon as a prefix over the limit is seen.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Returns the next complete payload, `Ok(None)` if more bytes are needed, or an error if
    /// the pending prefix declares an oversized frame (the connection must then be dropped:
    /// there is no way to resynchronize a length-prefixed stream).
    pub fn next_payload(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        let Some(prefix) = self.buf.first_chunk::<PREFIX_LEN>() else {
            return Ok(None);
        };
        let len = check_prefix(*prefix, self.max_len)?;
        let end = PREFIX_LEN + len;
        if self.buf.len() < end {
            return Ok(None);
        }
        let payload = self.buf[PREFIX_LEN..end].to_vec();
        self.buf.drain(..end);
        Ok(Some(payload))
    }

    /// Returns and decodes the next complete message.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, DecodeError> {
        match self.next_payload()? {
            Some(payload) => decode_payload(&payload).map(Some),
            None => Ok(None),
        }
    }

    /// Call when the peer finished sending: a partial frame left over is an error, not silence.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let need = match self.buf.first_chunk::<PREFIX_LEN>() {
            Some(prefix) => PREFIX_LEN + check_prefix(*prefix, self.max_len)?,
            None => PREFIX_LEN,
        };
        Err(DecodeError::Truncated {
            have: self.buf.len(),
            need,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_decoder_in_single_bytes() {
        let messages = vec!["one".to_string(), String::new(), "three".repeat(1000)];
        let mut wire = Vec::new();
        for m in &messages {
            wire.extend(encode_frame(m).unwrap());
        }
        let mut decoder = FrameDecoder::default();
        let mut got = Vec::new();
        for byte in wire {
            decoder.push(&[byte]);
            while let Some(m) = decoder.next_message::<String>().unwrap() {
                got.push(m);
            }
        }
        decoder.finish().unwrap();
        assert_eq!(got, messages);
    }

    #[test]
    fn oversized_prefix_is_refused_before_the_payload_arrives() {
        let mut decoder = FrameDecoder::new(16);
        decoder.push(&17u32.to_be_bytes());
        assert_eq!(
            decoder.next_payload(),
            Err(DecodeError::TooLarge {
                declared: 17,
                max: 16
            })
        );
    }

    #[test]
    fn maximum_prefix_is_refused_by_default_decoder() {
        let mut decoder = FrameDecoder::default();
        decoder.push(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decoder.next_payload(),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn truncated_frame_is_reported_at_finish() {
        let frame = encode_frame(&"hello".to_string()).unwrap();
        let mut decoder = FrameDecoder::default();
        decoder.push(&frame[..frame.len() - 1]);
        assert_eq!(decoder.next_payload(), Ok(None));
        assert_eq!(
            decoder.finish(),
            Err(DecodeError::Truncated {
                have: frame.len() - 1,
                need: frame.len()
            })
        );
    }

    #[test]
    fn truncated_prefix_is_reported_at_finish() {
        let mut decoder = FrameDecoder::default();
        decoder.push(&[0, 0]);
        assert_eq!(
            decoder.finish(),
            Err(DecodeError::Truncated { have: 2, need: 4 })
        );
    }

    #[test]
    fn garbage_payload_is_a_decode_error_naming_the_type() {
        let err = decode_payload::<crate::v1::Hello>(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(err.to_string().contains("Hello"), "{err}");
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut payload = postcard::to_allocvec(&7u8).unwrap();
        payload.push(0);
        assert!(matches!(
            decode_payload::<u8>(&payload),
            Err(DecodeError::TrailingBytes { trailing: 1, .. })
        ));
    }

    #[test]
    fn encoder_refuses_oversized_message() {
        let big = vec![0u8; MAX_FRAME_LEN as usize + 1];
        assert!(matches!(
            encode_frame(&big),
            Err(EncodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn prefix_is_big_endian_payload_length() {
        let frame = encode_frame(&"ab".to_string()).unwrap();
        // postcard: varint length 2, then the bytes.
        assert_eq!(frame, vec![0, 0, 0, 3, 2, b'a', b'b']);
    }
}
