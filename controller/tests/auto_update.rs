//! Automatic container updates on a real PostgreSQL: which containers the sweep queues jobs
//! for (labels, API overrides, tag candidates), that it never retries a target, and
//! maintenance windows evaluated by PostgreSQL's time-zone database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use time::macros::datetime;
use unity_controller::jobs::JobKeys;
use unity_controller::jobs::auto::sweep;
use unity_controller::store::jobs::{self as job_store, JobFilter};
use unity_controller::store::page::Page;
use unity_controller::store::policies::{self, NewWindow};
use unity_protocol::latest::{ImageUpdate, ReportReply, UpdateState};
use uuid::Uuid;

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn container(
    id: &str,
    name: &str,
    detail: serde_json::Value,
) -> unity_protocol::latest::ContainerInfo {
    let mut c = common::inventory::container(id, name, "running");
    c.name = name.into();
    c.image = format!("registry.lan/{name}:1.2.0");
    c.update = ImageUpdate {
        state: UpdateState::UpdateAvailable,
        new_digest: Some(digest('a')),
        reason: String::new(),
    };
    c.detail_json = detail.to_string();
    c
}

#[tokio::test]
async fn the_sweep_follows_policies_and_never_retries_a_target() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    let host = common::add_host(&store, &a, "docker-1").await;
    let other = common::add_host(&store, &b, "docker-b").await;
    let dir = tempfile::tempdir().unwrap();
    let keys = JobKeys::new(dir.path());
    keys.load_or_create().unwrap();
    let candidate = format!("registry.lan/api:1.3.0@{}", digest('c'));
    let body = common::inventory::containers(
        vec![
            container("c1", "web", serde_json::json!({ "policy": "digest" })),
            container("c2", "db", serde_json::json!({ "policy": "notify" })),
            container(
                "c3",
                "api",
                serde_json::json!({ "policy": "minor", "candidate": { "tag": "1.3.0", "reference": candidate, "digest": digest('c') } }),
            ),
            container("c4", "cache", serde_json::json!({})),
        ],
        vec![],
    );
    let reply = common::send_body(&store, &a, host, Uuid::new_v4(), 1, body.clone()).await;
    assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");
    // Tenant B has the same containers, policy `off` by label.
    let reply = common::send_body(
        &store,
        &b,
        other,
        Uuid::new_v4(),
        1,
        common::inventory::containers(
            vec![container(
                "c1",
                "web",
                serde_json::json!({ "policy": "off" }),
            )],
            vec![],
        ),
    )
    .await;
    assert!(matches!(reply, ReportReply::Ack { .. }), "{reply:?}");

    let now = time::OffsetDateTime::now_utc();
    assert_eq!(sweep(&store, &keys, now).await.unwrap(), 2);
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    let jobs = job_store::list(&mut tx, &JobFilter::default(), &Page::first(10))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut targets: Vec<(String, String)> = Vec::new();
    for job in &jobs {
        let mut tx = store.tenant_tx(a.id).await.unwrap();
        let detail = job_store::get(&mut tx, job.id).await.unwrap().unwrap();
        targets.push((
            detail.params["container"].as_str().unwrap().to_owned(),
            detail.params["image"].as_str().unwrap().to_owned(),
        ));
        assert!(
            job.requested_by.starts_with("policy:"),
            "{}",
            job.requested_by
        );
    }
    targets.sort();
    assert_eq!(
        targets,
        vec![
            ("api".to_owned(), candidate.clone()),
            (
                "web".to_owned(),
                format!("registry.lan/web:1.2.0@{}", digest('a'))
            ),
        ]
    );
    // Nothing twice: open jobs, then ended ones, hold their targets.
    assert_eq!(sweep(&store, &keys, now).await.unwrap(), 0);
    let mut tx = store.tenant_tx(b.id).await.unwrap();
    assert!(
        job_store::list(&mut tx, &JobFilter::default(), &Page::first(10))
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);
    // The web update failed on the host: the sweep does not try that digest again.
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    for job in &jobs {
        sqlx::query("UPDATE jobs SET state = 'rolled_back' WHERE id = $1")
            .bind(job.id)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(sweep(&store, &keys, now).await.unwrap(), 0);

    // An override: `db` set to digest through the API's store path is updated next sweep.
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    policies::set_policy(&mut tx, a.id, host, "db", "digest", "test")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(sweep(&store, &keys, now).await.unwrap(), 1);
    // A window that is closed now holds the next one back; one that is open lets it through.
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    policies::set_policy(&mut tx, a.id, host, "cache", "digest", "test")
        .await
        .unwrap();
    let closed = policies::insert_window(
        &mut tx,
        &NewWindow {
            tenant_id: a.id,
            host_id: Some(host),
            days: &[1],
            start_minute: 0,
            duration_minutes: 1,
            time_zone: "UTC",
            created_by: "test",
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let monday_noon = datetime!(2026-11-30 12:00 UTC);
    assert_eq!(sweep(&store, &keys, monday_noon).await.unwrap(), 0);
    assert_eq!(
        sweep(&store, &keys, datetime!(2026-11-30 00:00:30 UTC))
            .await
            .unwrap(),
        1
    );
    let _ = closed;
}

#[tokio::test]
async fn windows_are_local_time_and_may_cross_midnight_and_the_week() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let other_host = common::add_host(&store, &a, "pi").await;
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    // No window at all: any time.
    assert!(
        policies::may_update_at(&mut tx, host, datetime!(2026-12-02 15:00 UTC))
            .await
            .unwrap()
    );
    // Sunday 23:00 to Monday 01:00, Berlin time (CET in winter, UTC+1), for `host` only.
    policies::insert_window(
        &mut tx,
        &NewWindow {
            tenant_id: a.id,
            host_id: Some(host),
            days: &[7],
            start_minute: 23 * 60,
            duration_minutes: 120,
            time_zone: "Europe/Berlin",
            created_by: "test",
        },
    )
    .await
    .unwrap();
    let cases = [
        // 2026-12-06 is a Sunday. 22:30 UTC = 23:30 Berlin: inside.
        (datetime!(2026-12-06 22:30 UTC), true),
        // 21:59 UTC = 22:59 Berlin: not yet.
        (datetime!(2026-12-06 21:59 UTC), false),
        // Monday 00:30 Berlin = Sunday 23:30 UTC: inside (across midnight).
        (datetime!(2026-12-06 23:30 UTC), true),
        // Monday 01:00 Berlin = 00:00 UTC: the window has closed.
        (datetime!(2026-12-07 00:00 UTC), false),
        // Summer (CEST, UTC+2): Sunday 2026-07-05 21:30 UTC = 23:30 Berlin.
        (datetime!(2026-07-05 21:30 UTC), true),
        (datetime!(2026-07-05 22:30 UTC), true),
        (datetime!(2026-07-05 23:30 UTC), false),
    ];
    for (at, expected) in cases {
        assert_eq!(
            policies::may_update_at(&mut tx, host, at).await.unwrap(),
            expected,
            "{at}"
        );
    }
    // The other host has no window of its own and none for the tenant: any time.
    assert!(
        policies::may_update_at(&mut tx, other_host, datetime!(2026-12-02 15:00 UTC))
            .await
            .unwrap()
    );
    assert!(
        policies::time_zone_exists(&mut tx, "Europe/Berlin")
            .await
            .unwrap()
    );
    assert!(
        !policies::time_zone_exists(&mut tx, "Mars/Olympus")
            .await
            .unwrap()
    );
}
