//! `unity-controller restore`: a backup brought back into a stopped controller.
//!
//! Everything that could refuse the restore is checked before anything is written: the
//! archive's checksums, its schema against this build, that no controller is serving from this
//! configuration, that no CA, job key or database would be overwritten (unless `--force`).
//! Then the database is loaded (in one transaction), the CA and job key put back, and the
//! schema migrated to this build's. The same CA and job key mean the same agents reconnect
//! with the certificates and trust they already hold.

use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use sqlx::postgres::PgConnectOptions;

use crate::backup::{self, Archive};
use crate::config::Config;
use crate::database::{Access, Database, EMBEDDED_DATABASE};
use crate::store::embedded::PgClient;
use crate::store::{self, MigrationPlan};

pub(crate) async fn run(
    config: &Config,
    config_file: Option<&Path>,
    archive_path: &Path,
    force: bool,
) -> Result<()> {
    let archive = Archive::read(archive_path).context("reading the backup")?;
    let manifest = &archive.manifest;
    let known = store::newest_known_schema();
    if manifest.schema_version > known {
        bail!(
            "the backup was taken by controller {} at schema {}; this controller ({}) knows \
             schema {known} at most — restore it with that version or newer",
            manifest.controller_version,
            manifest.schema_version,
            crate::VERSION
        );
    }
    refuse_if_serving(config)?;
    backup::check_state_target(&config.data_dir, force)?;

    // The embedded cluster stays running for the whole restore (stopped at the end if it was
    // started here).
    let mut embedded = None;
    let client = match config.database_url.as_deref() {
        Some(url) => {
            let options = PgConnectOptions::from_str(url).context("DATABASE_URL")?;
            if store::migration_plan(&options).await? != MigrationPlan::Fresh {
                bail!(
                    "DATABASE_URL already holds a Unity Fleet schema; restore into an empty \
                     database (create one and point DATABASE_URL at it) — restore does not drop \
                     databases it does not manage"
                );
            }
            store::prepare_restore_target(&options).await?;
            PgClient::external(url).await?
        }
        None => {
            let pg = Database::embedded(&config.data_dir).await?;
            let options = pg.connect_options(EMBEDDED_DATABASE);
            if store::migration_plan(&options).await? != MigrationPlan::Fresh {
                if !force {
                    return Err(backup::BackupError::WouldOverwrite {
                        what: "a Unity Fleet database",
                        path: config.data_dir.join("postgres"),
                    }
                    .into());
                }
                tracing::warn!("replacing the embedded database (--force)");
                store::recreate_database(pg.connect_options("postgres"), EMBEDDED_DATABASE).await?;
            }
            store::prepare_restore_target(&options).await?;
            let client = pg.client(EMBEDDED_DATABASE);
            embedded = Some(pg);
            client
        }
    };
    backup::restore_database(&archive, &client)
        .await
        .context("loading the database")?;
    backup::restore_state(&archive, &config.data_dir).context("restoring the CA and job key")?;
    if let Some(bytes) = archive.file("controller.toml") {
        let path = config.data_dir.join("controller.toml.restored");
        // It may hold database passwords.
        unity_pki::files::write_private(&path, bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "the backup's configuration is in {} — compare it with yours",
            path.display()
        );
    }

    // Migrates a backup from an older controller to this one's schema.
    let database = Database::open(config, config_file, Access::ReadWrite)
        .await
        .context("opening the restored database")?;
    let (tenants, hosts) = database.store.inventory_counts().await?;
    let fingerprint = crate::app::load_ca(&config.data_dir)?.fingerprint();
    database.close().await;
    if let Some(mut pg) = embedded {
        pg.stop()
            .await
            .context("stopping the embedded PostgreSQL")?;
    }
    println!(
        "restored the backup of {} (controller {}, schema {}): {tenants} tenant(s), {hosts} \
         host(s); CA fingerprint {fingerprint}",
        manifest
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        manifest.controller_version,
        manifest.schema_version
    );
    println!("start the controller: agents reconnect with the certificates they hold");
    Ok(())
}

/// A controller serving from this configuration holds its API address; restoring under it
/// would pull its database away mid-flight.
fn refuse_if_serving(config: &Config) -> Result<()> {
    match std::net::TcpListener::bind(config.api_listen) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "{} is in use — is the controller running? Stop it before restoring",
            config.api_listen
        ),
        // Not ours to judge (e.g. an address of another machine in the config).
        Err(_) => Ok(()),
    }
}
