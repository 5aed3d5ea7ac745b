//! Poison values on a real PostgreSQL: impossible collection times and absurd sizes are
//! refused at ingest (the reply says why, nothing is stored), NUL bytes in any report kind are
//! neutralised, implausible container times are dropped — and rows stored before these checks
//! are cleaned by migration 0007 so the API never answers 500 because of what an agent sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{fixtures, get, send_body, send_storage, send_storage_at};
use time::OffsetDateTime;
use unity_protocol::latest::{Health, HostFacts, ReportBody, ReportReply};
use uuid::Uuid;

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

fn facts(hostname: &str) -> HostFacts {
    HostFacts {
        hostname: hostname.into(),
        os_name: "Debian\0GNU/Linux".into(),
        os_version: "12".into(),
        kernel_version: "6.1".into(),
        architecture: "x86_64".into(),
        cpu_model: "cpu".into(),
        cpu_logical_cores: 2,
        cpu_physical_cores: Some(1),
        memory_total_bytes: 1,
        memory_available_bytes: 1,
        swap_total_bytes: 0,
        swap_free_bytes: 0,
        filesystems: vec![unity_protocol::latest::Filesystem {
            mount_point: "/mnt/\0odd".into(),
            device: "/dev/vda1".into(),
            fs_type: "ext4".into(),
            total_bytes: 1,
            available_bytes: 1,
        }],
        uptime_secs: 1,
        boot_id: "b".into(),
        agent_version: "t".into(),
    }
}

#[tokio::test]
async fn impossible_times_and_sizes_are_refused_and_nul_bytes_never_break_a_host() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    let disk = || {
        fixtures::report(
            vec![fixtures::disk(
                "/dev/sda",
                Some("5000c500a1b2c3d4"),
                "S1",
                Health::Ok,
            )],
            vec![],
            vec![],
        )
    };
    // 6 BC, 1970, two days ahead: refused, with the reason.
    let six_bc = -62_356_608_000_000;
    for (seq, at) in [(1, six_bc), (2, 1_000), (3, now_ms() + 2 * 86_400_000)] {
        match send_storage_at(&store, &a, host, stream, seq, at, disk()).await {
            ReportReply::Rejected { detail, .. } => {
                assert!(detail.contains("clock is wrong"), "{detail}")
            }
            other => panic!("accepted an impossible time: {other:?}"),
        }
    }
    let (status, disks) = get(&app, "/api/v1/disks", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(disks, serde_json::json!([]), "nothing of them was stored");
    // A sane report on the same stream afterwards is applied: refusals did not advance it.
    let reply = send_storage(&store, &a, host, stream, 1, disk()).await;
    assert!(
        matches!(
            reply,
            ReportReply::Ack {
                duplicate: false,
                ..
            }
        ),
        "{reply:?}"
    );
    for path in ["/api/v1/disks", "/api/v1/alerts", "/api/v1/hosts"] {
        let (status, _) = get(&app, path, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    // NUL in host facts: stored (replaced), and the next report of the host still works.
    let reply = send_body(
        &store,
        &a,
        host,
        stream,
        10,
        ReportBody::HostFacts(facts("n\0as")),
    )
    .await;
    assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");
    let (status, detail) = get(&app, &format!("/api/v1/hosts/{host}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["hostname"], "n\u{FFFD}as");
    assert_eq!(
        detail["facts"]["filesystems"][0]["mount_point"],
        "/mnt/\u{FFFD}odd"
    );
    let reply = send_body(
        &store,
        &a,
        host,
        stream,
        11,
        ReportBody::HostFacts(facts("nas")),
    )
    .await;
    assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");

    // Absurd sizes.
    let mut huge = facts("nas");
    huge.filesystems = vec![huge.filesystems[0].clone(); 5000];
    match send_body(&store, &a, host, stream, 12, ReportBody::HostFacts(huge)).await {
        ReportReply::Rejected { detail, .. } => assert!(detail.contains("filesystems"), "{detail}"),
        other => panic!("accepted 5000 filesystems: {other:?}"),
    }

    // A container whose engine gave nonsense times: kept, without the times.
    let mut c = common::inventory::container("c1", "web", "running");
    c.created_at_ms = Some(six_bc);
    c.started_at_ms = Some(i64::MAX);
    let reply = send_body(
        &store,
        &a,
        host,
        stream,
        13,
        common::inventory::containers(vec![c], vec![]),
    )
    .await;
    assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");
    let (status, containers) = get(&app, "/api/v1/containers", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{containers}");
    assert!(containers[0]["created_at"].is_null() && containers[0]["started_at"].is_null());
}

#[tokio::test]
async fn migration_0007_cleans_rows_stored_before_the_checks() {
    let (pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let reply = send_storage(
        &store,
        &a,
        host,
        Uuid::new_v4(),
        1,
        fixtures::report(
            vec![fixtures::disk(
                "/dev/sda",
                Some("5000c500a1b2c3d4"),
                "S1",
                Health::Critical,
            )],
            vec![],
            vec![],
        ),
    )
    .await;
    assert!(matches!(reply, ReportReply::Ack { .. }));
    // What an older controller let in: a sample, an alert and a disk dated 6 BC.
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *store.tenant_tx(a.id).await.unwrap())
        .await
        .unwrap();
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect_with(&pg.connect_options(&name))
        .await
        .unwrap();
    for statement in [
        "UPDATE disk_samples SET collected_at = '0006-06-01 00:00:00+00 BC'",
        "UPDATE alerts SET observed_at = '0006-06-01 00:00:00+00 BC'",
        "UPDATE disks SET last_seen_at = '0006-06-01 00:00:00+00 BC'",
    ] {
        sqlx::query(statement).execute(&mut db).await.unwrap();
    }
    let (app, _keys) = common::app(store.clone());
    let (status, _) = get(&app, "/api/v1/disks", Some(&token)).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the failure this migration repairs"
    );
    sqlx::raw_sql(include_str!("../migrations/0007_poison_times.sql"))
        .execute(&mut db)
        .await
        .unwrap();
    for path in ["/api/v1/disks", "/api/v1/alerts"] {
        let (status, body) = get(&app, path, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (_, disks) = get(&app, "/api/v1/disks", Some(&token)).await;
    let id = disks[0]["id"].as_str().unwrap();
    let (status, disk) = get(&app, &format!("/api/v1/disks/{id}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        disk["history"],
        serde_json::json!([]),
        "the undatable sample is gone"
    );
}
