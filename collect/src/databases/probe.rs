//! The wire probes: connect, do one read-only exchange without credentials, classify.
//!
//! Every probe is bounded by one timeout for connect + exchange. A server that says nothing
//! for half the timeout gets `\r\n\r\n` (the "nudge"): line-based servers such as HTTP then
//! answer with an error and are reported as `WrongProtocol` instead of `Timeout`; a real
//! database of the probed kind has answered long before. The parsers live in [`super::wire`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::identify::normalise_mysql_version;
use super::model::{DatabaseKind, ListenAddr, ProbeDetails, ProbeOutcome, ProbeResult};
use super::wire::{self, Parse, describe_bytes};

/// Bytes sent to a silent server halfway through the timeout.
const NUDGE: &[u8] = b"\r\n\r\n";
/// Never buffer more than this from one server.
const MAX_READ: usize = 512 * 1024;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Where to connect for a listen address: an unspecified address (`0.0.0.0`, `::`) is
/// reached on loopback of the same family.
pub fn connect_target(addr: &ListenAddr) -> ListenAddr {
    match addr {
        ListenAddr::Tcp { ip, port } if ip.is_unspecified() => ListenAddr::Tcp {
            ip: match ip {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            },
            port: *port,
        },
        other => other.clone(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How an exchange ended when it did not produce a parsed answer.
enum Failed {
    Outcome(ProbeOutcome),
}

async fn connect(addr: &ListenAddr, deadline: Instant) -> Result<Box<dyn Io>, ProbeOutcome> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let result = match addr {
        ListenAddr::Tcp { ip, port } => {
            tokio::time::timeout(remaining, tokio::net::TcpStream::connect((*ip, *port)))
                .await
                .map(|r| r.map(|s| Box::new(s) as Box<dyn Io>))
        }
        ListenAddr::Unix { path } => {
            if path.starts_with('@') {
                return Err(ProbeOutcome::Error {
                    detail: "abstract unix sockets are not probed".to_owned(),
                });
            }
            tokio::time::timeout(remaining, tokio::net::UnixStream::connect(path))
                .await
                .map(|r| r.map(|s| Box::new(s) as Box<dyn Io>))
        }
    };
    match result {
        Err(_) => Err(ProbeOutcome::Timeout {
            after_ms: millis(remaining),
        }),
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(match e.kind() {
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound => {
                ProbeOutcome::Refused
            }
            _ => ProbeOutcome::Error {
                detail: format!("connect to {addr}: {e}"),
            },
        }),
    }
}

/// Writes `request` (if any), then reads until `parse` decides, the server closes, or the
/// deadline passes. A failed write is not final: a server that talked and hung up first
/// (a greeting, an error) is still read and classified.
async fn exchange<T>(
    stream: &mut Box<dyn Io>,
    request: &[u8],
    deadline: Instant,
    nudge: bool,
    parse: impl Fn(&[u8]) -> Parse<T>,
) -> Result<T, Failed> {
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut write_error = None;
    if !request.is_empty() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, stream.write_all(request)).await {
            Err(_) => {
                return Err(Failed::Outcome(ProbeOutcome::Timeout {
                    after_ms: millis(started.elapsed()),
                }));
            }
            Ok(Err(e)) => write_error = Some(e),
            Ok(Ok(())) => {}
        }
    }
    let nudge_at = started + deadline.saturating_duration_since(started) / 2;
    let mut nudged = !nudge || write_error.is_some();
    let mut chunk = [0u8; 8192];
    loop {
        match parse(&buf) {
            Parse::Done(t) => return Ok(t),
            Parse::NotThisProtocol(seen) => {
                return Err(Failed::Outcome(ProbeOutcome::WrongProtocol { seen }));
            }
            Parse::Incomplete => {}
        }
        if buf.len() >= MAX_READ {
            return Err(Failed::Outcome(ProbeOutcome::WrongProtocol {
                seen: format!("{} bytes without a complete answer", buf.len()),
            }));
        }
        let waiting_for_nudge = !nudged && buf.is_empty();
        let until = if waiting_for_nudge {
            nudge_at
        } else {
            deadline
        };
        let remaining = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, stream.read(&mut chunk)).await {
            Err(_) if waiting_for_nudge => {
                nudged = true;
                tracing::debug!("no answer yet; nudging with CRLF CRLF");
                let remaining = deadline.saturating_duration_since(Instant::now());
                // A failed nudge changes nothing: keep reading until the deadline.
                let _ = tokio::time::timeout(remaining, stream.write_all(NUDGE)).await;
            }
            Err(_) => {
                return Err(Failed::Outcome(ProbeOutcome::Timeout {
                    after_ms: millis(started.elapsed()),
                }));
            }
            Ok(Ok(0)) => {
                let seen = if buf.is_empty() {
                    "the connection closed without a reply".to_owned()
                } else {
                    format!("{}, then the connection closed", describe_bytes(&buf))
                };
                return Err(Failed::Outcome(ProbeOutcome::WrongProtocol { seen }));
            }
            Ok(Ok(n)) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Ok(Err(e)) if is_reset(&e) => {
                let seen = if buf.is_empty() {
                    format!("the connection was reset without a reply ({e})")
                } else {
                    format!("{}, then the connection was reset", describe_bytes(&buf))
                };
                return Err(Failed::Outcome(ProbeOutcome::WrongProtocol { seen }));
            }
            Ok(Err(e)) => {
                let detail = match &write_error {
                    Some(w) => format!("sending the request failed ({w}), then reading: {e}"),
                    None => format!("reading the reply: {e}"),
                };
                return Err(Failed::Outcome(ProbeOutcome::Error { detail }));
            }
        }
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

/// Runs one probe of `kind` against `addr` (unspecified addresses go to loopback).
pub async fn probe(kind: DatabaseKind, addr: &ListenAddr, timeout: Duration) -> ProbeResult {
    match kind {
        DatabaseKind::Postgres => probe_postgres(addr, timeout).await,
        DatabaseKind::MySql => probe_mysql(addr, timeout).await,
        DatabaseKind::MongoDb => probe_mongodb(addr, timeout).await,
        DatabaseKind::Redis => probe_redis(addr, timeout).await,
        DatabaseKind::MinIo => probe_minio(addr, timeout).await,
    }
}

/// Connects and runs `body`, turning every failure into a [`ProbeResult`].
async fn run<F, Fut>(
    kind: DatabaseKind,
    addr: &ListenAddr,
    timeout: Duration,
    body: F,
) -> ProbeResult
where
    F: FnOnce(Box<dyn Io>, Instant) -> Fut,
    Fut: std::future::Future<Output = Result<(ProbeOutcome, ProbeDetails), Failed>>,
{
    let target = connect_target(addr);
    let started = Instant::now();
    let deadline = started + timeout;
    let (outcome, details) = match connect(&target, deadline).await {
        Err(outcome) => (outcome, ProbeDetails::None),
        Ok(stream) => match body(stream, deadline).await {
            Ok(r) => r,
            Err(Failed::Outcome(o)) => (o, ProbeDetails::None),
        },
    };
    tracing::debug!(?kind, address = %target, ?outcome, "database probe finished");
    ProbeResult {
        kind,
        address: target,
        outcome,
        details,
        elapsed_ms: millis(started.elapsed()),
    }
}

/// PostgreSQL: `SSLRequest`, expect `S` or `N`. No startup packet, so no login attempt.
pub async fn probe_postgres(addr: &ListenAddr, timeout: Duration) -> ProbeResult {
    use wire::postgres::{SSL_REQUEST, SslReply, parse_ssl_reply};
    run(
        DatabaseKind::Postgres,
        addr,
        timeout,
        |mut s, deadline| async move {
            let reply = exchange(&mut s, &SSL_REQUEST, deadline, true, parse_ssl_reply).await?;
            Ok(match reply {
                SslReply::SslSupported(ssl_supported) => (
                    ProbeOutcome::Confirmed,
                    ProbeDetails::Postgres { ssl_supported },
                ),
                SslReply::Error(message) => (
                    ProbeOutcome::Error {
                        detail: format!("server answered SSLRequest with an error: {message}"),
                    },
                    ProbeDetails::None,
                ),
            })
        },
    )
    .await
}

/// MySQL/MariaDB: read the server's greeting (or its refusal) and hang up.
pub async fn probe_mysql(addr: &ListenAddr, timeout: Duration) -> ProbeResult {
    use wire::mysql::{FirstPacket, parse_first_packet};
    run(
        DatabaseKind::MySql,
        addr,
        timeout,
        |mut s, deadline| async move {
            let packet = exchange(&mut s, &[], deadline, true, parse_first_packet).await?;
            Ok(match packet {
                FirstPacket::Greeting(g) => (
                    ProbeOutcome::Confirmed,
                    ProbeDetails::MySql {
                        protocol_version: g.protocol_version,
                        server_version: normalise_mysql_version(&g.server_version).to_owned(),
                        connection_id: g.connection_id,
                        capability_flags: g.capability_flags,
                        auth_plugin: g.auth_plugin,
                        error_code: None,
                    },
                ),
                FirstPacket::Error { code, message } => {
                    let detail = format!("error {code}: {message}");
                    let outcome = match code {
                        // ER_HOST_IS_BLOCKED, ER_HOST_NOT_PRIVILEGED: this client host is refused.
                        1129 | 1130 => ProbeOutcome::AuthRequired { detail },
                        _ => ProbeOutcome::Error { detail },
                    };
                    (
                        outcome,
                        ProbeDetails::MySql {
                            protocol_version: 0,
                            server_version: String::new(),
                            connection_id: 0,
                            capability_flags: 0,
                            auth_plugin: None,
                            error_code: Some(code),
                        },
                    )
                }
            })
        },
    )
    .await
}

/// Redis/Valkey: `PING` and `INFO server`, pipelined.
pub async fn probe_redis(addr: &ListenAddr, timeout: Duration) -> ProbeResult {
    use wire::redis::{PING_AND_INFO, Reply, is_auth_error, parse_info, parse_reply};
    run(
        DatabaseKind::Redis,
        addr,
        timeout,
        |mut s, deadline| async move {
            let parse_two = |b: &[u8]| match parse_reply(b) {
                Parse::Done((first @ Reply::Simple(_), used))
                    if first == Reply::Simple("PONG".into()) =>
                {
                    match parse_reply(b.get(used..).unwrap_or_default()) {
                        Parse::Done((second, _)) => Parse::Done((first, second)),
                        Parse::Incomplete => Parse::Incomplete,
                        Parse::NotThisProtocol(s) => Parse::NotThisProtocol(s),
                    }
                }
                // An error to PING (NOAUTH…) decides; the INFO error that follows is the same.
                Parse::Done((Reply::Error(e), _)) if looks_like_redis_error(&e) => {
                    Parse::Done((Reply::Error(e.clone()), Reply::Error(e)))
                }
                Parse::Done(_) => Parse::NotThisProtocol(describe_bytes(b)),
                Parse::Incomplete => Parse::Incomplete,
                Parse::NotThisProtocol(s) => Parse::NotThisProtocol(s),
            };
            let (_, second) = exchange(&mut s, PING_AND_INFO, deadline, true, parse_two).await?;
            Ok(match second {
                Reply::Bulk(Some(text)) => match parse_info(&String::from_utf8_lossy(&text)) {
                    Some(info) => (
                        ProbeOutcome::Confirmed,
                        ProbeDetails::Redis {
                            flavour: info.flavour,
                            version: info.version,
                            mode: info.mode,
                            os: info.os,
                            tcp_port: info.tcp_port,
                            process_id: info.process_id,
                            executable: info.executable,
                            config_file: info.config_file,
                        },
                    ),
                    None => (
                        ProbeOutcome::Error {
                            detail: "PONG, but INFO server had no `key:value` lines".to_owned(),
                        },
                        ProbeDetails::None,
                    ),
                },
                Reply::Error(e) if is_auth_error(&e) => {
                    (ProbeOutcome::AuthRequired { detail: e }, ProbeDetails::None)
                }
                Reply::Error(e) => (ProbeOutcome::Error { detail: e }, ProbeDetails::None),
                other => (
                    ProbeOutcome::Error {
                        detail: format!("PONG, but INFO answered {other:?}"),
                    },
                    ProbeDetails::None,
                ),
            })
        },
    )
    .await
}

/// Redis errors start with an upper-case code word (`ERR`, `NOAUTH`, `WRONGTYPE`…).
fn looks_like_redis_error(e: &str) -> bool {
    let word = e.split(' ').next().unwrap_or_default();
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase())
}

