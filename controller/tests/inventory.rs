//! Container and database reports end to end on a real PostgreSQL: ingest (`ingest::apply`,
//! the path agent sessions use) → rows and alerts → the HTTP API, for two tenants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::inventory::{container, containers, database, databases, engine, image};
use common::{get, send_body};
use serde_json::Value;
use unity_protocol::latest::{
    ContainerReport, DatabaseReport, ReportBody, ReportReply, SourceState, SourceStatus,
    UpdateState,
};
use uuid::Uuid;

fn kinds(alerts: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_owned(),
                a["severity"].as_str().unwrap().to_owned(),
                a["current"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn expect(triples: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = triples
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    out.sort();
    out
}

fn status(state: SourceState, detail: &str) -> SourceStatus {
    SourceStatus {
        state,
        detail: detail.into(),
    }
}

fn acked(reply: &ReportReply, seq: u64) {
    assert_eq!(
        reply,
        &ReportReply::Ack {
            seq,
            duplicate: false
        }
    );
}

/// Alerts raised since `before` (the list is newest first; counts are what matter).
async fn alerts_since(app: &axum::Router, token: &str, before: usize) -> Value {
    let (_, all) = get(app, "/api/v1/alerts", Some(token)).await;
    let all = all.as_array().unwrap();
    Value::Array(all[..all.len() - before].to_vec())
}

async fn alert_count(app: &axum::Router, token: &str) -> usize {
    let (_, all) = get(app, "/api/v1/alerts", Some(token)).await;
    all.as_array().unwrap().len()
}

fn find<'a>(list: &'a Value, field: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x[field] == value)
        .unwrap_or_else(|| panic!("no {field}={value} in {list:#}"))
}

