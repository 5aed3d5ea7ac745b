//! Writing key material safely: private files are created 0600 and replaced atomically, so a
//! crash never leaves a half-written key and no other user can ever read one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("could not write {path}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes `contents` to `path` with mode 0600 via a temporary file and rename.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    write_with_mode(path, contents, 0o600)
}

/// Writes a public file (certificates) with mode 0644, atomically.
pub fn write_public(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    write_with_mode(path, contents, 0o644)
}

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), WriteError> {
    let wrap = |source| WriteError {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(wrap)?;
    file.write_all(contents).map_err(wrap)?;
    file.sync_all().map_err(wrap)?;
    drop(file);
    fs::rename(&tmp, path).map_err(wrap)?;
    sync_parent(path).map_err(wrap)?;
    Ok(())
}

/// Makes a rename or a new file in `path`'s directory durable: until the directory itself is
/// synced, a power loss can forget that the name exists.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::File::open(dir)?.sync_all(),
        _ => fs::File::open(".")?.sync_all(),
    }
}

/// Creates a directory (and parents) readable only by its owner.
pub fn create_private_dir(path: &Path) -> Result<(), WriteError> {
    let wrap = |source| WriteError {
        path: path.to_owned(),
        source,
    };
    fs::create_dir_all(path).map_err(wrap)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(wrap)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
