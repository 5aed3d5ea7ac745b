//! What a notification says, and the exact request each service gets. Pure: the alert, the
//! target and the time are passed in; `send` only carries the result.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;
use uuid::Uuid;

use super::channel::{SmtpTarget, Target};
use crate::store::storage::alerts::Severity;

/// Why a message goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Alert,
    /// The alert's object is back to normal (sent to channels that were told of the problem).
    Recovery,
    /// The alert is still open.
    Reminder,
    /// `POST /api/v1/channels/{id}/test`.
    Test,
}

unity_protocol::word_enum!(Reason, UnknownReason, "notification reason", {
    Alert => "alert",
    Recovery => "recovery",
    Reminder => "reminder",
    Test => "test",
});

/// The alert as a message carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    pub id: Uuid,
    pub host_id: Uuid,
    pub hostname: String,
    pub object_kind: String,
    pub object_name: String,
    pub kind: String,
    pub previous: Option<String>,
    pub current: String,
    pub severity: Severity,
    pub message: String,
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
}

/// One notification to render.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// The notification's id: the same on every retry (`X-Unity-Delivery`, the email's
    /// `Message-ID`), so a receiver can drop a repeat.
    pub id: Uuid,
    pub reason: Reason,
    pub tenant: String,
    pub channel: String,
    pub alert: Option<AlertView>,
}

/// The HTTP method of a delivery: every service takes a POST but Matrix, whose idempotent
/// `PUT …/send/…/{txnId}` is what makes its retries safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
}

/// A request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Http {
        method: Method,
        url: Url,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Email {
        target: SmtpTarget,
        subject: String,
        body: String,
        message_id: String,
    },
}

impl Notice {
    /// One line: `[critical] nas: sdb — disk_health`.
    pub fn title(&self) -> String {
        let Some(alert) = &self.alert else {
            return format!("Unity Fleet test message for channel {}", self.channel);
        };
        let tag = match self.reason {
            Reason::Recovery => "resolved".to_owned(),
            Reason::Reminder => format!("still {}", alert.severity),
            Reason::Alert | Reason::Test => alert.severity.to_string(),
        };
        format!(
            "[{tag}] {}: {} — {}",
            alert.hostname, alert.object_name, alert.kind
        )
    }

    /// A few lines for people.
    pub fn text(&self) -> String {
        let Some(alert) = &self.alert else {
            return format!(
                "This channel of tenant {} works: Unity Fleet alerts will arrive here.",
                self.tenant
            );
        };
        let change = match &alert.previous {
            Some(previous) => format!("{previous} → {}", alert.current),
            None => alert.current.clone(),
        };
        let raised = alert.raised_at.format(&Rfc3339).unwrap_or_default();
        let mut text = format!(
            "{}\n{} {} on {}: {change}\nraised {raised} (tenant {})",
            alert.message, alert.object_kind, alert.object_name, alert.hostname, self.tenant
        );
        if self.reason == Reason::Reminder {
            text.push_str("\nThis alert is still open.");
        }
        text
    }

    fn severity(&self) -> Severity {
        match (&self.alert, self.reason) {
            (_, Reason::Recovery) | (None, _) => Severity::Info,
            (Some(alert), _) => alert.severity,
        }
    }
}

/// The generic webhook's JSON body (docs/notifications.md).
#[derive(Serialize)]
struct WebhookBody<'a> {
    id: Uuid,
    reason: Reason,
    tenant: &'a str,
    channel: &'a str,
    title: String,
    text: String,
    alert: &'a Option<AlertView>,
    #[serde(with = "time::serde::rfc3339")]
    sent_at: OffsetDateTime,
}

fn json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// `text` cut to at most `max` characters (services reject longer messages).
fn clipped(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{path}"));
    url.set_query(None);
    url
}

/// The HMAC a webhook receiver checks: `sha256=` hex of HMAC-SHA256 over
/// `"{timestamp}.{body}"` with the channel's secret.
pub fn webhook_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut signed = timestamp.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, &signed).as_ref())
    )
}

