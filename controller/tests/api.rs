//! The HTTP API over a real database: authentication, tenant isolation on every route, the
//! OpenAPI document. Requests go through the real router with `oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use axum::http::StatusCode;
use common::{get, request};
use unity_controller::api::{self, OPERATOR_ROUTES, PUBLIC_ROUTES, SHARED_ROUTES, TENANT_ROUTES};
use unity_controller::auth::Scope;
use unity_protocol::latest::{Health, ReportReply};
use uuid::Uuid;

#[tokio::test]
async fn tenant_routes_need_a_valid_token() {
    let (_pg, store) = common::database().await;
    let (app, _keys) = common::app(store);
    for (method, route) in TENANT_ROUTES.iter().chain(SHARED_ROUTES) {
        let path = route.replace("{id}", &Uuid::new_v4().to_string());
        for token in [None, Some("ufa_wrong"), Some("")] {
            let (status, body) = request(&app, method, &path, token, None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}"
            );
            assert_eq!(body["code"], "unauthorized");
        }
    }
}

/// The omicron-style table: for every tenant-scoped route, tenant B asking for tenant A's
/// objects gets 404 (or an empty list) — the same as for objects that do not exist. Each
/// `{id}` route gets an id of its own kind from tenant A's fixtures; a new `{id}` route
/// without one fails here.
#[tokio::test]
async fn another_tenants_objects_are_not_found_on_every_route() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    let host_a = common::add_host(&store, &a, "nas-a").await;
    // Admin tokens, so the routes that change things (jobs, channels) are reached too.
    let token_a = store
        .create_scoped_api_token(a.id, "t", Scope::Admin)
        .await
        .unwrap();
    let token_b = store
        .create_scoped_api_token(b.id, "t", Scope::Admin)
        .await
        .unwrap();
    // A failing disk, a degraded pool and array: rows in every storage table and alerts.
    let mut broken = common::fixtures::pool("tank", "DEGRADED", Health::Critical);
    broken.scan_errors = Some(1);
    let reply = common::send_storage(
        &store,
        &a,
        host_a,
        Uuid::new_v4(),
        1,
        common::fixtures::report(
            vec![common::fixtures::disk(
                "/dev/sdb",
                Some("5000c500a1b2c3d4"),
                "S1",
                Health::Critical,
            )],
            vec![broken],
            vec![common::fixtures::array("md0", true, Health::Critical)],
        ),
    )
    .await;
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
    // A container, an image and a database: rows in every inventory table.
    let stream = Uuid::new_v4();
    for (seq, body) in [
        (
            1,
            common::inventory::containers(
                vec![common::inventory::container("c1", "web", "running")],
                vec![common::inventory::image("sha256:i1", "nginx:1.27")],
            ),
        ),
        (
            2,
            common::inventory::databases(vec![common::inventory::database(
                "postgresql",
                "127.0.0.1:5432",
                "16.4",
            )]),
        ),
        (
            3,
            unity_protocol::latest::ReportBody::Packages(unity_protocol::latest::PackageReport {
                status: unity_protocol::latest::SourceStatus {
                    state: unity_protocol::latest::SourceState::Ok,
                    detail: String::new(),
                },
                manager: "apt".into(),
                pending: vec![unity_protocol::latest::PendingUpdate {
                    name: "openssl".into(),
                    current_version: Some("3.0.11-1~deb12u1".into()),
                    new_version: "3.0.11-1~deb12u2".into(),
                    architecture: "amd64".into(),
                    origins: vec!["Debian-Security:12/stable-security".into()],
                    security: true,
                }],
                held_back: vec![],
                lists_updated_at_ms: None,
                reboot_required: true,
                reboot_required_by: vec!["linux-image-amd64".into()],
            }),
        ),
    ] {
        let reply = common::send_body(&store, &a, host_a, stream, seq, body).await;
        assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");
    }
    let (app, _keys) = common::app(store.clone());
    // The host list rolls its objects up: the failing disk makes it critical, its alerts open.
    let (_, hosts) = get(&app, "/api/v1/hosts", Some(&token_a)).await;
    assert_eq!(hosts[0]["health"], "critical", "{hosts}");
    assert!(hosts[0]["open_alerts"].as_i64().unwrap() >= 1, "{hosts}");
    assert!(hosts[0]["silent_since"].is_null(), "{hosts}");
    // A notification channel of tenant A, with a test message that gave up (dead).
    let (status, channel) = request(
        &app,
        "POST",
        "/api/v1/channels",
        Some(&token_a),
        Some(serde_json::json!({ "name": "phone", "url": "ntfy://ntfy.example.net/lab" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{channel}");
    let channel_id = channel["id"].as_str().unwrap().to_owned();
    let (status, queued) = request(
        &app,
        "POST",
        &format!("/api/v1/channels/{channel_id}/test"),
        Some(&token_a),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let notification_id = queued["notification_id"].as_str().unwrap().to_owned();
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    sqlx::query("UPDATE notifications SET state = 'dead' WHERE id = $1")
        .bind(Uuid::parse_str(&notification_id).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A console user of tenant A.
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    let user_a = unity_controller::store::users::create_user(
        &mut tx,
        a.id,
        "alice",
        unity_controller::store::users::Role::Viewer,
        "correct horse battery staple",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // A second API token of tenant A, for the revocation route (not the one making the calls).
    store
        .create_scoped_api_token(a.id, "victim", Scope::Read)
        .await
        .unwrap();
    // A job of tenant A.
    let (status, job) = request(
        &app,
        "POST",
        "/api/v1/jobs",
        Some(&token_a),
        Some(serde_json::json!({ "host_id": host_a, "kind": "ping" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    // A maintenance window of tenant A.
    let window_body = serde_json::json!({
        "host_id": host_a, "days": ["sat"], "start": "02:00", "duration_minutes": 60,
        "time_zone": "Europe/Berlin"
    });
    let (status, window) = request(
        &app,
        "POST",
        "/api/v1/maintenance-windows",
        Some(&token_a),
        Some(window_body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{window}");
    let window_id = window["id"].as_str().unwrap().to_owned();
    // A rollout of tenant A (the runner is not running here: it stays in its first wave).
    let rollout_body = serde_json::json!({ "kind": "ping", "hosts": { "host_ids": [host_a] } });
    let (status, rollout) = request(
        &app,
        "POST",
        "/api/v1/rollouts",
        Some(&token_a),
        Some(rollout_body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rollout}");
    let rollout_id = rollout["id"].as_str().unwrap().to_owned();
    let schedule_body = serde_json::json!({
        "name": "nightly", "rollout": { "kind": "ping", "hosts": { "host_ids": [host_a] } },
        "days": ["sun"], "start": "03:00", "duration_minutes": 60
    });
    let (status, schedule) = request(
        &app,
        "POST",
        "/api/v1/rollout-schedules",
        Some(&token_a),
        Some(schedule_body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    let schedule_id = schedule["id"].as_str().unwrap().to_owned();
    let first_id = |list: &'static str| {
        let app = app.clone();
        let token = token_a.clone();
        async move {
            let (_, body) = get(&app, list, Some(&token)).await;
            body[0]["id"].as_str().unwrap().to_owned()
        }
    };
    let fixture_ids: HashMap<&str, String> = HashMap::from([
        ("/api/v1/hosts/{id}", host_a.to_string()),
        ("/api/v1/hosts/{id}/storage", host_a.to_string()),
        ("/api/v1/hosts/{id}/revoke", host_a.to_string()),
        ("/api/v1/hosts/{id}/packages", host_a.to_string()),
        ("/api/v1/disks/{id}", first_id("/api/v1/disks").await),
        ("/api/v1/pools/{id}", first_id("/api/v1/pools").await),
        ("/api/v1/arrays/{id}", first_id("/api/v1/arrays").await),
        ("/api/v1/hosts/{id}/inventory", host_a.to_string()),
        (
            "/api/v1/containers/{id}",
            first_id("/api/v1/containers").await,
        ),
        (
            "/api/v1/databases/{id}",
            first_id("/api/v1/databases").await,
        ),
        ("/api/v1/jobs/{id}", job_id.clone()),
        ("/api/v1/jobs/{id}/cancel", job_id.clone()),
        (
            "/api/v1/containers/{id}/policy",
            first_id("/api/v1/containers").await,
        ),
        ("/api/v1/maintenance-windows/{id}", window_id.clone()),
        ("/api/v1/hosts/{id}/labels", host_a.to_string()),
        ("/api/v1/rollouts/{id}", rollout_id.clone()),
        ("/api/v1/rollouts/{id}/pause", rollout_id.clone()),
        ("/api/v1/rollouts/{id}/resume", rollout_id.clone()),
        ("/api/v1/rollouts/{id}/abort", rollout_id.clone()),
        ("/api/v1/rollout-schedules/{id}", schedule_id.clone()),
        ("/api/v1/channels/{id}", channel_id.clone()),
        ("/api/v1/channels/{id}/test", channel_id.clone()),
        ("/api/v1/channels/{id}/routing", channel_id.clone()),
        ("/api/v1/users/{id}/disable", user_a.id.to_string()),
        (
            "/api/v1/alerts/{id}/acknowledge",
            first_id("/api/v1/alerts").await,
        ),
        ("/api/v1/users/{id}/enable", user_a.id.to_string()),
        ("/api/v1/notifications/{id}", notification_id.clone()),
        ("/api/v1/notifications/{id}/retry", notification_id.clone()),
        ("/api/v1/tokens/{id}/revoke", {
            let (_, tokens) = get(&app, "/api/v1/tokens", Some(&token_a)).await;
            tokens
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == "victim")
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }),
    ]);
    // What each route that takes a body is sent: tenant B names tenant A's objects.
    let post_body = |route: &str| match route {
        "/api/v1/jobs" => Some(serde_json::json!({ "host_id": host_a, "kind": "ping" })),
        "/api/v1/containers/{id}/policy" => Some(serde_json::json!({ "policy": "digest" })),
        "/api/v1/maintenance-windows" => Some(window_body.clone()),
        "/api/v1/hosts/{id}/labels" => Some(serde_json::json!({ "labels": { "role": "nas" } })),
        "/api/v1/rollouts" => Some(rollout_body.clone()),
        "/api/v1/rollout-schedules" => Some(schedule_body.clone()),
        "/api/v1/channels" => Some(serde_json::json!({
            "name": "mail", "url": "smtp://mail.example.net/?from=a@example.net&to=b@example.net"
        })),
        "/api/v1/tokens" => Some(serde_json::json!({ "name": "ci", "scope": "read" })),
        "/api/v1/users" => Some(
            serde_json::json!({ "name": format!("u{}", Uuid::new_v4().simple()), "role": "viewer" }),
        ),
        "/api/v1/channels/{id}/routing" => Some(serde_json::json!({ "min_severity": "critical" })),
        "/api/v1/enrollment-tokens" => Some(serde_json::json!({ "ttl_secs": 600 })),
        _ => None,
    };
    // Routes that make an object of the caller's own tenant and name none of another's: for
    // tenant B they succeed, in tenant B.
    let creates_own = |method: &str, route: &str| {
        method == "POST"
            && [
                "/api/v1/channels",
                "/api/v1/tokens",
                "/api/v1/enrollment-tokens",
                "/api/v1/users",
            ]
            .contains(&route)
    };

    for (method, route) in TENANT_ROUTES {
        let path = if route.contains("{id}") {
            let id = fixture_ids
                .get(route)
                .unwrap_or_else(|| panic!("{route} has no fixture id in this test"));
            route.replace("{id}", id)
        } else {
            (*route).to_owned()
        };
        let (status, body) = request(&app, method, &path, Some(&token_a), post_body(route)).await;
        assert!(
            [
                StatusCode::OK,
                StatusCode::CREATED,
                StatusCode::ACCEPTED,
                StatusCode::NO_CONTENT
            ]
            .contains(&status),
            "owner: {method} {path} → {status} {body}"
        );
        assert_ne!(body, serde_json::json!([]), "owner sees data at {path}");
        let (status, body) = request(&app, method, &path, Some(&token_b), post_body(route)).await;
        if *route == "/api/v1/tokens" && *method == "GET" {
            // Tenant B has tokens of its own (the one asking): none of A's.
            let (_, mine) = get(&app, route, Some(&token_a)).await;
            for token in mine.as_array().unwrap() {
                assert!(
                    !body.to_string().contains(token["id"].as_str().unwrap()),
                    "{path} leaks to another tenant: {body}"
                );
            }
        } else if *route == "/api/v1/metrics" {
            // Text, not JSON: the owner's fleet is in it, none of it in tenant B's.
            let (_, mine) = get(&app, route, Some(&token_a)).await;
            assert!(
                mine.as_str().unwrap().contains(&host_a.to_string()),
                "{mine}"
            );
            assert_eq!(status, StatusCode::OK);
            let theirs = body.as_str().unwrap();
            assert!(
                !theirs.contains(&host_a.to_string()) && !theirs.contains("nas-a"),
                "{path} leaks to another tenant: {theirs}"
            );
        } else if creates_own(method, route) {
            assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
            if *route == "/api/v1/channels" {
                let (_, listed) = get(&app, "/api/v1/channels", Some(&token_a)).await;
                assert!(
                    !listed.to_string().contains(body["id"].as_str().unwrap()),
                    "tenant B's channel shows in tenant A: {listed}"
                );
            }
        } else if route.contains("{id}") || *method != "GET" {
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
            assert_eq!(body["code"], "not_found");
        } else {
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(
                body,
                serde_json::json!([]),
                "{path} leaks to another tenant"
            );
        }
    }

    // Every list route pages: walked one row at a time it yields exactly the rows of one big
    // page, in the same order; a cursor of tenant A's continues nothing of A's for tenant B;
    // a bad limit or cursor is a 400.
    let list_routes: Vec<&str> = TENANT_ROUTES
        .iter()
        .chain(SHARED_ROUTES)
        .filter(|(method, route)| {
            *method == "GET" && !route.contains("{id}") && *route != "/api/v1/metrics"
        })
        .map(|(_, route)| *route)
        .collect();
    assert!(list_routes.len() >= 15, "{list_routes:?}");
    for route in list_routes {
        let (status, whole, next) =
            common::get_page(&app, &format!("{route}?limit=1000"), &token_a).await;
        assert_eq!(status, StatusCode::OK, "{route}: {whole}");
        assert!(next.is_none(), "{route}: one page holds everything");
        let walked = common::get_every_page(&app, route, &token_a, 1).await;
        // Rows by identity (a token's `last_used_at` moves with each call).
        let identity = |row: &serde_json::Value| {
            row.get("id")
                .or_else(|| row.get("sha256"))
                .unwrap_or_else(|| panic!("{route}: a row without id: {row}"))
                .to_string()
        };
        let walked: Vec<String> = walked.iter().map(identity).collect();
        let expected: Vec<String> = whole.as_array().unwrap().iter().map(identity).collect();
        assert_eq!(walked, expected, "{route}");
        let unique: std::collections::HashSet<&String> = walked.iter().collect();
        assert_eq!(unique.len(), walked.len(), "{route}: a row served twice");
        let (_, first, next) = common::get_page(&app, &format!("{route}?limit=1"), &token_a).await;
        if let Some(next) = next {
            let (status, theirs, _) = common::get_page(&app, &next, &token_b).await;
            assert_eq!(status, StatusCode::OK, "{next}: {theirs}");
            if route != "/api/v1/agent-releases" {
                for row in whole.as_array().unwrap() {
                    let id = row["id"].as_str().unwrap();
                    assert!(
                        !theirs.to_string().contains(id),
                        "{route}: A's cursor shows A's rows to B: {theirs}"
                    );
                }
            }
        } else {
            assert!(first.as_array().unwrap().len() <= 1, "{route}");
        }
        for bad in ["limit=0", "limit=1001", "cursor=nonsense", "cursor=e30"] {
            let (status, body) =
                request(&app, "GET", &format!("{route}?{bad}"), Some(&token_a), None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{route}?{bad}: {body}");
            assert_eq!(body["code"], "bad_request", "{route}?{bad}");
        }
    }
}

/// Hosts with the same hostname page by id; a host added while a client walks the list
/// neither repeats a row nor hides one (keyset, not offset).
#[tokio::test]
async fn host_pages_break_ties_and_survive_inserts() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    for name in ["b", "a", "b", "c", "b", "a", "d"] {
        common::add_host(&store, &a, name).await;
    }
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let (_, first, next) = common::get_page(&app, "/api/v1/hosts?limit=3", &token).await;
    let names: Vec<&str> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "a", "b"]);
    // A host sorting before the cursor and one after it arrive mid-walk.
    common::add_host(&store, &a, "a").await;
    common::add_host(&store, &a, "e").await;
    let mut seen: Vec<serde_json::Value> = first.as_array().unwrap().clone();
    let mut next = next;
    while let Some(page) = next {
        let (status, body, link) = common::get_page(&app, &page, &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(body.as_array().unwrap().iter().cloned());
        next = link;
    }
    let names: Vec<&str> = seen
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "a", "b", "b", "b", "c", "d", "e"]);
    let ids: std::collections::HashSet<&str> =
        seen.iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), seen.len());
}

#[tokio::test]
async fn malformed_ids_are_not_found_not_errors() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store);
    for id in ["not-a-uuid", "1", "%00"] {
        let (status, _) = get(&app, &format!("/api/v1/hosts/{id}"), Some(&token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
    }
}

#[tokio::test]
async fn host_list_and_detail_show_the_tenants_host() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas-a").await;
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store);
    let (status, list) = get(&app, "/api/v1/hosts", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["id"], host.to_string());
    assert_eq!(list[0]["hostname"], "nas-a");
    let (status, detail) = get(&app, &format!("/api/v1/hosts/{host}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["hostname"], "nas-a");
    assert!(detail["facts"].is_null(), "no facts reported yet");
}

#[tokio::test]
async fn public_routes_answer_without_a_token() {
    let (_pg, store) = common::database().await;
    let (app, _keys) = common::app(store);
    let (status, health) = get(&app, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    // The API reference works without internet: the page loads only this origin's script.
    let (status, page) = get(&app, "/api/docs", None).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(page.contains("spec-url=\"/api/v1/openapi.json\""), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let (status, script) = get(&app, "/api/docs/redoc.standalone.js", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.as_str().unwrap().len() > 1_000_000);
    let (status, ready) = get(&app, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ready");
    let (status, doc) = get(&app, "/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["paths"]["/api/v1/hosts/{id}"]["get"].is_object(),
        "{doc}"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// Every operation behind a token documents the 401 it answers without one (schemathesis
/// found some that did not).
#[test]
fn every_secured_operation_documents_its_401() {
    use utoipa::OpenApi;
    let doc = api::ApiDoc::openapi();
    for (path, item) in &doc.paths.paths {
        for operation in [&item.get, &item.post, &item.put, &item.delete, &item.patch]
            .into_iter()
            .flatten()
        {
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                assert!(
                    operation.responses.responses.contains_key("401"),
                    "{path} does not document 401"
                );
            }
        }
    }
}

/// Every path the OpenAPI document lists is classified as public or tenant-scoped, so a new
/// route cannot skip the isolation test above.
#[test]
fn every_routed_path_is_classified() {
    use utoipa::OpenApi;
    let doc = api::ApiDoc::openapi();
    for (path, item) in &doc.paths.paths {
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (method, _) in methods.iter().filter(|(_, present)| *present) {
            assert!(
                TENANT_ROUTES.contains(&(method, path.as_str()))
                    || SHARED_ROUTES.contains(&(method, path.as_str()))
                    || OPERATOR_ROUTES.contains(&(method, path.as_str()))
                    || (*method == "GET" && PUBLIC_ROUTES.contains(&path.as_str())),
                "route {method} {path} is in none of TENANT_ROUTES, SHARED_ROUTES, OPERATOR_ROUTES, PUBLIC_ROUTES"
            );
        }
    }
    for (method, route) in TENANT_ROUTES {
        let item = doc
            .paths
            .paths
            .get(*route)
            .unwrap_or_else(|| panic!("{route} missing from OpenAPI"));
        let documented = match *method {
            "GET" => item.get.is_some(),
            "POST" => item.post.is_some(),
            "PUT" => item.put.is_some(),
            "DELETE" => item.delete.is_some(),
            _ => false,
        };
        assert!(documented, "{method} {route} missing from OpenAPI");
    }
    for route in PUBLIC_ROUTES {
        // The document does not describe itself.
        if *route != "/api/v1/openapi.json" {
            assert!(
                doc.paths.paths.contains_key(*route),
                "{route} missing from OpenAPI"
            );
        }
    }
}

#[tokio::test]
async fn every_error_is_the_json_shape_without_echoing_the_input() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store);
    let long = "x".repeat(5000);
    let cases = [
        (
            "GET",
            "/api/v1/hosts/%FF%FE%FD".to_owned(),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/no-such-route".to_owned(),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            "DELETE",
            "/api/v1/hosts".to_owned(),
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "GET",
            format!("/api/v1/jobs?state={long}"),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/jobs".to_owned(),
            Some(serde_json::json!({ "kind": long })),
            StatusCode::FORBIDDEN,
        ),
        // Unknown query parameters: a typo in a filter is an error, not "everything".
        (
            "GET",
            format!("/api/v1/jobs?stat={long}"),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            format!("/api/v1/disks?helth={long}"),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            format!("/api/v1/hosts?limit={long}"),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "/api/v1/channels?x=1".to_owned(),
            None,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, body, expected) in cases {
        let (status, json) = request(&app, method, &path, Some(&token), body).await;
        assert_eq!(status, expected, "{method} {path:.60}: {json}");
        assert!(json["code"].is_string(), "{method} {path:.60}: {json}");
        let message = json["message"].as_str().unwrap();
        assert!(
            message.len() <= 304,
            "message echoes the input: {} bytes",
            message.len()
        );
    }
}

/// The operator's routes take the operator's token only; tenants' routes never take it.
#[tokio::test]
async fn operator_creates_and_lists_tenants_and_nobody_else_can() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let tenant_admin = store
        .create_scoped_api_token(a.id, "t", Scope::Admin)
        .await
        .unwrap();
    let operator = store.create_operator_token("ops-laptop").await.unwrap();
    assert!(operator.starts_with("ufo_"), "{operator}");
    let (app, _keys) = common::app(store.clone());
    for (method, route) in OPERATOR_ROUTES {
        let body = (*method == "POST").then(|| serde_json::json!({ "name": "gamma" }));
        let (status, json) = request(&app, method, route, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {route}: {json}");
        let (status, json) = request(&app, method, route, Some("ufo_nope"), body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {route}: {json}");
        let (status, json) = request(&app, method, route, Some(&tenant_admin), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {route}: {json}");
        assert_eq!(json["code"], "forbidden");
    }
    // The operator token is no tenant's: every tenant route refuses it.
    let (status, json) = get(&app, "/api/v1/hosts", Some(&operator)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");

    let (status, created) = request(
        &app,
        "POST",
        "/api/v1/tenants",
        Some(&operator),
        Some(serde_json::json!({ "name": "beta", "admin_token_name": "bob" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["tenant"]["name"], "beta");
    // The new tenant's admin token works, in that tenant only.
    let beta_admin = created["admin_token"].as_str().unwrap();
    let (status, tokens) = get(&app, "/api/v1/tokens", Some(beta_admin)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens.as_array().unwrap().len(), 1);
    assert_eq!(tokens[0]["name"], "bob");
    assert_eq!(tokens[0]["scope"], "admin");

    for (body, expected) in [
        (serde_json::json!({ "name": "beta" }), StatusCode::CONFLICT),
        (
            serde_json::json!({ "name": "Not Valid" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            serde_json::json!({ "name": "x", "extra": 1 }),
            StatusCode::BAD_REQUEST,
        ),
        (
            serde_json::json!({ "name": "x", "admin_token_name": "" }),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, json) = request(
            &app,
            "POST",
            "/api/v1/tenants",
            Some(&operator),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, expected, "{body}: {json}");
    }
    for name in ["delta", "charlie"] {
        let (status, _) = request(
            &app,
            "POST",
            "/api/v1/tenants",
            Some(&operator),
            Some(serde_json::json!({ "name": name })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let walked = common::get_every_page(&app, "/api/v1/tenants", &operator, 2).await;
    let names: Vec<&str> = walked.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta", "charlie", "delta"]);

    assert!(store.revoke_operator_token("ops-laptop").await.unwrap());
    let (status, _) = get(&app, "/api/v1/tenants", Some(&operator)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let listed = store.list_operator_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at.is_some() && listed[0].last_used_at.is_some());
}

/// A channel's routing is replaced over the API: only what the new routing admits is queued
/// for it from then on, a muted channel gets nothing, and bad routing is a 400.
#[tokio::test]
async fn channel_routing_is_edited_and_applies_to_the_next_alerts() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let admin = store
        .create_scoped_api_token(a.id, "t", Scope::Admin)
        .await
        .unwrap();
    let (app, _keys) = common::app(store.clone());
    let (status, channel) = request(
        &app,
        "POST",
        "/api/v1/channels",
        Some(&admin),
        Some(serde_json::json!({ "name": "phone", "url": "ntfy://ntfy.example.net/lab" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{channel}");
    let id = channel["id"].as_str().unwrap().to_owned();
    let routing = format!("/api/v1/channels/{id}/routing");
    let (status, changed) = request(
        &app,
        "PUT",
        &routing,
        Some(&admin),
        Some(serde_json::json!({
            "min_severity": "critical",
            "quiet_hours": { "start": "7:00", "end": "22:30", "timezone": "Europe/Berlin" }
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["min_severity"], "critical");
    assert_eq!(changed["quiet_hours"]["start"], "07:00", "normalised");
    assert_eq!(changed["enabled"], true);
    assert_eq!(changed["target"], channel["target"], "the URL stays");

    let queued = |app: axum::Router, token: String, id: String| async move {
        let (_, list) = get(
            &app,
            &format!("/api/v1/notifications?channel_id={id}"),
            Some(&token),
        )
        .await;
        list.as_array().unwrap().len()
    };
    let stream = Uuid::new_v4();
    let disk = |health| {
        common::fixtures::report(
            vec![common::fixtures::disk("/dev/sda", None, "S1", health)],
            vec![],
            vec![],
        )
    };
    for (seq, health) in [(1, Health::Ok), (2, Health::Warning)] {
        common::send_storage(&store, &a, host, stream, seq, disk(health)).await;
    }
    assert_eq!(
        queued(app.clone(), admin.clone(), id.clone()).await,
        0,
        "a warning is below critical"
    );
    common::send_storage(&store, &a, host, stream, 3, disk(Health::Critical)).await;
    assert_eq!(
        queued(app.clone(), admin.clone(), id.clone()).await,
        1,
        "the critical one is queued"
    );

    let (status, muted) = request(
        &app,
        "PUT",
        &routing,
        Some(&admin),
        Some(serde_json::json!({ "min_severity": "info", "enabled": false })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{muted}");
    assert_eq!(muted["enabled"], false);
    assert!(
        muted["quiet_hours"].is_null(),
        "the whole routing is replaced"
    );
    for (seq, health) in [(4, Health::Ok), (5, Health::Critical)] {
        common::send_storage(&store, &a, host, stream, seq, disk(health)).await;
    }
    assert_eq!(
        queued(app.clone(), admin.clone(), id.clone()).await,
        1,
        "muted: nothing new"
    );

    for bad in [
        serde_json::json!({ "min_severity": "loud" }),
        serde_json::json!({ "quiet_hours": { "start": "7:00", "end": "07:00" } }),
        serde_json::json!({ "quiet_hours": { "start": "+7:00", "end": "08:00" } }),
        serde_json::json!({ "remind_after_secs": 5 }),
        serde_json::json!({ "url": "ntfy://elsewhere/x" }),
    ] {
        let (status, body) = request(&app, "PUT", &routing, Some(&admin), Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _) = request(
        &app,
        "PUT",
        &format!("/api/v1/channels/{}/routing", Uuid::new_v4()),
        Some(&admin),
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let read = store.create_api_token(a.id, "r").await.unwrap();
    let (status, _) = request(
        &app,
        "PUT",
        &routing,
        Some(&read),
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Console users over the admin API: a made password is returned once and logs in; a
/// disabled user cannot; a read token may not list users.
#[tokio::test]
async fn users_are_administered_over_the_api() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let admin = store
        .create_scoped_api_token(a.id, "t", Scope::Admin)
        .await
        .unwrap();
    let read = store.create_api_token(a.id, "r").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let (status, created) = request(
        &app,
        "POST",
        "/api/v1/users",
        Some(&admin),
        Some(serde_json::json!({ "name": "dora", "role": "operator" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["user"]["role"], "operator");
    let password = created["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 12);
    let now = time::OffsetDateTime::now_utc();
    assert!(matches!(
        store.login("dora", &password, now).await.unwrap(),
        unity_controller::store::users::Login::Ok { .. }
    ));
    let (status, listed) = get(&app, "/api/v1/users", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains("argon2"),
        "never the hash: {listed}"
    );
    let (status, _) = get(&app, "/api/v1/users", Some(&read)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (body, expected) in [
        (serde_json::json!({ "name": "dora" }), StatusCode::CONFLICT),
        (
            serde_json::json!({ "name": "eve", "role": "root" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            serde_json::json!({ "name": "eve", "password": "short" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            serde_json::json!({ "name": "Eve!" }),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, json) = request(
            &app,
            "POST",
            "/api/v1/users",
            Some(&admin),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, expected, "{body}: {json}");
    }
    let id = created["user"]["id"].as_str().unwrap();
    let (status, disabled) = request(
        &app,
        "POST",
        &format!("/api/v1/users/{id}/disable"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert!(disabled["disabled_at"].is_string());
    assert_eq!(
        store.login("dora", &password, now).await.unwrap(),
        unity_controller::store::users::Login::Refused
    );
}
