//! Real receivers for notification tests: an HTTP server standing in for the webhook-style
//! services (it records every request exactly as it arrived, and answers as told: a status,
//! or not at all), and a real SMTP server (`aiosmtpd`, Debian's `python3-aiosmtpd`) writing
//! what it receives to a maildir.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST`, `PUT`, …
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What the receiver answered (`None`: it hung up without answering).
    pub answered: Option<u16>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How the receiver answers the next request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// Holds the request this long, then drops it unanswered.
    Hang(Duration),
}

#[derive(Debug, Default)]
struct Shared {
    received: Vec<Received>,
    /// Answers for the next requests, in order; then `Status(200)`.
    plan: VecDeque<Answer>,
}

/// An HTTP server on loopback that records requests.
#[derive(Debug, Clone)]
pub struct HttpReceiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl HttpReceiver {
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = shared.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let answer = state
                        .lock()
                        .unwrap()
                        .plan
                        .pop_front()
                        .unwrap_or(Answer::Status(200));
                    let mut received = Received {
                        method: method.to_string(),
                        uri: uri.to_string(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect(),
                        body: body.to_vec(),
                        answered: None,
                    };
                    match answer {
                        Answer::Status(code) => {
                            received.answered = Some(code);
                            state.lock().unwrap().received.push(received);
                            (StatusCode::from_u16(code).unwrap(), "{}").into_response_parts()
                        }
                        Answer::Hang(how_long) => {
                            state.lock().unwrap().received.push(received);
                            tokio::time::sleep(how_long).await;
                            (StatusCode::SERVICE_UNAVAILABLE, "{}").into_response_parts()
                        }
                    }
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next requests get these answers, in order.
    pub fn plan(&self, answers: &[Answer]) {
        self.shared
            .lock()
            .unwrap()
            .plan
            .extend(answers.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// Requests answered 2xx (deliveries).
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered.is_some_and(|c| (200..300).contains(&c)))
            .collect()
    }

    /// Waits until `n` requests were answered 2xx (up to `within`); returns them.
    pub async fn wait_delivered(&self, n: usize, within: Duration) -> Vec<Received> {
        let start = std::time::Instant::now();
        loop {
            let delivered = self.delivered();
            if delivered.len() >= n || start.elapsed() > within {
                return delivered;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

trait IntoParts {
    fn into_response_parts(self) -> axum::response::Response;
}

impl IntoParts for (StatusCode, &'static str) {
    fn into_response_parts(self) -> axum::response::Response {
        use axum::response::IntoResponse;
        (self.0, [("content-type", "application/json")], self.1).into_response()
    }
}

/// `aiosmtpd` on loopback, storing mail in a maildir. Killed when dropped.
#[derive(Debug)]
pub struct SmtpReceiver {
    pub port: u16,
    maildir: PathBuf,
    child: std::process::Child,
}

/// Debian's interpreter, where `python3-aiosmtpd` is installed (a `python3` earlier on the
/// PATH, e.g. pyenv's, does not see it).
const PYTHON: &str = "/usr/bin/python3";

impl SmtpReceiver {
    /// Starts it; `None` when aiosmtpd is not installed (a test must then fail under CI).
    pub async fn start(dir: &Path) -> Option<Self> {
        let available = std::process::Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !available {
            return None;
        }
        let port = crate::engines::free_port();
        let maildir = dir.join("maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let log = std::fs::File::create(dir.join("aiosmtpd.log")).unwrap();
        let mut child = std::process::Command::new(PYTHON)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Self {
                    port,
                    maildir,
                    child,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not start on port {port}");
    }

    /// Every message received so far, raw (headers and body).
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for entry in entries.flatten() {
                    out.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    pub async fn wait_messages(&self, n: usize, within: Duration) -> Vec<String> {
        let start = std::time::Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= n || start.elapsed() > within {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
