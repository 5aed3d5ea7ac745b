//! Carries a rendered [`Delivery`] out: HTTP with reqwest, email with lettre. Thin: the only
//! decision here is whether a failure is worth retrying.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channel::SmtpTls;
use super::message::{Delivery, Method};

/// How a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another try later: the service is down, slow, overloaded or rate-limiting.
    #[error("{0}")]
    Retry(String),
    /// The service refused the message itself (bad token, unknown chat, rejected
    /// recipient): trying again cannot help until the channel is fixed.
    #[error("{0}")]
    Permanent(String),
}

/// Sends HTTP deliveries; one per controller (connection pooling).
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
    timeout: Duration,
}

/// Why the HTTP client could not be built (at start-up, so the controller refuses to run
/// rather than send notifications with the wrong settings or not at all).
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("could not set up TLS for HTTPS deliveries")]
    Tls(#[source] unity_pki::web_tls::WebTlsError),
    #[error("could not build the HTTP client")]
    Http(#[source] reqwest::Error),
}

impl Sender {
    pub fn new(timeout: Duration) -> Result<Self, SenderError> {
        let tls = unity_pki::web_tls::web_client_config().map_err(SenderError::Tls)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(timeout)
            .connect_timeout(timeout)
            // A webhook that redirects elsewhere is not followed: the URL is what was set.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("unity-fleet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SenderError::Http)?;
        Ok(Self { http, timeout })
    }

    pub async fn send(&self, delivery: Delivery) -> Result<(), SendError> {
        match delivery {
            Delivery::Http {
                method,
                url,
                headers,
                body,
            } => {
                let mut request = match method {
                    Method::Post => self.http.post(url.clone()),
                    Method::Put => self.http.put(url.clone()),
                }
                .body(body);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let response = request.send().await.map_err(|e| {
                    SendError::Retry(format!(
                        "{}: {}",
                        redact_url(&url),
                        if e.is_timeout() {
                            format!("no answer within {:?}", self.timeout)
                        } else {
                            crate::error_chain(&e.without_url())
                        }
                    ))
                })?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let text = response.text().await.unwrap_or_default();
                let detail = format!(
                    "{}: HTTP {status}: {}",
                    redact_url(&url),
                    text.chars().take(300).collect::<String>().trim()
                );
                if status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT
                {
                    Err(SendError::Retry(detail))
                } else {
                    Err(SendError::Permanent(detail))
                }
            }
            Delivery::Email {
                target,
                subject,
                body,
                message_id,
            } => self.email(target, subject, body, message_id).await,
        }
    }

    async fn email(
        &self,
        target: super::channel::SmtpTarget,
        subject: String,
        body: String,
        message_id: String,
    ) -> Result<(), SendError> {
        let permanent = |e: &dyn std::fmt::Display| SendError::Permanent(e.to_string());
        let mut message = Message::builder()
            .from(target.from.parse().map_err(|e| permanent(&e))?)
            .subject(subject)
            .message_id(Some(message_id))
            .header(ContentType::TEXT_PLAIN);
        for to in &target.to {
            message = message.to(to.parse().map_err(|e| permanent(&e))?);
        }
        let message = message.body(body).map_err(|e| permanent(&e))?;
        let tls = match target.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls | SmtpTls::Tls => {
                let params = TlsParameters::new(target.host.clone()).map_err(|e| permanent(&e))?;
                if target.tls == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
            .port(target.port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let (Some(user), Some(password)) = (&target.username, &target.password) {
            transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let where_ = format!("smtp {}:{}", target.host, target.port);
        match transport.build().send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("{where_}: {e}"))),
            Err(e) => Err(SendError::Retry(format!(
                "{where_}: {}",
                crate::error_chain(&e)
            ))),
        }
    }
}

/// `scheme://host[:port]/…` — delivery errors are stored and shown; paths and queries of
/// these URLs are often the secret.
fn redact_url(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}/…", url.scheme()),
        (Some(host), None) => format!("{}://{host}/…", url.scheme()),
        _ => "?".into(),
    }
}
