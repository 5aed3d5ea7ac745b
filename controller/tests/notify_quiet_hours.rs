//! Quiet hours hold a notification at the claim itself, not only in the statement that
//! postpones it: a notification created after the worker postponed what was due (its round
//! claims in a loop) must not slip through. Real PostgreSQL; the quiet window is set from the
//! database's own clock, so the test holds at any time of day.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use unity_controller::store::notify;
use unity_controller::testing::ThrowawayPostgres;
use uuid::Uuid;

#[tokio::test]
async fn a_notification_created_after_the_postponement_is_still_held() {
    let pg = ThrowawayPostgres::start().await.expect("start PostgreSQL");
    let (store, url) = pg.fresh_database().await.unwrap();
    let tenant = store.create_tenant("quiet").await.unwrap();
    // The owner's connection, as the notification worker uses.
    let owner = sqlx::PgPool::connect(&url).await.unwrap();
    let pool = &owner;
    let channel = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO notification_channels \
             (id, tenant_id, name, scheme, target_sealed, target_redacted, \
              quiet_start, quiet_end, quiet_timezone, quiet_allows_critical) \
         VALUES ($1, $2, 'night', 'webhook', '\\x00', 'http://receiver', \
                 (now() AT TIME ZONE 'UTC')::time - interval '1 hour', \
                 (now() AT TIME ZONE 'UTC')::time + interval '3 hours', 'UTC', false)",
    )
    .bind(channel)
    .bind(tenant.id)
    .execute(pool)
    .await
    .unwrap();
    // The worker's round postpones what is due first; this one arrives just after.
    assert_eq!(notify::postpone_quiet(pool).await.unwrap(), 0);
    let late = Uuid::new_v4();
    let test_message = Uuid::new_v4();
    for (id, reason) in [(late, "alert"), (test_message, "test")] {
        sqlx::query(
            "INSERT INTO notifications (id, tenant_id, channel_id, reason) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(tenant.id)
        .bind(channel)
        .bind(reason)
        .execute(pool)
        .await
        .unwrap();
    }
    let claimed: Vec<Uuid> = notify::claim(pool, 32)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        claimed,
        vec![test_message],
        "only the test message goes now"
    );
    // The next round says when the held one will go: at the end of the quiet hours.
    assert_eq!(notify::postpone_quiet(pool).await.unwrap(), 1);
    let wait: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM notifications WHERE id = $1",
    )
    .bind(late)
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(
        (3.0 * 3600.0 - 60.0..=3.0 * 3600.0).contains(&wait),
        "{wait}"
    );
    // Once the quiet hours are over it is claimed.
    sqlx::query(
        "UPDATE notification_channels SET quiet_start = NULL, quiet_end = NULL WHERE id = $1",
    )
    .bind(channel)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE notifications SET next_attempt_at = now() WHERE id = $1")
        .bind(late)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(claimed_ids(pool).await, vec![late]);
}

/// What one claim by the worker takes, by id.
async fn claimed_ids(pool: &sqlx::PgPool) -> Vec<Uuid> {
    notify::claim(pool, 32)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect()
}
