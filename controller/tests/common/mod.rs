//! Shared set-up for the controller's integration tests: a real throwaway PostgreSQL and
//! tenants with hosts inserted through the same store functions enrollment uses.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use time::OffsetDateTime;
use unity_controller::store::{NewHost, Store, Tenant, hosts};
use unity_controller::testing::ThrowawayPostgres;
use uuid::Uuid;

pub async fn database() -> (ThrowawayPostgres, Store) {
    let pg = ThrowawayPostgres::start().await.expect("start PostgreSQL");
    let store = pg.fresh_store().await.expect("create a database");
    (pg, store)
}

/// Inserts a host for `tenant` through a tenant-scoped transaction.
pub async fn add_host(store: &Store, tenant: &Tenant, hostname: &str) -> Uuid {
    let id = Uuid::new_v4();
    let mut tx = store.tenant_tx(tenant.id).await.unwrap();
    hosts::insert_host(
        &mut tx,
        &NewHost {
            id,
            tenant_id: tenant.id,
            hostname: hostname.into(),
            agent_version: "test".into(),
            cert_serial: "01".into(),
            cert_not_after: OffsetDateTime::now_utc() + time::Duration::days(30),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}
