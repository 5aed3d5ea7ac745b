//! Channel URLs: one string per channel says where and how to deliver (shoutrrr-style, the
//! schemes in docs/notifications.md). Parsing is pure and checks everything a delivery needs,
//! so a channel that was accepted can always be tried.

use url::Url;

/// Where a channel delivers, parsed from its URL.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// A JSON POST, HMAC-signed with the channel's secret.
    Webhook {
        url: Url,
    },
    /// `POST {base}` with ntfy's JSON publishing body.
    Ntfy {
        base: Url,
        topic: String,
        token: Option<String>,
    },
    /// `POST {base}/message` with the application token in `X-Gotify-Key`.
    Gotify {
        base: Url,
        token: String,
    },
    /// `POST {base}/api/webhooks/{id}/{token}`.
    Discord {
        base: Url,
        id: String,
        token: String,
    },
    /// `POST {base}/services/{path}` (an incoming webhook).
    Slack {
        base: Url,
        path: String,
    },
    /// `POST {base}/bot{token}/sendMessage` to one chat.
    Telegram {
        base: Url,
        token: String,
        chat: String,
    },
    /// `PUT {base}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}` with an access
    /// token (Client-Server API).
    Matrix {
        base: Url,
        token: String,
        room: String,
    },
    Smtp(SmtpTarget),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required: never falls back to plain text).
    StartTls,
    /// TLS from the first byte (`smtps`, port 465).
    Tls,
    /// No encryption: only for a relay on loopback or a trusted LAN (`tls=none`).
    None,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        write!(
            f,
            "SmtpTarget({}:{}, {} recipient(s))",
            self.host,
            self.port,
            self.to.len()
        )
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials, even in a debug log.
        write!(f, "Target({})", self.redacted())
    }
}

impl Target {
    /// The scheme name stored with the channel.
    pub fn scheme(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Ntfy { .. } => "ntfy",
            Target::Gotify { .. } => "gotify",
            Target::Discord { .. } => "discord",
            Target::Slack { .. } => "slack",
            Target::Telegram { .. } => "telegram",
            Target::Matrix { .. } => "matrix",
            Target::Smtp(_) => "smtp",
        }
    }

    /// What people may see: the service and host, no token, topic, path or password.
    pub fn redacted(&self) -> String {
        let host = |url: &Url| {
            let host = url.host_str().unwrap_or("?");
            match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            }
        };
        match self {
            Target::Webhook { url } => format!("webhook {}://{}/…", url.scheme(), host(url)),
            Target::Ntfy { base, .. } => format!("ntfy {}/…", host(base)),
            Target::Gotify { base, .. } => format!("gotify {}", host(base)),
            Target::Discord { base, .. } => format!("discord {}", host(base)),
            Target::Slack { base, .. } => format!("slack {}", host(base)),
            Target::Telegram { base, .. } => format!("telegram {}", host(base)),
            Target::Matrix { base, .. } => format!("matrix {}", host(base)),
            Target::Smtp(s) => format!("smtp {}:{} to {} recipient(s)", s.host, s.port, s.to.len()),
        }
    }
}

/// `%XX`-decoded (URL user info and paths arrive encoded).
fn decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

