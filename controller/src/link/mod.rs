//! The QUIC server agents connect to.
//!
//! One UDP endpoint serves two ALPNs (see `unity_pki::tls`): enrollment connections, which
//! carry exactly one token + CSR exchange, and agent sessions, which require a client
//! certificate from our CA. A connection's problems — refused handshake, missing certificate,
//! oversized or undecodable frame — close that connection with a code and a logged reason; they
//! never affect other connections.

pub mod admission;
mod control;
mod enroll;
mod session;
pub mod socket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{HandshakeData, QuicServerConfig};
use unity_protocol::latest::close_code;
use unity_protocol::{ALPN_AGENT, ALPN_ENROLL};

use crate::store::Store;

/// An agent silent this long is gone (the default of `agent_idle_timeout_secs`); agents keep
/// their sessions alive every 15 s and advertise 45 s themselves, and QUIC applies the smaller.
pub const DEFAULT_AGENT_IDLE_TIMEOUT_SECS: u32 = 45;
/// How long a peer may take to send its first message on a new connection: an enrollment
/// request, from a peer nobody has authenticated yet, so the slot is not held for long.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an agent whose certificate the handshake has verified may take to send its
/// Hello: as long as the default idle timeout. In a reconnect storm the controller's socket
/// drops packets and the agent's retransmissions back off (quinn doubles the probe timeout),
/// so a Hello can need more than 15 s to get through; 13 of 10 000 storm sessions were closed
/// at 15 s for it (docs/performance.md). Only a holder of one of our host certificates can
/// keep a slot this long.
const HELLO_TIMEOUT: Duration = Duration::from_secs(DEFAULT_AGENT_IDLE_TIMEOUT_SECS as u64);
/// How long a peer may take to send a whole frame once its stream opened: a stream that
/// trickles (or stalls) is a protocol violation, not a session held forever.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(30);
/// Streams an agent may have open at once: it sends one report at a time (and a control
/// stream); more is a misbehaving or hostile peer holding the controller's memory.
const MAX_AGENT_STREAMS: u32 = 4;
/// Bytes in flight from one peer that quinn buffers: 2 MiB keeps a LAN or WAN agent at
/// full speed (a window per round trip) while bounding what an idle reader costs.
const CONNECTION_RECEIVE_WINDOW: u32 = 2 * 1024 * 1024;

/// Agents a controller expects to take back per second of the reconnect window it asks for
/// when it stops (see [`reconnect_spread_secs`]).
const RECONNECTS_PER_SECOND: usize = 1000;
/// The longest reconnect window a stopping controller asks for.
const MAX_RECONNECT_SPREAD_SECS: u32 = 60;

/// The `retry_after` a stopping controller gives the `connections` agents it drops: one
/// second per thousand, at least 1 and at most a minute. Agents come back uniformly over the
/// upper half of it, so a homelab's ten hosts return within a second, and a fleet of 10 000
/// within 5–10 s at ~2 000 handshakes per second, not 10 000 handshakes and check-ins in the
/// same second (which overflowed the socket's buffer and queued check-ins for seconds).
pub fn reconnect_spread_secs(connections: usize) -> u32 {
    let secs = connections.div_ceil(RECONNECTS_PER_SECOND).max(1);
    u32::try_from(secs)
        .unwrap_or(u32::MAX)
        .min(MAX_RECONNECT_SPREAD_SECS)
}