#[tokio::test]
async fn containers_are_stored_and_each_change_alerts_once() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "docker-1").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();

    let mut web = container("c-web", "web", "running");
    web.health = Some("healthy".into());
    let db = container("c-db", "db", "running");
    let mut job = container("c-job", "job", "exited");
    job.exit_code = Some(1);
    let mut app_c = container("c-app", "app", "running");
    app_c.update.state = UpdateState::UpdateAvailable;
    app_c.update.new_digest = Some("sha256:new".into());
    let round1 = || {
        containers(
            vec![web.clone(), db.clone(), job.clone(), app_c.clone()],
            vec![
                image("sha256:i1", "nginx:1.27"),
                image("sha256:i2", "postgres:16"),
            ],
        )
    };
    for seq in 1..=3 {
        acked(
            &send_body(&store, &a, host, stream, seq, round1()).await,
            seq,
        );
    }

    let (status_code, list) = get(&app, "/api/v1/containers", Some(&token)).await;
    assert_eq!(status_code, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 4, "{list:#}");
    let w = find(&list, "engine_id", "c-web");
    assert_eq!(w["name"], "/web");
    assert_eq!(w["state"], "running");
    assert_eq!(w["health"], "healthy");
    assert_eq!(w["host_id"], host.to_string());
    assert_eq!(w["ports"][0], "0.0.0.0:8080->80/tcp");
    assert_eq!(w["compose_project"], "homelab");
    assert_eq!(w["update_state"], "up_to_date");
    assert_eq!(w["present"], true);
    assert_eq!(w["created_at"], "2023-11-14T22:13:20Z");
    let (status_code, detail) = get(
        &app,
        &format!("/api/v1/containers/{}", w["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(status_code, StatusCode::OK);
    assert_eq!(
        detail["detail"]["labels"]["com.docker.compose.service"],
        "web"
    );
    assert_eq!(detail["engine_id"], "c-web");

    let (_, exited) = get(&app, "/api/v1/containers?state=exited", Some(&token)).await;
    assert_eq!(exited.as_array().unwrap().len(), 1);
    assert_eq!(exited[0]["engine_id"], "c-job");
    let (_, behind) = get(
        &app,
        "/api/v1/containers?update=update_available",
        Some(&token),
    )
    .await;
    assert_eq!(behind.as_array().unwrap().len(), 1);
    assert_eq!(behind[0]["update_new_digest"], "sha256:new");
    let (_, mine) = get(
        &app,
        &format!("/api/v1/containers?host_id={host}&state=running&update=up_to_date"),
        Some(&token),
    )
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 2, "{mine:#}");
    let (_, other) = get(
        &app,
        &format!("/api/v1/containers?host_id={}", Uuid::new_v4()),
        Some(&token),
    )
    .await;
    assert_eq!(other, serde_json::json!([]));
    let (_, images) = get(
        &app,
        &format!("/api/v1/images?host_id={host}"),
        Some(&token),
    )
    .await;
    assert_eq!(images.as_array().unwrap().len(), 2);
    let i1 = find(&images, "image_id", "sha256:i1");
    assert_eq!(i1["tags"][0], "nginx:1.27");
    assert_eq!(i1["size_bytes"], 187_000_000);

    // Three identical reports: the failed job and the available update, once each.
    let (_, alerts) = get(&app, "/api/v1/alerts", Some(&token)).await;
    assert_eq!(
        kinds(&alerts),
        expect(&[
            ("container_state", "warning", "exited"),
            ("container_update", "info", "update_available"),
        ]),
        "{alerts:#}"
    );
    let job_alert = find(&alerts, "kind", "container_state");
    assert!(job_alert["previous"].is_null());
    assert_eq!(job_alert["object_kind"], "container");
    assert!(
        job_alert["message"]
            .as_str()
            .unwrap()
            .contains("exit code 1")
    );

    // Round 2 (twice): web crashes, db turns unhealthy, a newer image appears for app.
    let before = alerts.as_array().unwrap().len();
    let mut web2 = web.clone();
    web2.state = "exited".into();
    web2.exit_code = Some(137);
    let mut db2 = db.clone();
    db2.health = Some("unhealthy".into());
    let mut app2 = app_c.clone();
    app2.update.new_digest = Some("sha256:newer".into());
    let round2 = || {
        containers(
            vec![web2.clone(), db2.clone(), job.clone(), app2.clone()],
            vec![image("sha256:i1", "nginx:1.27")],
        )
    };
    acked(&send_body(&store, &a, host, stream, 4, round2()).await, 4);
    acked(&send_body(&store, &a, host, stream, 5, round2()).await, 5);
    let new = alerts_since(&app, &token, before).await;
    assert_eq!(
        kinds(&new),
        expect(&[
            ("container_state", "warning", "exited"),
            ("container_health", "warning", "unhealthy"),
            ("container_update", "info", "update_available"),
        ]),
        "{new:#}"
    );
    assert_eq!(find(&new, "kind", "container_state")["previous"], "running");
    // The image no longer listed went absent, not away.
    let (_, images) = get(&app, "/api/v1/images", Some(&token)).await;
    assert_eq!(find(&images, "image_id", "sha256:i2")["present"], false);

    // Round 3 (twice): both recover: info, once. Health passes through `starting` first.
    let before = alert_count(&app, &token).await;
    let mut web3 = web.clone();
    web3.health = Some("starting".into());
    let mut db3 = db.clone();
    db3.health = Some("starting".into());
    acked(
        &send_body(
            &store,
            &a,
            host,
            stream,
            6,
            containers(vec![web3, db3, job.clone(), app2.clone()], vec![]),
        )
        .await,
        6,
    );
    let mut db4 = db.clone();
    db4.health = Some("healthy".into());
    for seq in [7, 8] {
        acked(
            &send_body(
                &store,
                &a,
                host,
                stream,
                seq,
                containers(
                    vec![web.clone(), db4.clone(), job.clone(), app2.clone()],
                    vec![],
                ),
            )
            .await,
            seq,
        );
    }
    let new = alerts_since(&app, &token, before).await;
    assert_eq!(
        kinds(&new),
        expect(&[
            ("container_state", "info", "running"),
            ("container_health", "info", "healthy"),
        ]),
        "{new:#}"
    );

    let (status_code, summary) = get(
        &app,
        &format!("/api/v1/hosts/{host}/inventory"),
        Some(&token),
    )
    .await;
    assert_eq!(status_code, StatusCode::OK);
    assert_eq!(summary["engine"]["kind"], "docker");
    assert_eq!(summary["engine"]["version"], "27.3.1");
    assert_eq!(summary["engine"]["present"], true);
    assert_eq!(summary["containers"]["total"], 4);
    assert_eq!(summary["containers"]["by_state"]["running"], 3);
    assert_eq!(summary["containers"]["by_state"]["exited"], 1);
    assert_eq!(summary["containers"]["by_update"]["update_available"], 1);
    assert_eq!(summary["containers"]["by_update"]["up_to_date"], 3);
    assert_eq!(summary["containers"]["unhealthy"], 0);
    assert_eq!(summary["images"]["total"], 0);
    assert_eq!(summary["images"]["absent"], 2);
    assert_eq!(summary["collectors"][0]["source"], "containers");
    assert_eq!(summary["collectors"][0]["state"], "ok");
    // The storage summary keeps listing only storage collectors.
    let (_, storage) = get(&app, &format!("/api/v1/hosts/{host}/storage"), Some(&token)).await;
    assert_eq!(storage["collectors"], serde_json::json!([]));
}

#[tokio::test]
async fn databases_alert_on_appearing_disappearing_and_version_changes() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "db-1").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    let pg = database("postgresql", "127.0.0.1:5432", "16.4");
    let redis = database("redis", "[::]:6379", "7.2.5");
    for seq in [1, 2] {
        acked(
            &send_body(
                &store,
                &a,
                host,
                stream,
                seq,
                databases(vec![pg.clone(), redis.clone()]),
            )
            .await,
            seq,
        );
    }
    let (_, alerts) = get(&app, "/api/v1/alerts", Some(&token)).await;
    assert_eq!(
        kinds(&alerts),
        expect(&[
            ("database_presence", "info", "present"),
            ("database_presence", "info", "present"),
        ]),
        "{alerts:#}"
    );
    let (_, list) = get(&app, "/api/v1/databases", Some(&token)).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let p = find(&list, "kind", "postgresql");
    assert_eq!(p["identity_key"], "postgresql:tcp:5432");
    assert_eq!(p["version"], "16.4");
    assert_eq!(p["listen"][0], "127.0.0.1:5432");
    assert_eq!(p["found_by"], serde_json::json!(["socket", "process"]));
    assert_eq!(p["probe"], "confirmed");
    assert_eq!(p["pid"], 1234);
    let (_, only) = get(&app, "/api/v1/databases?kind=redis", Some(&token)).await;
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["identity_key"], "redis:tcp:6379");
    let (status_code, detail) = get(
        &app,
        &format!("/api/v1/databases/{}", p["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(status_code, StatusCode::OK);
    assert_eq!(detail["detail"]["kind"], "postgresql");

    // Postgres upgraded and now also listening on ::1 (listed first), redis gone; twice.
    let before = alert_count(&app, &token).await;
    let mut pg2 = database("postgresql", "[::1]:5432", "16.6");
    pg2.listen.push("127.0.0.1:5432".into());
    for seq in [3, 4] {
        acked(
            &send_body(&store, &a, host, stream, seq, databases(vec![pg2.clone()])).await,
            seq,
        );
    }
    let new = alerts_since(&app, &token, before).await;
    assert_eq!(
        kinds(&new),
        expect(&[
            ("database_presence", "warning", "absent"),
            ("database_version", "info", "16.6"),
        ]),
        "{new:#}"
    );
    assert_eq!(find(&new, "kind", "database_version")["previous"], "16.4");
    let (_, list) = get(&app, "/api/v1/databases", Some(&token)).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "same identity, one row");
    assert_eq!(find(&list, "kind", "redis")["present"], false);

    // A round that cannot read the version keeps the known one and raises nothing.
    let mut pg3 = pg2.clone();
    pg3.version = None;
    pg3.probe = "auth_required".into();
    let before = alert_count(&app, &token).await;
    acked(
        &send_body(&store, &a, host, stream, 5, databases(vec![pg3])).await,
        5,
    );
    assert_eq!(alert_count(&app, &token).await, before);
    let (_, list) = get(&app, "/api/v1/databases?kind=postgresql", Some(&token)).await;
    assert_eq!(list[0]["version"], "16.6");
    assert_eq!(list[0]["probe"], "auth_required");

    // Redis is back: info.
    acked(
        &send_body(
            &store,
            &a,
            host,
            stream,
            6,
            databases(vec![pg2.clone(), redis.clone()]),
        )
        .await,
        6,
    );
    let new = alerts_since(&app, &token, before).await;
    assert_eq!(
        kinds(&new),
        expect(&[("database_presence", "info", "present")])
    );
    assert_eq!(new[0]["previous"], "absent");
    let (_, summary) = get(
        &app,
        &format!("/api/v1/hosts/{host}/inventory"),
        Some(&token),
    )
    .await;
    assert_eq!(summary["databases"]["total"], 2);
    assert_eq!(summary["databases"]["by_kind"]["postgresql"], 1);
    assert_eq!(summary["databases"]["by_kind"]["redis"], 1);
    assert!(summary["engine"].is_null(), "no container report yet");
}

#[tokio::test]
async fn missing_objects_go_absent_only_when_their_source_worked() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "box").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    let web = container("c-web", "web", "running");
    acked(
        &send_body(
            &store,
            &a,
            host,
            stream,
            1,
            containers(vec![web.clone()], vec![image("sha256:i1", "nginx:1.27")]),
        )
        .await,
        1,
    );
    acked(
        &send_body(
            &store,
            &a,
            host,
            stream,
            2,
            databases(vec![database("mysql", "0.0.0.0:3306", "8.4.2")]),
        )
        .await,
        2,
    );
    let before = alert_count(&app, &token).await;

    // Both sources fail with empty lists: nothing changes but the collector state.
    let failed_containers = ReportBody::Containers(ContainerReport {
        status: status(
            SourceState::PermissionDenied,
            "docker.sock: permission denied",
        ),
        engine: None,
        containers: vec![],
        images: vec![],
    });
    let failed_databases = ReportBody::Databases(DatabaseReport {
        status: status(SourceState::Failed, "ss exited with status 1"),
        databases: vec![],
    });
    for (seq, body) in [
        (3, failed_containers.clone()),
        (4, failed_databases.clone()),
    ] {
        acked(&send_body(&store, &a, host, stream, seq, body).await, seq);
    }
    // Again: the collector alerts are raised once.
    for (seq, body) in [(5, failed_containers), (6, failed_databases)] {
        acked(&send_body(&store, &a, host, stream, seq, body).await, seq);
    }
    let (_, list) = get(&app, "/api/v1/containers", Some(&token)).await;
    assert_eq!(list[0]["present"], true);
    let (_, list) = get(&app, "/api/v1/images", Some(&token)).await;
    assert_eq!(list[0]["present"], true);
    let (_, list) = get(&app, "/api/v1/databases", Some(&token)).await;
    assert_eq!(list[0]["present"], true);
    let (_, summary) = get(
        &app,
        &format!("/api/v1/hosts/{host}/inventory"),
        Some(&token),
    )
    .await;
    assert_eq!(summary["engine"]["present"], true);
    let states: Vec<(&str, &str)> = summary["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["source"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("containers", "permission_denied"), ("databases", "failed")]
    );
    let new = alerts_since(&app, &token, before).await;
    assert_eq!(
        kinds(&new),
        expect(&[
            ("collector_state", "warning", "failed"),
            ("collector_state", "warning", "permission_denied"),
        ]),
        "{new:#}"
    );

    // The engine is gone (`not_present`) and discovery worked and found nothing: absent.
    let before = alert_count(&app, &token).await;
    acked(
        &send_body(
            &store,
            &a,
            host,
            stream,
            7,
            ReportBody::Containers(ContainerReport {
                status: status(SourceState::NotPresent, "no engine socket"),
                engine: None,
                containers: vec![],
                images: vec![],
            }),
        )
        .await,
        7,
    );
    acked(
        &send_body(&store, &a, host, stream, 8, databases(vec![])).await,
        8,
    );
    let (_, list) = get(&app, "/api/v1/containers", Some(&token)).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "kept, not deleted");
    assert_eq!(list[0]["present"], false);
    let (_, list) = get(&app, "/api/v1/images", Some(&token)).await;
    assert_eq!(list[0]["present"], false);
    let (_, list) = get(&app, "/api/v1/databases", Some(&token)).await;
    assert_eq!(list[0]["present"], false);
    let (_, summary) = get(
        &app,
        &format!("/api/v1/hosts/{host}/inventory"),
        Some(&token),
    )
    .await;
    assert_eq!(summary["engine"]["present"], false);
    assert_eq!(summary["containers"]["absent"], 1);
    assert_eq!(summary["containers"]["total"], 0);
    assert_eq!(summary["databases"]["absent"], 1);
    let new = alerts_since(&app, &token, before).await;
    assert_eq!(
        kinds(&new),
        expect(&[
            ("collector_state", "info", "not_present"),
            ("collector_state", "info", "ok"),
            ("database_presence", "warning", "absent"),
        ]),
        "{new:#}"
    );

    // Listed again: present again.
    acked(
        &send_body(&store, &a, host, stream, 9, containers(vec![web], vec![])).await,
        9,
    );
    let (_, list) = get(&app, "/api/v1/containers", Some(&token)).await;
    assert_eq!(list[0]["present"], true);
}

