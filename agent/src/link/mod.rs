//! The agent's side of the QUIC link: endpoints, connecting, and the session protocol.

pub mod backoff;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;

pub use session::{Session, SessionError};

/// Keep-alives every 5 s; a controller silent for 15 s is considered gone (QUIC uses the
/// smaller of both sides' idle timeouts, so this is what applies): a dead controller is
/// noticed in seconds, and an unreachable one fails the handshake as quickly.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Waiting longer than this for a reply means the controller is not answering (a report is
/// one PostgreSQL transaction; the controller's own pool gives up after 10 s).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(12);

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
}

/// Resolves `HOST:PORT` to the first address.
pub async fn resolve(address: &str) -> Result<SocketAddr, ConnectError> {
    tokio::net::lookup_host(address)
        .await
        .map_err(|source| ConnectError::Resolve {
            address: address.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| ConnectError::NoAddress {
            address: address.to_owned(),
        })
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
