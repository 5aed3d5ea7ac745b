//! The replica-wide dispatch sweep's question to PostgreSQL (`unity_hosts_with_undelivered_jobs`,
//! migration 0024), on a real database: of the hosts a replica holds sessions for, exactly
//! those whose jobs `deliverable` would claim — queued ones, and deliveries left unanswered
//! longer than the redelivery age — and never a host it did not ask about.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use time::{Duration, OffsetDateTime};
use unity_controller::store::jobs::{self as job_store, JobUpdate, NewJob};
use unity_controller::store::{Store, Tenant};
use uuid::Uuid;

async fn queue(store: &Store, tenant: &Tenant, host_id: Uuid) -> Uuid {
    let id = Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    let mut tx = store.tenant_tx(tenant.id).await.unwrap();
    job_store::insert(
        &mut tx,
        &NewJob {
            id,
            tenant_id: tenant.id,
            host_id,
            kind: "ping",
            params: &serde_json::json!({}),
            target: None,
            requested_by: "test",
            key_id: &[7; 32],
            spec: b"spec",
            signature: b"signature",
            spec_sha256: &[9; 32],
            created_at: now,
            not_before: now,
            expires_at: now + Duration::hours(1),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn move_job(store: &Store, tenant: &Tenant, id: Uuid, update: JobUpdate<'_>) {
    let mut tx = store.tenant_tx(tenant.id).await.unwrap();
    job_store::update(&mut tx, id, &update).await.unwrap();
    tx.commit().await.unwrap();
}

async fn due(store: &Store, hosts: &[Uuid], redeliver_before: OffsetDateTime) -> HashSet<Uuid> {
    job_store::hosts_with_undelivered_jobs(store, hosts, redeliver_before)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn the_sweep_finds_queued_and_unanswered_jobs_of_the_hosts_it_asks_about_only() {
    let (_pg, store) = common::database().await;
    let alpha = store.create_tenant("alpha").await.unwrap();
    let beta = store.create_tenant("beta").await.unwrap();
    let queued = common::add_host(&store, &alpha, "queued").await;
    let unanswered = common::add_host(&store, &alpha, "unanswered").await;
    let accepted = common::add_host(&store, &alpha, "accepted").await;
    let idle = common::add_host(&store, &alpha, "idle").await;
    let elsewhere = common::add_host(&store, &beta, "elsewhere").await;

    queue(&store, &alpha, queued).await;
    let sent = queue(&store, &alpha, unanswered).await;
    move_job(&store, &alpha, sent, JobUpdate::Dispatched).await;
    let answered = queue(&store, &alpha, accepted).await;
    move_job(&store, &alpha, answered, JobUpdate::Dispatched).await;
    move_job(&store, &alpha, answered, JobUpdate::Accepted).await;
    queue(&store, &beta, elsewhere).await;

    let held = [queued, unanswered, accepted, idle];
    let now = OffsetDateTime::now_utc();
    // A delivery sent just now is not due again yet…
    assert_eq!(
        due(&store, &held, now - Duration::seconds(30)).await,
        HashSet::from([queued])
    );
    // …and is once it is older than the redelivery age; an accepted one never is.
    assert_eq!(
        due(&store, &held, now + Duration::minutes(1)).await,
        HashSet::from([queued, unanswered])
    );
    // A host this replica holds no session for is not in the answer, whatever its tenant.
    assert!(
        !due(&store, &held, now + Duration::minutes(1))
            .await
            .contains(&elsewhere)
    );
    assert!(due(&store, &[], now).await.is_empty());
    assert_eq!(
        due(&store, &[elsewhere], now).await,
        HashSet::from([elsewhere])
    );
}
