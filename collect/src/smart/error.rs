//! Why a smartctl output could not be read.
//!
//! Each variant says where (line, section) and what (expected shape, offending text), so an
//! operator who pastes the message into an issue gives us everything needed to add a
//! fixture. `Display` never repeats a `#[source]`: log the whole chain instead.

use std::fmt;

/// The part of smartctl's text output a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Before any recognized content (prompt lines, pastes).
    Preamble,
    Information,
    SmartData,
    AtaAttributes,
    AtaErrorLog,
    AtaSelfTestLog,
    NvmeHealth,
    NvmeErrorLog,
    NvmeSelfTestLog,
    ScsiErrorCounters,
    ScsiSelfTestLog,
    /// A section we do not model (device statistics, SCT, GPL directory …): skipped.
    Skipped,
    Scan,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Preamble => "preamble",
            Section::Information => "information section",
            Section::SmartData => "SMART data section",
            Section::AtaAttributes => "ATA attribute table",
            Section::AtaErrorLog => "ATA error log",
            Section::AtaSelfTestLog => "ATA self-test log",
            Section::NvmeHealth => "NVMe SMART/Health log",
            Section::NvmeErrorLog => "NVMe error log",
            Section::NvmeSelfTestLog => "NVMe self-test log",
            Section::ScsiErrorCounters => "SCSI error counter log",
            Section::ScsiSelfTestLog => "SCSI self-test log",
            Section::Skipped => "skipped section",
            Section::Scan => "device scan",
        })
    }
}

/// Errors from [`parse_text`](super::parse_text), [`parse_json`](super::parse_json) and
/// the scan parsers.
#[derive(Debug, thiserror::Error)]
pub enum SmartParseError {
    /// Nothing but whitespace.
    #[error("input is empty: expected smartctl output")]
    Empty,
    /// Not one line looked like smartctl.
    #[error(
        "no smartctl output found: expected a `smartctl <version>` banner, a `=== START OF … \
         SECTION ===` header or a known field; line {line} reads {snippet:?}"
    )]
    NotSmartctl { line: usize, snippet: String },
    /// A row inside a table we model did not have the table's shape (usually a truncated
    /// capture).
    #[error("line {line} in the {section}: expected {expected}, found {snippet:?}")]
    Malformed {
        line: usize,
        section: Section,
        expected: &'static str,
        snippet: String,
    },
    /// The JSON did not decode into smartctl's schema.
    #[error("smartctl JSON does not decode at line {line}, column {column}")]
    Json {
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    /// Valid JSON, but not from smartctl.
    #[error("JSON is not smartctl output: {reason}")]
    NotSmartctlJson { reason: &'static str },
}

/// Cuts a line to a length that fits an error message, on a character boundary.
pub(crate) fn snippet(line: &str) -> String {
    const MAX: usize = 80;
    let trimmed = line.trim();
    match trimmed.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &trimmed[..at]),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_is_bounded_and_char_safe() {
        let long = "é".repeat(200);
        let s = snippet(&long);
        assert_eq!(s.chars().count(), 81);
        assert_eq!(snippet("  short  "), "short");
    }

    #[test]
    fn display_names_line_and_section() {
        let e = SmartParseError::Malformed {
            line: 7,
            section: Section::AtaAttributes,
            expected: "an attribute row",
            snippet: "5 Realloc".into(),
        };
        assert_eq!(
            e.to_string(),
            "line 7 in the ATA attribute table: expected an attribute row, found \"5 Realloc\""
        );
    }
}
