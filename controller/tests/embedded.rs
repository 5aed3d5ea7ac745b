//! The embedded PostgreSQL as the controller runs it: created, adopted when already running,
//! and a clear error when the server user cannot reach the data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use unity_controller::store::embedded::{EmbeddedError, EmbeddedOptions, EmbeddedPostgres};

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .is_some_and(|ids| ids.split_whitespace().nth(1) == Some("0"))
}

#[tokio::test]
async fn a_running_cluster_is_adopted_not_started_twice() {
    let dir = tempfile::Builder::new()
        .prefix("unity-emb-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path().join("pg");
    let options = EmbeddedOptions {
        unsafe_no_fsync: true,
    };
    let mut first = EmbeddedPostgres::ensure_running(&root, &options)
        .await
        .unwrap();
    assert!(first.started_here());
    let second = EmbeddedPostgres::ensure_running(&root, &options)
        .await
        .unwrap();
    assert!(
        !second.started_here(),
        "an admin command must reuse the running server"
    );
    drop(second);
    // Dropping the adopter left the server up: the owner can still stop it cleanly.
    first.stop().await.unwrap();
}

#[tokio::test]
async fn unreachable_data_directory_is_a_clear_error() {
    if !running_as_root() {
        eprintln!("skipped: only root runs PostgreSQL as another user");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("unity-emb-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = EmbeddedPostgres::ensure_running(
        &dir.path().join("data").join("pg"),
        &EmbeddedOptions::default(),
    )
    .await
    .unwrap_err();
    match &err {
        EmbeddedError::NotReachable { user, path } => {
            assert_eq!(user, "postgres");
            assert_eq!(path, dir.path());
        }
        other => panic!("expected NotReachable, got {other}"),
    }
    assert!(err.to_string().contains("chmod o+x"), "{err}");
}
