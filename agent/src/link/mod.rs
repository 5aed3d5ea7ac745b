//! The agent's side of the QUIC link: endpoints, connecting, and the session protocol.

pub mod backoff;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;

pub use session::{Session, SessionError};

/// A keep-alive after 15 s without a packet from the controller (well inside the 30 s a home
/// router keeps a UDP mapping), and a controller silent for 45 s is gone. QUIC uses the smaller
/// of both sides' idle timeouts, so 45 s is an upper bound: the controller's
/// `agent_idle_timeout_secs` may shorten it. Every keep-alive costs the controller a packet in
/// and one out, which is what an idle fleet costs it (docs/performance.md, "100 000 agents"):
/// 15 s rather than 5 s is a third of that, at the price of noticing a controller killed
/// without a word in 45 s instead of 15 s (reports wait in the spool meanwhile).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Waiting longer than this for a reply to a control request or an enrollment means the
/// controller is not answering (each is one short PostgreSQL transaction, or a step-ca call).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(12);
/// Waiting longer than this for the Welcome or a report's acknowledgement means the
/// controller is not answering. Longer than [`REPLY_TIMEOUT`] because a busy controller
/// queues check-ins and reports rather than failing them (its admission waits, in order,
/// for as long as it takes): 10 000 agents' storage rounds at once take 10–20 s to drain on
/// a two-core controller, and an agent that gave up at 12 s would only queue its resend
/// behind the copy still waiting. A dead controller is noticed by the idle timeout, not this.
pub const QUEUED_REPLY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("could not resolve controller address `{address}`")]
    Resolve {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("controller address `{address}` resolved to nothing")]
    NoAddress { address: String },
    #[error("TLS configuration cannot be used for QUIC")]
    Crypto(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("could not open a local UDP socket")]
    Socket(#[source] std::io::Error),
    #[error("could not start connecting to {addr}")]
    Start {
        addr: SocketAddr,
        #[source]
        source: quinn::ConnectError,
    },
    #[error("connection to {addr} failed")]
    Connection {
        addr: SocketAddr,
        #[source]
        source: quinn::ConnectionError,
    },
    #[error("{addr} did not complete the handshake within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

/// How long one of several controller addresses may take to handshake before the next is
/// tried: a replica that died answers nothing (QUIC ignores the ICMP), and waiting the whole
/// idle timeout on it would hold the agent away from the live ones.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves `HOST:PORT` to the first address.
pub async fn resolve(address: &str) -> Result<SocketAddr, ConnectError> {
    resolve_all(address)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ConnectError::NoAddress {
            address: address.to_owned(),
        })
}

/// Every address of a controller setting: one `HOST:PORT`, or several separated by commas
/// (controller replicas), each name with all the addresses it resolves to (a DNS name with
/// one record per replica, a Kubernetes headless Service), without duplicates.
pub async fn resolve_all(address: &str) -> Result<Vec<SocketAddr>, ConnectError> {
    let mut all = Vec::new();
    for part in address.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let found =
            tokio::net::lookup_host(part)
                .await
                .map_err(|source| ConnectError::Resolve {
                    address: part.to_owned(),
                    source,
                })?;
        for addr in found {
            if !all.contains(&addr) {
                all.push(addr);
            }
        }
    }
    if all.is_empty() {
        return Err(ConnectError::NoAddress {
            address: address.to_owned(),
        });
    }
    Ok(all)
}

/// Connects to the first of the controller's addresses that completes a handshake, starting
/// at a random one so a fleet spreads over the replicas (and moves to the others when one
/// dies). With several addresses each attempt is bounded by [`ATTEMPT_TIMEOUT`]; the error
/// is the last attempt's.
pub async fn connect_any(
    address: &str,
    tls: rustls::ClientConfig,
) -> Result<(quinn::Endpoint, quinn::Connection), ConnectError> {
    let mut addrs = resolve_all(address).await?;
    if addrs.len() == 1 {
        return connect(addrs[0], tls).await;
    }
    let start = (backoff::random_unit() * addrs.len() as f64) as usize % addrs.len();
    addrs.rotate_left(start);
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, connect(addr, tls.clone())).await {
            Ok(Ok(pair)) => return Ok(pair),
            Ok(Err(error)) => {
                tracing::info!(%addr, error = %unity_collect::ErrorChain(&error), "controller address not answering; trying the next");
                last = Some(error);
            }
            Err(_) => {
                tracing::info!(%addr, "controller address timed out; trying the next");
                last = Some(ConnectError::Timeout {
                    addr,
                    timeout: ATTEMPT_TIMEOUT,
                });
            }
        }
    }
    Err(last.unwrap_or(ConnectError::NoAddress {
        address: address.to_owned(),
    }))
}

/// Connects to the controller at `addr` with `tls`, verifying it as
/// [`unity_pki::CONTROLLER_SERVER_NAME`] whatever address was dialled.
pub async fn connect(
    addr: SocketAddr,
    tls: rustls::ClientConfig,
) -> Result<(quinn::Endpoint, quinn::Connection), ConnectError> {
    let endpoint = client_endpoint(addr)?;
    let connection = connect_with(&endpoint, addr, tls).await?;
    Ok((endpoint, connection))
}

/// A client endpoint (one UDP socket) able to reach `addr`'s address family.
pub fn client_endpoint(addr: SocketAddr) -> Result<quinn::Endpoint, ConnectError> {
    let bind: SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    quinn::Endpoint::client(bind).map_err(ConnectError::Socket)
}

/// Connects over an existing endpoint (many connections may share one; the benchmark does).
pub async fn connect_with(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    tls: rustls::ClientConfig,
) -> Result<quinn::Connection, ConnectError> {
    let crypto = QuicClientConfig::try_from(tls).map_err(ConnectError::Crypto)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    if let Ok(idle) = IDLE_TIMEOUT.try_into() {
        transport.max_idle_timeout(Some(idle));
    }
    config.transport_config(Arc::new(transport));
    let connecting = endpoint
        .connect_with(config, addr, unity_pki::CONTROLLER_SERVER_NAME)
        .map_err(|source| ConnectError::Start { addr, source })?;
    connecting
        .await
        .map_err(|source| ConnectError::Connection { addr, source })
}
