//! Running apt for a job: the environment (C locale, no prompts, the configured
//! `APT_CONFIG`), a hard timeout that kills the whole run, and the arguments for each step.
//! Thin on purpose: what the output means is decided by `failure` and the simulation parser.

use std::time::Duration;

use unity_collect::packages::run::{PackageConfig, SIMULATE_UPGRADE};
use unity_protocol::latest::UpgradeScope;

/// What a finished apt left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AptRunError {
    #[error("`{program}` could not be started")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` did not finish within {timeout:?} and was killed")]
    TimedOut { program: String, timeout: Duration },
}

/// Runs `program args…` with the configured environment, killed after `timeout`.
pub async fn run(
    config: &PackageConfig,
    program: &str,
    args: &[String],
    timeout: Duration,
) -> Result<Output, AptRunError> {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .envs(config.env())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(timeout, command.output()).await {
        Err(_) => Err(AptRunError::TimedOut {
            program: program.to_owned(),
            timeout,
        }),
        Ok(Err(source)) => Err(AptRunError::Spawn {
            program: program.to_owned(),
            source,
        }),
        Ok(Ok(output)) => Ok(Output {
            exit_code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }),
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// `apt-get update`, waiting for the lock as long as the job allows.
pub fn update_args(lock_timeout_secs: u32) -> Vec<String> {
    let mut args = strings(&["-q", "-o"]);
    args.push(format!("DPkg::Lock::Timeout={lock_timeout_secs}"));
    args.push("update".into());
    args
}

/// The simulation that computes the plan for `scope`. `SecurityOnly` is planned in two
/// steps (see `mod.rs`): first the full upgrade, then `Packages` of its security part.
pub fn simulate_args(scope: &UpgradeScope) -> Vec<String> {
    match scope {
        UpgradeScope::All | UpgradeScope::SecurityOnly => strings(SIMULATE_UPGRADE),
        UpgradeScope::Packages(names) => {
            let mut args = strings(&[
                "-s",
                "-q",
                "-o",
                "Debug::NoLocking=1",
                "install",
                "--only-upgrade",
            ]);
            args.extend(names.iter().cloned());
            args
        }
    }
}

/// The real run: non-interactive, existing configuration files kept (`--force-confdef
/// --force-confold`: take the maintainer's default only where the operator changed nothing),
/// never a held package changed, never a removal.
pub fn apply_args(scope: &UpgradeScope, lock_timeout_secs: u32) -> Vec<String> {
    let mut args = strings(&[
        "-y",
        "-q",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        "-o",
    ]);
    args.push(format!("DPkg::Lock::Timeout={lock_timeout_secs}"));
    match scope {
        UpgradeScope::All | UpgradeScope::SecurityOnly => {
            args.extend(strings(&["upgrade", "--with-new-pkgs"]));
        }
        UpgradeScope::Packages(names) => {
            args.extend(strings(&["install", "--only-upgrade"]));
            args.extend(names.iter().cloned());
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_arguments_after_the_subcommand_and_never_options() {
        let args = apply_args(&UpgradeScope::Packages(vec!["openssl".into()]), 60);
        let at = args.iter().position(|a| a == "--only-upgrade").unwrap_or(0);
        assert_eq!(&args[at + 1..], ["openssl"]);
        assert!(args.contains(&"Dpkg::Options::=--force-confold".to_owned()));
        assert!(args.contains(&"DPkg::Lock::Timeout=60".to_owned()));
        assert!(
            !apply_args(&UpgradeScope::All, 0)
                .iter()
                .any(|a| a.contains("remove"))
        );
    }
}
