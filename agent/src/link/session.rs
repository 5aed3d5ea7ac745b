//! An established session: Hello/Welcome, then one stream per report.

use unity_protocol::io::{FrameIoError, read_frame, write_frame};
use unity_protocol::latest::{
    ControlReply, ControlRequest, FetchRelease, Hello, HelloReply, Intermediates, Refusal,
    RenewGrant, RenewRequest, Report, ReportBody, ReportReply, Welcome, close_code,
};
use unity_protocol::{MAX_FRAME_LEN, PROTOCOL_VERSION};
use uuid::Uuid;

use super::{QUEUED_REPLY_TIMEOUT, REPLY_TIMEOUT};

/// How long to wait for the controller's close reason once a stream failed.
const CLOSE_REASON_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("controller refused the session ({:?}): {}", .0.reason, .0.detail)]
    Refused(Refusal),
    #[error("controller closed the connection")]
    Closed(#[source] quinn::ConnectionError),
    #[error("controller did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("protocol error talking to the controller")]
    Frame(#[from] FrameIoError),
    #[error("stream error talking to the controller")]
    Stream(#[from] quinn::ClosedStream),
    #[error("controller rejected report {seq}: {detail}")]
    Rejected { seq: u64, detail: String },
}

impl SessionError {
    /// Whether retrying can help (everything except a permanent refusal).
    pub fn is_permanent(&self) -> bool {
        match self {
            SessionError::Refused(refusal) => refusal.reason.is_permanent(),
            SessionError::Closed(quinn::ConnectionError::ApplicationClosed(close)) => {
                close.error_code == close_code::IDENTITY_REFUSED.into()
            }
            _ => false,
        }
    }
}

/// A live session. Reports are numbered from 1 within a random stream id chosen per session
/// object, so the controller can drop redeliveries.
#[derive(Debug)]
pub struct Session {
    connection: quinn::Connection,
    /// The control stream: renewal requests now, controller-initiated messages (jobs) later.
    control: (quinn::SendStream, quinn::RecvStream),
    pub welcome: Welcome,
    stream_id: Uuid,
    next_seq: u64,
}

impl Session {
    /// Sends Hello on a new control stream and waits for the controller's answer.
    pub async fn open(
        connection: quinn::Connection,
        agent_version: &str,
    ) -> Result<Self, SessionError> {
        let exchange = async {
            let (mut send, mut recv) = connection.open_bi().await.map_err(SessionError::Closed)?;
            write_frame(
                &mut send,
                &Hello {
                    protocol_version: PROTOCOL_VERSION,
                    agent_version: agent_version.to_owned(),
                },
            )
            .await?;
            let reply = read_frame::<_, HelloReply>(&mut recv, MAX_FRAME_LEN).await?;
            Ok::<_, SessionError>((send, recv, reply))
        };
        let (send, recv, reply) = match tokio::time::timeout(QUEUED_REPLY_TIMEOUT, exchange)
            .await
            .map_err(|_| SessionError::Timeout(QUEUED_REPLY_TIMEOUT))?
        {
            Ok(exchanged) => exchanged,
            // The controller closes the connection right after refusing: prefer its reason.
            // The reason can arrive a moment after the stream fails, on the write as well as
            // the read (a refused client certificate is only known once the server's alert is
            // processed, which races with sending Hello): wait for it.
            Err(SessionError::Frame(FrameIoError::Closed | FrameIoError::Io(_))) => {
                let reason = match connection.close_reason() {
                    Some(reason) => Some(reason),
                    None => tokio::time::timeout(CLOSE_REASON_WAIT, connection.closed())
                        .await
                        .ok(),
                };
                return Err(match reason {
                    Some(reason) => SessionError::Closed(reason),
                    None => SessionError::Frame(FrameIoError::Closed),
                });
            }
            Err(other) => return Err(other),
        };
        match reply {
            HelloReply::Welcome(welcome) => Ok(Self {
                connection,
                control: (send, recv),
                welcome,
                stream_id: Uuid::new_v4(),
                next_seq: 1,
            }),
            HelloReply::Refused(refusal) => Err(SessionError::Refused(refusal)),
        }
    }

    /// Sends one report and waits for its acknowledgement.
    pub async fn send(
        &mut self,
        collected_at_ms: i64,
        body: ReportBody,
    ) -> Result<ReportReply, SessionError> {
        let report = Report {
            stream_id: self.stream_id,
            seq: self.next_seq,
            collected_at_ms,
            body,
        };
        let reply = self.send_report(&report).await?;
        self.next_seq += 1;
        match reply {
            ReportReply::Rejected { seq, detail } => Err(SessionError::Rejected { seq, detail }),
            ack => Ok(ack),
        }
    }

    /// Sends an exact report (for redelivery tests and the spool).
    pub async fn send_report(&mut self, report: &Report) -> Result<ReportReply, SessionError> {
        let exchange = async {
            let (mut send, mut recv) = self
                .connection
                .open_bi()
                .await
                .map_err(SessionError::Closed)?;
            write_frame(&mut send, report).await?;
            send.finish()?;
            Ok::<_, SessionError>(read_frame::<_, ReportReply>(&mut recv, MAX_FRAME_LEN).await?)
        };
        match tokio::time::timeout(QUEUED_REPLY_TIMEOUT, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(match self.connection.close_reason() {
                Some(reason) => SessionError::Closed(reason),
                None => error,
            }),
            Err(_) => Err(SessionError::Timeout(QUEUED_REPLY_TIMEOUT)),
        }
    }

    /// Asks for a new certificate for the key in `csr_der` (control stream); with it come
    /// the intermediates it needs (none from the built-in CA).
    pub async fn renew(
        &mut self,
        csr_der: Vec<u8>,
    ) -> Result<(RenewGrant, Intermediates), SessionError> {
        let (send, recv) = &mut self.control;
        let exchange = async {
            write_frame(send, &ControlRequest::Renew(RenewRequest { csr_der })).await?;
            Ok::<_, SessionError>(read_frame::<_, ControlReply>(recv, MAX_FRAME_LEN).await?)
        };
        match tokio::time::timeout(REPLY_TIMEOUT, exchange).await {
            Ok(Ok(ControlReply::Renewed(grant))) => Ok((
                grant,
                Intermediates {
                    certificates_der: Vec::new(),
                },
            )),
            Ok(Ok(ControlReply::RenewedChain(grant, intermediates))) => Ok((grant, intermediates)),
            Ok(Ok(ControlReply::Refused(refusal))) => Err(SessionError::Refused(refusal)),
            Ok(Ok(ControlReply::Retired | ControlReply::ReleaseChunk(_))) => {
                Err(SessionError::Frame(FrameIoError::Closed))
            }
            Ok(Err(error)) => Err(match self.connection.close_reason() {
                Some(reason) => SessionError::Closed(reason),
                None => error,
            }),
            Err(_) => Err(SessionError::Timeout(REPLY_TIMEOUT)),
        }
    }

    /// Chunk `chunk` of the release `sha256` (control stream).
    pub async fn fetch_release(
        &mut self,
        sha256: [u8; 32],
        chunk: u64,
    ) -> Result<Vec<u8>, SessionError> {
        let (send, recv) = &mut self.control;
        let exchange = async {
            write_frame(
                send,
                &ControlRequest::FetchRelease(FetchRelease { sha256, chunk }),
            )
            .await?;
            Ok::<_, SessionError>(read_frame::<_, ControlReply>(recv, MAX_FRAME_LEN).await?)
        };
        match tokio::time::timeout(REPLY_TIMEOUT, exchange).await {
            Ok(Ok(ControlReply::ReleaseChunk(reply))) if reply.chunk == chunk => Ok(reply.bytes),
            Ok(Ok(ControlReply::Refused(refusal))) => Err(SessionError::Refused(refusal)),
            // Any other answer means the stream is out of step: the session is not usable.
            Ok(Ok(_)) => Err(SessionError::Frame(FrameIoError::Closed)),
            Ok(Err(error)) => Err(match self.connection.close_reason() {
                Some(reason) => SessionError::Closed(reason),
                None => error,
            }),
            Err(_) => Err(SessionError::Timeout(REPLY_TIMEOUT)),
        }
    }

    /// Asks the controller to revoke this session's host (the host re-enrolled).
    pub async fn retire(&mut self) -> Result<(), SessionError> {
        let (send, recv) = &mut self.control;
        let exchange = async {
            write_frame(send, &ControlRequest::Retire).await?;
            Ok::<_, SessionError>(read_frame::<_, ControlReply>(recv, MAX_FRAME_LEN).await?)
        };
        match tokio::time::timeout(REPLY_TIMEOUT, exchange).await {
            Ok(Ok(ControlReply::Retired)) => Ok(()),
            Ok(Ok(ControlReply::Refused(refusal))) => Err(SessionError::Refused(refusal)),
            // Any other answer means the stream is out of step.
            Ok(Ok(_)) => Err(SessionError::Frame(FrameIoError::Closed)),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(SessionError::Timeout(REPLY_TIMEOUT)),
        }
    }

    /// The connection, for a task that answers the controller's pushes beside the reports.
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// Resolves when the controller closes the connection.
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.connection.closed().await
    }

    pub fn close(&self) {
        self.connection
            .close(close_code::NORMAL.into(), b"agent shutting down");
    }
}
