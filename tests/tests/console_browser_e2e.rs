//! The web console in a real browser: Debian's chromium, driven over WebDriver by
//! chromedriver (the `fantoccini` crate), against a real controller with a real agent that
//! reports recorded storage faults (a failing NVMe drive, a degraded pool, a degraded md
//! array). Logs in as a viewer, reads the fleet, the host and the alerts, checks the cookie's
//! flags, logs out; another tenant's user sees none of it. Screenshots of each page go to
//! `target/ui-screenshots/` (docs/ui.md shows them).
//!
//! `.ci/run` installs chromium and chromium-driver; outside CI their absence skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, Locator};
use unity_controller::store::users::{self, Role};
use unity_e2e::Harness;

const PASSWORD: &str = "correct horse battery staple";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Option<Driver> {
    if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "chromium and chromium-driver are required under CI (.ci/run installs them)"
        );
        eprintln!("chromium or chromedriver is not installed: skipping");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Owned by a `Driver` at once: whatever happens next, dropping it kills and reaps it.
    let driver = Driver {
        child: std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting chromedriver"),
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(driver: &Driver, width: u32, height: u32) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={width},{height}")],
        }),
    );
    Client::with_capabilities_and_connector(
        &driver.url,
        &caps,
        hyper_util::client::legacy::connect::HttpConnector::new(),
    )
    .await
    .expect("a chromium session")
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shoot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

