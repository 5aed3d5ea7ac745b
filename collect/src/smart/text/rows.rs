//! `nom` parsers for single lines of smartctl's text output: the banner, attribute rows in
//! both the verbose and the brief (`-f brief`, `-x`) layouts, self-test rows (ATA, NVMe,
//! SCSI) and SCSI error-counter rows.
//!
//! Rows are parsed as whitespace-separated tokens rather than fixed columns: captures
//! pasted through issue trackers lose their alignment (the `*collapsed*` fixtures), and
//! smartctl itself widens columns between versions.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till1, take_while1};
use nom::character::complete::{char, digit1, space0, space1};
use nom::combinator::{map, map_res, opt, rest, value};
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

use crate::smart::model::{
    AtaAttribute, AttributeFlags, AttributeKind, AttributeUpdated, RawValue, SelfTestEntry,
    SelfTestOutcome, SmartctlInfo, WhenFailed,
};
use crate::smart::values;

fn token(input: &str) -> IResult<&str, &str> {
    take_till1(|c: char| c.is_whitespace()).parse(input)
}

fn u8_num(input: &str) -> IResult<&str, u8> {
    map_res(digit1, str::parse::<u8>).parse(input)
}

/// VALUE / WORST / THRESH: three digits, or `---` when the drive reports none.
fn normalized(input: &str) -> IResult<&str, Option<u16>> {
    alt((
        map(map_res(digit1, str::parse::<u16>), Some),
        value(None, take_while1(|c| c == '-')),
    ))
    .parse(input)
}

/// The smartctl banner: `smartctl 7.3 2022-02-28 r5338 [x86_64-w64-mingw32-w10-21H2]
/// (sf-7.3-1)`. Only the version is required; the version must look like one (a digit
/// or `pre-`) so a shell prompt such as `smartctl -a /dev/sda` is not taken for it.
pub fn banner(line: &str) -> Option<SmartctlInfo> {
    let parsed: IResult<&str, &str> = preceded((tag("smartctl"), space1), token).parse(line);
    let (rest_of_line, version) = parsed.ok()?;
    if !(version.starts_with(|c: char| c.is_ascii_digit()) || version.starts_with("pre-")) {
        return None;
    }
    let revision = rest_of_line
        .split_whitespace()
        .find(|t| t.len() > 1 && t.starts_with('r') && t[1..].chars().all(|c| c.is_ascii_digit()))
        .map(|t| t[1..].to_owned());
    let platform = between(rest_of_line, '[', ']');
    let build = rest_of_line
        .rfind('(')
        .map(|at| rest_of_line[at..].trim().to_owned())
        .filter(|b| b.ends_with(')'));
    Some(SmartctlInfo {
        version: version.to_owned(),
        revision,
        platform,
        build,
    })
}

/// The text between the first `open` and the next `close`.
pub fn between(text: &str, open: char, close: char) -> Option<String> {
    let start = text.find(open)? + open.len_utf8();
    let len = text[start..].find(close)?;
    Some(text[start..start + len].to_owned())
}

/// Does this line look like it starts an attribute row (`  5 Reallocated…`)? Used to tell
/// a malformed row from the end of the table.
pub fn looks_like_attribute_row(line: &str) -> bool {
    let r: IResult<&str, (&str, &str)> = (preceded(space0, digit1), space1).parse(line);
    r.is_ok()
}

fn verbose_tail(input: &str) -> IResult<&str, (AttributeKind, AttributeUpdated, WhenFailed, &str)> {
    (
        alt((
            value(AttributeKind::PreFail, tag("Pre-fail")),
            value(AttributeKind::OldAge, tag("Old_age")),
        )),
        preceded(
            space1,
            alt((
                value(AttributeUpdated::Always, tag("Always")),
                value(AttributeUpdated::Offline, tag("Offline")),
            )),
        ),
        preceded(space1, when_failed),
        preceded(space0, rest),
    )
        .parse(input)
}

fn when_failed(input: &str) -> IResult<&str, WhenFailed> {
    alt((
        value(WhenFailed::Now, alt((tag("FAILING_NOW"), tag("NOW")))),
        value(
            WhenFailed::InThePast,
            alt((tag("In_the_past"), tag("Past"))),
        ),
        value(WhenFailed::Never, tag("-")),
    ))
    .parse(input)
}