/// What connection handlers need.
#[derive(Debug)]
pub struct LinkContext {
    pub store: Store,
    /// Signs host certificates at enrollment and renewal (built-in CA or step-ca).
    pub issuer: Arc<crate::issuer::HostIssuer>,
    /// The job-signing key files; enrollment hands out the current public key.
    pub job_keys: crate::jobs::JobKeys,
    /// Delivers jobs to the sessions this process holds.
    pub dispatcher: Arc<crate::jobs::Dispatcher>,
    pub host_cert_validity: Duration,
    pub report_interval: Duration,
    /// [`FRAME_DEADLINE`], shorter in tests.
    pub frame_deadline: Duration,
    /// Configured ingest rules (alert ages).
    pub ingest: crate::ingest::IngestSettings,
    /// Frame memory and per-tenant ingest shared by all sessions.
    pub admission: Arc<admission::Admission>,
    /// Host facts of every session, written in shared transactions (group commit).
    pub facts_writer: crate::ingest::group_commit::FactsWriter,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("TLS configuration for QUIC is invalid")]
    Crypto(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("could not bind the QUIC endpoint to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("idle timeout is out of range")]
    IdleTimeout(#[source] quinn::VarIntBoundsExceeded),
}

/// quinn's server configuration from our rustls one, with keep-alive and idle timeout.
///
/// The controller's own keep-alive fires at half the idle timeout after the last packet it
/// received: agents ping every 15 s, so with the default it never fires (every ping it would
/// add is a packet per agent the fleet pays for); it keeps a session alive when the operator
/// chose an idle timeout shorter than the agents' interval, or for an agent that pings less.
pub fn quic_server_config(
    tls: rustls::ServerConfig,
    idle_timeout: Duration,
) -> Result<quinn::ServerConfig, LinkError> {
    let crypto = QuicServerConfig::try_from(tls).map_err(LinkError::Crypto)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(idle_timeout / 2))
        .max_idle_timeout(Some(
            idle_timeout.try_into().map_err(LinkError::IdleTimeout)?,
        ))
        .max_concurrent_bidi_streams(MAX_AGENT_STREAMS.into())
        // What quinn buffers for one connection before we read it; the default is unbounded
        // per connection (only per stream), which would let a peer park data in our memory
        // while its frame waits for the budget in `admission`.
        .receive_window(CONNECTION_RECEIVE_WINDOW.into())
        .max_concurrent_uni_streams(0u32.into());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Binds the endpoint on a socket whose buffers are sized for a fleet's bursts (see
/// [`socket`]); says in the log when the kernel capped them and which sysctl lifts the cap.
pub fn bind(
    addr: SocketAddr,
    config: quinn::ServerConfig,
    socket_buffer_bytes: usize,
) -> Result<quinn::Endpoint, LinkError> {
    let bind_error = |source| LinkError::Bind { addr, source };
    let (socket, buffers) = socket::bind(addr, socket_buffer_bytes).map_err(bind_error)?;
    match buffers.advice() {
        Some(advice) => tracing::warn!(
            requested = buffers.requested,
            receive = buffers.receive,
            send = buffers.send,
            receive_cap = buffers.receive_cap,
            send_cap = buffers.send_cap,
            %advice,
            "the kernel caps the QUIC socket's buffers below what was asked: a burst of \
             reconnecting agents can overflow them (see docs/operations.md)"
        ),
        None => tracing::info!(
            requested = buffers.requested,
            receive = buffers.receive,
            send = buffers.send,
            "QUIC socket buffers"
        ),
    }
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(bind_error)
}

/// Accepts connections until the endpoint is closed.
pub async fn serve(endpoint: quinn::Endpoint, ctx: Arc<LinkContext>) {
    while let Some(incoming) = endpoint.accept().await {
        let ctx = ctx.clone();
        tokio::spawn(async move { handle_incoming(incoming, ctx).await });
    }
}

async fn handle_incoming(incoming: quinn::Incoming, ctx: Arc<LinkContext>) {
    let remote = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            // Unknown CA, expired or revoked certificate, wrong ALPN: rustls says which.
            tracing::warn!(%remote, %error, "QUIC handshake refused");
            return;
        }
    };
    let alpn = connection
        .handshake_data()
        .and_then(|data| data.downcast::<HandshakeData>().ok())
        .and_then(|data| data.protocol);
    match alpn.as_deref() {
        Some(ALPN_ENROLL) => enroll::handle(connection, &ctx).await,
        Some(ALPN_AGENT) => session::handle(connection, ctx).await,
        _ => close(
            &connection,
            close_code::PROTOCOL_VIOLATION,
            "no supported ALPN",
        ),
    }
}

fn close(connection: &quinn::Connection, code: u32, reason: &str) {
    connection.close(code.into(), reason.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reconnect_window_grows_a_second_per_thousand_agents_within_bounds() {
        assert_eq!(reconnect_spread_secs(0), 1);
        assert_eq!(reconnect_spread_secs(10), 1);
        assert_eq!(reconnect_spread_secs(1000), 1);
        assert_eq!(reconnect_spread_secs(1001), 2);
        assert_eq!(reconnect_spread_secs(10_000), 10);
        assert_eq!(reconnect_spread_secs(100_000), 60);
        assert_eq!(reconnect_spread_secs(usize::MAX), 60);
    }
}
