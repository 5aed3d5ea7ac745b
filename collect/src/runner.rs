//! The seam between collectors and the programs they call.
//!
//! Collectors never spawn processes themselves: they ask a [`CommandRunner`]. The real
//! implementation, [`SystemRunner`], runs the program with a timeout and kills it when the
//! timeout passes (a hung USB bridge must not stall every other device). Tests implement the
//! trait over recorded real outputs.

use std::future::Future;
use std::time::Duration;

/// What a finished program left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` when the process was killed by a signal.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Why a program could not produce output.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("program `{program}` is not installed or not on PATH")]
    NotFound { program: String },
    #[error("permission denied running `{program}`")]
    PermissionDenied { program: String },
    #[error("`{program}` did not finish within {timeout:?} and was killed")]
    TimedOut { program: String, timeout: Duration },
    #[error("could not run `{program}`")]
    Io {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs an external program and returns its output.
pub trait CommandRunner: Send + Sync {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> impl Future<Output = Result<CommandOutput, RunError>> + Send;
}

/// Runs real programs with `tokio::process`, killing them when `timeout` passes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    async fn run(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<CommandOutput, RunError> {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let child = command.output();
        match tokio::time::timeout(timeout, child).await {
            Err(_) => Err(RunError::TimedOut {
                program: program.to_owned(),
                timeout,
            }),
            Ok(Err(source)) => Err(match source.kind() {
                std::io::ErrorKind::NotFound => RunError::NotFound {
                    program: program.to_owned(),
                },
                std::io::ErrorKind::PermissionDenied => RunError::PermissionDenied {
                    program: program.to_owned(),
                },
                _ => RunError::Io {
                    program: program.to_owned(),
                    source,
                },
            }),
            Ok(Ok(output)) => Ok(CommandOutput {
                exit_code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }),
        }
    }
}

/// Replays **recorded real outputs** instead of running programs: for tests and for
/// reproducing an operator's report. Not a mock of behaviour — every reply is what the real
/// tool printed (keep the recordings' provenance beside them); a command with no recording
/// answers like a missing program, so a collector under test sees the same error it would on
/// a host without that tool.
#[derive(Debug, Clone, Default)]
pub struct RecordedRunner {
    replies: std::collections::HashMap<String, CommandOutput>,
}

impl RecordedRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `command` (program and arguments joined by single spaces, e.g.
    /// `"smartctl -x -n standby -d sat /dev/sda"`) printed `stdout`/`stderr` and exited `code`.
    pub fn record(mut self, command: &str, code: i32, stdout: &str, stderr: &str) -> Self {
        self.replies.insert(
            command.to_owned(),
            CommandOutput {
                exit_code: Some(code),
                stdout: stdout.to_owned(),
                stderr: stderr.to_owned(),
            },
        );
        self
    }
}

impl CommandRunner for RecordedRunner {
    async fn run(
        &self,
        program: &str,
        args: &[&str],
        _timeout: Duration,
    ) -> Result<CommandOutput, RunError> {
        let mut key = program.to_owned();
        for arg in args {
            key.push(' ');
            key.push_str(arg);
        }
        self.replies
            .get(&key)
            .cloned()
            .ok_or_else(|| RunError::NotFound {
                program: program.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_program_is_reported_as_not_found() {
        let err = SystemRunner
            .run("unity-no-such-program", &[], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::NotFound { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn hung_program_is_killed_at_timeout() {
        let err = SystemRunner
            .run("sleep", &["30"], Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::TimedOut { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn recorded_runner_replays_exact_commands_only() {
        let runner = RecordedRunner::new().record("zpool list -H", 0, "tank\n", "");
        let out = runner
            .run("zpool", &["list", "-H"], Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(out.stdout, "tank\n");
        let err = runner
            .run("zpool", &["list"], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::NotFound { .. }));
    }

    #[tokio::test]
    async fn output_and_exit_code_are_captured() {
        let out = SystemRunner
            .run(
                "sh",
                &["-c", "echo hi; echo err >&2; exit 3"],
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, "hi\n");
        assert_eq!(out.stderr, "err\n");
    }
}
