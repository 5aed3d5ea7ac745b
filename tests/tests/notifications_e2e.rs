//! Notifications end to end: a real controller and PostgreSQL, a host session sending real
//! recorded SMART data (a failing NVMe drive, then the same drive healthy), and real
//! receivers — an HTTP server standing in for the webhook-style services, `aiosmtpd` for
//! email. Exactly one message per channel for the failure and one for the recovery, across
//! a controller restart; a receiver that fails, hangs or refuses; each service's request as
//! its API documents it; quiet hours; reminders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use unity_e2e::receivers::{Answer, HttpReceiver, SmtpReceiver};
use unity_e2e::{Harness, Scope, open_session};
use unity_protocol::latest::{Health, ReportBody, SourceState, SourceStatus, StorageReport};

const WAIT: Duration = Duration::from_secs(30);

/// The real failing drive of the recorded host (`/dev/nvme0`), alone, and the same drive
/// read healthy.
async fn disk_reports(dir: &std::path::Path) -> (StorageReport, StorageReport) {
    let sources = unity_agent::testing::recorded_storage(dir).unwrap();
    let full = sources.collect().await;
    let failing = full
        .disks
        .iter()
        .find(|d| d.health == Health::Critical)
        .cloned()
        .expect("the recorded host has a failing drive");
    let report = |disk| StorageReport {
        smart: SourceStatus {
            state: SourceState::Ok,
            detail: String::new(),
        },
        disks: vec![disk],
        zfs: SourceStatus {
            state: SourceState::NotPresent,
            detail: String::new(),
        },
        pools: vec![],
        mdraid: SourceStatus {
            state: SourceState::NotPresent,
            detail: String::new(),
        },
        arrays: vec![],
    };
    let mut healthy = failing.clone();
    healthy.health = Health::Ok;
    healthy.reasons.clear();
    (report(failing), report(healthy))
}

async fn send(state: &unity_agent::state::AgentState, body: ReportBody) {
    let mut session = open_session(state).await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    session.send(now, body).await.unwrap();
    session.close();
}

async fn channel(h: &Harness, admin: &str, body: Value) -> Value {
    let (status, created) = h.post("/api/v1/channels", admin, body).await;
    assert_eq!(status, 201, "{created}");
    created
}

/// Tenant `homelab` and an admin token of it.
async fn homelab(h: &Harness) -> (unity_controller::store::Tenant, String) {
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let admin = h
        .store
        .create_scoped_api_token(tenant.id, "admin", Scope::Admin)
        .await
        .unwrap();
    (tenant, admin)
}

/// The newest notification of `channel` (its API answer), `Null` when there is none.
async fn latest_of(h: &Harness, admin: &str, channel: &Value) -> Value {
    let (_, list) = h
        .api(
            &format!(
                "/api/v1/notifications?channel_id={}",
                channel["id"].as_str().unwrap()
            ),
            admin,
        )
        .await;
    list[0].clone()
}

