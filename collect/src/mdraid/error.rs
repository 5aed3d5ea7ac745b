//! Why an md output could not be read.
//!
//! Each variant carries the 1-based line number and the offending text; `Display` never
//! repeats a `#[source]`.

/// `/proc/mdstat`, `mdadm --detail` or sysfs content we could not turn into a model.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("input is empty")]
    Empty,
    #[error("line {line}: unexpected text {text:?} {context}")]
    UnexpectedLine {
        line: usize,
        text: String,
        context: &'static str,
    },
    #[error("line {line}: array {array:?} has no state (`active`/`inactive`): {text:?}")]
    MissingArrayState {
        line: usize,
        array: String,
        text: String,
    },
    #[error(
        "line {line}: member {text:?} is not `name[index]` with optional (F)/(S)/(W)/(R)/(J) flags"
    )]
    BadMember { line: usize, text: String },
    #[error("line {line}: {field} {text:?} is not a {expected}")]
    BadValue {
        line: usize,
        field: &'static str,
        text: String,
        expected: &'static str,
    },
    #[error(
        "line {line}: this is `mdadm --examine` output (one member's superblock), not `mdadm --detail`: {text:?}"
    )]
    ExamineOutput { line: usize, text: String },
    #[error("no `Raid Level` or device table found: not `mdadm --detail` output")]
    NotDetailOutput,
    #[error("sysfs `{file}`: {text:?} is not a {expected}")]
    BadSysfsValue {
        file: &'static str,
        text: String,
        expected: &'static str,
    },
}