const CONTENT_JSON: (&str, &str) = ("content-type", "application/json");

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The request `target` gets for `notice` at `now`; `secret` is the webhook's HMAC key.
pub fn render(notice: &Notice, target: &Target, secret: &[u8], now: OffsetDateTime) -> Delivery {
    let (title, text) = (notice.title(), notice.text());
    let severity = notice.severity();
    match target {
        Target::Webhook { url } => {
            let body = json(&WebhookBody {
                id: notice.id,
                reason: notice.reason,
                tenant: &notice.tenant,
                channel: &notice.channel,
                title,
                text,
                alert: &notice.alert,
                sent_at: now,
            });
            let timestamp = now.unix_timestamp();
            let signature = webhook_signature(secret, timestamp, &body);
            let (id, timestamp) = (notice.id.to_string(), timestamp.to_string());
            Delivery::Http {
                method: Method::Post,
                url: url.clone(),
                headers: headers(&[
                    CONTENT_JSON,
                    ("x-unity-event", notice.reason.as_str()),
                    ("x-unity-delivery", &id),
                    ("x-unity-timestamp", &timestamp),
                    ("x-unity-signature", &signature),
                ]),
                body,
            }
        }
        Target::Ntfy { base, topic, token } => {
            // ntfy's priorities: 5 max/urgent, 4 high, 3 default; tags become emoji.
            let (priority, tag) = match severity {
                Severity::Critical => (5, "rotating_light"),
                Severity::Warning => (4, "warning"),
                _ if notice.reason == Reason::Recovery => (3, "white_check_mark"),
                _ => (3, "information_source"),
            };
            let body = json(&serde_json::json!({
                "topic": topic,
                "title": title,
                "message": clipped(text, 4096),
                "priority": priority,
                "tags": [tag],
            }));
            let auth = token.as_ref().map(|t| format!("Bearer {t}"));
            let mut h = headers(&[CONTENT_JSON]);
            if let Some(auth) = auth {
                h.push(("authorization".into(), auth));
            }
            Delivery::Http {
                method: Method::Post,
                url: base.clone(),
                headers: h,
                body,
            }
        }
        Target::Gotify { base, token } => {
            let priority = match severity {
                Severity::Critical => 8,
                Severity::Warning => 5,
                _ => 2,
            };
            Delivery::Http {
                method: Method::Post,
                url: join(base, "message"),
                headers: headers(&[CONTENT_JSON, ("x-gotify-key", token)]),
                body: json(&serde_json::json!({
                    "title": title,
                    "message": text,
                    "priority": priority,
                })),
            }
        }
        Target::Discord { base, id, token } => Delivery::Http {
            method: Method::Post,
            url: join(base, &format!("api/webhooks/{id}/{token}")),
            headers: headers(&[CONTENT_JSON]),
            body: json(&serde_json::json!({
                "username": "Unity Fleet",
                "content": clipped(format!("**{title}**\n{text}"), 2000),
                // Nothing in an alert may ping @everyone.
                "allowed_mentions": { "parse": [] },
            })),
        },
        Target::Slack { base, path } => Delivery::Http {
            method: Method::Post,
            url: join(base, &format!("services/{path}")),
            headers: headers(&[CONTENT_JSON]),
            body: json(&serde_json::json!({
                "text": clipped(format!("*{title}*\n{text}"), 3000),
            })),
        },
        Target::Telegram { base, token, chat } => Delivery::Http {
            method: Method::Post,
            url: join(base, &format!("bot{token}/sendMessage")),
            headers: headers(&[CONTENT_JSON]),
            body: json(&serde_json::json!({
                "chat_id": chat,
                "text": clipped(format!("{title}\n{text}"), 4096),
                "disable_web_page_preview": true,
            })),
        },
        Target::Matrix { base, token, room } => {
            // The transaction id is the notification's: a retry after a lost answer is the
            // same transaction, which the homeserver answers with the event it already made.
            let mut url = join(base, "_matrix/client/v3/rooms");
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.extend([room.as_str(), "send", "m.room.message"]);
                segments.push(&notice.id.to_string());
            }
            Delivery::Http {
                method: Method::Put,
                url,
                headers: vec![
                    (CONTENT_JSON.0.into(), CONTENT_JSON.1.into()),
                    ("authorization".into(), format!("Bearer {token}")),
                ],
                body: json(&serde_json::json!({
                    "msgtype": "m.text",
                    "body": clipped(format!("{title}\n{text}"), 16_000),
                })),
            }
        }
        Target::Smtp(smtp) => Delivery::Email {
            target: smtp.clone(),
            subject: title,
            body: text,
            message_id: format!("<{}@unity-fleet>", notice.id),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::notify::channel::parse;

    fn notice(reason: Reason) -> Notice {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        Notice {
            id: Uuid::nil(),
            reason,
            tenant: "homelab".into(),
            channel: "phone".into(),
            alert: Some(AlertView {
                id: Uuid::nil(),
                host_id: Uuid::nil(),
                hostname: "nas".into(),
                object_kind: "disk".into(),
                object_name: "sdb".into(),
                kind: "disk_health".into(),
                previous: Some("ok".into()),
                current: "critical".into(),
                severity: Severity::Critical,
                message: "5 reallocated sectors".into(),
                observed_at: at,
                raised_at: at,
            }),
        }
    }

    fn body(delivery: &Delivery) -> serde_json::Value {
        match delivery {
            Delivery::Http { body, .. } => serde_json::from_slice(body).unwrap(),
            Delivery::Email { .. } => panic!("email"),
        }
    }

    #[test]
    fn titles_say_what_changed_and_whether_it_is_over() {
        assert_eq!(
            notice(Reason::Alert).title(),
            "[critical] nas: sdb — disk_health"
        );
        assert_eq!(
            notice(Reason::Recovery).title(),
            "[resolved] nas: sdb — disk_health"
        );
        assert_eq!(
            notice(Reason::Reminder).title(),
            "[still critical] nas: sdb — disk_health"
        );
        assert!(notice(Reason::Alert).text().contains("ok → critical"));
    }

    #[test]
    fn webhook_requests_are_signed_over_timestamp_and_body() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_100).unwrap();
        let target = parse("https://hooks.example.net/in").unwrap();
        let Delivery::Http { headers, body, .. } =
            render(&notice(Reason::Alert), &target, b"k", now)
        else {
            panic!()
        };
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(header("x-unity-timestamp"), "1700000100");
        assert_eq!(
            header("x-unity-signature"),
            webhook_signature(b"k", 1_700_000_100, &body)
        );
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["alert"]["severity"], "critical");
        assert_eq!(json["reason"], "alert");
    }

    #[test]
    fn each_service_gets_its_documented_request() {
        let now = OffsetDateTime::now_utc();
        let n = notice(Reason::Alert);
        let ntfy = render(&n, &parse("ntfy://:tk@ntfy.sh/lab").unwrap(), b"", now);
        assert_eq!(body(&ntfy)["topic"], "lab");
        assert_eq!(body(&ntfy)["priority"], 5);
        let Delivery::Http { url, headers, .. } = &ntfy else {
            panic!()
        };
        assert_eq!(url.as_str(), "https://ntfy.sh/");
        assert!(headers.contains(&("authorization".into(), "Bearer tk".into())));
        let gotify = render(&n, &parse("gotify://g.example.net/T0K").unwrap(), b"", now);
        let Delivery::Http { url, .. } = &gotify else {
            panic!()
        };
        assert_eq!(url.as_str(), "https://g.example.net/message");
        assert_eq!(body(&gotify)["priority"], 8);
        let discord = render(&n, &parse("discord://tok@42").unwrap(), b"", now);
        let Delivery::Http { url, .. } = &discord else {
            panic!()
        };
        assert_eq!(url.as_str(), "https://discord.com/api/webhooks/42/tok");
        assert_eq!(
            body(&discord)["allowed_mentions"]["parse"],
            serde_json::json!([])
        );
        let slack = render(&n, &parse("slack://T1/B2/X3").unwrap(), b"", now);
        let Delivery::Http { url, .. } = &slack else {
            panic!()
        };
        assert_eq!(url.as_str(), "https://hooks.slack.com/services/T1/B2/X3");
        let telegram = render(
            &n,
            &parse("telegram://1:ab@telegram?chats=99&base=http://127.0.0.1:9/").unwrap(),
            b"",
            now,
        );
        let Delivery::Http { url, .. } = &telegram else {
            panic!()
        };
        assert_eq!(url.as_str(), "http://127.0.0.1:9/bot1:ab/sendMessage");
        assert_eq!(body(&telegram)["chat_id"], "99");
        let long = Notice {
            alert: n.alert.clone().map(|mut a| {
                a.message = "x".repeat(5000);
                a
            }),
            ..n
        };
        let discord = render(&long, &parse("discord://tok@42").unwrap(), b"", now);
        assert_eq!(
            body(&discord)["content"].as_str().unwrap().chars().count(),
            2000
        );
    }
}
