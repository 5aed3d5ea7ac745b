//! Backups and restores an operator can trust: one `.tar.gz` with everything a controller is.
//!
//! ```text
//! manifest.json     format, controller version, schema version, time, SHA-256 of every file
//! database.dump     pg_dump custom format (a consistent snapshot; works while `serve` runs)
//! ca/ca.cert.pem    the built-in CA (its key too: hosts' certificates chain to it)
//! ca/ca.key.pem
//! job-signing.pk8   the job-signing key (agents trust only it)
//! controller.toml   the configuration file, when there is one
//! ```
//! A restore verifies every checksum before it writes anything, refuses to overwrite an
//! existing controller (its CA, key or database) without `force`, and brings back the same CA
//! and key — so the same agents reconnect with the certificates they hold.

pub mod schedule;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::process::Command;

use crate::store::embedded::PgClient;

/// Archive format version.
pub const FORMAT: u32 = 1;
/// Files of the data directory a backup carries, besides the database.
const STATE_FILES: &[&str] = &["ca/ca.cert.pem", "ca/ca.key.pem", "job-signing.pk8"];
/// State files a controller has once it has run this version (a backup of an older one
/// lacks them; restored when present). Without `notify.key` channels' sealed URLs cannot
/// be opened.
const OPTIONAL_STATE_FILES: &[&str] = &[crate::notify::secret::KEY_FILE];

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed: {detail}")]
    Tool { program: String, detail: String },
    #[error("PostgreSQL client programs (pg_dump, pg_restore) were not found")]
    NoTools,
    #[error("{0} is not a Unity Fleet backup: {1}")]
    NotABackup(PathBuf, String),
    #[error("{path} in the backup does not match its checksum: the archive is damaged")]
    Checksum { path: String },
    #[error(
        "{what} already exists at {path}; restore refuses to overwrite a controller (pass --force \
         to replace it)"
    )]
    WouldOverwrite { what: &'static str, path: PathBuf },
    #[error("could not query the database")]
    Query(#[source] crate::store::StoreError),
}

/// What a backup holds, and proves it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub controller_version: String,
    /// The newest migration applied to the database.
    pub schema_version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(unity_protocol::envelope::sha256(bytes))
}

