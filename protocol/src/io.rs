//! Moving one frame over an async byte stream (a QUIC stream in practice).

use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{self, DecodeError, EncodeError, PREFIX_LEN};

/// Reading or writing a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameIoError {
    #[error("could not encode frame")]
    Encode(#[from] EncodeError),
    #[error("received an invalid frame")]
    Decode(#[from] DecodeError),
    #[error("stream closed before a frame arrived")]
    Closed,
    #[error("stream I/O failed")]
    Io(#[from] std::io::Error),
}

/// Writes `message` as one frame.
pub async fn write_frame<W, T>(writer: &mut W, message: &T) -> Result<(), FrameIoError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = frame::encode_frame(message)?;
    writer.write_all(&bytes).await?;
    Ok(())
}

/// Reads one frame of at most `max_len` payload bytes and decodes it.
///
/// The prefix is checked before the payload buffer is allocated. A stream that ends before
/// the prefix is [`FrameIoError::Closed`]; one that ends inside the frame is
/// [`DecodeError::Truncated`].
pub async fn read_frame<R, T>(reader: &mut R, max_len: u32) -> Result<T, FrameIoError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let len = read_prefix(reader, max_len).await?;
    read_payload(reader, len).await
}

/// Reads and checks a frame's length prefix: the payload length, at most `max_len`.
///
/// Split from [`read_payload`] so a server can decide whether it can afford the payload
/// (a memory budget) before allocating it. A stream that ends before the first byte is
/// [`FrameIoError::Closed`].
pub async fn read_prefix<R>(reader: &mut R, max_len: u32) -> Result<usize, FrameIoError>
where
    R: AsyncRead + Unpin,
{
    let mut prefix = [0u8; PREFIX_LEN];
    let mut have = 0;
    while have < PREFIX_LEN {
        let n = reader.read(&mut prefix[have..]).await?;
        if n == 0 {
            return Err(if have == 0 {
                FrameIoError::Closed
            } else {
                DecodeError::Truncated {
                    have,
                    need: PREFIX_LEN,
                }
                .into()
            });
        }
        have += n;
    }
    Ok(frame::check_prefix(prefix, max_len)?)
}

/// Reads the `len` payload bytes that follow a prefix read by [`read_prefix`] and decodes
/// them. A stream that ends early is [`DecodeError::Truncated`].
pub async fn read_payload<R, T>(reader: &mut R, len: usize) -> Result<T, FrameIoError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut payload = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let n = reader.read(&mut payload[filled..]).await?;
        if n == 0 {
            return Err(DecodeError::Truncated {
                have: PREFIX_LEN + filled,
                need: PREFIX_LEN + len,
            }
            .into());
        }
        filled += n;
    }
    Ok(frame::decode_payload(&payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frame_round_trips_over_a_pipe() {
        let (mut a, mut b) = tokio::io::duplex(64);
        write_frame(&mut a, &"hello".to_string()).await.unwrap();
        drop(a);
        let got: String = read_frame(&mut b, 1024).await.unwrap();
        assert_eq!(got, "hello");
        assert!(matches!(
            read_frame::<_, String>(&mut b, 1024).await,
            Err(FrameIoError::Closed)
        ));
    }

    #[tokio::test]
    async fn oversized_declared_length_is_refused() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = read_frame::<_, String>(&mut &bytes[..], 1024)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            FrameIoError::Decode(DecodeError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn truncated_payload_is_reported() {
        let bytes = [0, 0, 0, 10, 1, 2];
        let err = read_frame::<_, String>(&mut &bytes[..], 1024)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            FrameIoError::Decode(DecodeError::Truncated { have: 6, need: 14 })
        ));
    }
}
