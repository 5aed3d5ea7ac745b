//! Small `nom` parsers for the values smartctl prints, shared by the text and JSON paths.
//!
//! The same quantity appears in many spellings — `2,137`, `1 000 204 886 016`,
//! `29 (Min/Max 19/46)`, `1259h+06m+33.546s`, `0x0000001f` — depending on the smartctl
//! version, the locale and whether someone pasted it through a web form. Decoding each
//! spelling once, here, keeps the two parsers agreeing on what a value means.

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while1};
use nom::character::complete::{char, digit1, hex_digit1, space0};
use nom::combinator::{map_res, opt, recognize};
use nom::sequence::{preceded, terminated};
use nom::{IResult, Parser};

/// Characters smartctl or a locale uses to group digits: `2,137`, `1 000`, `1.000`,
/// `1'000`, the no-break spaces some terminals paste, and U+FFFD: a Windows locale's
/// no-break space (byte 0xA0) after lossy UTF-8 decoding (`3\u{fffd}387`).
fn is_group_separator(c: char) -> bool {
    matches!(
        c,
        // U+2019 (right single quotation mark) is what Swiss locales print; U+2009 is
        // the thin space some locales use.
        ',' | ' ' | '.' | '\'' | '\u{2019}' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '\u{fffd}'
    )
}

/// A counter with optional digit grouping, before any `[…]` human-readable suffix:
/// `86,115,037 [44.0 TB]` → 86115037, `4,294,967,296` → 4294967296.
///
/// Returns `None` for anything that is not purely digits and separators, and for values
/// that do not fit 128 bits (the NVMe counters' own width).
pub fn grouped_u128(text: &str) -> Option<u128> {
    let number = text.split('[').next().unwrap_or_default().trim();
    if number.is_empty() || !number.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut value: u128 = 0;
    for c in number.chars() {
        if let Some(d) = c.to_digit(10) {
            value = value.checked_mul(10)?.checked_add(u128::from(d))?;
        } else if !is_group_separator(c) {
            return None;
        }
    }
    Some(value)
}

/// [`grouped_u128`] narrowed to `u64`.
pub fn grouped_u64(text: &str) -> Option<u64> {
    grouped_u128(text).and_then(|v| u64::try_from(v).ok())
}

/// A plain unsigned integer prefix (`512 bytes` → 512).
pub fn leading_u64(text: &str) -> Option<u64> {
    let r: IResult<&str, u64> = preceded(space0, map_res(digit1, str::parse::<u64>)).parse(text);
    r.ok().map(|(_, v)| v)
}

/// A percentage (`114%`, `4%`).
pub fn percent(text: &str) -> Option<u32> {
    let r: IResult<&str, u32> = preceded(
        space0,
        terminated(map_res(digit1, str::parse::<u32>), (space0, char('%'))),
    )
    .parse(text);
    r.ok().map(|(_, v)| v)
}

/// A hexadecimal byte or word (`0x04`, `0x0033`).
pub fn hex_u64(text: &str) -> Option<u64> {
    let r: IResult<&str, u64> = preceded(
        (space0, tag_no_case("0x")),
        map_res(hex_digit1, |h: &str| u64::from_str_radix(h, 16)),
    )
    .parse(text);
    r.ok().map(|(_, v)| v)
}

/// `123h+45m+06.789s` → 123 (the hours; minutes and seconds are dropped because every
/// consumer of a power-on figure counts in hours).
fn duration_hours(input: &str) -> IResult<&str, u64> {
    terminated(
        map_res(digit1, str::parse::<u64>),
        (
            char('h'),
            opt(preceded(char('+'), take_while1(|c: char| c != ' '))),
        ),
    )
    .parse(input)
}

fn hex_raw(input: &str) -> IResult<&str, u64> {
    preceded(
        tag_no_case("0x"),
        map_res(hex_digit1, |h: &str| u64::from_str_radix(h, 16)),
    )
    .parse(input)
}

fn decimal_raw(input: &str) -> IResult<&str, u64> {
    map_res(digit1, str::parse::<u64>).parse(input)
}

/// The primary number of an ATA RAW_VALUE in all of smartctl's shapes: `35 (Min/Max
/// 20/45)` → 35, `5670 (1 343)` → 5670, `123h+45m+06.789s` → 123, `0x00000000001f` → 31.
/// `None` when the string does not start with a number.
///
/// Raw values that smartctl prints as several words (drivedb formats `raw16`, `raw8`,
/// `raw24/raw24`, used for Seagate's `188 Command_Timeout` and others) are packed back into
/// the 48-bit number the drive reported, exactly as smartctl's JSON `raw.value` carries it:
/// `0 0 1` (three 16-bit words, most significant first) → 1, `0 1 0` → 65536, six bytes
/// `0 0 0 0 0 5` → 5, `1/2` (two 24-bit halves) → 16777218. Taking only the first word
/// would read `0 0 1` as 0 and call a drive with command timeouts clean.
pub fn raw_value(text: &str) -> Option<u64> {
    if let Some(packed) = multi_word_raw(text.trim()) {
        return Some(packed);
    }
    let r: IResult<&str, u64> =
        preceded(space0, alt((hex_raw, duration_hours, decimal_raw))).parse(text);
    r.ok().map(|(_, v)| v)
}