async fn run(
    mut command: Command,
    program: &str,
    input: Option<&[u8]>,
) -> Result<Vec<u8>, BackupError> {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let tool = |detail: String| BackupError::Tool {
        program: program.to_owned(),
        detail,
    };
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| tool(e.to_string()))?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().ok_or_else(|| tool("no stdin".into()))?;
        let input = input.to_vec();
        // Written beside reading the output, so a full pipe on either side cannot deadlock.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| tool(e.to_string()))?;
    if !output.status.success() {
        return Err(tool(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    Ok(output.stdout)
}

/// Writes a backup of `data_dir` (CA, job key), `config` (if any) and the database to
/// `output`. Safe while the controller serves: pg_dump reads one consistent snapshot.
pub async fn create(
    db: &PgClient,
    schema_version: i64,
    data_dir: &Path,
    config: Option<&Path>,
    output: &Path,
) -> Result<Manifest, BackupError> {
    let mut command = db.command("pg_dump");
    // Privileges stay in: tenant isolation depends on what `unity_app` is granted.
    command.args(["-Fc", "--no-owner"]);
    let dump = run(command, "pg_dump", None).await?;
    let mut entries: Vec<(String, Vec<u8>)> = vec![("database.dump".into(), dump)];
    for name in STATE_FILES {
        let path = data_dir.join(name);
        let bytes = std::fs::read(&path).map_err(|source| BackupError::Read { path, source })?;
        entries.push(((*name).into(), bytes));
    }
    for name in OPTIONAL_STATE_FILES {
        let path = data_dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => entries.push(((*name).into(), bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BackupError::Read { path, source }),
        }
    }
    if let Some(config) = config.filter(|c| c.exists()) {
        let bytes = std::fs::read(config).map_err(|source| BackupError::Read {
            path: config.to_owned(),
            source,
        })?;
        entries.push(("controller.toml".into(), bytes));
    }
    let manifest = Manifest {
        format: FORMAT,
        controller_version: crate::VERSION.to_owned(),
        schema_version,
        created_at: OffsetDateTime::now_utc(),
        files: entries
            .iter()
            .map(|(path, bytes)| ManifestFile {
                path: path.clone(),
                bytes: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
    };
    write_archive(output, &manifest, &entries)?;
    Ok(manifest)
}

fn write_archive(
    output: &Path,
    manifest: &Manifest,
    entries: &[(String, Vec<u8>)],
) -> Result<(), BackupError> {
    let wrap = |source| BackupError::Write {
        path: output.to_owned(),
        source,
    };
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(wrap)?;
    }
    // Written beside, renamed when complete: a crash never leaves a half archive under the name.
    let partial = output.with_extension("partial");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&partial)
        .map_err(wrap)?;
    {
        use std::os::unix::fs::PermissionsExt;
        // It holds the CA key and the job key.
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600)).map_err(wrap)?;
    }
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let manifest_json =
        serde_json::to_vec_pretty(manifest).map_err(|e| wrap(std::io::Error::other(e)))?;
    let mut add = |name: &str, bytes: &[u8]| -> Result<(), BackupError> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(u64::try_from(manifest.created_at.unix_timestamp()).unwrap_or(0));
        header.set_cksum();
        tar.append_data(&mut header, name, bytes).map_err(wrap)
    };
    add("manifest.json", &manifest_json)?;
    for (name, bytes) in entries {
        add(name, bytes)?;
    }
    let gz = tar.into_inner().map_err(wrap)?;
    let mut file = gz.finish().map_err(wrap)?;
    file.flush().map_err(wrap)?;
    file.sync_all().map_err(wrap)?;
    drop(file);
    std::fs::rename(&partial, output).map_err(wrap)?;
    Ok(())
}

/// An archive read back, every file checked against the manifest.
#[derive(Debug)]
pub struct Archive {
    pub manifest: Manifest,
    files: Vec<(String, Vec<u8>)>,
}

impl Archive {
    pub fn read(path: &Path) -> Result<Self, BackupError> {
        let not = |why: String| BackupError::NotABackup(path.to_owned(), why);
        let file = std::fs::File::open(path).map_err(|source| BackupError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut manifest: Option<Manifest> = None;
        let mut files = Vec::new();
        for entry in tar.entries().map_err(|e| not(e.to_string()))? {
            let mut entry = entry.map_err(|e| not(e.to_string()))?;
            let name = entry
                .path()
                .map_err(|e| not(e.to_string()))?
                .to_string_lossy()
                .into_owned();
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| not(e.to_string()))?;
            if name == "manifest.json" {
                manifest = Some(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| not(format!("manifest.json: {e}")))?,
                );
            } else {
                files.push((name, bytes));
            }
        }
        let manifest = manifest.ok_or_else(|| not("no manifest.json".into()))?;
        if manifest.format != FORMAT {
            return Err(not(format!(
                "archive format {} (this controller reads {FORMAT})",
                manifest.format
            )));
        }
        for listed in &manifest.files {
            let bytes = files
                .iter()
                .find(|(name, _)| *name == listed.path)
                .map(|(_, b)| b)
                .ok_or_else(|| not(format!("{} is listed but missing", listed.path)))?;
            if sha256_hex(bytes) != listed.sha256 || bytes.len() as u64 != listed.bytes {
                return Err(BackupError::Checksum {
                    path: listed.path.clone(),
                });
            }
        }
        Ok(Self { manifest, files })
    }

    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }
}

/// Refuses (without `force`) to restore over a controller's CA or job key in `data_dir`.
pub fn check_state_target(data_dir: &Path, force: bool) -> Result<(), BackupError> {
    for name in STATE_FILES {
        let path = data_dir.join(name);
        if path.exists() && !force {
            return Err(BackupError::WouldOverwrite {
                what: "a CA or job-signing key",
                path,
            });
        }
    }
    Ok(())
}

