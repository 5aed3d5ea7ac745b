//! Replacing the installed binary: atomically (a rename in its own directory), keeping the
//! one it replaces as `<name>.previous`, durably (file and directory fsynced).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use unity_pki::files::sync_parent;

#[derive(Debug, thiserror::Error)]
#[error("{action} {path}")]
pub struct InstallError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn sibling(entry: &Path, suffix: &str) -> PathBuf {
    let mut name = entry.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    entry.with_file_name(name)
}

/// Where the replaced binary is kept.
pub fn previous_path(entry: &Path) -> PathBuf {
    sibling(entry, ".previous")
}

/// Proves, before anything is downloaded, that the entry's directory takes a new file (the
/// systemd unit's `ProtectSystem=strict` makes it read-only unless the self-update drop-in
/// is installed).
pub fn check_writable(entry: &Path) -> Result<(), InstallError> {
    let probe = sibling(entry, ".probe");
    let result = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o700)
        .open(&probe);
    let _ = fs::remove_file(&probe);
    result.map(|_| ()).map_err(|source| InstallError {
        action: "cannot create files next to",
        path: entry.to_owned(),
        source,
    })
}

/// Puts `release` in place of `entry`; the old `entry` becomes `<entry>.previous`.
pub fn promote(release: &Path, entry: &Path) -> Result<(), InstallError> {
    let new = sibling(entry, ".new");
    let err = |action, path: &Path| {
        let path = path.to_owned();
        move |source| InstallError {
            action,
            path,
            source,
        }
    };
    let _ = fs::remove_file(&new);
    let bytes = fs::read(release).map_err(err("cannot read", release))?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&new)
        .map_err(err("cannot create", &new))?;
    file.write_all(&bytes).map_err(err("cannot write", &new))?;
    file.set_permissions(fs::Permissions::from_mode(0o755))
        .map_err(err("cannot make executable", &new))?;
    file.sync_all().map_err(err("cannot sync", &new))?;
    drop(file);
    let previous = previous_path(entry);
    let _ = fs::remove_file(&previous);
    if fs::hard_link(entry, &previous).is_err() {
        // A file system without hard links: a copy keeps the previous binary all the same.
        fs::copy(entry, &previous).map_err(err("cannot keep a copy of", entry))?;
    }
    fs::rename(&new, entry).map_err(err("cannot replace", entry))?;
    sync_parent(entry).map_err(err("cannot sync the directory of", entry))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn promotion_replaces_the_entry_and_keeps_the_previous_binary() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("unity-agent");
        let release = dir.path().join("release");
        fs::write(&entry, b"old").unwrap();
        fs::write(&release, b"new").unwrap();
        check_writable(&entry).unwrap();
        promote(&release, &entry).unwrap();
        assert_eq!(fs::read(&entry).unwrap(), b"new");
        assert_eq!(fs::read(previous_path(&entry)).unwrap(), b"old");
        let mode = fs::metadata(&entry).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // Again: the previous is the one just replaced, never an older one.
        fs::write(&release, b"newer").unwrap();
        promote(&release, &entry).unwrap();
        assert_eq!(fs::read(previous_path(&entry)).unwrap(), b"new");
        assert!(!sibling(&entry, ".new").exists());
    }

    #[test]
    fn a_read_only_directory_is_found_before_anything_is_fetched() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir").join("unity-agent");
        let error = check_writable(&missing).unwrap_err();
        assert!(error.to_string().contains("cannot create files next to"));
    }
}
