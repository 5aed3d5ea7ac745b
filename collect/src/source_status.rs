//! How reading one storage source ended, shared by the ZFS and md collectors.
//!
//! "This host has no ZFS" and "`zpool` hung" are different answers, and the operator needs to
//! tell them apart from "all pools healthy": every collection step ends in exactly one
//! [`SourceOutcome`], and the mapping from a [`RunError`] to it lives here once so each
//! collector reports the same failure in the same words.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::runner::{CommandOutput, RunError};

/// How one collection step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceOutcome {
    Ok,
    /// The tool (or the kernel file) is not there: this host has none, not an error.
    ToolMissing {
        program: String,
    },
    PermissionDenied {
        program: String,
        detail: String,
    },
    TimedOut {
        program: String,
        timeout_ms: u64,
    },
    /// The tool ran but failed (non-zero exit) for a reason other than the above.
    Failed {
        program: String,
        exit_code: Option<i32>,
        stderr: String,
    },
    /// The tool answered but we could not read the answer: the error chain, in words.
    Unparseable {
        program: String,
        error: String,
    },
}

impl SourceOutcome {
    /// A non-zero exit of `program` that is not one of the recognised cases.
    pub fn failed(program: &str, out: &CommandOutput) -> Self {
        Self::Failed {
            program: program.to_owned(),
            exit_code: out.exit_code,
            stderr: out.stderr.trim().to_owned(),
        }
    }

    /// `program` answered with something its parser rejected; keeps the whole error chain so
    /// the report says which line and why.
    pub fn unparseable(program: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        Self::Unparseable {
            program: program.to_owned(),
            error: crate::error_chain(error),
        }
    }
}

impl From<RunError> for SourceOutcome {
    fn from(e: RunError) -> Self {
        match e {
            RunError::NotFound { program } => Self::ToolMissing { program },
            RunError::PermissionDenied { program } => Self::PermissionDenied {
                program,
                detail: "not allowed to execute".to_owned(),
            },
            RunError::TimedOut { program, timeout } => Self::TimedOut {
                program,
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            },
            RunError::Io { program, source } => Self::Failed {
                program,
                exit_code: None,
                stderr: source.to_string(),
            },
        }
    }
}

/// In words, for the single finding of an assessment that could not be made.
impl fmt::Display for SourceOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::ToolMissing { program } => write!(f, "`{program}` is not installed"),
            Self::PermissionDenied { program, detail } => {
                write!(f, "`{program}`: permission denied ({detail})")
            }
            Self::TimedOut {
                program,
                timeout_ms,
            } => write!(f, "`{program}` did not answer within {timeout_ms} ms"),
            Self::Failed {
                program,
                exit_code,
                stderr,
            } => write!(f, "`{program}` failed (exit {exit_code:?}): {stderr}"),
            Self::Unparseable { program, error } => {
                write!(f, "`{program}` output could not be read: {error}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn run_errors_map_to_outcomes_that_say_what_happened() {
        let timed_out = SourceOutcome::from(RunError::TimedOut {
            program: "zpool".into(),
            timeout: Duration::from_secs(30),
        });
        assert_eq!(
            timed_out,
            SourceOutcome::TimedOut {
                program: "zpool".into(),
                timeout_ms: 30_000
            }
        );
        assert_eq!(
            timed_out.to_string(),
            "`zpool` did not answer within 30000 ms"
        );
        let missing = SourceOutcome::from(RunError::NotFound {
            program: "mdadm".into(),
        });
        assert_eq!(missing.to_string(), "`mdadm` is not installed");
        let io = SourceOutcome::from(RunError::Io {
            program: "zpool".into(),
            source: std::io::Error::other("broken pipe"),
        });
        assert!(
            matches!(&io, SourceOutcome::Failed { exit_code: None, stderr, .. } if stderr == "broken pipe"),
            "{io:?}"
        );
    }
}