/// `raw16` (`w2 w1 w0`), `raw8` (`b5 … b0`) and `raw24/raw24` (`hi/lo`) forms, packed into
/// the 48-bit raw value; `None` for any other shape.
fn multi_word_raw(text: &str) -> Option<u64> {
    let pack = |parts: &[&str], bits: u32| -> Option<u64> {
        let limit = 1u64 << bits;
        parts.iter().try_fold(0u64, |acc, part| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let word: u64 = part.parse().ok().filter(|w| *w < limit)?;
            Some((acc << bits) | word)
        })
    };
    if let Some((hi, lo)) = text.split_once('/') {
        return pack(&[hi, lo], 24);
    }
    let words: Vec<&str> = text.split(' ').collect();
    match words.len() {
        3 => pack(&words, 16),
        6 => pack(&words, 8),
        _ => None,
    }
}

/// A temperature with its unit (`44 Celsius`, `40 C`).
pub fn celsius(text: &str) -> Option<i32> {
    let r: IResult<&str, i32> = terminated(
        map_res(
            preceded(space0, recognize((opt(char('-')), digit1))),
            str::parse::<i32>,
        ),
        (space0, alt((tag("Celsius"), tag("C")))),
    )
    .parse(text);
    r.ok().map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_counters_in_every_spelling() {
        assert_eq!(grouped_u128("2,137"), Some(2137));
        assert_eq!(grouped_u128("4,294,967,296"), Some(4_294_967_296));
        assert_eq!(grouped_u128("86,115,037 [44.0 TB]"), Some(86_115_037));
        assert_eq!(
            grouped_u128("1 000 204 886 016 [1,00 TB]"),
            Some(1_000_204_886_016)
        );
        assert_eq!(grouped_u128("0"), Some(0));
        assert_eq!(grouped_u128("3\u{fffd}387"), Some(3387));
        // Every grouping a locale can print, the same number each time.
        for spelled in [
            "1,234,567",
            "1.234.567",
            "1 234 567",
            "1\u{a0}234\u{a0}567",
            "1\u{202f}234\u{202f}567",
            "1\u{2009}234\u{2009}567",
            "1'234'567",
            "1\u{2019}234\u{2019}567",
        ] {
            assert_eq!(grouped_u128(spelled), Some(1_234_567), "{spelled:?}");
        }
        assert_eq!(grouped_u128("-"), None);
        assert_eq!(grouped_u128("12abc"), None);
        assert_eq!(grouped_u128(""), None);
        // 2^128 does not fit: no wrap-around, no panic.
        assert_eq!(
            grouped_u128("340282366920938463463374607431768211456"),
            None
        );
        assert_eq!(grouped_u64("340282366920938463463374607431768211455"), None);
    }

    #[test]
    fn raw_values_in_every_shape() {
        assert_eq!(raw_value("35 (Min/Max 20/45)"), Some(35));
        assert_eq!(raw_value("0/0"), Some(0));
        assert_eq!(raw_value("5670 (1 343)"), Some(5670));
        assert_eq!(raw_value("123h+45m+06.789s"), Some(123));
        assert_eq!(raw_value("1259h+06m+33.546s"), Some(1259));
        assert_eq!(raw_value("0x00000000001f"), Some(31));
        assert_eq!(raw_value("38 (0 16 0 0 0)"), Some(38));
        assert_eq!(raw_value("0 0 0"), Some(0));
        // Multi-word forms packed as smartctl's JSON `raw.value` (ata_get_attr_raw_value:
        // the six raw bytes, most significant first).
        assert_eq!(raw_value("0 0 1"), Some(1));
        assert_eq!(raw_value("0 1 0"), Some(65_536));
        assert_eq!(raw_value("1 0 0"), Some(1 << 32));
        assert_eq!(raw_value("65535 65535 65535"), Some((1 << 48) - 1));
        assert_eq!(raw_value("0 0 0 0 0 5"), Some(5));
        assert_eq!(raw_value("0 0 0 0 1 0"), Some(256));
        assert_eq!(raw_value("1/2"), Some((1 << 24) | 2));
        // Words out of range for their format are not a packed value.
        assert_eq!(raw_value("0 0 65536"), Some(0));
        assert_eq!(raw_value("n/a"), None);
        assert_eq!(raw_value(""), None);
        assert_eq!(raw_value("99999999999999999999999"), None);
    }

    #[test]
    fn small_values() {
        assert_eq!(percent("114%"), Some(114));
        assert_eq!(percent("4 %"), Some(4));
        assert_eq!(percent("x%"), None);
        assert_eq!(hex_u64("0x04"), Some(4));
        assert_eq!(hex_u64("0x0033"), Some(0x33));
        assert_eq!(celsius("44 Celsius"), Some(44));
        assert_eq!(celsius("40 C"), Some(40));
        assert_eq!(celsius("-5 Celsius"), Some(-5));
        assert_eq!(leading_u64("512 bytes"), Some(512));
    }
}