/// One ATA attribute row in either layout:
///
/// ```text
///   5 Reallocated_Sector_Ct   0x0033   100   100   010    Pre-fail  Always       -       0
///   5 Reallocated_Sector_Ct   PO--CK   001   001   005    NOW  1303
/// ```
pub fn attribute_row(line: &str) -> Option<AtaAttribute> {
    let head: IResult<&str, _> = (
        preceded(space0, u8_num),
        preceded(space1, token),
        preceded(space1, token),
        preceded(space1, normalized),
        preceded(space1, normalized),
        preceded(space1, normalized),
        space1,
    )
        .parse(line);
    let (tail, (id, name, flag_text, val, worst, thresh, _)) = head.ok()?;

    if let Some(word) = values::hex_u64(flag_text) {
        let word = u16::try_from(word).ok()?;
        let flags = AttributeFlags::from_word(flag_text, word);
        let (_, (kind, updated, when_failed, raw)) = verbose_tail(tail).ok()?;
        return Some(AtaAttribute {
            id,
            name: name.to_owned(),
            flags,
            value: val,
            worst,
            thresh,
            kind,
            updated,
            when_failed,
            raw: raw_value(raw),
        });
    }

    if !flag_text.chars().all(|c| "POSRCK-+".contains(c)) {
        return None;
    }
    let flags = AttributeFlags::from_letters(flag_text);
    let brief: IResult<&str, (WhenFailed, &str)> =
        (when_failed, preceded(space0, rest)).parse(tail);
    let (_, (when_failed, raw)) = brief.ok()?;
    Some(AtaAttribute {
        id,
        name: name.to_owned(),
        kind: if flags.prefailure {
            AttributeKind::PreFail
        } else {
            AttributeKind::OldAge
        },
        updated: if flags.updated_online {
            AttributeUpdated::Always
        } else {
            AttributeUpdated::Offline
        },
        flags,
        value: val,
        worst,
        thresh,
        when_failed,
        raw: raw_value(raw),
    })
}

/// A RAW_VALUE string and its decoded primary number.
pub fn raw_value(raw: &str) -> RawValue {
    let string = raw.trim().to_owned();
    RawValue {
        value: values::raw_value(&string),
        string,
        packed: None,
    }
}

/// Splits `description  status` on the first run of two or more spaces; when the capture
/// lost its alignment, falls back to "the first `words` words are the description".
fn split_description(text: &str, words: usize) -> (String, String) {
    let text = text.trim();
    if let Some(at) = text.find("  ") {
        return (
            text[..at].trim().to_owned(),
            text[at..].split_whitespace().collect::<Vec<_>>().join(" "),
        );
    }
    let all: Vec<&str> = text.split_whitespace().collect();
    let cut = words.min(all.len());
    (all[..cut].join(" "), all[cut..].join(" "))
}

/// Whitespace-separated tokens with their byte offsets in `text`.
fn tokens_at(text: &str) -> Vec<(usize, &str)> {
    let base = text.as_ptr() as usize;
    text.split_whitespace()
        .map(|t| (t.as_ptr() as usize - base, t))
        .collect()
}

fn lba(token: &str) -> Option<u64> {
    values::hex_u64(token).or_else(|| token.parse().ok())
}

/// ATA self-test log row:
/// `# 2  Short offline       Completed: read failure       90%     12309         2901265099`.
pub fn ata_self_test_row(line: &str) -> Option<SelfTestEntry> {
    let parsed: IResult<&str, u32> = preceded(
        (space0, char('#'), space0),
        map_res(digit1, str::parse::<u32>),
    )
    .parse(line);
    let (body, num) = parsed.ok()?;
    let tokens = tokens_at(body);
    let pct = tokens
        .iter()
        .position(|(_, t)| values::percent(t).is_some())?;
    let (pct_at, pct_text) = tokens[pct];
    let remaining = values::percent(pct_text);
    let lifetime = tokens.get(pct + 1).and_then(|(_, t)| t.parse().ok());
    let failing_lba = tokens.get(pct + 2).and_then(|(_, t)| lba(t));
    // Description and status are everything before the percentage.
    let (description, status) = split_description(&body[..pct_at], 2);
    Some(SelfTestEntry {
        num,
        outcome: SelfTestOutcome::classify(&status),
        description,
        status,
        remaining_percent: remaining.and_then(|r| u8::try_from(r).ok()),
        lifetime_hours: lifetime,
        failing_lba,
    })
}

