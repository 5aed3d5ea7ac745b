//! Agent releases: the binaries `agent_update` jobs install, in chunks of the wire's chunk
//! size. A catalogue of the controller, not of a tenant (migration 0013): the owner adds and
//! removes releases, sessions read them as the application role.

use super::page::Page;
use serde::Serialize;
use time::OffsetDateTime;
use unity_protocol::latest::jobs::RELEASE_CHUNK_LEN;
use uuid::Uuid;

use super::{Store, StoreError, TenantTx, query_error};

/// A stored release, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Release {
    /// Lower-case hex SHA-256 of the binary.
    pub sha256: String,
    pub version: String,
    pub architecture: String,
    pub size: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum AddReleaseError {
    #[error(
        "a release {version} for {architecture} exists already (sha256 {sha256}); remove it first"
    )]
    Exists {
        version: String,
        architecture: String,
        sha256: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The listed columns (a macro: queries are static strings).
macro_rules! columns {
    () => {
        "encode(sha256, 'hex') AS sha256, version, architecture, size, created_at"
    };
}

/// Stores `bytes` as release `version` for `architecture`, in one transaction (a failed add
/// leaves nothing behind).
pub async fn add(
    store: &Store,
    version: &str,
    architecture: &str,
    bytes: &[u8],
) -> Result<Release, AddReleaseError> {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    let mut tx = store
        .admin()
        .begin()
        .await
        .map_err(query_error("opening a transaction"))?;
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT encode(sha256, 'hex') FROM agent_releases \
         WHERE (version = $1 AND architecture = $2) OR sha256 = $3",
    )
    .bind(version)
    .bind(architecture)
    .bind(digest.as_ref())
    .fetch_optional(&mut *tx)
    .await
    .map_err(query_error("looking for an existing release"))?;
    if let Some(sha256) = existing {
        return Err(AddReleaseError::Exists {
            version: version.to_owned(),
            architecture: architecture.to_owned(),
            sha256,
        });
    }
    let release: Release = sqlx::query_as(concat!(
        "INSERT INTO agent_releases (sha256, version, architecture, size) \
         VALUES ($1, $2, $3, $4) RETURNING ",
        columns!()
    ))
    .bind(digest.as_ref())
    .bind(version)
    .bind(architecture)
    .bind(size)
    .fetch_one(&mut *tx)
    .await
    .map_err(query_error("adding a release"))?;
    let chunk_len = usize::try_from(RELEASE_CHUNK_LEN).unwrap_or(usize::MAX);
    for (index, chunk) in bytes.chunks(chunk_len).enumerate() {
        sqlx::query("INSERT INTO agent_release_chunks (sha256, chunk, bytes) VALUES ($1, $2, $3)")
            .bind(digest.as_ref())
            .bind(i64::try_from(index).unwrap_or(i64::MAX))
            .bind(chunk)
            .execute(&mut *tx)
            .await
            .map_err(query_error("storing a release chunk"))?;
    }
    tx.commit()
        .await
        .map_err(query_error("committing a release"))?;
    Ok(release)
}

/// Sort key of [`list`]: architecture, upload time (descending), version.
pub type ReleaseKey = (String, OffsetDateTime, String);

/// Stored releases, newest first per architecture (the owner's pool for the CLI, a tenant's
/// transaction for the API: the catalogue is the same for all).
pub async fn list<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    page: &Page<ReleaseKey>,
) -> Result<Vec<Release>, StoreError> {
    let after = page.after.as_ref();
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM agent_releases \
         WHERE $1::text IS NULL OR architecture > $1 \
            OR (architecture = $1 AND (created_at < $2 OR (created_at = $2 AND version > $3))) \
         ORDER BY architecture, created_at DESC, version LIMIT $4"
    ))
    .bind(after.map(|k| &k.0))
    .bind(after.map(|k| k.1))
    .bind(after.map(|k| &k.2))
    .bind(page.fetch_limit())
    .fetch_all(executor)
    .await
    .map_err(query_error("listing releases"))
}