/// Puts the archive's CA and job key into `data_dir`; check with [`check_state_target`]
/// first. Every file is written durably (beside, then renamed).
pub fn restore_state(archive: &Archive, data_dir: &Path) -> Result<(), BackupError> {
    unity_pki::files::create_private_dir(&data_dir.join("ca")).map_err(|e| BackupError::Write {
        path: e.path,
        source: e.source,
    })?;
    for name in STATE_FILES {
        let bytes = archive.file(name).ok_or_else(|| {
            BackupError::NotABackup(data_dir.to_owned(), format!("{name} missing"))
        })?;
        let path = data_dir.join(name);
        let write = if *name == "ca/ca.cert.pem" {
            unity_pki::files::write_public(&path, bytes)
        } else {
            unity_pki::files::write_private(&path, bytes)
        };
        write.map_err(|e| BackupError::Write {
            path: e.path,
            source: e.source,
        })?;
    }
    for name in OPTIONAL_STATE_FILES {
        if let Some(bytes) = archive.file(name) {
            unity_pki::files::write_private(&data_dir.join(name), bytes).map_err(|e| {
                BackupError::Write {
                    path: e.path,
                    source: e.source,
                }
            })?;
        }
    }
    Ok(())
}

/// Loads the archive's database dump into `db`, which must be empty (the caller checks:
/// see [`crate::store::migration_plan`]). Stops at the first error.
pub async fn restore_database(archive: &Archive, db: &PgClient) -> Result<(), BackupError> {
    let dump = archive
        .file("database.dump")
        .ok_or_else(|| BackupError::NotABackup(PathBuf::new(), "database.dump missing".into()))?;
    let mut command = db.command("pg_restore");
    command.args(["--no-owner", "--exit-on-error", "--single-transaction"]);
    run(command, "pg_restore", Some(dump)).await?;
    Ok(())
}

