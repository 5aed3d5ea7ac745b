//! Opening the store: an external PostgreSQL from `DATABASE_URL`, or the embedded default.

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::backup::{self, BackupError};
use crate::config::Config;
use crate::store::embedded::{EmbeddedError, EmbeddedOptions, EmbeddedPostgres, PgClient};
use crate::store::{self, AppLogin, MigrationPlan, Store, StoreError};

/// Name of the database the embedded cluster holds.
pub const EMBEDDED_DATABASE: &str = "unity";

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL")]
    Url(#[source] sqlx::Error),
    #[error("could not run the embedded PostgreSQL")]
    Embedded(#[from] EmbeddedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the schema must be migrated from version {from} to {to}, and the backup taken first \
         failed; nothing was changed (free space in {dir} or set [backup] dir)"
    )]
    PreMigrationBackup {
        from: i64,
        to: i64,
        dir: std::path::PathBuf,
        #[source]
        source: BackupError,
    },
}

/// What the opener will do with the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Serve or change it: migrate to this build's schema (and refuse a newer one).
    ReadWrite,
    /// Only read it: a schema newer than this build's is opened as it is, with a warning, so
    /// an operator who downgraded can still list, look and back up.
    ReadOnly,
}

/// An open, migrated store and, in embedded mode, the cluster behind it (stopped on drop if
/// this process started it).
#[derive(Debug)]
pub struct Database {
    pub store: Store,
    pub embedded: Option<EmbeddedPostgres>,
    /// `pg_dump`/`pg_restore` for this database (backups).
    pub client: PgClient,
}

impl Database {
    /// Opens `config.database_url` (with `app_database_url` for the application pool, if
    /// given), or the embedded cluster under `data_dir/postgres`, and migrates — after taking
    /// a backup when the migration would change existing data, and never over a schema newer
    /// than this build's.
    pub async fn open(
        config: &Config,
        config_file: Option<&Path>,
        access: Access,
    ) -> Result<Self, DatabaseError> {
        let (options, app, embedded, client) = match config.database_url.as_deref() {
            Some(url) => {
                let app = match config.app_database_url.as_deref() {
                    Some(app) => AppLogin::External(
                        PgConnectOptions::from_str(app).map_err(DatabaseError::Url)?,
                    ),
                    None => AppLogin::SameAsAdmin,
                };
                let options = PgConnectOptions::from_str(url).map_err(DatabaseError::Url)?;
                (options, app, None, PgClient::external(url).await?)
            }
            None => {
                let pg = Self::embedded(&config.data_dir).await?;
                let options = pg.connect_options(EMBEDDED_DATABASE);
                let client = pg.client(EMBEDDED_DATABASE);
                (
                    options.clone(),
                    AppLogin::Managed(options),
                    Some(pg),
                    client,
                )
            }
        };
        match store::migration_plan(&options).await? {
            MigrationPlan::TooNew { database, binary } if access == Access::ReadOnly => {
                tracing::warn!(
                    database,
                    binary,
                    "the database schema is newer than this controller's; reading it as it is"
                );
                let store = Store::open_unmigrated(options, app).await?;
                return Ok(Self {
                    store,
                    embedded,
                    client,
                });
            }
            MigrationPlan::TooNew { database, binary } => {
                return Err(StoreError::SchemaTooNew { database, binary }.into());
            }
            MigrationPlan::Upgrade { from, to } => {
                let dir = config.backup_dir();
                let path = dir.join(backup::file_name(
                    &format!("pre-migration-schema{from}"),
                    time::OffsetDateTime::now_utc(),
                ));
                tracing::info!(from, to, path = %path.display(),
                    "backing up before migrating the schema");
                backup::create(&client, from, &config.data_dir, config_file, &path)
                    .await
                    .map_err(|source| DatabaseError::PreMigrationBackup {
                        from,
                        to,
                        dir,
                        source,
                    })?;
            }
            MigrationPlan::Fresh | MigrationPlan::UpToDate => {}
        }
        let store = Store::open(options, app).await?;
        Ok(Self {
            store,
            embedded,
            client,
        })
    }

    /// The embedded cluster under `data_dir/postgres`, running, with its database created.
    pub async fn embedded(data_dir: &Path) -> Result<EmbeddedPostgres, DatabaseError> {
        let pg = EmbeddedPostgres::ensure_running(
            &data_dir.join("postgres"),
            &EmbeddedOptions::default(),
        )
        .await?;
        store::create_database_if_missing(pg.connect_options("postgres"), EMBEDDED_DATABASE)
            .await?;
        Ok(pg)
    }

    /// Closes the pool and stops the embedded cluster if this process started it.
    pub async fn close(mut self) {
        self.store.close().await;
        if let Some(pg) = self.embedded.as_mut()
            && let Err(error) = pg.stop().await
        {
            tracing::warn!(error = %crate::error_chain(&error), "could not stop embedded PostgreSQL");
        }
    }
}