/// MongoDB: OP_MSG `hello`, then `buildInfo` (allowed without authentication on stock
/// servers) for the version.
pub async fn probe_mongodb(addr: &ListenAddr, timeout: Duration) -> ProbeResult {
    use wire::mongo::{
        BUILD_INFO_REQUEST_ID, HELLO_REQUEST_ID, command, is_auth_error, parse_reply,
    };
    run(
        DatabaseKind::MongoDb,
        addr,
        timeout,
        |mut s, deadline| async move {
            let hello = exchange(
                &mut s,
                &command("hello", HELLO_REQUEST_ID),
                deadline,
                true,
                |b| parse_reply(b, HELLO_REQUEST_ID),
            )
            .await?;
            if !hello.ok {
                let detail = hello
                    .errmsg
                    .clone()
                    .unwrap_or_else(|| "hello: ok 0".to_owned());
                let outcome = if is_auth_error(&hello) {
                    ProbeOutcome::AuthRequired { detail }
                } else {
                    ProbeOutcome::Error { detail }
                };
                return Ok((outcome, ProbeDetails::None));
            }
            let version = match exchange(
                &mut s,
                &command("buildInfo", BUILD_INFO_REQUEST_ID),
                deadline,
                false,
                |b| parse_reply(b, BUILD_INFO_REQUEST_ID),
            )
            .await
            {
                Ok(b) if b.ok => b.version,
                Ok(b) => {
                    tracing::debug!(errmsg = ?b.errmsg, "buildInfo refused; version unknown");
                    None
                }
                Err(Failed::Outcome(o)) => {
                    tracing::debug!(outcome = ?o, "buildInfo failed after hello; version unknown");
                    None
                }
            };
            Ok((
                ProbeOutcome::Confirmed,
                ProbeDetails::MongoDb {
                    min_wire_version: hello.min_wire_version,
                    max_wire_version: hello.max_wire_version,
                    is_writable_primary: hello.is_writable_primary,
                    version,
                },
            ))
        },
    )
    .await
}

