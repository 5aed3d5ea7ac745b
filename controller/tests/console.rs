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
    let answer = send(
        app,
        "POST",
        "/login",
        None,
        Some(&[("name", name), ("password", PASSWORD)]),
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
        let mut tx = store.tenant_tx(tenant.id).await.unwrap();
        users::create_user(&mut tx, tenant.id, name, role, PASSWORD)
            .await
            .unwrap();
        tx.commit().await.unwrap();
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
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    users::create_user(&mut tx, a.id, "carol", Role::Operator, PASSWORD)
        .await
        .unwrap();
    tx.commit().await.unwrap();
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