/// What a backup file is called: `<kind>-<UTC time>.tar.gz`, sortable by name.
pub fn file_name(kind: &str, at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{kind}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.tar.gz",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Deletes all but the newest `keep` backups named `<kind>-*.tar.gz` in `dir`; returns the
/// ones deleted. Other files (manual backups, pre-migration ones) are never touched.
pub fn prune(dir: &Path, kind: &str, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    let prefix = format!("{kind}-");
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(BackupError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let all: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    let mut deleted = Vec::new();
    // Left by a backup interrupted mid-write (the controller stopped during a dump).
    for name in all.iter().filter(|n| n.ends_with(".partial")) {
        let path = dir.join(name);
        if std::fs::remove_file(&path).is_ok() {
            deleted.push(path);
        }
    }
    let mut names: Vec<String> = all.into_iter().filter(|n| n.ends_with(".tar.gz")).collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    for name in names.into_iter().take(excess) {
        let path = dir.join(name);
        std::fs::remove_file(&path).map_err(|source| BackupError::Write {
            path: path.clone(),
            source,
        })?;
        deleted.push(path);
    }
    Ok(deleted)
}

/// The newest backup named `<kind>-*.tar.gz` in `dir`, with its modification time.
pub fn newest(dir: &Path, kind: &str) -> Option<(PathBuf, std::time::SystemTime)> {
    let prefix = format!("{kind}-");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".tar.gz"))
        })
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.modified().ok()?)))
        .max_by_key(|(_, modified)| *modified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ca")).unwrap();
        for (name, body) in [
            ("ca/ca.cert.pem", "cert"),
            ("ca/ca.key.pem", "key"),
            ("job-signing.pk8", "job"),
        ] {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        dir
    }

    fn manifest_for(entries: &[(String, Vec<u8>)]) -> Manifest {
        Manifest {
            format: FORMAT,
            controller_version: "test".into(),
            schema_version: 8,
            created_at: OffsetDateTime::UNIX_EPOCH,
            files: entries
                .iter()
                .map(|(path, bytes)| ManifestFile {
                    path: path.clone(),
                    bytes: bytes.len() as u64,
                    sha256: sha256_hex(bytes),
                })
                .collect(),
        }
    }

    fn entries() -> Vec<(String, Vec<u8>)> {
        vec![
            ("database.dump".into(), b"PGDMP...".to_vec()),
            ("ca/ca.cert.pem".into(), b"cert".to_vec()),
            ("ca/ca.key.pem".into(), b"key".to_vec()),
            ("job-signing.pk8".into(), b"job".to_vec()),
        ]
    }

    #[test]
    fn archive_round_trips_and_restores_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tar.gz");
        let entries = entries();
        write_archive(&path, &manifest_for(&entries), &entries).unwrap();
        let archive = Archive::read(&path).unwrap();
        assert_eq!(archive.manifest.schema_version, 8);
        assert_eq!(archive.file("ca/ca.key.pem"), Some(&b"key"[..]));
        let target = tempfile::tempdir().unwrap();
        check_state_target(target.path(), false).unwrap();
        restore_state(&archive, target.path()).unwrap();
        assert_eq!(
            std::fs::read(target.path().join("job-signing.pk8")).unwrap(),
            b"job"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(target.path().join("ca/ca.key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the CA key must not be readable by others");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the archive holds keys");
    }

    #[test]
    fn existing_controller_is_not_overwritten_without_force() {
        let existing = state_dir();
        let error = check_state_target(existing.path(), false).unwrap_err();
        assert!(
            matches!(error, BackupError::WouldOverwrite { .. }),
            "{error}"
        );
        check_state_target(existing.path(), true).unwrap();
    }

    #[test]
    fn damaged_archives_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tar.gz");
        let entries = entries();
        let mut manifest = manifest_for(&entries);
        manifest.files[2].sha256 = sha256_hex(b"other");
        write_archive(&path, &manifest, &entries).unwrap();
        assert!(matches!(
            Archive::read(&path).unwrap_err(),
            BackupError::Checksum { path } if path == "ca/ca.key.pem"
        ));

        // Truncated: the gzip stream ends early.
        write_archive(&path, &manifest_for(&entries), &entries).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(
            Archive::read(&path).unwrap_err(),
            BackupError::NotABackup(..)
        ));

        // Not an archive at all.
        std::fs::write(&path, b"hello").unwrap();
        assert!(matches!(
            Archive::read(&path).unwrap_err(),
            BackupError::NotABackup(..)
        ));

        // A listed file missing.
        let partial: Vec<_> = entries[..3].to_vec();
        write_archive(&path, &manifest_for(&entries), &partial).unwrap();
        let error = Archive::read(&path).unwrap_err();
        assert!(error.to_string().contains("job-signing.pk8"), "{error}");
    }

    #[test]
    fn prune_keeps_the_newest_of_its_kind_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "scheduled-20261101T000000Z.tar.gz",
            "scheduled-20261102T000000Z.tar.gz",
            "scheduled-20261103T000000Z.tar.gz",
            "unity-backup-20261001T000000Z.tar.gz",
            "pre-migration-20261001T000000Z.tar.gz",
            "scheduled-20261104T000000Z.tar.partial",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let deleted = prune(dir.path(), "scheduled", 2).unwrap();
        assert_eq!(
            deleted,
            vec![
                dir.path().join("scheduled-20261104T000000Z.tar.partial"),
                dir.path().join("scheduled-20261101T000000Z.tar.gz"),
            ]
        );
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), 4);
        assert!(left.contains(&"unity-backup-20261001T000000Z.tar.gz".to_owned()));
        assert!(
            prune(&dir.path().join("absent"), "scheduled", 2)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn file_names_sort_by_time() {
        let a = file_name("scheduled", OffsetDateTime::UNIX_EPOCH);
        assert_eq!(a, "scheduled-19700101T000000Z.tar.gz");
        let b = file_name(
            "scheduled",
            OffsetDateTime::UNIX_EPOCH + time::Duration::days(400),
        );
        assert!(a < b);
    }
}
