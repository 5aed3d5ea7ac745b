//! Why an apt run failed, read from what it printed (pure). Each class is a precise result an
//! operator can act on; the fallback keeps apt's own `E:` lines.

use serde::Serialize;

/// A failed apt or dpkg run, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum AptFailure {
    /// Another package manager held the dpkg lock past the job's lock timeout.
    LockHeld {
        holder: Option<String>,
    },
    /// dpkg was interrupted earlier; `dpkg --configure -a` must run first.
    BrokenState,
    /// A disk filled up (download cache or the installed files).
    DiskFull,
    /// A maintainer script failed; these packages are left unconfigured.
    ScriptFailed {
        packages: Vec<String>,
    },
    /// The change would touch a held package (`apt-mark hold`).
    HeldPackage,
    /// The package lists or packages could not be downloaded.
    Fetch {
        detail: String,
    },
    Other {
        detail: String,
    },
}

impl AptFailure {
    /// One line for the job's summary.
    pub fn summary(&self) -> String {
        match self {
            AptFailure::LockHeld { holder: Some(h) } => {
                format!("the dpkg lock is held by {h}; another package manager is running")
            }
            AptFailure::LockHeld { holder: None } => {
                "the dpkg lock is held; another package manager is running".into()
            }
            AptFailure::BrokenState => {
                "dpkg was interrupted earlier: run `dpkg --configure -a` on the host first".into()
            }
            AptFailure::DiskFull => "not enough free disk space for the upgrade".into(),
            AptFailure::ScriptFailed { packages } => format!(
                "a maintainer script failed; not configured: {}",
                packages.join(", ")
            ),
            AptFailure::HeldPackage => {
                "the upgrade would change a held package (apt-mark showhold)".into()
            }
            AptFailure::Fetch { detail } => format!("download failed: {detail}"),
            AptFailure::Other { detail } => format!("apt failed: {detail}"),
        }
    }
}

/// Classifies the output of a failed run (`stdout` and `stderr` of apt-get, C locale).
pub fn classify(stdout: &str, stderr: &str) -> AptFailure {
    let all = || stderr.lines().chain(stdout.lines());
    let has = |needle: &str| all().any(|l| l.contains(needle));
    if let Some(packages) = errors_while_processing(stdout, stderr) {
        return AptFailure::ScriptFailed { packages };
    }
    if has("dpkg was interrupted") {
        return AptFailure::BrokenState;
    }
    if has("Could not get lock")
        || has("Unable to acquire the dpkg frontend lock")
        || has("Unable to lock")
    {
        let holder = all().find_map(|l| {
            l.split_once("It is held by ")
                .map(|(_, h)| h.trim_end_matches('.').trim().to_owned())
        });
        return AptFailure::LockHeld { holder };
    }
    if has("No space left on device") || has("You don't have enough free space") {
        return AptFailure::DiskFull;
    }
    if has("Held packages were changed") {
        return AptFailure::HeldPackage;
    }
    let detail = unity_collect::packages::run::error_lines(stdout, stderr);
    if has("Failed to fetch")
        || has("Temporary failure resolving")
        || has("Some index files failed")
    {
        return AptFailure::Fetch { detail };
    }
    AptFailure::Other { detail }
}

/// dpkg's closing list: `Errors were encountered while processing:` then one package per
/// indented line.
fn errors_while_processing(stdout: &str, stderr: &str) -> Option<Vec<String>> {
    for text in [stdout, stderr] {
        let mut lines = text.lines();
        if lines
            .by_ref()
            .any(|l| l.starts_with("Errors were encountered while processing"))
        {
            let packages: Vec<String> = lines
                .take_while(|l| l.starts_with(' '))
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            if !packages.is_empty() {
                return Some(packages);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_from_what_apt_and_dpkg_print() {
        assert_eq!(
            classify(
                "",
                "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n"
            ),
            AptFailure::LockHeld {
                holder: Some("process 4242 (apt-get)".into())
            }
        );
        assert_eq!(
            classify(
                "",
                "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem. \n"
            ),
            AptFailure::BrokenState
        );
        assert_eq!(
            classify(
                "Setting up a (1.1) ...\ndpkg: error processing package a (--configure):\n installed a package post-installation script subprocess returned error exit status 3\nErrors were encountered while processing:\n a\n b\n",
                "E: Sub-process /usr/bin/dpkg returned an error code (1)\n"
            ),
            AptFailure::ScriptFailed {
                packages: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(
            classify(
                "",
                "E: You don't have enough free space in /var/cache/apt/archives/.\n"
            ),
            AptFailure::DiskFull
        );
        assert_eq!(
            classify(
                "",
                "E: Held packages were changed and -y was used without --allow-change-held-packages.\n"
            ),
            AptFailure::HeldPackage
        );
        assert!(matches!(
            classify(
                "",
                "E: Failed to fetch http://x/y  Temporary failure resolving 'x'\n"
            ),
            AptFailure::Fetch { .. }
        ));
        assert_eq!(
            classify("", "E: Unable to locate package nope\n"),
            AptFailure::Other {
                detail: "E: Unable to locate package nope".into()
            }
        );
    }
}
