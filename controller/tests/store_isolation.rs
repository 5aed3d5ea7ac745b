//! Tenant isolation enforced by PostgreSQL itself, and the token rules, on a real database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use time::OffsetDateTime;
use unity_controller::store::{self, EnrollmentTokenOutcome, NewHost, hosts, tenants};
use uuid::Uuid;

#[tokio::test]
async fn each_tenant_sees_only_its_own_hosts() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    let host_a = common::add_host(&store, &a, "nas-a").await;
    let host_b = common::add_host(&store, &b, "nas-b").await;

    let mut tx = store.tenant_tx(a.id).await.unwrap();
    let listed: Vec<Uuid> = hosts::list_hosts(&mut tx, &unity_controller::store::page::Page::all())
        .await
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(listed, vec![host_a]);
    assert!(hosts::get_host(&mut tx, host_b).await.unwrap().is_none());
    assert!(hosts::get_host(&mut tx, host_a).await.unwrap().is_some());
    // Even a query with no tenant filter at all sees one tenant.
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM hosts")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(all, 1);
}

#[tokio::test]
async fn writing_a_row_for_another_tenant_is_refused_by_the_database() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    let err = hosts::insert_host(
        &mut tx,
        &NewHost {
            id: Uuid::new_v4(),
            tenant_id: b.id,
            hostname: "intruder".into(),
            agent_version: "x".into(),
            cert_serial: "01".into(),
            cert_not_after: OffsetDateTime::now_utc(),
            cert_issuer: unity_controller::issuer::IssuerKind::BuiltIn,
        },
    )
    .await
    .unwrap_err();
    assert!(
        unity_controller::error_chain(&err).contains("row-level security"),
        "{}",
        unity_controller::error_chain(&err)
    );
}

#[tokio::test]
async fn updating_another_tenants_host_changes_nothing() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    let host_b = common::add_host(&store, &b, "nas-b").await;
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    assert!(!hosts::revoke_host(&mut tx, host_b).await.unwrap());
    let updated = sqlx::query("UPDATE hosts SET hostname = 'pwned'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated, 0);
}

#[tokio::test]
async fn an_application_transaction_without_a_tenant_sees_nothing() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    common::add_host(&store, &a, "nas-a").await;
    let mut tx = store.begin().await.unwrap();
    let hosts: i64 = sqlx::query_scalar("SELECT count(*) FROM hosts")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!((hosts, tenants), (0, 0));
}

#[tokio::test]
async fn the_application_role_cannot_step_out_of_row_level_security() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    for escape in [
        "RESET ROLE",
        "SET ROLE unity",
        "SET LOCAL row_security = off; SELECT * FROM hosts",
        "ALTER TABLE hosts DISABLE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON hosts",
        "SELECT * FROM api_tokens FOR UPDATE",
        "DELETE FROM tenants",
    ] {
        let mut tx = store.tenant_tx(a.id).await.unwrap();
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(escape))
            .execute(&mut *tx)
            .await;
        // Either refused outright, or (RESET ROLE) a no-op because the login role *is*
        // unity_app; in that case the scope must still hold.
        if result.is_ok() {
            let user: String = sqlx::query_scalar("SELECT current_user::text")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            assert_eq!(user, "unity_app", "`{escape}` escaped to {user}");
        }
    }
}

#[tokio::test]
async fn enrollment_tokens_are_single_use_and_expire() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let (token, _) = store
        .create_enrollment_token(a.id, Duration::from_secs(3600))
        .await
        .unwrap();
    let consume = |token: String| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let outcome = tenants::consume_enrollment_token(&mut tx, &token, Uuid::new_v4())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            outcome
        }
    };
    assert_eq!(
        consume(token.clone()).await,
        EnrollmentTokenOutcome::Accepted { tenant_id: a.id }
    );
    assert_eq!(consume(token).await, EnrollmentTokenOutcome::AlreadyUsed);
    assert_eq!(
        consume("ufe_nonexistent".into()).await,
        EnrollmentTokenOutcome::Unknown
    );
    let expired = unity_controller::testing::expired_enrollment_token(&store, a.id)
        .await
        .unwrap();
    assert_eq!(consume(expired).await, EnrollmentTokenOutcome::Expired);
    // A token with no life, or one that would outlive the calendar, is refused outright.
    for ttl in [Duration::ZERO, Duration::from_secs(99_999_999 * 86_400)] {
        assert!(matches!(
            store.create_enrollment_token(a.id, ttl).await,
            Err(unity_controller::store::StoreError::InvalidTtl { .. })
        ));
    }
}

#[tokio::test]
async fn a_rolled_back_enrollment_leaves_the_token_unspent() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let (token, _) = store
        .create_enrollment_token(a.id, Duration::from_secs(3600))
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    let outcome = tenants::consume_enrollment_token(&mut tx, &token, Uuid::new_v4())
        .await
        .unwrap();
    assert!(matches!(outcome, EnrollmentTokenOutcome::Accepted { .. }));
    tx.rollback().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let again = tenants::consume_enrollment_token(&mut tx, &token, Uuid::new_v4())
        .await
        .unwrap();
    assert_eq!(again, EnrollmentTokenOutcome::Accepted { tenant_id: a.id });
}

#[tokio::test]
async fn api_tokens_authenticate_their_tenant_only_and_are_stored_hashed() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    let token_a = store.create_api_token(a.id, "ci").await.unwrap();
    let token_b = store.create_api_token(b.id, "ci").await.unwrap();
    assert_eq!(
        store.authenticate_api_token(&token_a).await.unwrap(),
        Some(a.id)
    );
    assert_eq!(
        store.authenticate_api_token(&token_b).await.unwrap(),
        Some(b.id)
    );
    assert_eq!(
        store.authenticate_api_token("ufa_wrong").await.unwrap(),
        None
    );
    assert_eq!(store.authenticate_api_token("").await.unwrap(), None);
    // The row holds a hash, never the token itself.
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar("SELECT row_to_json(t)::text FROM api_tokens t")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "tenant alpha sees exactly its own token row");
    let secret = token_a.trim_start_matches("ufa_");
    assert!(!rows[0].contains(secret), "{}", rows[0]);
    let hashed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(&token_a)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(hashed, 1);
}

#[tokio::test]
async fn duplicate_tenant_and_bad_names_are_clear_errors() {
    let (_pg, store) = common::database().await;
    store.create_tenant("homelab").await.unwrap();
    let err = store.create_tenant("homelab").await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let err = store.create_tenant("Bad Name").await.unwrap_err();
    assert!(err.to_string().contains("invalid"), "{err}");
    let err = store.tenant_by_name("nobody").await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn report_cursor_applies_each_sequence_number_once() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let host = common::add_host(&store, &a, "nas").await;
    let stream = Uuid::new_v4();
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    assert!(
        store::hosts::advance_cursor(&mut tx, a.id, host, stream, 1)
            .await
            .unwrap()
    );
    assert!(
        !store::hosts::advance_cursor(&mut tx, a.id, host, stream, 1)
            .await
            .unwrap()
    );
    assert!(
        store::hosts::advance_cursor(&mut tx, a.id, host, stream, 2)
            .await
            .unwrap()
    );
    assert!(
        !store::hosts::advance_cursor(&mut tx, a.id, host, stream, 1)
            .await
            .unwrap()
    );
    assert!(
        store::hosts::advance_cursor(&mut tx, a.id, host, Uuid::new_v4(), 1)
            .await
            .unwrap()
    );
}
