//! Upgrading a controller that already holds data: the database of an earlier release
//! (`fixtures/schema-v3-release-dc19e5a.sql`, see fixtures/MANIFEST) opened by this build is
//! backed up first, migrated, and keeps every row and its tenant isolation. A database
//! migrated by a *newer* build is refused, untouched, with an error that says what to do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;

use unity_controller::backup::Archive;
use unity_controller::config::Config;
use unity_controller::database::{Access, Database, DatabaseError};
use unity_controller::jobs::JobKeys;
use unity_controller::store::embedded::PgClient;
use unity_controller::store::inventory::containers::{self, ContainerFilter};
use unity_controller::store::{self, MigrationPlan, StoreError, hosts};
use unity_controller::testing::ThrowawayPostgres;
use uuid::Uuid;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/schema-v3-release-dc19e5a.sql"
);
const HOMELAB: &str = "9fc3860d-e3f9-410d-bd99-e0adc5715265";
const NEIGHBOUR: &str = "99680bbd-266a-4333-afd9-a3d183285b0d";

/// Loads the earlier release's dump into `url` with `psql`, as `pg_restore` would a backup.
async fn load_fixture(url: &str) {
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    store::prepare_restore_target(&options).await.unwrap();
    let mut psql = PgClient::external(url).await.unwrap().command("psql");
    psql.args(["-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(std::fs::File::open(FIXTURE).unwrap())
        .stdout(Stdio::null());
    let out = psql.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn backups(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn config(url: &str, data_dir: &Path) -> Config {
    Config {
        database_url: Some(url.to_owned()),
        data_dir: data_dir.to_owned(),
        ..Config::default()
    }
}

#[tokio::test]
async fn an_earlier_release_is_backed_up_then_migrated_and_keeps_its_data() {
    let pg = ThrowawayPostgres::start().await.unwrap();
    let url = pg.empty_database().await.unwrap();
    load_fixture(&url).await;
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    assert_eq!(
        store::migration_plan(&options).await.unwrap(),
        MigrationPlan::Upgrade {
            from: 3,
            to: store::newest_known_schema()
        }
    );
    let data = tempfile::tempdir().unwrap();
    unity_controller::app::load_ca(data.path()).unwrap();
    JobKeys::new(data.path()).load_or_create().unwrap();
    let config = config(&url, data.path());

    let database = Database::open(&config, None, Access::ReadWrite)
        .await
        .unwrap();
    let written = backups(&config.backup_dir());
    assert_eq!(written.len(), 1, "{written:?}");
    let name = written[0].file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("pre-migration-schema3-"), "{name}");
    let archive = Archive::read(&written[0]).unwrap();
    assert_eq!(archive.manifest.schema_version, 3);

    let store = &database.store;
    assert_eq!(
        store.schema_version().await.unwrap(),
        store::newest_known_schema()
    );
    assert_eq!(store.inventory_counts().await.unwrap(), (2, 2));
    let homelab = Uuid::parse_str(HOMELAB).unwrap();
    let mut tx = store.tenant_tx(homelab).await.unwrap();
    let listed = hosts::list_hosts(&mut tx, &unity_controller::store::page::Page::all())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let host = hosts::get_host(&mut tx, listed[0].id)
        .await
        .unwrap()
        .unwrap();
    assert!(host.facts.is_some(), "facts survive the migrations");
    let mut names: Vec<String> = containers::list(
        &mut tx,
        &ContainerFilter::default(),
        &unity_controller::store::page::Page::all(),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|c| c.name)
    .collect();
    names.sort();
    assert_eq!(names, ["app", "app2"]);
    tx.commit().await.unwrap();
    // The isolation the old rows had holds after the migration.
    let mut tx = store
        .tenant_tx(Uuid::parse_str(NEIGHBOUR).unwrap())
        .await
        .unwrap();
    assert!(
        containers::list(
            &mut tx,
            &ContainerFilter::default(),
            &unity_controller::store::page::Page::all()
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert_eq!(
        hosts::list_hosts(&mut tx, &unity_controller::store::page::Page::all())
            .await
            .unwrap()
            .len(),
        1
    );
    tx.commit().await.unwrap();
    database.close().await;

    // Opening again: nothing to migrate, no second backup.
    let database = Database::open(&config, None, Access::ReadWrite)
        .await
        .unwrap();
    database.close().await;
    assert_eq!(backups(&config.backup_dir()).len(), 1);
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused_untouched() {
    let pg = ThrowawayPostgres::start().await.unwrap();
    let (store, url) = pg.fresh_database().await.unwrap();
    store.close().await;
    let future = store::newest_known_schema() + 1;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from the future', true, '\\x00', 0)",
    )
    .bind(future)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = config(&url, data.path());
    let error = Database::open(&config, None, Access::ReadWrite)
        .await
        .unwrap_err();
    match &error {
        DatabaseError::Store(StoreError::SchemaTooNew { database, binary }) => {
            assert_eq!(*database, future);
            assert_eq!(*binary, future - 1);
        }
        other => panic!("expected SchemaTooNew, got {other}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("newer controller") && message.contains("restore a backup"),
        "{message}"
    );
    assert!(backups(&data.path().join("backups")).is_empty());

    // Reading still works (what `tenant list`, `job list`, `backup` use), and changes nothing.
    let database = Database::open(&config, None, Access::ReadOnly)
        .await
        .unwrap();
    assert!(
        database
            .store
            .list_tenants(&unity_controller::store::page::Page::all())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(database.store.schema_version().await.unwrap(), future);
    database.close().await;
}
