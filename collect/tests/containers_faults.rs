//! What the container collector reports when a registry or an engine misbehaves. The
//! misbehaving peers are small real servers on loopback (TCP for registries, a unix socket
//! for engines) that answer with exactly the bytes a broken peer would send.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use unity_collect::containers::registry::RegistryClient;
use unity_collect::containers::{
    CollectorStatus, ContainerCollector, ContainerConfig, EngineStatus, ImageReference,
    RegistryCredential, UnknownReason, UpdateCheckConfig,
};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Reads one request head; returns it as text.
async fn read_head<S: AsyncReadExt + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&byte[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A loopback HTTP server answering each request with `respond(request_head)`, counting
/// requests. `None` from `respond` means: accept and never answer.
async fn serve(
    respond: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let respond = respond.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let head = read_head(&mut socket).await;
                counter.fetch_add(1, Ordering::SeqCst);
                match respond(&head) {
                    Some(answer) => {
                        let _ = socket.write_all(answer.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    (format!("127.0.0.1:{}", addr.port()), count)
}

fn http(status: &str, headers: &[&str], body: &str) -> String {
    let mut s = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.push_str(body);
    s
}

fn client(timeout_ms: u64) -> RegistryClient {
    RegistryClient::new(&UpdateCheckConfig {
        request_timeout: Duration::from_millis(timeout_ms),
        ..UpdateCheckConfig::default()
    })
    .unwrap()
}

async fn ask(addr: &str) -> Result<String, UnknownReason> {
    let reference = ImageReference::parse(&format!("{addr}/unity/app:stable")).unwrap();
    client(2000).manifest_digest(&reference).await
}

#[tokio::test]
async fn head_request_carries_all_manifest_types_and_reads_the_digest() {
    let (addr, count) = serve(|head| {
        let lower = head.to_ascii_lowercase();
        let ok = head.starts_with("HEAD /v2/unity/app/manifests/stable ")
            && [
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            ]
            .iter()
            .all(|t| lower.contains(t));
        Some(if ok {
            http("200 OK", &[&format!("Docker-Content-Digest: {DIGEST}")], "")
        } else {
            http("400 Bad Request", &[], "")
        })
    })
    .await;
    assert_eq!(ask(&addr).await, Ok(DIGEST.to_owned()));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn anonymous_bearer_token_flow() {
    let (token_addr, _) = serve(|head| {
        Some(
            if head.starts_with(
                "GET /token?service=unity-registry&scope=repository%3Aunity%2Fapp%3Apull ",
            ) {
                http(
                    "200 OK",
                    &["Content-Type: application/json"],
                    r#"{"token":"anon-123"}"#,
                )
            } else {
                http("400 Bad Request", &[], "")
            },
        )
    })
    .await;
    let realm = format!("http://{token_addr}/token");
    let (addr, count) = serve(move |head| {
        Some(if head.contains("Authorization: Bearer anon-123") || head.contains("authorization: Bearer anon-123") {
            http("200 OK", &[&format!("Docker-Content-Digest: {DIGEST}")], "")
        } else {
            http(
                "401 Unauthorized",
                &[&format!(
                    r#"WWW-Authenticate: Bearer realm="{realm}",service="unity-registry",scope="repository:unity/app:pull""#
                )],
                "",
            )
        })
    })
    .await;
    assert_eq!(ask(&addr).await, Ok(DIGEST.to_owned()));
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn token_service_failures_are_precise() {
    for (token_answer, expect) in [
        (http("200 OK", &[], "<html>not json</html>"), "BadResponse"),
        (http("200 OK", &[], r#"{"expires_in":60}"#), "BadResponse"),
        (http("401 Unauthorized", &[], ""), "Unauthorized"),
        (
            http("429 Too Many Requests", &["Retry-After: 7"], ""),
            "RateLimited",
        ),
    ] {
        let (token_addr, _) = serve(move |_| Some(token_answer.clone())).await;
        let realm = format!("http://{token_addr}/token");
        let (addr, _) = serve(move |_| {
            Some(http(
                "401 Unauthorized",
                &[&format!(r#"WWW-Authenticate: Bearer realm="{realm}""#)],
                "",
            ))
        })
        .await;
        let got = ask(&addr).await.unwrap_err();
        assert!(format!("{got:?}").starts_with(expect), "{expect}: {got:?}");
        if let UnknownReason::RateLimited { retry_after_s, .. } = got {
            assert_eq!(retry_after_s, Some(7));
        }
    }
}

#[tokio::test]
async fn registry_errors_map_to_precise_unknown_reasons() {
    let answers = [
        http("401 Unauthorized", &[], ""),
        http(
            "401 Unauthorized",
            &[r#"WWW-Authenticate: Basic realm="private""#],
            "",
        ),
        http("429 Too Many Requests", &["Retry-After: 30"], ""),
        http("500 Internal Server Error", &[], "oops"),
        http("503 Service Unavailable", &[], ""),
        http("404 Not Found", &[], ""),
        http("302 Found", &["Location: /elsewhere-without-end"], ""),
        http("200 OK", &[], ""),
        http("200 OK", &["Docker-Content-Digest: garbage"], ""),
        "this is not HTTP at all\r\n\r\n".to_owned(),
    ];
    let mut got = Vec::new();
    for answer in answers {
        let (addr, _) = serve(move |_| Some(answer.clone())).await;
        let reason = ask(&addr).await.unwrap_err();
        // The registry name is the reference's host:port; strip it for comparison.
        got.push(format!("{reason:?}").replace(&addr, "R"));
    }
    let expected = [
        r#"Unauthorized { registry: "R", detail: "401 without a Bearer token realm to ask for a token" }"#,
        r#"Unauthorized { registry: "R", detail: "401 with a Basic challenge and no credentials configured for this registry" }"#,
        r#"RateLimited { registry: "R", retry_after_s: Some(30) }"#,
        r#"ServerError { registry: "R", status: 500 }"#,
        r#"ServerError { registry: "R", status: 503 }"#,
        r#"NotFound { registry: "R" }"#,
    ];
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g, e);
    }
    // A redirect loop ends as an error, not a hang; which one depends on the HTTP client.
    assert!(
        got[6].starts_with("RegistryUnreachable") || got[6].starts_with("NotFound"),
        "{}",
        got[6]
    );
    assert_eq!(
        got[7],
        r#"BadResponse { registry: "R", detail: "200 without a Docker-Content-Digest header" }"#
    );
    assert!(got[8].starts_with(r#"BadResponse { registry: "R", detail: "Docker-Content-Digest: invalid digest `garbage`"#), "{}", got[8]);
    assert!(
        got[9].starts_with(r#"RegistryUnreachable { registry: "R""#),
        "{}",
        got[9]
    );
}

#[tokio::test]
async fn basic_credentials_answer_a_basic_challenge_and_are_never_logged() {
    let (addr, _) = serve(|head| {
        // "unity:s3cret" in base64
        Some(if head.contains("Basic dW5pdHk6czNjcmV0") {
            http("200 OK", &[&format!("Docker-Content-Digest: {DIGEST}")], "")
        } else {
            http(
                "401 Unauthorized",
                &[r#"WWW-Authenticate: Basic realm="x""#],
                "",
            )
        })
    })
    .await;
    let mut config = UpdateCheckConfig {
        request_timeout: Duration::from_secs(2),
        ..UpdateCheckConfig::default()
    };
    config.credentials.insert(
        addr.clone(),
        RegistryCredential::Basic {
            username: "unity".to_owned(),
            password: "s3cret".to_owned(),
        },
    );
    let client = RegistryClient::new(&config).unwrap();
    assert!(!format!("{client:?}").contains("s3cret"));
    let reference = ImageReference::parse(&format!("{addr}/unity/app:stable")).unwrap();
    assert_eq!(
        client.manifest_digest(&reference).await,
        Ok(DIGEST.to_owned())
    );
}

#[tokio::test]
async fn unreachable_and_hanging_registries_end_within_the_timeout() {
    // Nothing listens on this port once the listener is gone.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reason = ask(&format!("127.0.0.1:{port}")).await.unwrap_err();
    assert!(
        matches!(reason, UnknownReason::RegistryUnreachable { .. }),
        "{reason:?}"
    );

    let (addr, _) = serve(|_| None).await;
    let reference = ImageReference::parse(&format!("{addr}/unity/app:stable")).unwrap();
    let reason = tokio::time::timeout(
        Duration::from_secs(10),
        client(300).manifest_digest(&reference),
    )
    .await
    .expect("the registry request must give up at its own timeout")
    .unwrap_err();
    assert_eq!(
        reason,
        UnknownReason::RegistryUnreachable {
            registry: addr,
            detail: "timed out".to_owned()
        }
    );
}

// ---- engines ----

fn engine_config(socket: &std::path::Path, timeout_ms: u64) -> ContainerConfig {
    ContainerConfig {
        honour_docker_host: false,
        endpoints: vec![format!("unix://{}", socket.display())],
        api_timeout: Duration::from_millis(timeout_ms),
        ..ContainerConfig::default()
    }
}

/// A unix-socket "engine" answering every request with `answer` (`None`: never answers).
fn fake_engine(dir: &std::path::Path, answer: Option<String>) -> std::path::PathBuf {
    let path = dir.join("engine.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let _ = read_head(&mut socket).await;
                match answer {
                    Some(a) => {
                        let _ = socket.write_all(a.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    path
}

#[tokio::test]
async fn no_engine_socket_is_no_engine_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = engine_config(&dir.path().join("absent.sock"), 500);
    let inventory = ContainerCollector::new(config).collect().await;
    assert_eq!(inventory.status, CollectorStatus::NoEngine);
    assert!(inventory.engines.is_empty());
}

#[tokio::test]
async fn hanging_engine_times_out_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let socket = fake_engine(dir.path(), None);
    let inventory = tokio::time::timeout(
        Duration::from_secs(20),
        ContainerCollector::new(engine_config(&socket, 300)).collect(),
    )
    .await
    .expect("a hung engine must not stall the collection");
    assert_eq!(inventory.status, CollectorStatus::AllEnginesFailed);
    assert_eq!(
        inventory.engines[0].status,
        EngineStatus::TimedOut {
            call: "version negotiation".to_owned(),
            timeout_ms: 300
        }
    );
}

#[tokio::test]
async fn engine_error_answers_are_reported_with_status_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let body = r#"{"message":"engine is shutting down"}"#;
    let socket = fake_engine(
        dir.path(),
        Some(http(
            "500 Internal Server Error",
            &["Content-Type: application/json"],
            body,
        )),
    );
    let inventory = ContainerCollector::new(engine_config(&socket, 2000))
        .collect()
        .await;
    assert_eq!(inventory.status, CollectorStatus::AllEnginesFailed);
    assert_eq!(
        inventory.engines[0].status,
        EngineStatus::EngineError {
            call: "version negotiation".to_owned(),
            status: 500,
            message: "engine is shutting down".to_owned()
        }
    );
}

#[tokio::test]
async fn engine_garbage_and_stale_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = fake_engine(
        dir.path(),
        Some(http(
            "200 OK",
            &["Content-Type: application/json"],
            "[[[not an engine",
        )),
    );
    let inventory = ContainerCollector::new(engine_config(&socket, 2000))
        .collect()
        .await;
    assert!(
        matches!(
            inventory.engines[0].status,
            EngineStatus::Unparseable { .. }
        ),
        "{:?}",
        inventory.engines[0].status
    );
    // A socket file nobody listens on any more (the engine died).
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let inventory = ContainerCollector::new(engine_config(&stale, 2000))
        .collect()
        .await;
    assert!(
        matches!(
            inventory.engines[0].status,
            EngineStatus::Unreachable { .. }
        ),
        "{:?}",
        inventory.engines[0].status
    );
}
