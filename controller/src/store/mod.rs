//! The controller's PostgreSQL store.
//!
//! Two kinds of access, and the type system keeps them apart:
//! * **tenant-scoped** — [`Store::tenant_tx`] opens a transaction that runs as the
//!   `unity_app` role with `unity.tenant_id` set for that transaction only. Row-level security
//!   then limits every statement to that tenant. All agent and API work goes through it.
//! * **administrative** — creating tenants and tokens from the controller's command line, and
//!   the two credential look-ups that must happen before a tenant is known (SECURITY DEFINER
//!   functions in the migrations).

pub mod embedded;
pub mod hosts;
pub mod tenants;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

pub use hosts::{HostDetail, HostSummary, NewHost};
pub use tenants::{EnrollmentTokenOutcome, Tenant};

/// A transaction confined to one tenant by row-level security.
pub type TenantTx = Transaction<'static, Postgres>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not connect to PostgreSQL")]
    Connect(#[source] sqlx::Error),
    #[error("database migrations failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database query failed while {action}")]
    Query {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("tenant `{name}` already exists")]
    TenantExists { name: String },
    #[error("tenant `{name}` does not exist")]
    TenantNotFound { name: String },
    #[error("tenant name `{name}` is invalid: use 1-63 lower-case letters, digits, '-' or '_'")]
    InvalidTenantName { name: String },
    #[error(transparent)]
    Randomness(#[from] crate::auth::RandomnessError),
}

/// Shorthand for mapping a sqlx error with what we were doing.
pub(crate) fn query_error(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { action, source }
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub async fn connect(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        Ok(Self { pool })
    }

    /// Applies pending migrations (embedded at compile time from `controller/migrations/`).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations")
            .run(&self.pool)
            .await
            .map_err(StoreError::Migrate)
    }

    /// Opens a transaction confined to `tenant_id` (see the module docs).
    pub async fn tenant_tx(&self, tenant_id: Uuid) -> Result<TenantTx, StoreError> {
        let mut tx = self.begin().await?;
        enter_tenant(&mut tx, tenant_id).await?;
        Ok(tx)
    }

    /// Opens an unscoped transaction, for work that starts before the tenant is known
    /// (enrollment) and then calls [`enter_tenant`].
    pub async fn begin(&self) -> Result<TenantTx, StoreError> {
        self.pool
            .begin()
            .await
            .map_err(query_error("opening a transaction"))
    }

    /// Checks the database answers; for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(query_error("checking the database"))
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Confines the rest of `tx` to `tenant_id`: from here on it runs as `unity_app` under
/// row-level security. There is no way back within the transaction.
pub async fn enter_tenant(tx: &mut TenantTx, tenant_id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT set_config('role', 'unity_app', true), set_config('unity.tenant_id', $1, true)",
    )
    .bind(tenant_id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(query_error("entering the tenant scope"))?;
    Ok(())
}

/// Creates database `name` if it does not exist, connecting through `admin` (the `postgres`
/// maintenance database of the same cluster).
pub async fn create_database_if_missing(
    admin: PgConnectOptions,
    name: &str,
) -> Result<(), StoreError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(&admin)
        .await
        .map_err(StoreError::Connect)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .map_err(query_error("looking up the database"))?;
    if !exists {
        let quoted = name.replace('"', "\"\"");
        // An identifier cannot be a bind parameter; it is quoted above.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{quoted}\"")))
            .execute(&mut conn)
            .await
            .map_err(query_error("creating the database"))?;
    }
    let _ = conn.close().await;
    Ok(())
}