/// NVMe self-test log row (smartctl 7.3+):
/// ` 4   Short             Aborted: Self-test command              865            -     -   -    -`.
pub fn nvme_self_test_row(line: &str) -> Option<SelfTestEntry> {
    let parsed: IResult<&str, (u32, &str)> = (
        preceded(space0, map_res(digit1, str::parse::<u32>)),
        preceded(space1, token),
    )
        .parse(line);
    let (body, (num, description)) = parsed.ok()?;
    let tokens: Vec<&str> = body.split_whitespace().collect();
    let hours_at = tokens
        .iter()
        .position(|t| t.chars().all(|c| c.is_ascii_digit()))?;
    let status = tokens[..hours_at].join(" ");
    Some(SelfTestEntry {
        num,
        description: description.to_owned(),
        outcome: SelfTestOutcome::classify(&status),
        status,
        remaining_percent: None,
        lifetime_hours: tokens.get(hours_at).and_then(|t| t.parse().ok()),
        failing_lba: tokens.get(hours_at + 1).and_then(|t| lba(t)),
    })
}

/// SCSI self-test log row:
/// `# 1  Background short  Completed                   -     302                 - [-   -    -]`.
pub fn scsi_self_test_row(line: &str) -> Option<SelfTestEntry> {
    let parsed: IResult<&str, u32> = preceded(
        (space0, char('#'), space0),
        map_res(digit1, str::parse::<u32>),
    )
    .parse(line);
    let (body, num) = parsed.ok()?;
    let body = body.split('[').next().unwrap_or_default();
    let tokens = tokens_at(body);
    let n = tokens.len();
    if n < 4 {
        return None;
    }
    let lifetime = tokens[n - 2].1.parse().ok();
    let failing_lba = lba(tokens[n - 1].1);
    // Segment number, lifetime and LBA are the last three tokens.
    let (cut, _) = tokens[n - 3];
    let (description, status) = split_description(&body[..cut], 2);
    Some(SelfTestEntry {
        num,
        outcome: SelfTestOutcome::classify(&status),
        description,
        status,
        remaining_percent: None,
        lifetime_hours: lifetime,
        failing_lba,
    })
}

/// SCSI error counter row: `read: 0 8 0 8 60614 16772.475 0` — seven columns, of which we
/// keep total corrected (4th), gigabytes processed (6th) and total uncorrected (7th).
pub fn scsi_error_counter_row(
    line: &str,
) -> Option<(&str, crate::smart::model::ScsiErrorCounters)> {
    let parsed: IResult<&str, &str> = delimited(
        space0,
        alt((tag("read"), tag("write"), tag("verify"))),
        char(':'),
    )
    .parse(line);
    let (body, which) = parsed.ok()?;
    let tokens: Vec<&str> = body.split_whitespace().collect();
    if tokens.len() != 7 {
        return None;
    }
    let counters = crate::smart::model::ScsiErrorCounters {
        total_corrected: Some(tokens[3].parse().ok()?),
        total_uncorrected: Some(tokens[6].parse().ok()?),
        gigabytes_processed: Some(tokens[5].replace(',', ".")),
    };
    Some((which, counters))
}

