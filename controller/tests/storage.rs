//! Storage reports end to end on a real PostgreSQL: ingest (`ingest::apply`, the path agent
//! sessions use) → rows, history and alerts → the HTTP API, for two tenants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::fixtures::{array, disk, failed, pool, report};
use common::{get, send_storage, send_storage_at};
use serde_json::Value;
use unity_protocol::latest::{Health, ReportReply};
use uuid::Uuid;

const WWN: &str = "5000cca264c1a2b3";

fn kinds(alerts: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_owned(),
                a["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn strings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    out.sort();
    out
}

fn trouble() -> unity_protocol::latest::StorageReport {
    let mut tank = pool("tank", "DEGRADED", Health::Critical);
    tank.scan_errors = Some(2);
    report(
        vec![
            disk("/dev/sda", Some("5000cca264c1ffff"), "OK-1", Health::Ok),
            disk("/dev/sdb", Some(WWN), "BAD-1", Health::Critical),
        ],
        vec![tank, pool("backup", "ONLINE", Health::Ok)],
        vec![array("md0", true, Health::Critical)],
    )
}

#[tokio::test]
async fn unhealthy_objects_are_stored_and_alerted_once() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    for seq in 1..=3 {
        let reply = send_storage(&store, &a, host, stream, seq, trouble()).await;
        assert_eq!(
            reply,
            ReportReply::Ack {
                seq,
                duplicate: false
            }
        );
    }

    let (status, disks) = get(&app, "/api/v1/disks", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(disks.as_array().unwrap().len(), 2, "{disks}");
    let bad = disks
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == "/dev/sdb")
        .unwrap();
    assert_eq!(bad["identity_key"], format!("wwn:{WWN}"));
    assert_eq!(bad["health"], "critical");
    assert_eq!(bad["host_id"], host.to_string());
    assert_eq!(bad["present"], true);
    assert_eq!(bad["capacity_bytes"], 4_000_787_030_016_i64);

    let (status, detail) = get(
        &app,
        &format!("/api/v1/disks/{}", bad["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        detail["detail"]["smart_passed"], false,
        "detail is served as JSON"
    );
    let history = detail["history"].as_array().unwrap();
    assert_eq!(history.len(), 3, "one sample per report");
    assert!(
        history[0]["collected_at"].as_str() > history[2]["collected_at"].as_str(),
        "newest first"
    );
    assert_eq!(history[0]["metrics"]["ata.5.reallocated_sector_ct"], 1200);

    let (_, pools) = get(&app, "/api/v1/pools?health=critical", Some(&token)).await;
    assert_eq!(pools.as_array().unwrap().len(), 1, "{pools}");
    assert_eq!(pools[0]["name"], "tank");
    assert_eq!(pools[0]["state"], "DEGRADED");
    assert_eq!(pools[0]["scan_errors"], 2);
    let (_, tank) = get(
        &app,
        &format!("/api/v1/pools/{}?limit=2", pools[0]["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(
        tank["history"].as_array().unwrap().len(),
        2,
        "limit applies"
    );
    assert_eq!(tank["detail"]["name"], "tank");

    let (_, arrays) = get(&app, "/api/v1/arrays", Some(&token)).await;
    assert_eq!(arrays[0]["name"], "md0");
    assert_eq!(arrays[0]["degraded"], true);
    assert_eq!(arrays[0]["active_disks"], 1);
    let (_, md0) = get(
        &app,
        &format!("/api/v1/arrays/{}", arrays[0]["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(md0["history"].as_array().unwrap().len(), 3);

    // Three identical reports, one alert per unhealthy thing, each a first sighting.
    let (status, alerts) = get(&app, "/api/v1/alerts", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        kinds(&alerts),
        strings(&[
            ("disk_health", "critical"),
            ("pool_state", "critical"),
            ("scrub_errors", "critical"),
            ("array_degraded", "critical"),
        ]),
        "{alerts:#}"
    );
    for alert in alerts.as_array().unwrap() {
        assert!(alert["previous"].is_null(), "first sighting: {alert}");
        assert_eq!(alert["host_id"], host.to_string());
    }
    let disk_alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "disk_health")
        .unwrap();
    assert_eq!(disk_alert["object_id"], bad["id"]);
    assert_eq!(disk_alert["current"], "critical");
    assert!(
        disk_alert["message"].as_str().unwrap().contains("FAILED"),
        "{disk_alert}"
    );

    let (status, summary) = get(&app, &format!("/api/v1/hosts/{host}/storage"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["disks"]["ok"], 1);
    assert_eq!(summary["disks"]["critical"], 1);
    assert_eq!(summary["pools"]["critical"], 1);
    assert_eq!(summary["pools"]["ok"], 1);
    assert_eq!(summary["arrays"]["critical"], 1);
    let sources: Vec<&str> = summary["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["mdraid", "smart", "zfs"]);
}

#[tokio::test]
async fn a_redelivered_report_adds_no_samples_or_alerts() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    // Recent, or retention would prune the sample at once.
    let at =
        i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
    let first = send_storage_at(&store, &a, host, stream, 7, at, trouble()).await;
    assert_eq!(
        first,
        ReportReply::Ack {
            seq: 7,
            duplicate: false
        }
    );
    let again = send_storage_at(&store, &a, host, stream, 7, at, trouble()).await;
    assert_eq!(
        again,
        ReportReply::Ack {
            seq: 7,
            duplicate: true
        }
    );
    let (_, alerts) = get(&app, "/api/v1/alerts", Some(&token)).await;
    assert_eq!(alerts.as_array().unwrap().len(), 4, "{alerts:#}");
    let (_, disks) = get(&app, "/api/v1/disks?health=critical", Some(&token)).await;
    let (_, detail) = get(
        &app,
        &format!("/api/v1/disks/{}", disks[0]["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(detail["history"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_disk_keeps_its_identity_across_device_renames_and_hosts() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let nas = common::add_host(&store, &a, "nas").await;
    let other = common::add_host(&store, &a, "other").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    let as_device = |device: &str| {
        report(
            vec![disk(device, Some(WWN), "S-1", Health::Ok)],
            vec![],
            vec![],
        )
    };
    send_storage(&store, &a, nas, stream, 1, as_device("/dev/sdb")).await;
    send_storage(&store, &a, nas, stream, 2, as_device("/dev/sdc")).await;
    let (_, disks) = get(&app, "/api/v1/disks", Some(&token)).await;
    assert_eq!(disks.as_array().unwrap().len(), 1, "{disks:#}");
    assert_eq!(disks[0]["device"], "/dev/sdc");
    let id = disks[0]["id"].clone();

    // Another host reports it while its own host still does: it stays, with one alert, and
    // the other host's (critical) word changes nothing about it.
    let other_stream = Uuid::new_v4();
    let mut claimed = as_device("/dev/sda");
    claimed.disks[0].health = Health::Critical;
    send_storage(&store, &a, other, other_stream, 1, claimed.clone()).await;
    send_storage(&store, &a, other, other_stream, 2, claimed).await;
    let (_, disks) = get(&app, "/api/v1/disks", Some(&token)).await;
    assert_eq!(disks[0]["host_id"], nas.to_string(), "{disks:#}");
    assert_eq!(disks[0]["health"], "ok", "{disks:#}");
    let (_, alerts) = get(&app, "/api/v1/alerts", Some(&token)).await;
    assert_eq!(
        kinds(&alerts),
        strings(&[("disk_claimed_twice", "warning")])
    );

    // Moved to another host of the tenant once its own host stops reporting it: same row, new
    // host; the old host no longer has it.
    send_storage(&store, &a, nas, stream, 3, report(vec![], vec![], vec![])).await;
    send_storage(&store, &a, other, other_stream, 3, as_device("/dev/sda")).await;
    let (_, disks) = get(&app, "/api/v1/disks", Some(&token)).await;
    assert_eq!(disks.as_array().unwrap().len(), 1, "{disks:#}");
    assert_eq!(disks[0]["id"], id);
    assert_eq!(disks[0]["host_id"], other.to_string());
    assert_eq!(disks[0]["present"], true, "present again on its new host");
    let (_, alerts) = get(&app, "/api/v1/alerts", Some(&token)).await;
    let all = kinds(&alerts);
    assert!(
        all.contains(&("disk_moved".to_owned(), "info".to_owned())),
        "{all:?}"
    );

    // Without a WWN the serial (with the model) is the identity.
    let no_wwn = |device: &str| {
        report(
            vec![disk(device, None, "SER-9", Health::Ok)],
            vec![],
            vec![],
        )
    };
    send_storage(&store, &a, nas, stream, 4, no_wwn("/dev/sdd")).await;
    send_storage(&store, &a, nas, stream, 5, no_wwn("/dev/sde")).await;
    let (_, disks) = get(&app, &format!("/api/v1/disks?host_id={nas}"), Some(&token)).await;
    assert_eq!(disks.as_array().unwrap().len(), 1, "{disks:#}");
    assert_eq!(disks[0]["identity_key"], "serial:WDC WD40EFRX:SER-9");
    assert_eq!(disks[0]["device"], "/dev/sde");
}

#[tokio::test]
async fn changes_alert_once_and_recoveries_are_info() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    let state = |h: Health, pool_state: &str, degraded: bool| {
        report(
            vec![disk("/dev/sdb", Some(WWN), "S", h)],
            vec![pool(
                "tank",
                pool_state,
                if pool_state == "ONLINE" {
                    Health::Ok
                } else {
                    Health::Warning
                },
            )],
            vec![array(
                "md0",
                degraded,
                if degraded {
                    Health::Warning
                } else {
                    Health::Ok
                },
            )],
        )
    };
    // Healthy first sighting: nothing.
    send_storage(
        &store,
        &a,
        host,
        stream,
        1,
        state(Health::Ok, "ONLINE", false),
    )
    .await;
    let (_, alerts) = get(&app, "/api/v1/alerts", Some(&token)).await;
    assert_eq!(alerts, serde_json::json!([]));
    // Goes bad, twice in a row: one alert each.
    send_storage(
        &store,
        &a,
        host,
        stream,
        2,
        state(Health::Critical, "DEGRADED", true),
    )
    .await;
    send_storage(
        &store,
        &a,
        host,
        stream,
        3,
        state(Health::Critical, "DEGRADED", true),
    )
    .await;
    let (_, alerts) = get(&app, "/api/v1/alerts", Some(&token)).await;
    assert_eq!(
        kinds(&alerts),
        strings(&[
            ("disk_health", "critical"),
            ("pool_state", "warning"),
            ("array_degraded", "warning")
        ])
    );
    let pool_alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "pool_state")
        .unwrap();
    assert_eq!(
        (
            pool_alert["previous"].as_str(),
            pool_alert["current"].as_str()
        ),
        (Some("ONLINE"), Some("DEGRADED"))
    );
    let before = OffsetDateTimeText::now();
    // Recovers: one info alert each.
    send_storage(
        &store,
        &a,
        host,
        stream,
        4,
        state(Health::Ok, "ONLINE", false),
    )
    .await;
    send_storage(
        &store,
        &a,
        host,
        stream,
        5,
        state(Health::Ok, "ONLINE", false),
    )
    .await;
    let (_, recent) = get(
        &app,
        &format!("/api/v1/alerts?since={}", before.0),
        Some(&token),
    )
    .await;
    assert_eq!(
        kinds(&recent),
        strings(&[
            ("disk_health", "info"),
            ("pool_state", "info"),
            ("array_degraded", "info")
        ]),
        "{recent:#}"
    );
    let disk_alert = recent
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "disk_health")
        .unwrap();
    assert_eq!(
        (
            disk_alert["previous"].as_str(),
            disk_alert["current"].as_str()
        ),
        (Some("critical"), Some("ok"))
    );
    let (_, all) = get(&app, "/api/v1/alerts?limit=2", Some(&token)).await;
    assert_eq!(all.as_array().unwrap().len(), 2, "limit");
    let (_, all) = get(
        &app,
        &format!("/api/v1/alerts?host_id={host}"),
        Some(&token),
    )
    .await;
    assert_eq!(all.as_array().unwrap().len(), 6);
    let times: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["raised_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
}

/// `?since=` needs a time the controller's clock has passed; RFC 3339 with a `Z`.
struct OffsetDateTimeText(String);
impl OffsetDateTimeText {
    fn now() -> Self {
        let now = time::OffsetDateTime::now_utc();
        Self(
            now.format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        )
    }
}

#[tokio::test]
async fn missing_objects_go_absent_only_when_their_source_worked() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    send_storage(
        &store,
        &a,
        host,
        stream,
        1,
        report(
            vec![disk("/dev/sdb", Some(WWN), "S", Health::Ok)],
            vec![pool("tank", "ONLINE", Health::Ok)],
            vec![],
        ),
    )
    .await;
    // SMART failed this round and ZFS worked but listed nothing.
    let mut broken = report(vec![], vec![], vec![]);
    broken.smart = failed("smartctl exited with status 2");
    send_storage(&store, &a, host, stream, 2, broken.clone()).await;
    send_storage(&store, &a, host, stream, 3, broken).await;
    let (_, disks) = get(&app, "/api/v1/disks", Some(&token)).await;
    assert_eq!(
        disks[0]["present"], true,
        "a failed source says nothing about its disks"
    );
    let (_, pools) = get(&app, "/api/v1/pools", Some(&token)).await;
    assert_eq!(pools[0]["present"], false);
    assert_eq!(pools[0]["state"], "ONLINE", "last values are kept");
    let (_, alerts) = get(&app, "/api/v1/alerts", Some(&token)).await;
    assert_eq!(
        kinds(&alerts),
        strings(&[("collector_state", "warning"), ("pool_presence", "warning")]),
        "{alerts:#}"
    );
    let (_, summary) = get(&app, &format!("/api/v1/hosts/{host}/storage"), Some(&token)).await;
    assert_eq!(summary["pools"]["absent"], 1);
    let smart = summary["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["source"] == "smart")
        .unwrap();
    assert_eq!(smart["state"], "failed");
    assert_eq!(smart["detail"], "smartctl exited with status 2");
    // SMART works again and lists no disk: now the disk is absent, the pool is back.
    send_storage(
        &store,
        &a,
        host,
        stream,
        4,
        report(vec![], vec![pool("tank", "ONLINE", Health::Ok)], vec![]),
    )
    .await;
    let (_, disks) = get(&app, "/api/v1/disks", Some(&token)).await;
    assert_eq!(disks[0]["present"], false);
    let (_, pools) = get(&app, "/api/v1/pools", Some(&token)).await;
    assert_eq!(pools[0]["present"], true);
    let (_, alerts) = get(&app, "/api/v1/alerts", Some(&token)).await;
    assert_eq!(
        kinds(&alerts),
        strings(&[
            ("collector_state", "warning"),
            ("collector_state", "info"),
            ("pool_presence", "warning"),
            ("pool_presence", "info"),
            ("disk_presence", "warning"),
        ]),
        "{alerts:#}"
    );
}

#[tokio::test]
async fn another_tenant_sees_none_of_it() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let token_a = store.create_api_token(a.id, "t").await.unwrap();
    let token_b = store.create_api_token(b.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    send_storage(&store, &a, host, Uuid::new_v4(), 1, trouble()).await;
    let mut ids = Vec::new();
    for list in ["disks", "pools", "arrays"] {
        let (_, mine) = get(&app, &format!("/api/v1/{list}"), Some(&token_a)).await;
        ids.push(format!(
            "/api/v1/{list}/{}",
            mine[0]["id"].as_str().unwrap()
        ));
        for query in ["", "?health=critical", &format!("?host_id={host}")] {
            let (status, theirs) =
                get(&app, &format!("/api/v1/{list}{query}"), Some(&token_b)).await;
            assert_eq!(
                (status, theirs),
                (StatusCode::OK, serde_json::json!([])),
                "{list}{query}"
            );
        }
    }
    ids.push(format!("/api/v1/hosts/{host}/storage"));
    for path in &ids {
        let (status, body) = get(&app, path, Some(&token_b)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(
            get(&app, path, Some(&token_a)).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    let (status, alerts) = get(
        &app,
        &format!("/api/v1/alerts?host_id={host}"),
        Some(&token_b),
    )
    .await;
    assert_eq!((status, alerts), (StatusCode::OK, serde_json::json!([])));
    // And the database itself: tenant B's transaction sees no storage rows at all.
    let mut tx = store.tenant_tx(b.id).await.unwrap();
    for table in [
        "disks",
        "disk_samples",
        "pools",
        "pool_samples",
        "arrays",
        "array_samples",
        "collector_status",
        "alerts",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(n, 0, "{table}");
    }
}

#[tokio::test]
async fn bad_filters_are_clear_400s_and_bad_ids_404s() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    send_storage(&store, &a, host, Uuid::new_v4(), 1, trouble()).await;
    for (path, needle) in [
        ("/api/v1/disks?health=bogus", "health `bogus`"),
        ("/api/v1/pools?health=CRITICAL", "health `CRITICAL`"),
        ("/api/v1/arrays?host_id=nope", "host_id `nope`"),
        ("/api/v1/alerts?since=yesterday", "since `yesterday`"),
        ("/api/v1/alerts?limit=0", "limit `0`"),
        ("/api/v1/alerts?limit=many", "limit `many`"),
    ] {
        let (status, body) = get(&app, path, Some(&token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["code"], "bad_request");
        assert!(
            body["message"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
    let (_, disks) = get(&app, "/api/v1/disks", Some(&token)).await;
    let disk_id = disks[0]["id"].as_str().unwrap().to_owned();
    let (status, _) = get(
        &app,
        &format!("/api/v1/disks/{disk_id}?limit=100000"),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for path in [
        "/api/v1/disks/not-a-uuid",
        "/api/v1/pools/1",
        "/api/v1/arrays/%00",
        "/api/v1/hosts/x/storage",
    ] {
        assert_eq!(
            get(&app, path, Some(&token)).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Unknown-but-valid ids are 404 too; a disk id is not a pool id.
    assert_eq!(
        get(&app, &format!("/api/v1/pools/{disk_id}"), Some(&token))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Filters that match.
    let (_, ok) = get(&app, "/api/v1/disks?health=ok", Some(&token)).await;
    assert_eq!(ok.as_array().unwrap().len(), 1);
    assert_eq!(ok[0]["device"], "/dev/sda");
    let (_, none) = get(
        &app,
        &format!("/api/v1/disks?host_id={}", Uuid::new_v4()),
        Some(&token),
    )
    .await;
    assert_eq!(none, serde_json::json!([]));
    let (_, future) = get(
        &app,
        "/api/v1/alerts?since=2999-01-01T00:00:00Z",
        Some(&token),
    )
    .await;
    assert_eq!(future, serde_json::json!([]));
}

#[tokio::test]
async fn odd_agent_text_is_stored_not_refused() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let mut d = disk("/dev/sdb", None, "S\0N", Health::Unknown);
    d.detail_json = "smartctl said: <not json>".into();
    d.model = Some("Model\0X".into());
    let mut p = pool("tank", "ONLINE", Health::Ok);
    p.detail_json = r#"{"note":"nul \u0000 here"}"#.into();
    let reply = send_storage(
        &store,
        &a,
        host,
        Uuid::new_v4(),
        1,
        report(vec![d], vec![p], vec![]),
    )
    .await;
    assert_eq!(
        reply,
        ReportReply::Ack {
            seq: 1,
            duplicate: false
        }
    );
    let (_, disks) = get(&app, "/api/v1/disks", Some(&token)).await;
    let (_, detail) = get(
        &app,
        &format!("/api/v1/disks/{}", disks[0]["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(detail["detail"], "smartctl said: <not json>");
    assert_eq!(detail["model"], "Model\u{FFFD}X");
    let (_, pools) = get(&app, "/api/v1/pools", Some(&token)).await;
    let (_, tank) = get(
        &app,
        &format!("/api/v1/pools/{}", pools[0]["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(tank["detail"]["note"], "nul \u{FFFD} here");
}

#[tokio::test]
async fn samples_older_than_retention_are_pruned() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    let now_ms =
        i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
    let day_ms = 24 * 3600 * 1000;
    let one = || {
        report(
            vec![disk("/dev/sdb", Some(WWN), "S", Health::Ok)],
            vec![],
            vec![],
        )
    };
    send_storage_at(&store, &a, host, stream, 1, now_ms - 100 * day_ms, one()).await;
    send_storage_at(&store, &a, host, stream, 2, now_ms - 10 * day_ms, one()).await;
    send_storage_at(&store, &a, host, stream, 3, now_ms, one()).await;
    let (_, disks) = get(&app, "/api/v1/disks", Some(&token)).await;
    let (_, detail) = get(
        &app,
        &format!("/api/v1/disks/{}", disks[0]["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(
        detail["history"].as_array().unwrap().len(),
        2,
        "the 100-day-old sample is gone"
    );
}

#[tokio::test]
async fn a_revoked_host_cannot_report_storage() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    assert!(
        unity_controller::store::hosts::revoke_host(&mut tx, host)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let result = unity_controller::ingest::apply(
        &store,
        &unity_controller::jobs::outcome::Peer {
            identity: unity_pki::HostIdentity {
                tenant_id: a.id,
                host_id: host,
            },
            host_key: Vec::new(),
        },
        &unity_protocol::latest::Report {
            stream_id: Uuid::new_v4(),
            seq: 1,
            collected_at_ms: 1_700_000_000_000,
            body: unity_protocol::latest::ReportBody::Storage(trouble()),
        },
    )
    .await;
    assert!(
        matches!(result, Err(unity_controller::ingest::IngestError::HostGone)),
        "{result:?}"
    );
}

/// Each round carries every object's whole detail document; one that has not changed is
/// left where it is (only its hash is compared), one that changed replaces the stored one,
/// and what the API shows is always the latest.
#[tokio::test]
async fn an_unchanged_detail_is_kept_and_a_changed_one_replaces_it() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    let round = |note: &str| {
        let mut d = disk("/dev/sda", Some(WWN), "S1", Health::Ok);
        d.detail_json = format!(r#"{{"disk":"{note}"}}"#);
        let mut p = pool("tank", "ONLINE", Health::Ok);
        p.detail_json = format!(r#"{{"pool":"{note}"}}"#);
        let mut m = array("md0", false, Health::Ok);
        m.detail_json = format!(r#"{{"array":"{note}"}}"#);
        report(vec![d], vec![p], vec![m])
    };
    let shown = |path: &'static str, field: &'static str| {
        let app = app.clone();
        let token = token.clone();
        async move {
            let (_, list) = get(&app, &format!("/api/v1/{path}"), Some(&token)).await;
            let id = list[0]["id"].as_str().unwrap().to_owned();
            let (_, one) = get(&app, &format!("/api/v1/{path}/{id}"), Some(&token)).await;
            one["detail"][field].as_str().unwrap().to_owned()
        }
    };
    let hashes = || {
        let store = store.clone();
        let tenant = a.id;
        async move {
            let mut tx = store.tenant_tx(tenant).await.unwrap();
            let mut hashes = Vec::new();
            for query in [
                "SELECT detail_hash FROM disks",
                "SELECT detail_hash FROM pools",
                "SELECT detail_hash FROM arrays",
            ] {
                let hash: Option<Vec<u8>> =
                    sqlx::query_scalar(query).fetch_one(&mut *tx).await.unwrap();
                hashes.push(hash.expect("a hash beside every written detail"));
            }
            hashes
        }
    };
    for (seq, note) in [(1, "first"), (2, "first"), (3, "second"), (4, "second")] {
        let reply = send_storage(&store, &a, host, stream, seq, round(note)).await;
        assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");
        assert_eq!(shown("disks", "disk").await, note, "round {seq}");
        assert_eq!(shown("pools", "pool").await, note, "round {seq}");
        assert_eq!(shown("arrays", "array").await, note, "round {seq}");
        let expected: Vec<Vec<u8>> = ["disk", "pool", "array"]
            .iter()
            .map(|what| {
                ring::digest::digest(
                    &ring::digest::SHA256,
                    format!(r#"{{"{what}":"{note}"}}"#).as_bytes(),
                )
                .as_ref()
                .to_vec()
            })
            .collect();
        assert_eq!(hashes().await, expected, "round {seq}");
    }
}
