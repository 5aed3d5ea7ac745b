//! The verdict vocabulary every storage collector shares: one [`Health`] per pool or array,
//! the [`Finding`]s behind it, each with a [`Severity`].
//!
//! ZFS and md judge different things, but an operator reads one scale: the agent maps this
//! onto the protocol's health once, whichever collector produced it.

use serde::{Deserialize, Serialize};

/// Overall verdict, worst first when compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Health {
    Healthy,
    Warning,
    Critical,
    /// We could not tell (the tool is missing or its output could not be read).
    Unknown,
}

/// How much one finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// Worth showing, not worth waking anyone.
    Info,
    Warning,
    Critical,
}

/// One reason behind a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    /// The part the finding is about (a vdev, an md member device); `None` for the pool
    /// or array as a whole.
    pub component: Option<String>,
    /// What the operator should know, in words.
    pub message: String,
}

/// A verdict with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// The pool (or md array) name.
    pub subject: String,
    pub health: Health,
    pub findings: Vec<Finding>,
}

impl Assessment {
    /// Used when there is nothing to assess: the reason is the single finding.
    pub fn unknown(subject: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            health: Health::Unknown,
            findings: vec![Finding {
                severity: Severity::Warning,
                component: None,
                message: reason.into(),
            }],
        }
    }
}