fn smtp_or_fail(smtp: Option<SmtpReceiver>) -> Option<SmtpReceiver> {
    if smtp.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "aiosmtpd is required under CI (apt-get install python3-aiosmtpd)"
        );
        eprintln!("skipping the email part: aiosmtpd is not installed");
    }
    smtp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_per_channel_for_a_failure_and_its_recovery_across_a_restart() {
    let mut h = Harness::start().await;
    let (tenant, admin) = homelab(&h).await;
    let hook = HttpReceiver::start().await;
    let smtp = smtp_or_fail(SmtpReceiver::start(h.dir.path()).await);
    let webhook = channel(
        &h,
        &admin,
        json!({ "name": "hook", "url": format!("{}/unity", hook.base()) }),
    )
    .await;
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    assert_eq!(webhook["target"], format!("webhook http://{}/…", hook.addr));
    if let Some(smtp) = &smtp {
        let mail = channel(
            &h,
            &admin,
            json!({
                "name": "mail",
                "url": format!("smtp://127.0.0.1:{}/?from=unity@example.net&to=ops@example.net&tls=none", smtp.port),
            }),
        )
        .await;
        assert!(mail["secret"].is_null());
        // The URL never comes back.
        let (_, listed) = h.api("/api/v1/channels", &admin).await;
        assert!(!listed.to_string().contains("ops@example.net"), "{listed}");
    }
    let state = h.enroll("nas", tenant.id).await;
    let (failing, healthy) = disk_reports(h.dir.path()).await;

    send(&state, ReportBody::Storage(failing)).await;
    let delivered = hook.wait_delivered(1, WAIT).await;
    assert_eq!(delivered.len(), 1, "{:?}", hook.received());
    let first = &delivered[0];
    assert_eq!(first.uri, "/unity");
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("x-unity-event"), Some("alert"));
    let timestamp: i64 = first.header("x-unity-timestamp").unwrap().parse().unwrap();
    assert_eq!(
        first.header("x-unity-signature").unwrap(),
        unity_controller::notify::message::webhook_signature(
            secret.as_bytes(),
            timestamp,
            &first.body
        ),
        "the HMAC a receiver computes with the secret it was shown"
    );
    let body = first.json();
    assert_eq!(body["reason"], "alert");
    assert_eq!(body["alert"]["kind"], "disk_health");
    assert_eq!(body["alert"]["severity"], "critical");
    assert_eq!(body["alert"]["hostname"], "nas");
    assert_eq!(body["tenant"], "homelab");
    if let Some(smtp) = &smtp {
        let mail = smtp.wait_messages(1, WAIT).await;
        let (_, outbox) = h.api("/api/v1/notifications", &admin).await;
        assert_eq!(mail.len(), 1, "{outbox}");
        assert!(mail[0].contains("Subject: [critical] nas:"), "{}", mail[0]);
        assert!(mail[0].contains("To: ops@example.net"), "{}", mail[0]);
        assert!(mail[0].contains("@unity-fleet>"), "{}", mail[0]);
    }

    // The controller restarts between the failure and the recovery.
    let quic = h.stop_controller().await;
    h.start_controller_on(quic).await;
    send(&state, ReportBody::Storage(healthy)).await;
    let delivered = hook.wait_delivered(2, WAIT).await;
    assert_eq!(delivered.len(), 2, "{:?}", hook.received());
    assert_eq!(delivered[1].json()["reason"], "recovery");
    assert_eq!(delivered[1].header("x-unity-event"), Some("recovery"));
    assert!(
        delivered[1].json()["title"]
            .as_str()
            .unwrap()
            .starts_with("[resolved] nas:")
    );
    if let Some(smtp) = &smtp {
        let mail = smtp.wait_messages(2, WAIT).await;
        assert_eq!(mail.len(), 2);
        assert!(mail.iter().any(|m| m.contains("Subject: [resolved] nas:")));
    }
    // And nothing more: no repeat after the restart, none later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.received().len(), 2, "{:?}", hook.received());
    if let Some(smtp) = &smtp {
        assert_eq!(smtp.messages().len(), 2);
    }
    let (_, sent) = h.api("/api/v1/notifications", &admin).await;
    let sent = sent.as_array().unwrap();
    assert!(
        sent.iter()
            .all(|n| n["state"] == "delivered" && n["attempts"] == 1),
        "{sent:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_hanging_and_refusing_receivers_are_retried_timed_out_or_dead_lettered() {
    let mut h = Harness::start().await;
    let (tenant, admin) = homelab(&h).await;
    let flaky = HttpReceiver::start().await;
    // Down (500) three times, then hanging past the 3 s timeout, then up.
    flaky.plan(&[
        Answer::Status(500),
        Answer::Status(502),
        Answer::Hang(Duration::from_secs(6)),
        Answer::Status(503),
    ]);
    let refusing = HttpReceiver::start().await;
    refusing.plan(&[Answer::Status(404)]);
    let flaky_channel = channel(
        &h,
        &admin,
        json!({ "name": "flaky", "url": format!("{}/in", flaky.base()) }),
    )
    .await;
    let refusing_channel = channel(
        &h,
        &admin,
        json!({ "name": "gone", "url": format!("{}/nope", refusing.base()) }),
    )
    .await;
    let state = h.enroll("nas", tenant.id).await;
    let (failing, _) = disk_reports(h.dir.path()).await;
    send(&state, ReportBody::Storage(failing)).await;

    // The refusal is final: dead after one attempt, with the service's answer.
    let mut dead = Value::Null;
    for _ in 0..200 {
        dead = latest_of(&h, &admin, &refusing_channel).await;
        if dead["state"] == "dead" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dead["state"], "dead", "{dead}");
    assert_eq!(dead["attempts"], 1);
    assert!(
        dead["last_error"].as_str().unwrap().contains("HTTP 404"),
        "{dead}"
    );
    assert!(
        !dead["last_error"].as_str().unwrap().contains("/nope"),
        "paths are redacted: {dead}"
    );
    // An operator fixes the receiver and retries: delivered once.
    let (status, retried) = h
        .post(
            &format!(
                "/api/v1/notifications/{}/retry",
                dead["id"].as_str().unwrap()
            ),
            &admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(refusing.wait_delivered(1, WAIT).await.len(), 1);

    // The flaky one: down, then the controller restarts while it is still down, then up.
    for _ in 0..300 {
        if flaky.received().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let quic = h.stop_controller().await;
    h.start_controller_on(quic).await;
    let delivered = flaky.wait_delivered(1, WAIT).await;
    assert_eq!(delivered.len(), 1, "{:?}", flaky.received());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = flaky.received();
    assert_eq!(
        received.iter().filter(|r| r.answered == Some(200)).count(),
        1,
        "delivered exactly once: {received:?}"
    );
    // Every attempt carried the same delivery id, so a receiver could have told repeats.
    let ids: std::collections::HashSet<_> = received
        .iter()
        .map(|r| r.header("x-unity-delivery").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let last = latest_of(&h, &admin, &flaky_channel).await;
    assert_eq!(last["state"], "delivered", "{last}");
    assert!(last["attempts"].as_i64().unwrap() >= 5, "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_gets_the_request_its_api_documents() {
    let h = Harness::start().await;
    let (tenant, admin) = homelab(&h).await;
    let read = h.store.create_api_token(tenant.id, "read").await.unwrap();
    let rx = HttpReceiver::start().await;
    let host = rx.addr.to_string();
    let base = rx.base();
    let urls = [
        ("ntfy", format!("ntfy+http://:tk_secret@{host}/lab-alerts")),
        ("gotify", format!("gotify+http://{host}/gotify/AppT0ken")),
        (
            "discord",
            format!("discord://webhooktoken@123456789?base={base}/"),
        ),
        ("slack", format!("slack://T0001/B0002/XXXX?base={base}/")),
        (
            "telegram",
            format!("telegram://110201543:AAHdqTcv@telegram?chats=-1001234&base={base}/"),
        ),
        (
            "matrix",
            format!("matrix+http://:syt_MatrixT0ken@{host}/?rooms=!AbCdEf:example.org"),
        ),
    ];
    // A read token may look, not add.
    let (status, _) = h
        .post(
            "/api/v1/channels",
            &read,
            json!({ "name": "x", "url": urls[0].1 }),
        )
        .await;
    assert_eq!(status, 403);
    let mut ids = Vec::new();
    for (name, url) in &urls {
        let created = channel(&h, &admin, json!({ "name": name, "url": url })).await;
        assert!(
            !created.to_string().contains("secret") || created["secret"].is_null(),
            "{created}"
        );
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let (status, queued) = h
            .post(&format!("/api/v1/channels/{id}/test"), &admin, Value::Null)
            .await;
        assert_eq!(status, 202, "{queued}");
    }
    let got = rx.wait_delivered(urls.len(), WAIT).await;
    assert_eq!(got.len(), urls.len(), "{:?}", rx.received());
    let find = |prefix: &str| {
        got.iter()
            .find(|r| r.uri.starts_with(prefix))
            .unwrap_or_else(|| panic!("nothing at {prefix}: {got:?}"))
    };
    // ntfy: JSON publishing to the server root, the topic in the body, a bearer token.
    let ntfy = got
        .iter()
        .find(|r| r.uri == "/")
        .unwrap_or_else(|| panic!("nothing at /: {got:?}"));
    assert_eq!(ntfy.json()["topic"], "lab-alerts");
    assert!(ntfy.json()["message"].as_str().unwrap().contains("works"));
    assert_eq!(ntfy.header("authorization"), Some("Bearer tk_secret"));
    // Gotify: POST /message with the application token in X-Gotify-Key.
    let gotify = find("/gotify/message");
    assert_eq!(gotify.header("x-gotify-key"), Some("AppT0ken"));
    assert!(gotify.json()["priority"].is_number());
    assert!(gotify.json()["title"].is_string());
    // Discord: the webhook's execute endpoint, content, no mentions.
    let discord = find("/api/webhooks/123456789/webhooktoken");
    assert!(
        discord.json()["content"]
            .as_str()
            .unwrap()
            .starts_with("**")
    );
    assert_eq!(discord.json()["allowed_mentions"], json!({ "parse": [] }));
    // Slack: the incoming webhook, text.
    let slack = find("/services/T0001/B0002/XXXX");
    assert!(slack.json()["text"].is_string());
    // Telegram: the bot API's sendMessage with the chat id.
    let telegram = find("/bot110201543:AAHdqTcv/sendMessage");
    assert_eq!(telegram.json()["chat_id"], "-1001234");
    assert!(telegram.json()["text"].is_string());
    // Matrix: the Client-Server API's idempotent send, the notification id as the
    // transaction id, the room id as one path segment, an access token.
    let matrix = find("/_matrix/client/v3/rooms/");
    assert_eq!(matrix.method, "PUT");
    let (room, txn) = matrix
        .uri
        .strip_prefix("/_matrix/client/v3/rooms/")
        .unwrap()
        .split_once("/send/m.room.message/")
        .unwrap();
    // `!` and `:` may stand as they are in a path segment (RFC 3986); `/`, `?`, `#` may not.
    assert!(
        ["!AbCdEf:example.org", "%21AbCdEf%3Aexample.org"].contains(&room),
        "{room}"
    );
    assert!(uuid::Uuid::parse_str(txn).is_ok(), "{txn}");
    assert_eq!(
        matrix.header("authorization"),
        Some("Bearer syt_MatrixT0ken")
    );
    assert_eq!(matrix.json()["msgtype"], "m.text");
    assert!(matrix.json()["body"].as_str().unwrap().contains("works"));
    for r in &got {
        assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
        if !r.uri.starts_with("/_matrix/") {
            assert_eq!(r.method, "POST", "{r:?}");
        }
    }
    // Nothing the API returns shows a token.
    let (_, listed) = h.api("/api/v1/channels", &read).await;
    for secret in [
        "tk_secret",
        "AppT0ken",
        "webhooktoken",
        "XXXX",
        "AAHdqTcv",
        "syt_Matrix",
    ] {
        assert!(!listed.to_string().contains(secret), "{secret} in {listed}");
    }
    // The same through the command line.
    let cli = |args: &[&str]| {
        unity_e2e::process::run_to_end(
            env!("CARGO_BIN_EXE_e2e-controller"),
            args,
            &[
                ("DATABASE_URL", h.database_url.clone()),
                (
                    "UNITY_DATA_DIR",
                    h.dir.path().join("controller").display().to_string(),
                ),
            ],
        )
    };
    let added: Value = serde_json::from_str(&cli(&[
        "channel",
        "add",
        "--tenant",
        "homelab",
        "--name",
        "cli",
        &format!("{base}/cli"),
    ]))
    .unwrap();
    assert_eq!(added["scheme"], "webhook");
    assert_eq!(added["secret"].as_str().unwrap().len(), 64);
    assert!(cli(&["channel", "test", "--tenant", "homelab", "cli"]).contains("queued"));
    let got = rx.wait_delivered(urls.len() + 1, WAIT).await;
    let from_cli = got
        .iter()
        .find(|r| r.uri == "/cli")
        .expect("the CLI's test message");
    assert_eq!(from_cli.json()["reason"], "test");
    // Sealed by the CLI, opened by the running controller: they share notify.key.
    assert_eq!(
        from_cli.header("x-unity-signature").unwrap(),
        unity_controller::notify::message::webhook_signature(
            added["secret"].as_str().unwrap().as_bytes(),
            from_cli
                .header("x-unity-timestamp")
                .unwrap()
                .parse()
                .unwrap(),
            &from_cli.body
        )
    );
    assert!(cli(&["channel", "list", "--tenant", "homelab"]).contains("\"cli\""));
    assert!(cli(&["channel", "remove", "--tenant", "homelab", "cli"]).contains("removed"));
    // A channel URL that cannot work is refused with the reason.
    let (status, body) = h
        .post(
            "/api/v1/channels",
            &admin,
            json!({ "name": "bad", "url": "telegram://tok@telegram" }),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("chats"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_all_but_critical_and_reminders_repeat_open_alerts() {
    let h = Harness::start().await;
    let (tenant, admin) = homelab(&h).await;
    let quiet = HttpReceiver::start().await;
    let reminded = HttpReceiver::start().await;
    // Quiet from an hour ago to three hours from now (UTC), critical alerts held too.
    let now = time::OffsetDateTime::now_utc();
    let start = format!("{:02}:{:02}", (now.hour() + 23) % 24, now.minute());
    let end = format!("{:02}:{:02}", (now.hour() + 3) % 24, now.minute());
    let quiet_channel = channel(
        &h,
        &admin,
        json!({
            "name": "night", "url": format!("{}/q", quiet.base()),
            "quiet_hours": { "start": start, "end": end, "timezone": "UTC", "allow_critical": false },
        }),
    )
    .await;
    assert_eq!(quiet_channel["quiet_hours"]["timezone"], "UTC");
    let (status, body) = h
        .post(
            "/api/v1/channels",
            &admin,
            json!({ "name": "bad-tz", "url": format!("{}/q", quiet.base()),
                    "quiet_hours": { "start": "22:00", "end": "07:00", "timezone": "Mars/Olympus" } }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    channel(
        &h,
        &admin,
        json!({ "name": "pager", "url": format!("{}/r", reminded.base()), "remind_after_secs": 60 }),
    )
    .await;
    let state = h.enroll("nas", tenant.id).await;
    let (failing, _) = disk_reports(h.dir.path()).await;
    send(&state, ReportBody::Storage(failing)).await;
    assert_eq!(reminded.wait_delivered(1, WAIT).await.len(), 1);
    // Held: due only after the quiet hours end (about 3 h from now).
    let mut held = Value::Null;
    for _ in 0..100 {
        held = latest_of(&h, &admin, &quiet_channel).await;
        let next = time::OffsetDateTime::parse(
            held["next_attempt_at"]
                .as_str()
                .unwrap_or("1970-01-01T00:00:00Z"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        if next > time::OffsetDateTime::now_utc() + time::Duration::hours(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(held["state"], "pending", "{held}");
    assert_eq!(held["attempts"], 0, "{held}");
    assert!(quiet.received().is_empty());
    // A reminder is due once the alert has been open for remind_after_secs: the test moves
    // the first notification back in time instead of waiting a minute.
    let mut owner = h.database_owner().await;
    sqlx::query(
        "UPDATE notifications SET created_at = created_at - interval '2 minutes' \
         WHERE reason = 'alert'",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    let got = reminded.wait_delivered(2, WAIT).await;
    assert_eq!(got.len(), 2, "{:?}", reminded.received());
    assert_eq!(got[1].json()["reason"], "reminder");
    assert!(
        got[1].json()["title"]
            .as_str()
            .unwrap()
            .starts_with("[still critical] nas:")
    );
    // Not again within the interval.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(reminded.delivered().len(), 2);
    // Acknowledged, it is not reminded of again even once the interval has passed.
    let alert_id = got[1].json()["alert"]["id"].as_str().unwrap().to_owned();
    let (status, acked) = h
        .post(
            &format!("/api/v1/alerts/{alert_id}/acknowledge"),
            &admin,
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{acked}");
    sqlx::query("UPDATE notifications SET created_at = created_at - interval '2 minutes'")
        .execute(&mut owner)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        reminded.delivered().len(),
        2,
        "no reminder after the acknowledgement"
    );
}
