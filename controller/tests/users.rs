//! Console users and sessions over a real database: argon2id logins, throttling, sessions
//! that end (logout, everywhere, disabled user, password change, expiry), and row-level
//! security keeping each tenant's users to itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use time::OffsetDateTime;
use unity_controller::store::page::Page;
use unity_controller::store::users::{self, Login, Role, UserError};

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn users_log_in_get_sessions_and_lose_them() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    let alice = users::create_user(&mut tx, a.id, "alice", Role::Operator, PASSWORD)
        .await
        .unwrap();
    assert!(matches!(
        users::create_user(&mut tx, a.id, "bob", Role::Viewer, "short").await,
        Err(UserError::Password(_))
    ));
    assert!(matches!(
        users::create_user(&mut tx, a.id, "Bob", Role::Viewer, PASSWORD).await,
        Err(UserError::InvalidName(_))
    ));
    tx.commit().await.unwrap();
    // Names are unique on the controller, across tenants.
    let mut tx = store.tenant_tx(b.id).await.unwrap();
    assert!(matches!(
        users::create_user(&mut tx, b.id, "alice", Role::Admin, PASSWORD).await,
        Err(UserError::NameTaken(_))
    ));
    drop(tx);
    // Tenant B sees none of A's users.
    let mut tx = store.tenant_tx(b.id).await.unwrap();
    assert!(
        users::list_users(&mut tx, &Page::all())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        users::user_by_name(&mut tx, "alice")
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);

    let now = OffsetDateTime::now_utc();
    let Login::Ok { session_id, user } = store.login("alice", PASSWORD, now).await.unwrap() else {
        panic!("alice could not log in");
    };
    assert_eq!(
        (user.tenant_id, user.role, user.user_id),
        (a.id, Role::Operator, alice.id)
    );
    assert!(session_id.starts_with("ufs_") && user.csrf_token.starts_with("ufc_"));
    let seen = store.session(&session_id).await.unwrap().unwrap();
    assert_eq!(seen, user);
    assert!(store.session("ufs_nonsense").await.unwrap().is_none());
    // The hash is stored, never the cookie's value.
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    let stored: Vec<u8> = sqlx::query_scalar("SELECT id_hash FROM user_sessions")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_ne!(stored, session_id.as_bytes());
    drop(tx);

    assert_eq!(
        store.login("nobody", PASSWORD, now).await.unwrap(),
        Login::Refused
    );
    assert_eq!(
        store.login("alice", "wrong password!", now).await.unwrap(),
        Login::Refused
    );

    // Logout ends that session only.
    let Login::Ok {
        session_id: second, ..
    } = store.login("alice", PASSWORD, now).await.unwrap()
    else {
        panic!()
    };
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    assert!(users::end_session(&mut tx, &session_id).await.unwrap());
    tx.commit().await.unwrap();
    assert!(store.session(&session_id).await.unwrap().is_none());
    assert!(store.session(&second).await.unwrap().is_some());

    // A password change checks the old one and ends every other session.
    let Login::Ok {
        session_id: third, ..
    } = store.login("alice", PASSWORD, now).await.unwrap()
    else {
        panic!()
    };
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    assert!(matches!(
        users::change_password(
            &mut tx,
            alice.id,
            Some(&third),
            "not it at all",
            "a new passphrase"
        )
        .await,
        Err(UserError::WrongPassword)
    ));
    users::change_password(
        &mut tx,
        alice.id,
        Some(&third),
        PASSWORD,
        "a new passphrase",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(
        store.session(&second).await.unwrap().is_none(),
        "other sessions end"
    );
    assert!(
        store.session(&third).await.unwrap().is_some(),
        "this one stays"
    );
    assert_eq!(
        store.login("alice", PASSWORD, now).await.unwrap(),
        Login::Refused
    );

    // Disabling refuses the login and ends the sessions; enabling lets the user back in.
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    users::set_disabled(&mut tx, alice.id, true)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert!(store.session(&third).await.unwrap().is_none());
    assert_eq!(
        store.login("alice", "a new passphrase", now).await.unwrap(),
        Login::Refused
    );
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    users::set_disabled(&mut tx, alice.id, false)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(
        store.login("alice", "a new passphrase", now).await.unwrap(),
        Login::Ok { .. }
    ));

    // Expired and idle sessions are refused.
    let Login::Ok {
        session_id: old, ..
    } = store.login("alice", "a new passphrase", now).await.unwrap()
    else {
        panic!()
    };
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    sqlx::query("UPDATE user_sessions SET last_seen_at = now() - interval '13 hours'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(
        store.session(&old).await.unwrap().is_none(),
        "idle for 13 h"
    );
}

#[tokio::test]
async fn failed_logins_throttle_the_account_then_a_good_one_clears_it() {
    let (_pg, store) = common::database().await;
    let a = store.create_tenant("alpha").await.unwrap();
    let mut tx = store.tenant_tx(a.id).await.unwrap();
    users::create_user(&mut tx, a.id, "carol", Role::Admin, PASSWORD)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let t0 = OffsetDateTime::now_utc();
    for _ in 0..5 {
        assert_eq!(
            store.login("carol", "guess guess guess", t0).await.unwrap(),
            Login::Refused
        );
    }
    // Now even the right password waits: nothing is checked while throttled.
    let Login::Throttled { retry_after } = store.login("carol", PASSWORD, t0).await.unwrap() else {
        panic!("not throttled after five failures");
    };
    // One second from the last failure (the database keeps microseconds).
    assert!(
        retry_after <= std::time::Duration::from_secs(1)
            && retry_after > std::time::Duration::from_millis(990),
        "{retry_after:?}"
    );
    let later = t0 + time::Duration::seconds(2);
    assert!(matches!(
        store.login("carol", PASSWORD, later).await.unwrap(),
        Login::Ok { .. }
    ));
    // The good login cleared the count.
    assert_eq!(
        store
            .login("carol", "guess guess guess", later)
            .await
            .unwrap(),
        Login::Refused
    );
    assert!(matches!(
        store.login("carol", PASSWORD, later).await.unwrap(),
        Login::Ok { .. }
    ));
}
