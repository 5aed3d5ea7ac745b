//! The thin runner: asks apt what an upgrade would do (a simulation, no lock taken, nothing
//! changed, the package lists as they are) and reads the reboot-required files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error_chain;
use crate::packages::apt::{Simulation, parse_simulation};
use crate::runner::{CommandRunner, RunError};

/// Where apt and the distribution's flags are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageConfig {
    /// `apt-get`, or a path to it.
    pub apt_get: String,
    /// An apt configuration file to use instead of the system's (`APT_CONFIG`): for hosts
    /// with a non-standard layout, and for tests that must never touch the host's packages.
    pub apt_config: Option<PathBuf>,
    /// Where apt keeps the package lists (their age says how fresh `pending` is).
    pub lists_dir: PathBuf,
    pub reboot_required_file: PathBuf,
    pub timeout: Duration,
}

impl Default for PackageConfig {
    fn default() -> Self {
        Self {
            apt_get: "apt-get".into(),
            apt_config: None,
            lists_dir: "/var/lib/apt/lists".into(),
            reboot_required_file: "/run/reboot-required".into(),
            timeout: Duration::from_secs(120),
        }
    }
}

impl PackageConfig {
    /// The environment every apt invocation gets: C locale (the parser reads apt's English),
    /// no prompts, and the configured `APT_CONFIG`.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("LC_ALL".to_owned(), "C".to_owned()),
            ("DEBIAN_FRONTEND".to_owned(), "noninteractive".to_owned()),
            ("APT_LISTCHANGES_FRONTEND".to_owned(), "none".to_owned()),
            ("NEEDRESTART_MODE".to_owned(), "a".to_owned()),
        ];
        if let Some(config) = &self.apt_config {
            env.push(("APT_CONFIG".to_owned(), config.display().to_string()));
        }
        env
    }
}

/// What one round learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageState {
    Read {
        simulation: Simulation,
        lists_updated_at_ms: Option<i64>,
        reboot: RebootFlag,
    },
    /// No supported package manager on this host.
    NotPresent {
        detail: String,
    },
    Failed {
        detail: String,
    },
}

/// The distribution's reboot-required flag and the packages that set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebootFlag {
    pub required: bool,
    pub by: Vec<String>,
}

/// Reads `/run/reboot-required` and its `.pkgs` list.
pub fn reboot_flag(file: &Path) -> RebootFlag {
    let required = file.exists();
    let mut pkgs = file.as_os_str().to_owned();
    pkgs.push(".pkgs");
    let mut by: Vec<String> = std::fs::read_to_string(PathBuf::from(pkgs))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    by.sort();
    by.dedup();
    RebootFlag { required, by }
}

/// The newest modification time in the lists directory (Unix ms).
fn lists_updated_at_ms(dir: &Path) -> Option<i64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

/// The simulation's arguments for an upgrade: new dependencies may come, nothing is removed
/// (`upgrade --with-new-pkgs`, what `apt upgrade` does).
pub const SIMULATE_UPGRADE: &[&str] = &[
    "-s",
    "-q",
    "-o",
    "Debug::NoLocking=1",
    "upgrade",
    "--with-new-pkgs",
];

/// Runs the simulation through `runner` (with `env` setting the locale and `APT_CONFIG`, as
/// the runner seam takes a program and arguments only).
pub async fn collect<R: CommandRunner>(runner: &R, config: &PackageConfig) -> PackageState {
    let mut args: Vec<String> = config
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    args.push(config.apt_get.clone());
    args.extend(SIMULATE_UPGRADE.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = match runner.run("env", &args, config.timeout).await {
        Ok(output) => output,
        Err(error @ RunError::NotFound { .. }) => {
            return PackageState::NotPresent {
                detail: error_chain(&error),
            };
        }
        Err(error) => {
            return PackageState::Failed {
                detail: error_chain(&error),
            };
        }
    };
    // `env` exits 127 when the program is missing.
    if output.exit_code == Some(127) {
        return PackageState::NotPresent {
            detail: format!("{} not found: no supported package manager", config.apt_get),
        };
    }
    if output.exit_code != Some(0) {
        return PackageState::Failed {
            detail: format!(
                "{} exited {:?}: {}",
                config.apt_get,
                output.exit_code,
                error_lines(&output.stdout, &output.stderr)
            ),
        };
    }
    match parse_simulation(&output.stdout) {
        Ok(simulation) => PackageState::Read {
            simulation,
            lists_updated_at_ms: lists_updated_at_ms(&config.lists_dir),
            reboot: reboot_flag(&config.reboot_required_file),
        },
        Err(error) => PackageState::Failed {
            detail: format!("could not read apt's simulation: {error}"),
        },
    }
}

/// apt's `E:`/`W:` lines (what says why), at most 1 KiB.
pub fn error_lines(stdout: &str, stderr: &str) -> String {
    let mut text: String = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: ") || l.starts_with("dpkg: "))
        .collect::<Vec<_>>()
        .join("; ");
    if text.is_empty() {
        text = stderr.trim().to_owned();
    }
    if text.len() > 1024 {
        let mut cut = 1024;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}
