//! Test support: a **real**, throwaway PostgreSQL cluster.
//!
//! Not a mock: it is the machine's own PostgreSQL, created with `initdb` in a temporary
//! directory, listening on a unix socket there, with fsync off (nothing in it needs to
//! survive), and stopped and deleted when dropped. Works as root (the server then runs as
//! `postgres`) and as a normal user. Each [`ThrowawayPostgres::fresh_store`] is a new database
//! with all migrations applied, so tests sharing a cluster never see each other's rows.

use tempfile::TempDir;

use crate::store::embedded::{EmbeddedError, EmbeddedOptions, EmbeddedPostgres};
use crate::store::{self, AppLogin, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ThrowawayError {
    #[error("could not create a temporary directory")]
    TempDir(#[source] std::io::Error),
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A running throwaway cluster. Field order matters: the server stops before its directory
/// is removed.
#[derive(Debug)]
pub struct ThrowawayPostgres {
    pg: EmbeddedPostgres,
    _dir: TempDir,
}

impl ThrowawayPostgres {
    pub async fn start() -> Result<Self, ThrowawayError> {
        let dir = tempfile::Builder::new()
            .prefix("unity-pg-")
            .tempdir_in("/tmp")
            .map_err(ThrowawayError::TempDir)?;
        let pg = EmbeddedPostgres::ensure_running(
            dir.path(),
            &EmbeddedOptions {
                unsafe_no_fsync: true,
            },
        )
        .await?;
        Ok(Self { pg, _dir: dir })
    }

    /// A new, migrated database in this cluster.
    pub async fn fresh_store(&self) -> Result<Store, ThrowawayError> {
        Ok(self.fresh_database().await?.0)
    }

    /// A new, migrated database and its `postgres://` URL (for a controller child process).
    pub async fn fresh_database(&self) -> Result<(Store, String), ThrowawayError> {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        store::create_database_if_missing(self.pg.connect_options("postgres"), &name).await?;
        let options = self.pg.connect_options(&name);
        let store = Store::open(options.clone(), AppLogin::Managed(options)).await?;
        Ok((store, self.pg.database_url(&name)))
    }

    /// A new, empty database (no schema), for tests that load a dump; its `postgres://` URL.
    pub async fn empty_database(&self) -> Result<String, ThrowawayError> {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        store::create_database_if_missing(self.pg.connect_options("postgres"), &name).await?;
        Ok(self.pg.database_url(&name))
    }

    /// Stops the server (a database outage); [`Self::start_again`] ends it.
    pub async fn stop(&mut self) -> Result<(), ThrowawayError> {
        Ok(self.pg.stop().await?)
    }

    /// Starts the server again after [`Self::stop`].
    pub async fn start_again(&mut self) -> Result<(), ThrowawayError> {
        self.pg.restart_if_stopped().await?;
        Ok(())
    }

    /// Connection options for `database`, e.g. to connect as another role in a test.
    pub fn connect_options(&self, database: &str) -> sqlx::postgres::PgConnectOptions {
        self.pg.connect_options(database)
    }
}

/// Creates an enrollment token of `tenant_id` that has already expired (the store refuses to
/// make one with no life, as an operator must never get a dead token).
pub async fn expired_enrollment_token(
    store: &Store,
    tenant_id: uuid::Uuid,
) -> Result<String, StoreError> {
    let (token, _) = store
        .create_enrollment_token(tenant_id, std::time::Duration::from_secs(600))
        .await?;
    sqlx::query("UPDATE enrollment_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1")
        .bind(crate::auth::hash_token(&token))
        .execute(store.admin())
        .await
        .map_err(store::query_error("expiring an enrollment token"))?;
    Ok(token)
}
