//! Why a ZFS output could not be read.
//!
//! Every variant names where the input went wrong (1-based line number, or JSON path) and
//! quotes the offending text, so an operator can match the error to the tool's output. The
//! `Display` text never repeats a `#[source]`: log the whole chain to see both.

/// A `zpool`/`zfs` output we could not turn into a model.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("input is empty")]
    Empty,
    #[error("not `zpool status` output: no `pool:` line found (first line: {first_line:?})")]
    NotStatusOutput { first_line: String },
    #[error("line {line}: pool {pool:?} has no `state:` line before its config")]
    MissingState { line: usize, pool: String },
    #[error("pool {pool:?}: output ends before its config section (truncated capture?)")]
    MissingConfig { pool: String },
    #[error("line {line}: unknown state {text:?}")]
    UnknownState { line: usize, text: String },
    #[error("line {line}: {column} counter {text:?} is not a count")]
    BadCounter {
        line: usize,
        column: &'static str,
        text: String,
    },
    #[error("line {line}: config row {text:?} {problem}")]
    BadVdevRow {
        line: usize,
        text: String,
        problem: &'static str,
    },
    #[error("line {line}: unexpected text {text:?} {context}")]
    UnexpectedLine {
        line: usize,
        text: String,
        context: &'static str,
    },
    #[error("line {line}: {count} columns match no known `{command}` layout: {text:?}")]
    UnknownColumns {
        line: usize,
        count: usize,
        command: &'static str,
        text: String,
    },
    #[error("line {line}: {column} value {text:?} is not a {expected}")]
    BadValue {
        line: usize,
        column: &'static str,
        text: String,
        expected: &'static str,
    },
    #[error("not valid JSON")]
    Json {
        #[source]
        source: serde_json::Error,
    },
    #[error("JSON `{path}`: expected {expected}")]
    JsonShape {
        path: String,
        expected: &'static str,
    },
}