/// Removes release `version` for `architecture`; whether there was one.
pub async fn remove(store: &Store, version: &str, architecture: &str) -> Result<bool, StoreError> {
    let removed =
        sqlx::query("DELETE FROM agent_releases WHERE version = $1 AND architecture = $2")
            .bind(version)
            .bind(architecture)
            .execute(store.admin())
            .await
            .map_err(query_error("removing a release"))?;
    Ok(removed.rows_affected() > 0)
}

/// The release `version` for `architecture`, if stored (read inside a tenant's transaction:
/// the catalogue is readable by every tenant).
pub async fn find(
    tx: &mut TenantTx,
    version: &str,
    architecture: &str,
) -> Result<Option<Release>, StoreError> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM agent_releases WHERE version = $1 AND architecture = $2"
    ))
    .bind(version)
    .bind(architecture)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("finding a release"))
}

/// Whether host `host_id` has an `agent_update` job for the release `sha256` that has not
/// ended: the only reason to hand its bytes to a session.
pub async fn fetch_allowed(
    tx: &mut TenantTx,
    host_id: Uuid,
    sha256: &[u8; 32],
) -> Result<bool, StoreError> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE host_id = $1 AND kind = 'agent_update' \
             AND state IN ('queued', 'dispatched', 'running') AND params->>'sha256' = $2)",
    )
    .bind(host_id)
    .bind(hex::encode(sha256))
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error("checking a release fetch"))
}

/// Chunk `chunk` of release `sha256`, if it exists.
pub async fn chunk(
    tx: &mut TenantTx,
    sha256: &[u8; 32],
    chunk: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Ok(chunk) = i64::try_from(chunk) else {
        return Ok(None);
    };
    sqlx::query_scalar("SELECT bytes FROM agent_release_chunks WHERE sha256 = $1 AND chunk = $2")
        .bind(sha256.as_slice())
        .bind(chunk)
        .fetch_optional(&mut **tx)
        .await
        .map_err(query_error("reading a release chunk"))
}

/// The machine an ELF executable is built for, named as the agent reports its architecture
/// (`uname -m`), or why `bytes` is not one. Read from the ELF header (`e_machine`), so a
/// release for the wrong machine is caught when it is added, not when a host runs it.
pub fn elf_architecture(bytes: &[u8]) -> Result<&'static str, String> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF executable".into());
    }
    let machine = match bytes[5] {
        1 => u16::from_le_bytes([bytes[18], bytes[19]]),
        2 => u16::from_be_bytes([bytes[18], bytes[19]]),
        other => return Err(format!("ELF header has an unknown byte order ({other})")),
    };
    match machine {
        62 => Ok("x86_64"),
        183 => Ok("aarch64"),
        40 => Ok("arm"),
        243 => Ok("riscv64"),
        3 => Ok("x86"),
        other => Err(format!(
            "ELF machine {other} is not one the agent is built for"
        )),
    }
}

/// A host's reported architecture (`uname -m`) as releases name it.
pub fn release_architecture(uname_machine: &str) -> &str {
    match uname_machine {
        m if m.starts_with("armv") => "arm",
        "i386" | "i486" | "i586" | "i686" => "x86",
        "arm64" => "aarch64",
        "amd64" => "x86_64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_machines_are_read_from_the_header() {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[5] = 1;
        header[18] = 62;
        assert_eq!(elf_architecture(&header), Ok("x86_64"));
        header[18] = 183;
        assert_eq!(elf_architecture(&header), Ok("aarch64"));
        header[18] = 0x99;
        assert!(elf_architecture(&header).is_err());
        assert!(elf_architecture(b"#!/bin/sh\necho hi\n").is_err());
        assert!(elf_architecture(b"").is_err());
        // This test binary itself.
        let me = std::fs::read(std::env::current_exe().unwrap_or_default()).unwrap_or_default();
        assert_eq!(elf_architecture(&me), Ok(std::env::consts::ARCH));
    }
}
