//! The web console through the real router and a real database: login sets a hardened
//! cookie, pages show the tenant's fleet and nothing of another tenant's, every form checks
//! its CSRF token and origin, logout ends the session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use unity_controller::store::users::{self, Role};
use unity_protocol::latest::Health;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(
    app: &axum::Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&[(&str, &str)]>,
    origin: Option<&str>,
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "fleet.lan:7080");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, format!("unity_session={cookie}"));
    }
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    let body = match form {
        Some(pairs) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            let mut encoded = form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                encoded.append_pair(k, v);
            }
            axum::body::Body::from(encoded.finish())
        }
        None => axum::body::Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Logs `name` in; the session cookie's value.
async fn log_in(app: &axum::Router, name: &str) -> String {
    log_in_with(app, name, PASSWORD).await
}

async fn log_in_with(app: &axum::Router, name: &str, password: &str) -> String {
    let answer = send(
        app,
        "POST",
        "/login",
        None,
        Some(&[("name", name), ("password", password)]),
        Some("http://fleet.lan:7080"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let cookie = answer.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie
        .strip_prefix("unity_session=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// A console user of `tenant` with the tests' password.
async fn add_user(store: &unity_controller::store::Store, tenant: Uuid, name: &str, role: Role) {
    let mut tx = store.tenant_tx(tenant).await.unwrap();
    users::create_user(&mut tx, tenant, name, role, PASSWORD)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_console_shows_the_tenants_fleet_behind_a_login() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    let host = common::add_host(&store, &a, "nas-a").await;
    let reply = common::send_storage(
        &store,
        &a,
        host,
        Uuid::new_v4(),
        1,
        common::fixtures::report(
            vec![common::fixtures::disk(
                "/dev/sdb",
                None,
                "S1",
                Health::Critical,
            )],
            vec![common::fixtures::pool("tank", "DEGRADED", Health::Warning)],
            vec![],
        ),
    )
    .await;
    assert!(
        matches!(reply, unity_protocol::latest::ReportReply::Ack { .. }),
        "{reply:?}"
    );
    for (tenant, name, role) in [(&a, "alice", Role::Viewer), (&b, "bob", Role::Admin)] {
        add_user(&store, tenant.id, name, role).await;
    }
    let (app, _keys) = common::app(store.clone());

    // Without a session every page sends the browser to the login page.
    for path in ["/", "/alerts", &format!("/hosts/{host}"), "/account"] {
        let answer = send(&app, "GET", path, None, None, None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(answer.headers[header::LOCATION], "/login");
    }
    let login = send(&app, "GET", "/login", None, None, None).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let wrong = send(
        &app,
        "POST",
        "/login",
        None,
        Some(&[("name", "alice"), ("password", "not the password")]),
        None,
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong user name or password"));

    let alice = log_in(&app, "alice").await;
    let fleet = send(&app, "GET", "/", Some(&alice), None, None).await;
    assert_eq!(fleet.status, StatusCode::OK);
    assert_eq!(fleet.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        fleet.body.contains("nas-a") && fleet.body.contains("badge critical"),
        "{}",
        fleet.body
    );
    let page = send(
        &app,
        "GET",
        &format!("/hosts/{host}"),
        Some(&alice),
        None,
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    for shown in [
        "/dev/sdb",
        "tank",
        "DEGRADED",
        "badge critical",
        "badge warning",
    ] {
        assert!(
            page.body.contains(shown),
            "{shown} missing from the host page"
        );
    }
    let alerts = send(&app, "GET", "/alerts", Some(&alice), None, None).await;
    assert!(alerts.body.contains("nas-a"), "{}", alerts.body);
    // A second sample: the disk page charts the history.
    let mut hotter = common::fixtures::disk("/dev/sdb", None, "S1", Health::Critical);
    hotter.temperature_c = Some(47);
    common::send_storage(
        &store,
        &a,
        host,
        Uuid::new_v4(),
        1,
        common::fixtures::report(vec![hotter], vec![], vec![]),
    )
    .await;
    let disk_id = page
        .body
        .split("href=\"/disks/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let disk = send(
        &app,
        "GET",
        &format!("/disks/{disk_id}"),
        Some(&alice),
        None,
        None,
    )
    .await;
    assert_eq!(disk.status, StatusCode::OK);
    for shown in [
        "Temperature",
        "<svg",
        "last <strong>47</strong>",
        "Reallocated sectors",
        "ata.5.reallocated_sector_ct",
        "FAILED",
    ] {
        assert!(
            disk.body.contains(shown),
            "{shown} missing from the disk page: {}",
            disk.body
        );
    }

    // Bob (another tenant, even as admin) sees none of it.
    let bob = log_in(&app, "bob").await;
    let theirs = send(&app, "GET", "/", Some(&bob), None, None).await;
    assert!(!theirs.body.contains("nas-a"), "{}", theirs.body);
    let theirs = send(
        &app,
        "GET",
        &format!("/hosts/{host}"),
        Some(&bob),
        None,
        None,
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert!(!theirs.body.contains("sdb"));
    let theirs = send(&app, "GET", "/alerts", Some(&bob), None, None).await;
    assert!(!theirs.body.contains("nas-a") && !theirs.body.contains("sdb"));
    let theirs = send(
        &app,
        "GET",
        &format!("/disks/{disk_id}"),
        Some(&bob),
        None,
        None,
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);

    // Forms need this session's CSRF token and this origin.
    let csrf = csrf_of(&fleet.body);
    let bob_csrf = csrf_of(&send(&app, "GET", "/", Some(&bob), None, None).await.body);
    for (token, origin) in [
        ("", None),
        (bob_csrf.as_str(), None),
        (csrf.as_str(), Some("https://evil.example")),
    ] {
        let refused = send(
            &app,
            "POST",
            "/logout",
            Some(&alice),
            Some(&[("csrf", token)]),
            origin,
        )
        .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{token} {origin:?}");
    }
    let missing = send(&app, "POST", "/logout", Some(&alice), Some(&[]), None).await;
    assert!(missing.status.is_client_error(), "{}", missing.status);
    assert_eq!(
        send(&app, "GET", "/", Some(&alice), None, None)
            .await
            .status,
        StatusCode::OK
    );

    // Logout ends the session: the cookie is cleared and no longer opens anything.
    let out = send(
        &app,
        "POST",
        "/logout",
        Some(&alice),
        Some(&[("csrf", &csrf)]),
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        send(&app, "GET", "/", Some(&alice), None, None)
            .await
            .status,
        StatusCode::SEE_OTHER
    );

    // The API stays JSON: an unknown path is the API's 404, not a page.
    let unknown = send(&app, "GET", "/api/v1/nothing", None, None, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains("\"code\""));
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    add_user(&store, a.id, "carol", Role::Operator).await;
    let (app, _keys) = common::app(store.clone());
    let laptop = log_in(&app, "carol").await;
    let phone = log_in(&app, "carol").await;
    let account = send(&app, "GET", "/account", Some(&laptop), None, None).await;
    let csrf = csrf_of(&account.body);
    let bad = send(
        &app,
        "POST",
        "/account/password",
        Some(&laptop),
        Some(&[
            ("csrf", &csrf),
            ("current", "wrong wrong wrong"),
            ("new", "a brand new passphrase"),
        ]),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("current password is wrong"),
        "{}",
        bad.body
    );
    let ok = send(
        &app,
        "POST",
        "/account/password",
        Some(&laptop),
        Some(&[
            ("csrf", &csrf),
            ("current", PASSWORD),
            ("new", "a brand new passphrase"),
        ]),
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(
        send(&app, "GET", "/", Some(&laptop), None, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "GET", "/", Some(&phone), None, None)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    // Logout everywhere ends this one too.
    let out = send(
        &app,
        "POST",
        "/account/logout-everywhere",
        Some(&laptop),
        Some(&[("csrf", &csrf)]),
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&app, "GET", "/", Some(&laptop), None, None)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

/// An operator updates a container from the Updates page: the confirmation names both
/// digests, the job is the signed `container_update` for exactly the confirmed one, its page
/// follows it, and it can be cancelled while queued. A viewer sees the update but the server
/// refuses it the confirmation and the action.
#[tokio::test]
async fn an_operator_updates_a_container_and_a_viewer_cannot() {
    use unity_protocol::latest::UpdateState;
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "docker-1").await;
    let new_digest = format!("sha256:{}", "b".repeat(64));
    let mut web = common::inventory::container("c1", "web", "running");
    web.update.state = UpdateState::UpdateAvailable;
    web.update.new_digest = Some(new_digest.clone());
    let reply = common::send_body(
        &store,
        &a,
        host,
        Uuid::new_v4(),
        1,
        common::inventory::containers(vec![web], vec![]),
    )
    .await;
    assert!(
        matches!(reply, unity_protocol::latest::ReportReply::Ack { .. }),
        "{reply:?}"
    );
    for (name, role) in [("olga", Role::Operator), ("vic", Role::Viewer)] {
        add_user(&store, a.id, name, role).await;
    }
    let (app, _keys) = common::app(store.clone());
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    let container: Uuid = sqlx::query_scalar("SELECT id FROM containers")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    drop(tx);

    let vic = log_in(&app, "vic").await;
    let listed = send(&app, "GET", "/updates", Some(&vic), None, None).await;
    assert!(
        listed.body.contains("web") && !listed.body.contains("Update…"),
        "{}",
        listed.body
    );
    let confirm = send(
        &app,
        "GET",
        &format!("/updates/{container}"),
        Some(&vic),
        None,
        None,
    )
    .await;
    assert_eq!(confirm.status, StatusCode::FORBIDDEN);
    let vic_csrf = csrf_of(&listed.body);
    let refused = send(
        &app,
        "POST",
        &format!("/updates/{container}"),
        Some(&vic),
        Some(&[("csrf", &vic_csrf), ("digest", &new_digest)]),
        None,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    let olga = log_in(&app, "olga").await;
    let listed = send(&app, "GET", "/updates", Some(&olga), None, None).await;
    assert!(listed.body.contains(&format!("/updates/{container}")));
    let confirm = send(
        &app,
        "GET",
        &format!("/updates/{container}"),
        Some(&olga),
        None,
        None,
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm.body.contains(&new_digest) && confirm.body.contains("sha256:old"),
        "{}",
        confirm.body
    );
    let csrf = csrf_of(&confirm.body);
    let stale = send(
        &app,
        "POST",
        &format!("/updates/{container}"),
        Some(&olga),
        Some(&[
            ("csrf", &csrf),
            ("digest", &format!("sha256:{}", "c".repeat(64))),
        ]),
        None,
    )
    .await;
    assert_eq!(
        stale.status,
        StatusCode::CONFLICT,
        "a digest other than the known one"
    );
    let started = send(
        &app,
        "POST",
        &format!("/updates/{container}"),
        Some(&olga),
        Some(&[("csrf", &csrf), ("digest", &new_digest)]),
        None,
    )
    .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let job_path = started.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let job_id = job_path.strip_prefix("/jobs/").unwrap();
    // The same signed job the API shows, pinned to the confirmed digest, asked for by her.
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (status, job) = common::get(&app, &format!("/api/v1/jobs/{job_id}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(job["kind"], "container_update");
    assert_eq!(job["requested_by"], "user:olga");
    assert!(
        job["params"]["image"]
            .as_str()
            .unwrap()
            .ends_with(&new_digest),
        "{job}"
    );
    let page = send(&app, "GET", &job_path, Some(&olga), None, None).await;
    assert!(
        page.body.contains("http-equiv=\"refresh\""),
        "a queued job's page follows it"
    );
    assert!(page.body.contains(&format!("/jobs/{job_id}/cancel")));
    let viewer_page = send(&app, "GET", &job_path, Some(&vic), None, None).await;
    assert!(
        !viewer_page.body.contains("/cancel"),
        "a viewer gets no cancel button"
    );
    let cancelled = send(
        &app,
        "POST",
        &format!("{job_path}/cancel"),
        Some(&olga),
        Some(&[("csrf", &csrf)]),
        None,
    )
    .await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
    let page = send(&app, "GET", &job_path, Some(&olga), None, None).await;
    assert!(
        page.body.contains("cancelled") && !page.body.contains("http-equiv"),
        "{}",
        page.body
    );
    let jobs = send(&app, "GET", "/jobs", Some(&vic), None, None).await;
    assert!(jobs.body.contains(job_id));
}

/// An admin adds a user, a token and a host from Settings; the user's made password logs
/// in, the token works, the command names this controller; a viewer gets no Settings.
#[tokio::test]
async fn an_admin_manages_users_tokens_and_enrollment_from_settings() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    add_user(&store, a.id, "root-admin", Role::Admin).await;
    let (app, _keys) = common::app(store.clone());
    let admin = log_in(&app, "root-admin").await;
    let page = send(&app, "GET", "/settings", Some(&admin), None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = csrf_of(&page.body);

    let added = send(
        &app,
        "POST",
        "/settings/users",
        Some(&admin),
        Some(&[("csrf", &csrf), ("name", "vera"), ("role", "viewer")]),
        None,
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let at = added.body.find("(shown once):").unwrap();
    let password = added.body[at..]
        .split("<code>")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .to_owned();
    assert!(matches!(
        store
            .login("vera", &password, time::OffsetDateTime::now_utc())
            .await
            .unwrap(),
        users::Login::Ok { .. }
    ));
    let vera = log_in_with(&app, "vera", &password).await;
    let fleet = send(&app, "GET", "/", Some(&vera), None, None).await;
    assert!(
        !fleet.body.contains("/settings"),
        "no Settings for a viewer"
    );
    assert_eq!(
        send(&app, "GET", "/settings", Some(&vera), None, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let vera_csrf = csrf_of(&fleet.body);
    let refused = send(
        &app,
        "POST",
        "/settings/tokens",
        Some(&vera),
        Some(&[("csrf", &vera_csrf), ("name", "x"), ("scope", "admin")]),
        None,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let token_page = send(
        &app,
        "POST",
        "/settings/tokens",
        Some(&admin),
        Some(&[("csrf", &csrf), ("name", "grafana"), ("scope", "read")]),
        None,
    )
    .await;
    let token = token_page
        .body
        .split("<code>ufa_")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap();
    let token = format!("ufa_{token}");
    let (status, _) = common::get(&app, "/api/v1/hosts", Some(&token)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the token made in the console works"
    );

    let enrolled = send(
        &app,
        "POST",
        "/settings/enroll",
        Some(&admin),
        Some(&[("csrf", &csrf)]),
        None,
    )
    .await;
    assert!(
        enrolled
            .body
            .contains("unity-agent enroll --controller fleet.lan:7443 --token ufe_"),
        "{}",
        enrolled.body
    );

    // Disabling vera ends her session.
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    let vera_id = users::user_by_name(&mut tx, "vera")
        .await
        .unwrap()
        .unwrap()
        .id;
    drop(tx);
    let disabled = send(
        &app,
        "POST",
        &format!("/settings/users/{vera_id}/disable"),
        Some(&admin),
        Some(&[("csrf", &csrf)]),
        None,
    )
    .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&app, "GET", "/", Some(&vera), None, None).await.status,
        StatusCode::SEE_OTHER
    );
}

/// An operator acknowledges an alert on the Alerts page; the API shows who and when; a
/// viewer gets no button and the server refuses the action.
#[tokio::test]
async fn alerts_are_acknowledged_by_operators_only() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    common::send_storage(
        &store,
        &a,
        host,
        Uuid::new_v4(),
        1,
        common::fixtures::report(
            vec![common::fixtures::disk(
                "/dev/sda",
                None,
                "S1",
                Health::Critical,
            )],
            vec![],
            vec![],
        ),
    )
    .await;
    for (name, role) in [("olga", Role::Operator), ("vic", Role::Viewer)] {
        add_user(&store, a.id, name, role).await;
    }
    let token = store.create_api_token(a.id, "t").await.unwrap();
    let (app, _keys) = common::app(store.clone());
    let (_, alerts) = common::get(&app, "/api/v1/alerts", Some(&token)).await;
    let alert = alerts[0]["id"].as_str().unwrap().to_owned();
    assert!(alerts[0]["acknowledged_at"].is_null());

    let vic = log_in(&app, "vic").await;
    let page = send(&app, "GET", "/alerts", Some(&vic), None, None).await;
    assert!(
        !page.body.contains("/acknowledge"),
        "no button for a viewer"
    );
    let refused = send(
        &app,
        "POST",
        &format!("/alerts/{alert}/acknowledge"),
        Some(&vic),
        Some(&[("csrf", &csrf_of(&page.body))]),
        None,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let olga = log_in(&app, "olga").await;
    let page = send(&app, "GET", "/alerts", Some(&olga), None, None).await;
    assert!(page.body.contains(&format!("/alerts/{alert}/acknowledge")));
    let done = send(
        &app,
        "POST",
        &format!("/alerts/{alert}/acknowledge"),
        Some(&olga),
        Some(&[("csrf", &csrf_of(&page.body))]),
        None,
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let (_, alerts) = common::get(&app, "/api/v1/alerts", Some(&token)).await;
    assert_eq!(alerts[0]["acknowledged_by"], "user:olga");
    assert!(alerts[0]["acknowledged_at"].is_string());
    let page = send(&app, "GET", "/alerts", Some(&olga), None, None).await;
    assert!(page.body.contains("by user:olga") && !page.body.contains("/acknowledge\""));
    // The API route: operate scope, the first acknowledgement stands.
    let ops = store
        .create_scoped_api_token(a.id, "ops", unity_controller::auth::Scope::Operate)
        .await
        .unwrap();
    let (status, _) = common::request(
        &app,
        "POST",
        &format!("/api/v1/alerts/{alert}/acknowledge"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "read scope");
    let (status, again) = common::request(
        &app,
        "POST",
        &format!("/api/v1/alerts/{alert}/acknowledge"),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["acknowledged_by"], "user:olga");
}

/// Rollouts in the console: listed, shown host by host, paused, resumed and aborted by an
/// operator with the same rule as the API; a viewer gets no buttons and the server refuses
/// the form; another tenant's user finds no such rollout.
#[tokio::test]
async fn rollouts_are_shown_and_controlled_by_operators_only() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    let host = common::add_host(&store, &a, "nas-1").await;
    for (tenant, name, role) in [
        (&a, "olga", Role::Operator),
        (&a, "vic", Role::Viewer),
        (&b, "eve", Role::Admin),
    ] {
        add_user(&store, tenant.id, name, role).await;
    }
    let (app, _keys) = common::app(store.clone());
    let token = store
        .create_scoped_api_token(a.id, "ops", unity_controller::auth::Scope::Operate)
        .await
        .unwrap();
    // The runner is not running here: the rollout stays in its first wave, its host pending.
    let (status, rollout) = common::request(
        &app,
        "POST",
        "/api/v1/rollouts",
        Some(&token),
        Some(serde_json::json!({ "kind": "ping", "hosts": { "host_ids": [host] } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rollout}");
    let id = rollout["id"].as_str().unwrap().to_owned();
    let path = format!("/rollouts/{id}");

    let vic = log_in(&app, "vic").await;
    let listed = send(&app, "GET", "/rollouts", Some(&vic), None, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(
        listed.body.contains(&path) && listed.body.contains("token:ops"),
        "{}",
        listed.body
    );
    let shown = send(&app, "GET", &path, Some(&vic), None, None).await;
    assert!(
        shown.body.contains("nas-1") && shown.body.contains("pending"),
        "{}",
        shown.body
    );
    assert!(
        shown.body.contains("http-equiv=\"refresh\""),
        "it follows a running rollout"
    );
    assert!(!shown.body.contains("/pause"), "no buttons for a viewer");
    let refused = send(
        &app,
        "POST",
        &format!("{path}/pause"),
        Some(&vic),
        Some(&[("csrf", &csrf_of(&shown.body))]),
        None,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let olga = log_in(&app, "olga").await;
    let shown = send(&app, "GET", &path, Some(&olga), None, None).await;
    assert!(shown.body.contains(&format!("{path}/pause")));
    assert!(shown.body.contains(&format!("{path}/abort")));
    assert!(!shown.body.contains(&format!("{path}/resume")));
    let csrf = csrf_of(&shown.body);
    let control = async |verb: &str| {
        send(
            &app,
            "POST",
            &format!("{path}/{verb}"),
            Some(&olga),
            Some(&[("csrf", &csrf)]),
            None,
        )
        .await
    };
    assert_eq!(control("pause").await.status, StatusCode::SEE_OTHER);
    let (_, seen) = common::get(&app, &format!("/api/v1/rollouts/{id}"), Some(&token)).await;
    assert_eq!(seen["state"], "paused");
    assert_eq!(seen["reason"], "paused by user:olga");
    let again = control("pause").await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(
        again
            .body
            .contains("the rollout is paused; pause does not apply")
    );
    assert_eq!(control("resume").await.status, StatusCode::SEE_OTHER);
    assert_eq!(control("abort").await.status, StatusCode::SEE_OTHER);
    let shown = send(&app, "GET", &path, Some(&olga), None, None).await;
    assert!(
        shown.body.contains("aborted by user:olga") && shown.body.contains("skipped"),
        "{}",
        shown.body
    );
    assert!(
        !shown.body.contains("http-equiv"),
        "an ended rollout's page stays still"
    );
    assert!(
        !shown.body.contains(&format!("{path}/")),
        "nothing more to press"
    );
    assert_eq!(
        send(
            &app,
            "POST",
            &format!("{path}/delete"),
            Some(&olga),
            Some(&[("csrf", &csrf)]),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    let eve = log_in(&app, "eve").await;
    let theirs = send(&app, "GET", &path, Some(&eve), None, None).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert!(!theirs.body.contains("nas-1"));
    let listed = send(&app, "GET", "/rollouts", Some(&eve), None, None).await;
    assert!(!listed.body.contains(&id));
    let csrf = csrf_of(&listed.body);
    let pressed = send(
        &app,
        "POST",
        &format!("{path}/resume"),
        Some(&eve),
        Some(&[("csrf", &csrf)]),
        None,
    )
    .await;
    assert_eq!(pressed.status, StatusCode::NOT_FOUND);
}

/// Settings for what happens by itself: a notification channel added by URL (the webhook's
/// secret shown once), its routing edited and muted, a test message queued, the channel
/// removed; a maintenance window added (a wrong time refused with the reason) and removed; a
/// container's update policy overridden and handed back to its label — each visible through
/// the API afterwards, the same rows.
#[tokio::test]
async fn an_admin_sets_channels_windows_and_policies_from_settings() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "docker-1").await;
    let reply = common::send_body(
        &store,
        &a,
        host,
        Uuid::new_v4(),
        1,
        common::inventory::containers(
            vec![common::inventory::container("c1", "web", "running")],
            vec![],
        ),
    )
    .await;
    assert!(
        matches!(reply, unity_protocol::latest::ReportReply::Ack { .. }),
        "{reply:?}"
    );
    for (name, role) in [("ada", Role::Admin), ("vic", Role::Viewer)] {
        add_user(&store, a.id, name, role).await;
    }
    let (app, _keys) = common::app(store.clone());
    let token = store.create_api_token(a.id, "reader").await.unwrap();
    let ada = log_in(&app, "ada").await;
    let settings = send(&app, "GET", "/settings", Some(&ada), None, None).await;
    assert_eq!(settings.status, StatusCode::OK);
    for section in [
        "Notification channels",
        "Maintenance windows",
        "Update policies",
    ] {
        assert!(settings.body.contains(section), "{section}");
    }
    let csrf = csrf_of(&settings.body);
    let post = async |path: &str, fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        send(&app, "POST", path, Some(&ada), Some(&all), None).await
    };

    // A channel.
    let added = post(
        "/settings/channels",
        &[
            ("name", "pager"),
            ("url", "https://hooks.example.net/unity"),
            ("min_severity", "warning"),
            ("send_recoveries", "on"),
            ("quiet_start", ""),
            ("quiet_end", ""),
            ("remind_minutes", ""),
        ],
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert!(
        added.body.contains("signing secret (shown once)"),
        "{}",
        added.body
    );
    let (_, channels) = common::get(&app, "/api/v1/channels", Some(&token)).await;
    let channel = &channels[0];
    assert_eq!(channel["name"], "pager");
    let id = channel["id"].as_str().unwrap().to_owned();
    let page = format!("/settings/channels/{id}");
    let shown = send(&app, "GET", &page, Some(&ada), None, None).await;
    assert!(shown.body.contains("hooks.example.net") && !shown.body.contains("/unity\""));
    let wrong = post(
        &format!("{page}/routing"),
        &[("min_severity", "loud"), ("enabled", "on")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.body.contains("loud"), "{}", wrong.body);
    let routed = post(
        &format!("{page}/routing"),
        &[
            ("min_severity", "critical"),
            ("kinds", "disk_failing, pool_degraded"),
            ("quiet_start", "22:00"),
            ("quiet_end", "07:00"),
            ("quiet_timezone", "Europe/Berlin"),
            ("remind_minutes", "120"),
        ],
    )
    .await;
    assert_eq!(routed.status, StatusCode::SEE_OTHER, "{}", routed.body);
    let (_, channel) = common::get(&app, &format!("/api/v1/channels/{id}"), Some(&token)).await;
    assert_eq!(channel["min_severity"], "critical");
    assert_eq!(
        channel["kinds"],
        serde_json::json!(["disk_failing", "pool_degraded"])
    );
    assert_eq!(channel["enabled"], false, "the unticked box mutes it");
    assert_eq!(channel["send_recoveries"], false);
    assert_eq!(channel["remind_after_secs"], 7200);
    assert_eq!(channel["quiet_hours"]["timezone"], "Europe/Berlin");
    assert_eq!(channel["quiet_hours"]["allow_critical"], false);
    assert_eq!(
        post(&format!("{page}/test"), &[]).await.status,
        StatusCode::SEE_OTHER
    );
    let shown = send(&app, "GET", &page, Some(&ada), None, None).await;
    assert!(shown.body.contains("<td>test</td>"), "{}", shown.body);
    assert_eq!(
        post(&format!("{page}/delete"), &[]).await.status,
        StatusCode::SEE_OTHER
    );
    let (_, channels) = common::get(&app, "/api/v1/channels", Some(&token)).await;
    assert_eq!(channels, serde_json::json!([]));

    // A maintenance window.
    let wrong = post(
        "/settings/windows",
        &[
            ("day_sat", "on"),
            ("start", "25:00"),
            ("duration_minutes", "120"),
        ],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.body.contains("25:00"), "{}", wrong.body);
    let added = post(
        "/settings/windows",
        &[
            ("host_id", &host.to_string()),
            ("day_sat", "on"),
            ("day_sun", "on"),
            ("start", "03:30"),
            ("duration_minutes", "90"),
            ("time_zone", "Europe/Berlin"),
        ],
    )
    .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let (_, windows) = common::get(&app, "/api/v1/maintenance-windows", Some(&token)).await;
    assert_eq!(windows[0]["days"], serde_json::json!([6, 7]));
    assert_eq!(windows[0]["start_minute"], 210);
    assert_eq!(windows[0]["host_id"], host.to_string());
    assert_eq!(windows[0]["created_by"], "user:ada");
    let settings = send(&app, "GET", "/settings", Some(&ada), None, None).await;
    assert!(settings.body.contains("sat, sun") && settings.body.contains("03:30"));
    let window = windows[0]["id"].as_str().unwrap();
    assert_eq!(
        post(&format!("/settings/windows/{window}/delete"), &[])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let (_, windows) = common::get(&app, "/api/v1/maintenance-windows", Some(&token)).await;
    assert_eq!(windows, serde_json::json!([]));

    // A container's policy.
    let (_, list) = common::get(&app, "/api/v1/containers", Some(&token)).await;
    let container = list[0]["id"].as_str().unwrap().to_owned();
    assert!(
        settings
            .body
            .contains(&format!("/settings/policies/{container}"))
    );
    let set = post(
        &format!("/settings/policies/{container}"),
        &[("policy", "minor")],
    )
    .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    let policy_path = format!("/api/v1/containers/{container}/policy");
    let (_, policy) = common::get(&app, &policy_path, Some(&token)).await;
    assert_eq!(policy["effective"], "minor");
    assert_eq!(policy["override_by"], "user:ada");
    let wrong = post(
        &format!("/settings/policies/{container}"),
        &[("policy", "yolo")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    post(
        &format!("/settings/policies/{container}"),
        &[("policy", "")],
    )
    .await;
    let (_, policy) = common::get(&app, &policy_path, Some(&token)).await;
    assert_eq!(policy["override_policy"], serde_json::Value::Null);

    // A viewer changes none of it, whatever it sends.
    let vic = log_in(&app, "vic").await;
    let fleet = send(&app, "GET", "/", Some(&vic), None, None).await;
    let vic_csrf = csrf_of(&fleet.body);
    for (path, fields) in [
        (
            "/settings/windows".to_owned(),
            vec![
                ("day_sat", "on"),
                ("start", "03:00"),
                ("duration_minutes", "60"),
            ],
        ),
        (
            format!("/settings/policies/{container}"),
            vec![("policy", "major")],
        ),
        (
            "/settings/channels".to_owned(),
            vec![("name", "x"), ("url", "https://e.example/x")],
        ),
    ] {
        let mut all = vec![("csrf", vic_csrf.as_str())];
        all.extend(fields);
        let refused = send(&app, "POST", &path, Some(&vic), Some(&all), None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(
        send(&app, "GET", &page, Some(&vic), None, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

/// The fleet's label filter is the labels rollouts select by, applied by the database.
#[tokio::test]
async fn the_fleet_filters_by_label() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let nas = common::add_host(&store, &a, "nas-1").await;
    common::add_host(&store, &a, "web-1").await;
    add_user(&store, a.id, "vic", Role::Viewer).await;
    let (app, _keys) = common::app(store.clone());
    let token = store
        .create_scoped_api_token(a.id, "ops", unity_controller::auth::Scope::Operate)
        .await
        .unwrap();
    let (status, body) = common::request(
        &app,
        "PUT",
        &format!("/api/v1/hosts/{nas}/labels"),
        Some(&token),
        Some(serde_json::json!({ "labels": { "role": "nas" } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let vic = log_in(&app, "vic").await;
    let all = send(&app, "GET", "/", Some(&vic), None, None).await;
    assert!(all.body.contains(">nas-1<") && all.body.contains(">web-1<"));
    let only = send(&app, "GET", "/?label=role%3Dnas", Some(&vic), None, None).await;
    assert!(
        only.body.contains(">nas-1<") && !only.body.contains(">web-1<"),
        "{}",
        only.body
    );
    assert!(only.body.contains("1 host"), "{}", only.body);
    let none = send(&app, "GET", "/?label=role%3Dweb", Some(&vic), None, None).await;
    assert!(!none.body.contains(">nas-1<") && none.body.contains("0 hosts"));
}
