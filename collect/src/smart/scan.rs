//! Parser for `smartctl --scan` / `--scan-open` text output.
//!
//! The scan is how the runner learns which devices exist and which `-d` type reaches them
//! (MegaRAID and other passthrough devices are only reachable with the type the scan
//! names). `--scan-open` comments out devices it could not open; we keep those as entries
//! with `open_error` so the operator sees them rather than a silently shorter list.

use nom::bytes::complete::{tag, take_till1};
use nom::character::complete::{space0, space1};
use nom::combinator::opt;
use nom::sequence::preceded;
use nom::{IResult, Parser};
use serde::{Deserialize, Serialize};

use crate::smart::error::{SmartParseError, snippet};

/// One device smartctl found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanEntry {
    /// Device path to pass to smartctl (`/dev/sda`, `/dev/bus/0`).
    pub device: String,
    /// The `-d` type to pass with it (`sat+megaraid,60`, `nvme`).
    pub device_type: Option<String>,
    /// smartctl's description after `#` (`/dev/sda, SCSI device`).
    pub comment: Option<String>,
    /// Set when `--scan-open` could not open the device.
    pub open_error: Option<String>,
}

fn device_line(input: &str) -> IResult<&str, (&str, Option<&str>)> {
    (
        take_till1(|c: char| c.is_whitespace()),
        opt(preceded(
            (space1, tag("-d"), space1),
            take_till1(|c: char| c.is_whitespace()),
        )),
    )
        .parse(input)
}

fn parse_entry(line: &str) -> Option<ScanEntry> {
    let (body, commented) = match line.strip_prefix('#') {
        Some(rest) => (rest.trim_start(), true),
        None => (line, false),
    };
    if !(body.starts_with('/') || body.starts_with("IOService")) {
        return None;
    }
    let (rest, (device, device_type)) = device_line(body).ok()?;
    let after: IResult<&str, &str> = preceded(space0, tag("#")).parse(rest);
    let comment = after
        .ok()
        .map(|(c, _)| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if !rest.trim().is_empty() && comment.is_none() {
        return None;
    }
    // A commented-out device is one `--scan-open` failed to open; the reason is in the
    // comment (`… open failed: Permission denied`).
    let open_error = if commented {
        Some(
            comment
                .as_deref()
                .and_then(|c| c.find("failed").map(|at| c[at..].to_owned()))
                .or_else(|| comment.clone())
                .unwrap_or_else(|| "device could not be opened".to_owned()),
        )
    } else {
        None
    };
    Some(ScanEntry {
        device: device.to_owned(),
        device_type: device_type.map(str::to_owned),
        comment,
        open_error,
    })
}

/// Parses `smartctl --scan` / `--scan-open` text. Empty output (no devices) is an empty
/// list; text in which no line is a device and some line is not a comment is an error.
pub fn parse_scan_text(input: &str) -> Result<Vec<ScanEntry>, SmartParseError> {
    let mut entries = Vec::new();
    let mut first_foreign: Option<(usize, &str)> = None;
    for (index, raw) in input.split('\n').enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        match parse_entry(line) {
            Some(entry) => entries.push(entry),
            None if line.starts_with('#') => {}
            None => {
                first_foreign.get_or_insert((index + 1, line));
            }
        }
    }
    match (entries.is_empty(), first_foreign) {
        (true, Some((line, text))) => Err(SmartParseError::NotSmartctl {
            line,
            snippet: snippet(text),
        }),
        _ => Ok(entries),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_lines_of_every_kind() {
        let text = "/dev/nvme0 -d nvme # /dev/nvme0, NVMe device\n\
                    /dev/bus/0 -d sat+megaraid,60 # /dev/bus/0 [megaraid_disk_60] [SAT], ATA device\n\
                    # /dev/bus/0 -d megaraid,0 # /dev/bus/0 [megaraid_disk_00], open failed: Permission denied\n\
                    # a plain comment\n";
        let e = parse_scan_text(text).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].device, "/dev/nvme0");
        assert_eq!(e[0].device_type.as_deref(), Some("nvme"));
        assert_eq!(e[0].open_error, None);
        assert_eq!(e[1].device_type.as_deref(), Some("sat+megaraid,60"));
        assert_eq!(e[2].device_type.as_deref(), Some("megaraid,0"));
        assert_eq!(
            e[2].open_error.as_deref(),
            Some("failed: Permission denied")
        );
    }

    #[test]
    fn empty_scan_is_no_devices_and_garbage_is_an_error() {
        assert_eq!(parse_scan_text("").unwrap(), vec![]);
        assert!(matches!(
            parse_scan_text("hello\nworld"),
            Err(SmartParseError::NotSmartctl { line: 1, .. })
        ));
        let bare = parse_scan_text("/dev/sda\n").unwrap();
        assert_eq!(bare[0].device_type, None);
    }
}