#[tokio::test]
async fn bad_filters_are_400s_and_another_tenant_sees_nothing() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    let host = common::add_host(&store, &a, "box").await;
    let token_a = store.create_api_token(a.id, "t").await.unwrap();
    let token_b = store.create_api_token(b.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    acked(
        &send_body(
            &store,
            &a,
            host,
            stream,
            1,
            containers(
                vec![container("c-web", "web", "running")],
                vec![image("sha256:i1", "nginx:1.27")],
            ),
        )
        .await,
        1,
    );
    acked(
        &send_body(
            &store,
            &a,
            host,
            stream,
            2,
            databases(vec![database("redis", "127.0.0.1:6379", "7.2.5")]),
        )
        .await,
        2,
    );

    for (path, parameter) in [
        ("/api/v1/containers?state=sleeping", "state"),
        ("/api/v1/containers?state=", "state"),
        ("/api/v1/containers?update=maybe", "update"),
        ("/api/v1/containers?host_id=nas", "host_id"),
        ("/api/v1/images?host_id=1", "host_id"),
        ("/api/v1/databases?kind=Postgres!", "kind"),
        ("/api/v1/databases?kind=", "kind"),
        ("/api/v1/databases?host_id=x", "host_id"),
    ] {
        let (status_code, body) = get(&app, path, Some(&token_a)).await;
        assert_eq!(status_code, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["code"], "bad_request");
        assert!(
            body["message"].as_str().unwrap().contains(parameter),
            "{path}: {body}"
        );
    }

    let (_, list) = get(&app, "/api/v1/containers", Some(&token_a)).await;
    let container_id = list[0]["id"].as_str().unwrap().to_owned();
    let (_, list) = get(&app, "/api/v1/databases", Some(&token_a)).await;
    let database_id = list[0]["id"].as_str().unwrap().to_owned();
    for path in [
        "/api/v1/containers".to_owned(),
        format!("/api/v1/containers?host_id={host}"),
        "/api/v1/images".to_owned(),
        format!("/api/v1/images?host_id={host}"),
        "/api/v1/databases".to_owned(),
        "/api/v1/databases?kind=redis".to_owned(),
    ] {
        let (status_code, body) = get(&app, &path, Some(&token_b)).await;
        assert_eq!(status_code, StatusCode::OK, "{path}");
        assert_eq!(body, serde_json::json!([]), "{path} leaks");
    }
    for path in [
        format!("/api/v1/containers/{container_id}"),
        format!("/api/v1/databases/{database_id}"),
        format!("/api/v1/hosts/{host}/inventory"),
    ] {
        let (status_code, body) = get(&app, &path, Some(&token_b)).await;
        assert_eq!(status_code, StatusCode::NOT_FOUND, "{path}: {body}");
        let (status_code, _) = get(&app, &path, Some(&token_a)).await;
        assert_eq!(status_code, StatusCode::OK, "{path}");
    }
    for path in [
        "/api/v1/containers/c-web",
        "/api/v1/databases/not-a-uuid",
        "/api/v1/hosts/1/inventory",
    ] {
        let (status_code, _) = get(&app, path, Some(&token_a)).await;
        assert_eq!(status_code, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, alerts) = get(&app, "/api/v1/alerts", Some(&token_b)).await;
    assert_eq!(alerts, serde_json::json!([]));
}

#[tokio::test]
async fn a_redelivered_report_changes_nothing() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "box").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    let running = containers(vec![container("c-web", "web", "running")], vec![]);
    let mut crashed = container("c-web", "web", "exited");
    crashed.exit_code = Some(2);
    let crashed = containers(vec![crashed], vec![]);
    acked(
        &send_body(&store, &a, host, stream, 1, running.clone()).await,
        1,
    );
    acked(
        &send_body(&store, &a, host, stream, 2, crashed.clone()).await,
        2,
    );
    let before = alert_count(&app, &token).await;
    assert_eq!(before, 1);
    // Redelivered (same seq, even carrying other content): acknowledged, not applied.
    for (seq, body) in [(2, crashed), (1, running), (2, databases(vec![]))] {
        let reply = send_body(&store, &a, host, stream, seq, body).await;
        assert_eq!(
            reply,
            ReportReply::Ack {
                seq,
                duplicate: true
            }
        );
    }
    assert_eq!(alert_count(&app, &token).await, before);
    let (_, list) = get(&app, "/api/v1/containers", Some(&token)).await;
    assert_eq!(list[0]["state"], "exited");
    let (_, summary) = get(
        &app,
        &format!("/api/v1/hosts/{host}/inventory"),
        Some(&token),
    )
    .await;
    let sources: Vec<&str> = summary["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        ["containers"],
        "the redelivered database report was not applied"
    );
}