/// `/dev/nvme0: Device of type 'nvme' [NVMe] detected` and
/// `/dev/sg2 [SAT]: Device of type 'sat' [ATA] opened` → (device, type, protocol word).
pub fn device_of_type(line: &str) -> Option<(String, String, Option<String>)> {
    let at = line.find(": Device of type '")?;
    let device = line[..at]
        .split(" [")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let after = &line[at + ": Device of type '".len()..];
    let parsed: IResult<&str, (&str, Option<&str>)> = (
        take_till1(|c| c == '\''),
        preceded(
            char('\''),
            opt(preceded(
                space1,
                delimited(char('['), take_till1(|c| c == ']'), char(']')),
            )),
        ),
    )
        .parse(after);
    let (_, (kind, protocol)) = parsed.ok()?;
    Some((device, kind.to_owned(), protocol.map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_variants() {
        let b = banner("smartctl 7.3 2022-02-28 r5338 [x86_64-w64-mingw32-w10-21H2] (sf-7.3-1)")
            .unwrap();
        assert_eq!(b.version, "7.3");
        assert_eq!(b.revision.as_deref(), Some("5338"));
        assert_eq!(b.platform.as_deref(), Some("x86_64-w64-mingw32-w10-21H2"));
        assert_eq!(b.build.as_deref(), Some("(sf-7.3-1)"));
        let pre = banner("smartctl pre-7.4 2023-01-01 r5000 [x86_64-linux] (CircleCI)").unwrap();
        assert_eq!(pre.version, "pre-7.4");
        assert!(banner("smartctl -a /dev/sda").is_none());
        assert!(banner("sudo smartctl -a /dev/sda").is_none());
    }

    #[test]
    fn verbose_attribute_row_keeps_every_column() {
        let a = attribute_row(
            "190 Airflow_Temperature_Cel 0x0022   062   060   040    Old_age   Always       -       38 (Min/Max 22/40)",
        )
        .unwrap();
        assert_eq!(a.id, 190);
        assert_eq!(a.flags.value, Some(0x22));
        assert!(!a.flags.prefailure && a.flags.updated_online);
        assert_eq!((a.value, a.worst, a.thresh), (Some(62), Some(60), Some(40)));
        assert_eq!(a.kind, AttributeKind::OldAge);
        assert_eq!(a.updated, AttributeUpdated::Always);
        assert_eq!(a.when_failed, WhenFailed::Never);
        assert_eq!(a.raw.string, "38 (Min/Max 22/40)");
        assert_eq!(a.raw.value, Some(38));
    }

    #[test]
    fn brief_attribute_rows() {
        let a = attribute_row("  5 Reallocated_Sector_Ct   PO--CK   001   001   005    NOW  1303")
            .unwrap();
        assert_eq!(a.when_failed, WhenFailed::Now);
        assert_eq!(a.kind, AttributeKind::PreFail);
        assert_eq!(a.raw.value, Some(1303));
        let p = attribute_row(
            "190 Airflow_Temperature_Cel -O---K   055   040   045    Past 45 (Min/Max 43/57 #2689)",
        )
        .unwrap();
        assert_eq!(p.when_failed, WhenFailed::InThePast);
        assert_eq!(p.raw.value, Some(45));
        let t = attribute_row("  5 Reallocated_Sector_Ct   -O--CK   100   100   ---    -    0")
            .unwrap();
        assert_eq!(t.thresh, None);
        assert!(attribute_row("  5 Reallocated_Sector_Ct   PO--CK   001").is_none());
        assert!(attribute_row("  5 Reallocated_Sector_Ct   XYZ   1 1 1 - 0").is_none());
    }

    #[test]
    fn self_test_rows() {
        let a = ata_self_test_row(
            "# 2  Short offline       Completed: read failure       90%     12309         2901265099",
        )
        .unwrap();
        assert_eq!(a.num, 2);
        assert_eq!(a.description, "Short offline");
        assert_eq!(a.status, "Completed: read failure");
        assert_eq!(a.outcome, SelfTestOutcome::Failed);
        assert_eq!(a.remaining_percent, Some(90));
        assert_eq!(a.failing_lba, Some(2_901_265_099));
        let p = ata_self_test_row(
            "# 1  Extended offline    Self-test routine in progress 30%       252         -",
        )
        .unwrap();
        assert_eq!(p.outcome, SelfTestOutcome::InProgress);
        assert_eq!(p.lifetime_hours, Some(252));
        let n = nvme_self_test_row(
            " 4   Short             Aborted: Self-test command              865            -     -   -    -",
        )
        .unwrap();
        assert_eq!(n.status, "Aborted: Self-test command");
        assert_eq!(n.outcome, SelfTestOutcome::Aborted);
        assert_eq!(n.lifetime_hours, Some(865));
        let s = scsi_self_test_row(
            "# 1  Background short  Completed                   -     302                 - [-   -    -]",
        )
        .unwrap();
        assert_eq!(s.description, "Background short");
        assert_eq!(s.outcome, SelfTestOutcome::Passed);
        assert_eq!(s.lifetime_hours, Some(302));
    }

    #[test]
    fn scsi_counters_and_device_lines() {
        let (w, c) = scsi_error_counter_row("read: 0 34 0 34 238396 38280,029 0").unwrap();
        assert_eq!(w, "read");
        assert_eq!(c.total_uncorrected, Some(0));
        assert_eq!(c.gigabytes_processed.as_deref(), Some("38280.029"));
        let (d, t, p) =
            device_of_type("/dev/sg2 [SAT]: Device of type 'sat' [ATA] opened").unwrap();
        assert_eq!(
            (d.as_str(), t.as_str(), p.as_deref()),
            ("/dev/sg2", "sat", Some("ATA"))
        );
    }
}
