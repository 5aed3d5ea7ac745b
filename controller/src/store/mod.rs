//! The controller's PostgreSQL store.
//!
//! Two pools, two kinds of access:
//! * **application** (agents and the API) — [`Store::tenant_tx`] opens a transaction on the
//!   application pool, as the `unity_app` role, with `unity.tenant_id` set for that
//!   transaction only. Row-level security then limits every statement to that tenant. With the
//!   embedded database the application pool *logs in* as `unity_app`, so not even an injected
//!   `RESET ROLE` could leave the tenant; with an external `DATABASE_URL` and no
//!   `UNITY_APP_DATABASE_URL` it logs in as the owner and switches role per transaction
//!   (documented in `docs/security.md`). The two credential look-ups that happen before a
//!   tenant is known are SECURITY DEFINER functions `unity_app` may call.
//! * **administrative** (the controller's command line, migrations) — the owner pool: creating
//!   tenants and tokens, revoking hosts.

pub mod certificates;
pub mod collectors;
pub mod embedded;
pub mod host_rows;
pub mod hosts;
pub mod inventory;
pub mod jobs;
pub mod notify;
pub mod operators;
pub mod packages;
pub mod page;
pub mod policies;
pub mod releases;
pub mod rollouts;
pub mod storage;
pub mod tenants;
pub mod users;

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
    #[error(
        "the database holds schema version {database}, newer than this controller knows \
         ({binary}): it was upgraded by a newer controller; run that version, or restore a \
         backup taken before the upgrade (see docs/operations.md)"
    )]
    SchemaTooNew { database: i64, binary: i64 },
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
    #[error("the database is unavailable: {0}")]
    Unavailable(&'static str),
    #[error("an enrollment token must live between 1 minute and 30 days (asked for {ttl_secs} s)")]
    InvalidTtl { ttl_secs: u64 },
    #[error(transparent)]
    Randomness(#[from] crate::auth::RandomnessError),
}

/// Commits `tx`; a failure is a [`StoreError::Query`] naming `action` (what the transaction
/// did), the one mapping the API, the console and the background sweeps all use.
pub async fn commit(tx: TenantTx, action: &'static str) -> Result<(), StoreError> {
    tx.commit().await.map_err(query_error(action))
}

/// Shorthand for mapping a sqlx error with what we were doing.
pub(crate) fn query_error(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { action, source }
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    /// Owner: migrations and administrative commands.
    admin: PgPool,
    /// Everything agents and API callers cause.
    app: PgPool,
}

/// How the application pool logs in.
#[derive(Debug, Clone)]
pub enum AppLogin {
    /// As the owner, switching to `unity_app` per transaction (external database without a
    /// separate application login).
    SameAsAdmin,
    /// As `unity_app` over the same connection options (the controller manages the cluster
    /// and lets the role log in: socket-only, trust authentication).
    Managed(PgConnectOptions),
    /// With these options (`UNITY_APP_DATABASE_URL`), which must log in as a role that is a
    /// member of `unity_app` and has no BYPASSRLS.
    External(PgConnectOptions),
}

/// The schema, as this build knows it.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The newest schema version this build can migrate to.
pub fn newest_known_schema() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// What opening a database will do to its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPlan {
    /// No Unity Fleet schema yet: it is created.
    Fresh,
    /// Already at this build's schema.
    UpToDate,
    /// Migrations `from`+1..=`to` will run over existing data.
    Upgrade { from: i64, to: i64 },
    /// A newer controller migrated it; this build must not touch it.
    TooNew { database: i64, binary: i64 },
}

impl MigrationPlan {
    /// From the versions applied to a database and the versions this build knows.
    pub fn new(applied: &[i64], known: &[i64]) -> Self {
        let binary = known.iter().copied().max().unwrap_or(0);
        let Some(database) = applied.iter().copied().max() else {
            return Self::Fresh;
        };
        if applied.iter().any(|v| !known.contains(v)) || database > binary {
            return Self::TooNew { database, binary };
        }
        if known.iter().all(|v| applied.contains(v)) {
            Self::UpToDate
        } else {
            Self::Upgrade {
                from: database,
                to: binary,
            }
        }
    }
}

/// Reads what opening the database at `options` would do, without changing anything.
pub async fn migration_plan(options: &PgConnectOptions) -> Result<MigrationPlan, StoreError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(options)
        .await
        .map_err(StoreError::Connect)?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut conn)
        .await
        .map_err(query_error("looking for an existing schema"))?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut conn)
            .await
            .map_err(query_error("reading applied migrations"))?
    } else {
        Vec::new()
    };
    let _ = conn.close().await;
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    Ok(MigrationPlan::new(&applied, &known))
}

