//! Opening the store: an external PostgreSQL from `DATABASE_URL`, or the embedded default.

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::store::embedded::{EmbeddedError, EmbeddedOptions, EmbeddedPostgres};
use crate::store::{self, AppLogin, Store, StoreError};

/// Name of the database the embedded cluster holds.
const EMBEDDED_DATABASE: &str = "unity";

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL")]
    Url(#[source] sqlx::Error),
    #[error("could not run the embedded PostgreSQL")]
    Embedded(#[from] EmbeddedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An open, migrated store and, in embedded mode, the cluster behind it (stopped on drop if
/// this process started it).
#[derive(Debug)]
pub struct Database {
    pub store: Store,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Opens `database_url` (with `app_database_url` for the application pool, if given), or
    /// the embedded cluster under `data_dir/postgres`, and migrates.
    pub async fn open(
        database_url: Option<&str>,
        app_database_url: Option<&str>,
        data_dir: &Path,
    ) -> Result<Self, DatabaseError> {
        let (options, app, embedded) = match database_url {
            Some(url) => {
                let app = match app_database_url {
                    Some(app) => AppLogin::External(
                        PgConnectOptions::from_str(app).map_err(DatabaseError::Url)?,
                    ),
                    None => AppLogin::SameAsAdmin,
                };
                (
                    PgConnectOptions::from_str(url).map_err(DatabaseError::Url)?,
                    app,
                    None,
                )
            }
            None => {
                let pg = EmbeddedPostgres::ensure_running(
                    &data_dir.join("postgres"),
                    &EmbeddedOptions::default(),
                )
                .await?;
                store::create_database_if_missing(
                    pg.connect_options("postgres"),
                    EMBEDDED_DATABASE,
                )
                .await?;
                let options = pg.connect_options(EMBEDDED_DATABASE);
                (options.clone(), AppLogin::Managed(options), Some(pg))
            }
        };
        let store = Store::open(options, app).await?;
        Ok(Self { store, embedded })
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