fn query(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn no_unknown_query(url: &Url, known: &[&str]) -> Result<(), String> {
    match url
        .query_pairs()
        .find(|(k, _)| !known.contains(&k.as_ref()))
    {
        Some((k, _)) => Err(format!(
            "unknown parameter `{k}` (this scheme takes: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )),
        None => Ok(()),
    }
}

/// `base` query parameter (a proxy or a compatible server), or the service's own API.
fn base(url: &Url, default: &str) -> Result<Url, String> {
    let text = query(url, "base").unwrap_or_else(|| default.to_owned());
    let base = Url::parse(&text).map_err(|e| format!("base `{text}`: {e}"))?;
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err(format!("base `{text}` is not an http(s) URL"));
    }
    Ok(base)
}

/// `https://host…` from `host[:port]` of `url`, or plain `http` when the scheme says `+http`.
fn http_base(url: &Url, plain: bool) -> Result<Url, String> {
    let host = url.host_str().ok_or("no host")?;
    let scheme = if plain { "http" } else { "https" };
    let text = match url.port() {
        Some(port) => format!("{scheme}://{host}:{port}/"),
        None => format!("{scheme}://{host}/"),
    };
    Url::parse(&text).map_err(|e| e.to_string())
}

fn path_segments(url: &Url) -> Vec<String> {
    url.path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decoded)
        .collect()
}

/// Parses a channel URL. The error says what is wrong, never echoing a secret.
pub fn parse(text: &str) -> Result<Target, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
    let scheme = url.scheme().to_owned();
    match scheme.as_str() {
        "http" | "https" | "webhook+http" | "webhook+https" => {
            // `webhook+https` is not a scheme the url crate treats as special: parse the rest
            // again under the real one.
            let real = scheme.trim_start_matches("webhook+");
            let target = Url::parse(&format!("{real}{}", &url.as_str()[scheme.len()..]))
                .map_err(|e| format!("not a URL: {e}"))?;
            if target.host_str().is_none() {
                return Err("webhook URL has no host".into());
            }
            Ok(Target::Webhook { url: target })
        }
        "ntfy" | "ntfy+http" => {
            no_unknown_query(&url, &[])?;
            let base = http_base(&url, scheme == "ntfy+http")?;
            let segments = path_segments(&url);
            let [topic] = segments.as_slice() else {
                return Err("ntfy URL is ntfy://[:token@]host[:port]/topic".into());
            };
            if topic.is_empty() || topic.len() > 64 {
                return Err("ntfy topic must be 1-64 characters".into());
            }
            let token = url.password().map(decoded).filter(|t| !t.is_empty());
            Ok(Target::Ntfy {
                base,
                topic: topic.clone(),
                token,
            })
        }
        "gotify" | "gotify+http" => {
            no_unknown_query(&url, &[])?;
            let mut segments = path_segments(&url);
            let token = segments
                .pop()
                .filter(|t| !t.is_empty())
                .ok_or("gotify URL is gotify://host[:port][/path]/APP_TOKEN")?;
            let mut base = http_base(&url, scheme == "gotify+http")?;
            if !segments.is_empty() {
                base.set_path(&format!("/{}/", segments.join("/")));
            }
            Ok(Target::Gotify { base, token })
        }
        "discord" => {
            no_unknown_query(&url, &["base"])?;
            let token = decoded(url.username());
            let id = url.host_str().unwrap_or_default().to_owned();
            if token.is_empty() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err("discord URL is discord://TOKEN@WEBHOOK_ID".into());
            }
            Ok(Target::Discord {
                base: base(&url, "https://discord.com/")?,
                id,
                token,
            })
        }
        "slack" => {
            no_unknown_query(&url, &["base"])?;
            let mut parts = vec![url.host_str().unwrap_or_default().to_owned()];
            parts.extend(path_segments(&url));
            if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
                return Err(
                    "slack URL is slack://T…/B…/SECRET (the incoming webhook's path)".into(),
                );
            }
            Ok(Target::Slack {
                base: base(&url, "https://hooks.slack.com/")?,
                path: parts.join("/"),
            })
        }
        "telegram" => {
            no_unknown_query(&url, &["chats", "base"])?;
            let mut token = decoded(url.username());
            if let Some(password) = url.password() {
                // A bot token is `<id>:<secret>`: the URL's user info splits it at the colon.
                token = format!("{token}:{}", decoded(password));
            }
            let chat = query(&url, "chats").unwrap_or_default();
            if token.is_empty() || chat.is_empty() || chat.contains(',') {
                return Err(
                    "telegram URL is telegram://BOT_TOKEN@telegram?chats=CHAT_ID (one chat per channel)"
                        .into(),
                );
            }
            Ok(Target::Telegram {
                base: base(&url, "https://api.telegram.org/")?,
                token,
                chat,
            })
        }
        "matrix" | "matrix+http" => {
            no_unknown_query(&url, &["rooms"])?;
            let token = url.password().map(decoded).unwrap_or_default();
            let room = query(&url, "rooms").unwrap_or_default();
            let room_ok = room.starts_with('!') && room.contains(':') && !room.contains(',');
            if token.is_empty() || !room_ok || !path_segments(&url).is_empty() {
                return Err(
                    "matrix URL is matrix://:ACCESS_TOKEN@homeserver[:port]/?rooms=!ROOM_ID:server \
                     (one room per channel)"
                        .into(),
                );
            }
            Ok(Target::Matrix {
                base: http_base(&url, scheme == "matrix+http")?,
                token,
                room,
            })
        }
        "smtp" | "smtps" => {
            no_unknown_query(&url, &["from", "to", "tls"])?;
            let host = url
                .host_str()
                .ok_or("smtp URL has no host")?
                .trim_matches(['[', ']'])
                .to_owned();
            let tls = match (scheme.as_str(), query(&url, "tls").as_deref()) {
                ("smtps", None | Some("tls")) => SmtpTls::Tls,
                ("smtp", None | Some("starttls")) => SmtpTls::StartTls,
                ("smtp", Some("tls")) => SmtpTls::Tls,
                ("smtp", Some("none")) => SmtpTls::None,
                (_, Some(other)) => {
                    return Err(format!("tls `{other}` is not one of starttls, tls, none"));
                }
                _ => return Err("unsupported smtp scheme".into()),
            };
            let port = url.port().unwrap_or(match tls {
                SmtpTls::Tls => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            });
            let from = query(&url, "from").ok_or("smtp URL needs ?from=ADDRESS")?;
            let to: Vec<String> = query(&url, "to")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            if to.is_empty() {
                return Err("smtp URL needs &to=ADDRESS[,ADDRESS…]".into());
            }
            for address in std::iter::once(&from).chain(&to) {
                address
                    .parse::<lettre::Address>()
                    .map_err(|e| format!("`{address}` is not an email address: {e}"))?;
            }
            let username = Some(decoded(url.username())).filter(|u| !u.is_empty());
            let password = url.password().map(decoded);
            Ok(Target::Smtp(SmtpTarget {
                host,
                port,
                tls,
                username,
                password,
                from,
                to,
            }))
        }
        other => Err(format!(
            "scheme `{other}` is not one of https (webhook), ntfy, gotify, discord, slack, \
             telegram, matrix, smtp, smtps"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_parses_into_what_delivery_needs() {
        match parse("https://hooks.example.net/unity?x=1").unwrap() {
            Target::Webhook { url } => {
                assert_eq!(url.as_str(), "https://hooks.example.net/unity?x=1")
            }
            other => panic!("{other:?}"),
        }
        match parse("webhook+http://10.0.0.5:8080/in").unwrap() {
            Target::Webhook { url } => assert_eq!(url.as_str(), "http://10.0.0.5:8080/in"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse("ntfy://:tk_abc@ntfy.sh/homelab").unwrap(),
            Target::Ntfy {
                base: Url::parse("https://ntfy.sh/").unwrap(),
                topic: "homelab".into(),
                token: Some("tk_abc".into()),
            }
        );
        assert_eq!(
            parse("ntfy+http://127.0.0.1:8080/alerts").unwrap(),
            Target::Ntfy {
                base: Url::parse("http://127.0.0.1:8080/").unwrap(),
                topic: "alerts".into(),
                token: None,
            }
        );
        assert_eq!(
            parse("gotify://push.example.net/sub/AbC.123").unwrap(),
            Target::Gotify {
                base: Url::parse("https://push.example.net/sub/").unwrap(),
                token: "AbC.123".into(),
            }
        );
        assert_eq!(
            parse("discord://tok-en@123456").unwrap(),
            Target::Discord {
                base: Url::parse("https://discord.com/").unwrap(),
                id: "123456".into(),
                token: "tok-en".into(),
            }
        );
        assert_eq!(
            parse("slack://T0001/B0002/secret3").unwrap(),
            Target::Slack {
                base: Url::parse("https://hooks.slack.com/").unwrap(),
                path: "T0001/B0002/secret3".into(),
            }
        );
        assert_eq!(
            parse(
                "telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=-1001234"
            )
            .unwrap(),
            Target::Telegram {
                base: Url::parse("https://api.telegram.org/").unwrap(),
                token: "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw".into(),
                chat: "-1001234".into(),
            }
        );
        match parse("smtp://ops%40example.net:p%40ss@mail.example.net/?from=unity@example.net&to=a@example.net,b@example.net").unwrap() {
            Target::Smtp(s) => {
                assert_eq!((s.host.as_str(), s.port, s.tls), ("mail.example.net", 587, SmtpTls::StartTls));
                assert_eq!(s.username.as_deref(), Some("ops@example.net"));
                assert_eq!(s.password.as_deref(), Some("p@ss"));
                assert_eq!(s.to, ["a@example.net", "b@example.net"]);
            }
            other => panic!("{other:?}"),
        }
        match parse("smtps://mail.example.net/?from=u@example.net&to=a@example.net").unwrap() {
            Target::Smtp(s) => assert_eq!((s.port, s.tls), (465, SmtpTls::Tls)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_echoing_secrets() {
        for (url, says) in [
            ("ftp://x/y", "scheme `ftp`"),
            ("ntfy://ntfy.sh/", "ntfy://"),
            ("ntfy://ntfy.sh/a/b", "ntfy://"),
            ("gotify://push.example.net/", "APP_TOKEN"),
            ("discord://123456", "TOKEN@WEBHOOK_ID"),
            ("slack://T1/B2", "slack://"),
            ("telegram://tok@telegram", "chats"),
            ("telegram://tok@telegram?chats=1,2", "one chat"),
            ("smtp://mail.example.net/?to=a@example.net", "from"),
            ("smtp://mail.example.net/?from=a@example.net", "to="),
            (
                "smtp://mail.example.net/?from=nope&to=a@example.net",
                "not an email",
            ),
            ("smtp://m/?from=a@b.c&to=d@e.f&tls=maybe", "tls `maybe`"),
            ("ntfy://ntfy.sh/t?priority=5", "unknown parameter"),
            ("matrix://matrix.org/?rooms=!a:matrix.org", "ACCESS_TOKEN"),
            ("matrix://:t@matrix.org/?rooms=#lab:matrix.org", "ROOM_ID"),
            (
                "matrix://:t@matrix.org/?rooms=!a:matrix.org,!b:matrix.org",
                "one room",
            ),
            (
                "matrix://:t@matrix.org/room?rooms=!a:matrix.org",
                "matrix://",
            ),
            ("not a url", "not a URL"),
        ] {
            let error = parse(url).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
        }
        let error = parse("smtp://user:hunter2@m/?from=nope&to=a@example.net").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn redaction_hides_tokens_topics_and_passwords() {
        for url in [
            "ntfy://:tk_secret@ntfy.sh/secret-topic",
            "gotify://push.example.net/secretToken",
            "discord://secrettoken@123",
            "slack://T1/B2/secretpath",
            "telegram://1:secrettoken@telegram?chats=5",
            "smtp://u:secretpass@m.example.net/?from=a@example.net&to=b@example.net",
            "https://hooks.example.net/secretpath",
            "matrix://:secrettoken@matrix.example.net/?rooms=!secretroom:example.net",
        ] {
            let shown = parse(url).unwrap().redacted();
            assert!(!shown.contains("secret"), "{url} → {shown}");
        }
    }
}