/// Role the application pool logs in as when the controller manages the database.
pub const APP_ROLE: &str = "unity_app";

impl Store {
    /// Connects both pools and applies migrations.
    pub async fn open(admin: PgConnectOptions, app: AppLogin) -> Result<Self, StoreError> {
        Self::connect(admin, app, true).await
    }

    /// Connects without touching the schema: for read-only administration of a database a
    /// newer controller migrated (its queries may fail where the schema changed).
    pub async fn open_unmigrated(
        admin: PgConnectOptions,
        app: AppLogin,
    ) -> Result<Self, StoreError> {
        Self::connect(admin, app, false).await
    }

    async fn connect(
        admin: PgConnectOptions,
        app: AppLogin,
        migrate: bool,
    ) -> Result<Self, StoreError> {
        let admin = pool(admin, 4).await?;
        if migrate {
            MIGRATOR.run(&admin).await.map_err(StoreError::Migrate)?;
        }
        let app = match app {
            AppLogin::SameAsAdmin => admin.clone(),
            AppLogin::Managed(options) => {
                sqlx::query("ALTER ROLE unity_app LOGIN")
                    .execute(&admin)
                    .await
                    .map_err(query_error("allowing the application role to log in"))?;
                pool(options.username(APP_ROLE), 16).await?
            }
            AppLogin::External(options) => pool(options, 16).await?,
        };
        Ok(Self { admin, app })
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
        self.app
            .begin()
            .await
            .map_err(query_error("opening a transaction"))
    }

    /// The newest migration applied (0 for an empty database).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.admin)
            .await
            .map_err(query_error("reading the schema version"))
    }

    /// Checks the database answers; for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.app)
            .await
            .map(|_| ())
            .map_err(query_error("checking the database"))
    }

    /// The owner pool, for administrative commands.
    pub(crate) fn admin(&self) -> &PgPool {
        &self.admin
    }

    /// The application pool, for look-ups that precede a tenant scope.
    pub(crate) fn app(&self) -> &PgPool {
        &self.app
    }

    pub async fn close(&self) {
        self.app.close().await;
        self.admin.close().await;
    }
}

async fn pool(options: PgConnectOptions, max: u32) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(StoreError::Connect)
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

/// Makes a database ready to receive a restored dump: the role the schema grants to exists
/// and the connecting role is a member of it (as migration 0001 arranges for a fresh one).
pub async fn prepare_restore_target(options: &PgConnectOptions) -> Result<(), StoreError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(options)
        .await
        .map_err(StoreError::Connect)?;
    sqlx::raw_sql(
        "DO $$ BEGIN \
             BEGIN \
                 CREATE ROLE unity_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END; \
             IF NOT pg_has_role(current_user, 'unity_app', 'MEMBER') THEN \
                 EXECUTE format('GRANT unity_app TO %I', current_user); \
             END IF; \
         END $$",
    )
    .execute(&mut conn)
    .await
    .map_err(query_error("creating the application role"))?;
    let _ = conn.close().await;
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

/// Drops database `name` (disconnecting whoever is in it) and creates it empty, connecting
/// through `admin`; for `restore --force` onto the embedded cluster only.
pub async fn recreate_database(admin: PgConnectOptions, name: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(&admin)
        .await
        .map_err(StoreError::Connect)?;
    let quoted = name.replace('"', "\"\"");
    // An identifier cannot be a bind parameter; it is quoted above.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{quoted}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .map_err(query_error("dropping the database"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{quoted}\"")))
        .execute(&mut conn)
        .await
        .map_err(query_error("creating the database"))?;
    let _ = conn.close().await;
    Ok(())
}

#[cfg(test)]
mod migration_plan_tests {
    use super::MigrationPlan;

    #[test]
    fn plans() {
        let known = [1, 2, 3];
        assert_eq!(MigrationPlan::new(&[], &known), MigrationPlan::Fresh);
        assert_eq!(
            MigrationPlan::new(&[1, 2, 3], &known),
            MigrationPlan::UpToDate
        );
        assert_eq!(
            MigrationPlan::new(&[1, 2], &known),
            MigrationPlan::Upgrade { from: 2, to: 3 }
        );
        assert_eq!(
            MigrationPlan::new(&[1, 2, 3, 4], &known),
            MigrationPlan::TooNew {
                database: 4,
                binary: 3
            }
        );
        // A version this build never had, even below its newest, is a different lineage.
        assert_eq!(
            MigrationPlan::new(&[1, 2, 5], &[1, 2, 3, 6]),
            MigrationPlan::TooNew {
                database: 5,
                binary: 6
            }
        );
    }
}
