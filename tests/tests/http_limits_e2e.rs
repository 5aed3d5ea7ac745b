//! The HTTP API against slow and greedy clients, with real sockets: headers that never end
//! (slowloris) and idle keep-alive connections are closed after the header timeout, a body
//! that never arrives is answered `408` in the JSON error shape, and one address cannot hold
//! more than its share of connections — while another address is served all along.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use unity_controller::api::serve::HttpLimits;
use unity_e2e::Harness;

const LIMITS: HttpLimits = HttpLimits {
    max_connections: 1000,
    max_per_address: 20,
    header_read_timeout: Duration::from_secs(2),
    body_read_timeout: Duration::from_secs(2),
};

async fn harness() -> Harness {
    let mut h = Harness::start().await;
    h.stop_controller().await;
    h.start_controller_with(|options| options.http_limits = LIMITS)
        .await;
    h
}

/// Connects to `api` from the loopback address `from` (all of 127/8 is this machine).
async fn connect_from(from: &str, api: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(api).await.unwrap()
}

/// Reads until the server closes (or 20 s pass: then the connection was kept, which the
/// caller's assertion reports); returns what it sent and how long it took.
async fn read_to_close(stream: &mut TcpStream) -> (String, Duration) {
    let start = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        start.elapsed(),
    )
}

async fn healthz_from(from: &str, api: SocketAddr) -> String {
    let mut stream = connect_from(from, api).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    read_to_close(&mut stream).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off() {
    let h = harness().await;
    let api = h.controller().api_addr;

    // Headers that never end.
    let mut slow = connect_from("127.0.0.1", api).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // An idle keep-alive connection after one answered request.
    let mut idle = connect_from("127.0.0.1", api).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, waited) = read_to_close(&mut slow).await;
    assert!(answer.is_empty(), "{answer}");
    assert!(
        waited < Duration::from_secs(20),
        "an incomplete request is not held open"
    );
    let (answer, waited) = read_to_close(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        waited < Duration::from_secs(20),
        "an idle keep-alive connection is closed"
    );

    // A body that never arrives.
    let a = h.store.create_tenant("alpha").await.unwrap();
    let token = h.operate_token(a.id).await;
    let mut stalled = connect_from("127.0.0.1", api).await;
    stalled
        .write_all(
            format!(
                "POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"host_id\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (answer, waited) = read_to_close(&mut stalled).await;
    assert!(waited < Duration::from_secs(20), "{answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let h = harness().await;
    let api = h.controller().api_addr;
    // The greedy address holds its share of idle connections...
    let mut held = Vec::new();
    for _ in 0..LIMITS.max_per_address {
        held.push(connect_from("127.0.0.1", api).await);
    }
    // ...one more from it is closed unanswered...
    let answer = healthz_from("127.0.0.1", api).await;
    assert!(answer.is_empty(), "over the per-address limit: {answer}");
    // ...and another address is served meanwhile.
    let answer = healthz_from("127.0.0.2", api).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Once the held ones go, the address is served again.
    drop(held);
    let mut answer = String::new();
    for _ in 0..50 {
        answer = healthz_from("127.0.0.1", api).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// One console login over a real socket from loopback address `from`; the status line and
/// headers of the answer.
async fn login_from(from: &str, api: SocketAddr, name: &str, password: &str) -> String {
    let mut stream = connect_from(from, api).await;
    let body = format!("name={name}&password={}", password.replace(' ', "+"));
    stream
        .write_all(
            format!(
                "POST /login HTTP/1.1\r\nHost: {api}\r\nOrigin: http://{api}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (answer, _) = read_to_close(&mut stream).await;
    answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// An address spraying guesses over many user names is held back — before any password is
/// checked, even with a right one — while another address logs the same user in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_spraying_console_logins_is_held_back_and_no_other() {
    use unity_controller::console::address_throttle::MAX_FAILURES;
    use unity_controller::store::users::{self, Role};
    let h = harness().await;
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let mut tx = h.store.tenant_tx(tenant.id).await.unwrap();
    let password = "correct horse battery staple";
    users::create_user(&mut tx, tenant.id, "alice", Role::Viewer, password)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let api = h.controller().api_addr;
    for i in 0..MAX_FAILURES {
        let answer = login_from("127.0.0.2", api, &format!("user{i}"), "guess guess guess").await;
        assert!(answer.starts_with("HTTP/1.1 401"), "guess {i}: {answer}");
    }
    let held = login_from("127.0.0.2", api, "alice", password).await;
    assert!(held.starts_with("HTTP/1.1 429"), "{held}");
    assert!(
        held.to_ascii_lowercase().contains("retry-after: "),
        "{held}"
    );
    let elsewhere = login_from("127.0.0.3", api, "alice", password).await;
    assert!(elsewhere.starts_with("HTTP/1.1 303"), "{elsewhere}");
}