#[tokio::test]
async fn odd_agent_text_is_stored_not_refused() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "box").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let stream = Uuid::new_v4();
    let mut odd = container("c-odd\0", "we\0b", "running");
    odd.detail_json = "not json \0 at all".into();
    odd.ports = vec!["80\0/tcp".into()];
    let mut pg = database("postgresql", "/run/postgresql/.s.PGSQL.5432", "16\0.4");
    pg.detail_json = r#"{"banner":"x\u0000y"}"#.into();
    let body = ReportBody::Containers(ContainerReport {
        status: status(SourceState::Ok, ""),
        engine: Some(engine()),
        containers: vec![odd],
        images: vec![],
    });
    acked(&send_body(&store, &a, host, stream, 1, body).await, 1);
    acked(
        &send_body(&store, &a, host, stream, 2, databases(vec![pg])).await,
        2,
    );
    let (_, list) = get(&app, "/api/v1/containers", Some(&token)).await;
    assert_eq!(list[0]["name"], "/we\u{FFFD}b");
    assert_eq!(list[0]["ports"][0], "80\u{FFFD}/tcp");
    let (_, detail) = get(
        &app,
        &format!("/api/v1/containers/{}", list[0]["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(detail["detail"], "not json \u{FFFD} at all");
    let (_, list) = get(&app, "/api/v1/databases", Some(&token)).await;
    assert_eq!(
        list[0]["identity_key"],
        "postgresql:unix:/run/postgresql/.s.PGSQL.5432"
    );
    assert_eq!(list[0]["version"], "16\u{FFFD}.4");
    let (_, detail) = get(
        &app,
        &format!("/api/v1/databases/{}", list[0]["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;
    assert_eq!(detail["detail"]["banner"], "x\u{FFFD}y");
}

/// Every table with a `tenant_id` (the inventory tables included) has row-level security
/// with the `tenant_isolation` policy, and the application role cannot delete inventory.
#[tokio::test]
async fn every_tenant_table_is_isolated_and_inventory_is_never_deleted() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    let tables: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname, c.relrowsecurity, EXISTS (SELECT 1 FROM pg_policies p \
             WHERE p.tablename = c.relname AND p.policyname = 'tenant_isolation' \
             AND p.cmd = 'ALL') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_attribute t \
             WHERE t.attrelid = c.oid AND t.attname = 'tenant_id' AND NOT t.attisdropped) \
         ORDER BY 1",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let names: Vec<&str> = tables.iter().map(|(n, _, _)| n.as_str()).collect();
    for table in [
        "container_engines",
        "containers",
        "container_images",
        "databases",
    ] {
        assert!(names.contains(&table), "{table} in {names:?}");
        let can_delete: bool =
            sqlx::query_scalar("SELECT has_table_privilege('unity_app', $1, 'DELETE')")
                .bind(table)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert!(!can_delete, "unity_app may delete from {table}");
    }
    for (table, rls, policy) in &tables {
        assert!(
            *rls && *policy,
            "{table}: rls {rls}, tenant_isolation policy {policy}"
        );
    }
}