/// MinIO: `GET /minio/health/live`, expect a `Server: MinIO` header.
pub async fn probe_minio(addr: &ListenAddr, timeout: Duration) -> ProbeResult {
    use wire::http::{health_request, is_minio, parse_response_head};
    let host = connect_target(addr).to_string();
    run(
        DatabaseKind::MinIo,
        addr,
        timeout,
        |mut s, deadline| async move {
            let head = exchange(
                &mut s,
                &health_request(&host),
                deadline,
                false,
                parse_response_head,
            )
            .await?;
            let server_header = head.header("server").map(str::to_owned);
            if !is_minio(&head) {
                return Ok((
                    ProbeOutcome::WrongProtocol {
                        seen: format!(
                            "HTTP {} from server {:?}, not MinIO",
                            head.status,
                            server_header.as_deref().unwrap_or("(no Server header)")
                        ),
                    },
                    ProbeDetails::None,
                ));
            }
            let outcome = match head.status {
                200..=299 => ProbeOutcome::Confirmed,
                401 | 403 => ProbeOutcome::AuthRequired {
                    detail: format!("HTTP {}", head.status),
                },
                // 503 while healing or without quorum: still MinIO.
                _ => ProbeOutcome::Confirmed,
            };
            Ok((
                outcome,
                ProbeDetails::MinIo {
                    status: head.status,
                    server_header,
                },
            ))
        },
    )
    .await
}
