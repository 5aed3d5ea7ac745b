//! The md attributes in `/sys/block/mdX/md/`.
//!
//! sysfs is what `mdadm --monitor` itself trusts: one value per file, no formatting. Only
//! sysfs has `mismatch_cnt` (how much a `check` found inconsistent). [`parse_sysfs`] is pure
//! over the file contents; [`read_sysfs`] takes the sysfs root as a parameter so tests can
//! point it at a directory built from realistic values — the build machine's kernel has no
//! md driver, so the real files cannot exist there.

use std::path::{Path, PathBuf};

use super::error::ParseError;
use super::model::{RaidLevel, SysfsState};

/// Raw contents of the attribute files; `None` when a file does not exist (raid0 has no
/// `degraded`, `sync_action` or `mismatch_cnt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysfsFiles {
    pub array_state: Option<String>,
    pub degraded: Option<String>,
    pub sync_action: Option<String>,
    pub sync_completed: Option<String>,
    pub mismatch_cnt: Option<String>,
    pub raid_disks: Option<String>,
    pub level: Option<String>,
}

/// Why the sysfs attributes of an array could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    #[error("{name:?} is not an md device name")]
    InvalidName { name: String },
    #[error("{path} does not exist: no such md array (or no md driver)")]
    NotAnArray { path: PathBuf },
    #[error("could not read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected content in {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
}

/// Parses the attribute files' contents.
pub fn parse_sysfs(files: &SysfsFiles) -> Result<SysfsState, ParseError> {
    fn num<T: std::str::FromStr>(
        file: &'static str,
        v: Option<&str>,
    ) -> Result<Option<T>, ParseError> {
        v.map(|v| {
            v.parse().map_err(|_| ParseError::BadSysfsValue {
                file,
                text: v.to_owned(),
                expected: "number",
            })
        })
        .transpose()
    }
    fn clean(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    let sync_completed = match clean(&files.sync_completed) {
        None | Some("none") | Some("delayed") => None,
        Some(v) => {
            let bad = || ParseError::BadSysfsValue {
                file: "sync_completed",
                text: v.to_owned(),
                expected: "`done / total` pair",
            };
            let (d, t) = v.split_once('/').ok_or_else(bad)?;
            Some((
                d.trim().parse().map_err(|_| bad())?,
                t.trim().parse().map_err(|_| bad())?,
            ))
        }
    };
    Ok(SysfsState {
        array_state: clean(&files.array_state).map(str::to_owned),
        degraded: num("degraded", clean(&files.degraded))?,
        sync_action: clean(&files.sync_action).map(str::to_owned),
        sync_completed,
        mismatch_cnt: num("mismatch_cnt", clean(&files.mismatch_cnt))?,
        raid_disks: num("raid_disks", clean(&files.raid_disks))?,
        level: clean(&files.level).map(RaidLevel::from_word),
    })
}

/// Reads `<root>/block/<name>/md/*` (`root` is `/sys` on a real host) and parses it.
pub fn read_sysfs(root: &Path, name: &str) -> Result<SysfsState, SysfsError> {
    if name.is_empty() || name.contains(['/', '\0']) || name == "." || name == ".." {
        return Err(SysfsError::InvalidName {
            name: name.to_owned(),
        });
    }
    let dir = root.join("block").join(name).join("md");
    if !dir.is_dir() {
        return Err(SysfsError::NotAnArray { path: dir });
    }
    let read = |file: &str| -> Result<Option<String>, SysfsError> {
        let path = dir.join(file);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SysfsError::Io { path, source }),
        }
    };
    let files = SysfsFiles {
        array_state: read("array_state")?,
        degraded: read("degraded")?,
        sync_action: read("sync_action")?,
        sync_completed: read("sync_completed")?,
        mismatch_cnt: read("mismatch_cnt")?,
        raid_disks: read("raid_disks")?,
        level: read("level")?,
    };
    parse_sysfs(&files).map_err(|source| SysfsError::Parse { path: dir, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_md(files: &[(&str, &str)]) -> tempdir::Dir {
        let dir = tempdir::Dir::new();
        let md = dir.path.join("block/md0/md");
        std::fs::create_dir_all(&md).unwrap();
        for (f, v) in files {
            std::fs::write(md.join(f), v).unwrap();
        }
        dir
    }

    /// A throwaway directory removed on drop (no extra dev-dependency needed).
    mod tempdir {
        use std::path::PathBuf;
        pub struct Dir {
            pub path: PathBuf,
        }
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "unity-md-sysfs-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                Self { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    #[test]
    fn reads_a_recovering_raid1() {
        // Values as a 2-disk raid1 shows them while rebuilding onto a replaced disk.
        let dir = fake_md(&[
            ("array_state", "clean\n"),
            ("degraded", "1\n"),
            ("sync_action", "recover\n"),
            ("sync_completed", "3905536 / 390721968\n"),
            ("mismatch_cnt", "0\n"),
            ("raid_disks", "2\n"),
            ("level", "raid1\n"),
        ]);
        let s = read_sysfs(&dir.path, "md0").unwrap();
        assert_eq!(s.array_state.as_deref(), Some("clean"));
        assert_eq!(s.degraded, Some(1));
        assert_eq!(s.sync_action.as_deref(), Some("recover"));
        assert_eq!(s.sync_completed, Some((3_905_536, 390_721_968)));
        assert_eq!(s.level, Some(RaidLevel::Raid1));
    }

    #[test]
    fn raid0_has_fewer_files_and_errors_name_the_file() {
        let dir = fake_md(&[
            ("array_state", "clean\n"),
            ("raid_disks", "2\n"),
            ("level", "raid0\n"),
        ]);
        let s = read_sysfs(&dir.path, "md0").unwrap();
        assert_eq!(
            (s.degraded, s.mismatch_cnt, s.sync_action),
            (None, None, None)
        );

        let dir = fake_md(&[("mismatch_cnt", "lots\n")]);
        let e = read_sysfs(&dir.path, "md0").unwrap_err();
        assert!(matches!(&e, SysfsError::Parse { .. }), "{e}");
        let src = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(src, "sysfs `mismatch_cnt`: \"lots\" is not a number");

        assert!(matches!(
            read_sysfs(&dir.path, "md9"),
            Err(SysfsError::NotAnArray { .. })
        ));
        assert!(matches!(
            read_sysfs(&dir.path, "../x"),
            Err(SysfsError::InvalidName { .. })
        ));
        let s = parse_sysfs(&SysfsFiles {
            sync_completed: Some("delayed\n".into()),
            ..SysfsFiles::default()
        })
        .unwrap();
        assert_eq!(s.sync_completed, None);
    }
}