async fn type_into(client: &Client, css: &str, text: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

async fn click(client: &Client, locator: Locator<'_>) {
    let described = format!("{locator:?}");
    client
        .find(locator)
        .await
        .unwrap_or_else(|e| panic!("{described}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Clicks what `locator` finds and waits until the browser shows the page that click loads.
///
/// A click that submits a form or follows a link returns before the next page has arrived
/// (a login waits for a deliberately slow password hash), and a selector the old page also
/// matches would be found on the old page. So the old document is marked first, and the wait
/// is for a document without the mark that has finished loading.
async fn follow(client: &Client, locator: Locator<'_>) {
    let described = format!("{locator:?}");
    client
        .execute("window.__unity_left = true; return null;", vec![])
        .await
        .unwrap();
    click(client, locator).await;
    let start = std::time::Instant::now();
    loop {
        // While the browser is between pages a script can fail: that is "not yet".
        let arrived = client
            .execute(
                "return window.__unity_left === undefined && document.readyState === 'complete';",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if arrived {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no new page within 60 s after clicking {described}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A console user of `tenant` with the tests' password.
async fn add_user(h: &Harness, tenant: uuid::Uuid, name: &str, role: Role) {
    let mut tx = h.store.tenant_tx(tenant).await.unwrap();
    users::create_user(&mut tx, tenant, name, role, PASSWORD)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn log_in(client: &Client, base: &str, name: &str) {
    client.goto(&format!("{base}/login")).await.unwrap();
    type_into(client, "input[name=name]", name).await;
    type_into(client, "input[name=password]", PASSWORD).await;
    follow(client, Locator::Css("button[type=submit]")).await;
    client
        .wait()
        .for_element(Locator::Css("header nav"))
        .await
        .expect("the console after logging in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_the_fleet_in_chromium_and_another_tenant_sees_nothing() {
    let Some(driver) = driver().await else {
        return;
    };
    let h = Harness::start().await;
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let other = h.store.create_tenant("other").await.unwrap();
    let read = h.store.create_api_token(tenant.id, "read").await.unwrap();
    for (t, name) in [(&tenant, "alice"), (&other, "eve")] {
        add_user(&h, t.id, name, Role::Viewer).await;
    }
    let state = h.enroll("nas", tenant.id).await;
    let host = state.enrollment.host_id;
    let (agent, _scratch) = unity_e2e::spawn_with_recorded_storage(state);
    let hostname = h.wait_for_facts(&read, host).await["hostname"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..200 {
        let (_, arrays) = h.api("/api/v1/arrays", &read).await;
        if arrays.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let base = format!("http://{}", h.controller().api_addr);

    let client = browser(&driver, 1280, 900).await;
    client.goto(&format!("{base}/")).await.unwrap();
    assert!(
        client.current_url().await.unwrap().path() == "/login",
        "sent to log in"
    );
    shoot(&client, "login").await;
    // A wrong password is refused on the page.
    type_into(&client, "input[name=name]", "alice").await;
    type_into(&client, "input[name=password]", "not the password").await;
    follow(&client, Locator::Css("button[type=submit]")).await;
    // The refusal arrives with the next page, after the server has checked
    // the password (a deliberately slow hash): wait for it, do not race it.
    let refusal = client
        .wait()
        .for_element(Locator::Css("[role=alert]"))
        .await
        .expect("the login page says the password was refused");
    assert!(
        refusal
            .text()
            .await
            .unwrap()
            .contains("Wrong user name or password")
    );

    log_in(&client, &base, "alice").await;
    let fleet = client.source().await.unwrap();
    assert!(
        fleet.contains(&format!(">{hostname}<")),
        "the fleet lists the host"
    );
    assert!(
        fleet.contains("badge critical"),
        "and its roll-up is critical"
    );
    shoot(&client, "fleet").await;
    // The session cookie as the browser holds it: not for scripts, not cross-site.
    let cookie = client.get_named_cookie("unity_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert!(cookie.value().starts_with("ufs_"));

    follow(&client, Locator::LinkText(&hostname)).await;
    client.wait().for_element(Locator::Css("h1")).await.unwrap();
    assert_eq!(
        client.current_url().await.unwrap().path(),
        format!("/hosts/{host}")
    );
    let page = client.source().await.unwrap();
    for shown in [
        "/dev/nvme0",
        "/dev/nvme1",
        "DEGRADED",
        "md0",
        "badge critical",
    ] {
        assert!(page.contains(shown), "{shown} missing from the host page");
    }
    shoot(&client, "host").await;
    // The pool's page: the vdev tree the agent read, its offline device among them.
    follow(&client, Locator::Css("a[href^='/pools/']")).await;
    client
        .wait()
        .for_element(Locator::Css("ul.tree"))
        .await
        .unwrap();
    let pool = client.source().await.unwrap();
    for shown in ["DEGRADED", "OFFLINE", "/tmp/zf/v2", "checksum"] {
        assert!(pool.contains(shown), "{shown} missing from the pool page");
    }
    shoot(&client, "pool").await;
    client.back().await.unwrap();
    follow(&client, Locator::LinkText("Alerts")).await;
    client
        .wait()
        .for_element(Locator::Css("table"))
        .await
        .unwrap();
    assert!(client.source().await.unwrap().contains(&hostname));
    shoot(&client, "alerts").await;

    // On a phone: the same page, 360 px wide, nothing cut off sideways.
    client.set_window_size(360, 800).await.unwrap();
    client.goto(&format!("{base}/")).await.unwrap();
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the fleet page scrolls sideways at 360 px"
    );
    shoot(&client, "fleet-phone").await;

    follow(&client, Locator::Css("header form button")).await;
    client
        .wait()
        .for_element(Locator::Css("input[name=password]"))
        .await
        .unwrap();
    client.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(
        client.current_url().await.unwrap().path(),
        "/login",
        "logged out"
    );
    client.close().await.unwrap();

    // Another tenant's user, in a fresh browser: none of it.
    let client = browser(&driver, 1280, 900).await;
    log_in(&client, &base, "eve").await;
    let theirs = client.source().await.unwrap();
    assert!(
        !theirs.contains(">nas<") && !theirs.contains("nvme"),
        "{theirs}"
    );
    client.goto(&format!("{base}/hosts/{host}")).await.unwrap();
    let theirs = client.source().await.unwrap();
    assert!(theirs.contains("No such host") && !theirs.contains("nvme"));
    client.goto(&format!("{base}/alerts")).await.unwrap();
    assert!(!client.source().await.unwrap().contains("nvme"));
    client.close().await.unwrap();
    agent.stop().await;
}

/// A fresh browser logged in as `user`, on the section its navigation calls `link`, once
/// `ready` (CSS) is on the page.
async fn browse_as(driver: &Driver, base: &str, user: &str, link: &str, ready: &str) -> Client {
    let client = browser(driver, 1280, 900).await;
    log_in(&client, base, user).await;
    follow(&client, Locator::LinkText(link)).await;
    client
        .wait()
        .for_element(Locator::Css(ready))
        .await
        .unwrap_or_else(|e| panic!("{ready} on {link}: {e}"));
    client
}

/// Waits (up to `within`) for the job page the browser is on to show an ended job; the page
/// reloads itself while the job runs, so this only re-reads what the browser shows.
async fn job_page_ends(client: &Client, within: Duration) -> String {
    let start = std::time::Instant::now();
    loop {
        let page = client.source().await.unwrap();
        if !page.contains("this page follows it") && page.contains("<h1>Job") {
            return page;
        }
        assert!(
            start.elapsed() < within,
            "the job did not end within {within:?}:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The row of the Updates table naming `container`, as the browser shows it.
async fn update_link(client: &Client, container: &str) -> Option<String> {
    client
        .execute(
            "for (const row of document.querySelectorAll('tbody tr')) {
               if (row.cells[1].textContent === arguments[0]) {
                 const a = row.querySelector('a[href^=\"/updates/\"]');
                 return a ? a.getAttribute('href') : '';
               }
             }
             return null;",
            vec![serde_json::json!(container)],
        )
        .await
        .unwrap()
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_updates_containers_in_chromium_one_succeeds_one_rolls_back() {
    use std::sync::Arc;
    use unity_agent::jobs::JobOptions;
    use unity_agent::reports::inventory::HostInventory;
    use unity_agent::run::RunOptions;
    use unity_collect::databases::DiscoveryOptions;
    use unity_collect::runner::SystemRunner;
    use unity_e2e::engines::{Behaviour, Dockerd, Registry, present};

    let Some(driver) = driver().await else {
        return;
    };
    let Some(busybox) = present("busybox-static", &["/bin/busybox", "/usr/bin/busybox"]) else {
        return;
    };
    let Some(engine) = Dockerd::start() else {
        return;
    };
    let Some(registry) = Registry::start(engine.dir.path()) else {
        return;
    };
    // Two services on v1; then a good v2 is pushed to `web`'s tag and a broken one (its
    // health check never passes) to `api`'s.
    let web_tag = format!("{}/homelab/web:stable", registry.addr);
    let api_tag = format!("{}/homelab/api:stable", registry.addr);
    engine.build_and_push(&busybox, Behaviour::Healthy, "v1", &web_tag);
    engine.build_and_push(&busybox, Behaviour::Healthy, "v1", &api_tag);
    for (name, tag) in [("web", &web_tag), ("api", &api_tag)] {
        engine.docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            "unless-stopped",
            tag,
        ]);
    }
    let web_v2 = engine.build_and_push(&busybox, Behaviour::Healthy, "v2", &web_tag);
    engine.build_and_push(&busybox, Behaviour::NeverHealthy, "sick", &api_tag);
    let web_v2_digest = web_v2.rsplit_once('@').unwrap().1.to_owned();

    let h = Harness::start().await;
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let read = h.store.create_api_token(tenant.id, "read").await.unwrap();
    for (name, role) in [
        ("olga", Role::Operator),
        ("vic", Role::Viewer),
        ("ada", Role::Admin),
    ] {
        add_user(&h, tenant.id, name, role).await;
    }
    let state = h.enroll("docker-host", tenant.id).await;
    let host = state.enrollment.host_id;
    let containers = engine.config();
    let agent = unity_e2e::AgentTask::spawn(
        state,
        RunOptions {
            report_interval: Some(Duration::from_millis(500)),
            inventory_interval: Duration::from_secs(2),
            inventory: Some(Arc::new(HostInventory::new(
                containers.clone(),
                SystemRunner,
                PathBuf::from("/proc"),
                DiscoveryOptions::default(),
            ))),
            jobs: JobOptions {
                containers,
                ..JobOptions::default()
            },
            ..unity_e2e::fast_options()
        },
    );
    // Both updates known to the controller before anyone looks.
    for _ in 0..600 {
        let (_, list) = h
            .api(&format!("/api/v1/containers?host_id={host}"), &read)
            .await;
        let known = list.as_array().map_or(0, |l| {
            l.iter()
                .filter(|c| c["update_state"] == "update_available")
                .count()
        });
        if known == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let base = format!("http://{}", h.controller().api_addr);

    // A viewer sees the updates and no button; the server refuses the form all the same.
    let client = browse_as(&driver, &base, "vic", "Updates", "tbody tr").await;
    assert_eq!(update_link(&client, "web").await.as_deref(), Some(""));
    assert_eq!(update_link(&client, "api").await.as_deref(), Some(""));
    let (_, list) = h
        .api(&format!("/api/v1/containers?host_id={host}"), &read)
        .await;
    let web_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    client
        .goto(&format!("{base}/updates/{web_id}"))
        .await
        .unwrap();
    assert!(
        client
            .source()
            .await
            .unwrap()
            .contains("Your role does not allow this.")
    );
    // The form the page does not offer, built by hand with the viewer's own CSRF token.
    client.goto(&format!("{base}/updates")).await.unwrap();
    client
        .execute(
            "const f = document.createElement('form');
             f.method = 'post'; f.action = '/updates/' + arguments[0];
             for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value],
                                   ['digest', arguments[1]]]) {
               const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v;
               f.appendChild(i);
             }
             document.body.appendChild(f); f.submit();",
            vec![serde_json::json!(web_id), serde_json::json!(web_v2_digest)],
        )
        .await
        .unwrap();
    client.wait().for_element(Locator::Css("h1")).await.unwrap();
    assert!(
        client
            .source()
            .await
            .unwrap()
            .contains("Your role does not allow this.")
    );
    let (_, jobs) = h.api(&format!("/api/v1/jobs?host_id={host}"), &read).await;
    assert_eq!(jobs, serde_json::json!([]), "the viewer queued nothing");
    client.close().await.unwrap();

    // The operator: confirm (old and new digest on the page), update, watch it succeed.
    let client = browse_as(&driver, &base, "olga", "Updates", "tbody tr").await;
    shoot(&client, "updates").await;
    let link = update_link(&client, "web").await.unwrap();
    follow(&client, Locator::Css(&format!("a[href='{link}']"))).await;
    client
        .wait()
        .for_element(Locator::Css("dl.facts"))
        .await
        .unwrap();
    let confirm = client.source().await.unwrap();
    assert!(confirm.contains(&web_v2_digest), "the new digest is shown");
    assert!(confirm.contains("Running digest"));
    shoot(&client, "update-confirm").await;
    follow(&client, Locator::Css("button.primary")).await;
    let page = job_page_ends(&client, Duration::from_secs(240)).await;
    assert!(
        page.contains("badge ok") && page.contains("succeeded"),
        "{page}"
    );
    assert!(page.contains("verified"), "the receipt was checked: {page}");
    shoot(&client, "job-succeeded").await;
    assert_eq!(engine.docker(&["exec", "web", "cat", "/marker"]), "v2");

    // The broken image: the agent rolls back, the page says so, `api` still runs v1.
    client.goto(&format!("{base}/updates")).await.unwrap();
    let link = update_link(&client, "api").await.unwrap();
    follow(&client, Locator::Css(&format!("a[href='{link}']"))).await;
    client
        .wait()
        .for_element(Locator::Css("button.primary"))
        .await
        .unwrap();
    follow(&client, Locator::Css("button.primary")).await;
    let page = job_page_ends(&client, Duration::from_secs(240)).await;
    assert!(page.contains("rolled back"), "{page}");
    assert!(
        page.contains("not ready"),
        "the failed health check's output: {page}"
    );
    shoot(&client, "job-rolled-back").await;
    assert_eq!(engine.docker(&["exec", "api", "cat", "/marker"]), "v1");
    // Both on the jobs list.
    follow(&client, Locator::LinkText("Jobs")).await;
    client
        .wait()
        .for_element(Locator::Css("tbody tr"))
        .await
        .unwrap();
    let jobs = client.source().await.unwrap();
    assert!(jobs.contains("succeeded") && jobs.contains("rolled back"));
    client.close().await.unwrap();

    // The admin's Settings, with both containers' policies and a window added in the page.
    let client = browse_as(&driver, &base, "ada", "Settings", "#windows").await;
    click(&client, Locator::Css("input[name=day_sat]")).await;
    type_into(&client, "input[name=start]", "03:00").await;
    type_into(&client, "input[name=time_zone]", "Europe/Berlin").await;
    follow(
        &client,
        Locator::XPath("//button[normalize-space()='Add window']"),
    )
    .await;
    // `#policies` is on the page before the click too: wait for the page the form's POST
    // answers with (the new window listed), not just any Settings page.
    let mut settings = String::new();
    for _ in 0..100 {
        settings = client.source().await.unwrap();
        if settings.contains("Europe/Berlin") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(settings.contains("Europe/Berlin") && settings.contains("every host"));
    shoot(&client, "settings").await;
    client.close().await.unwrap();
    agent.stop().await;
}
