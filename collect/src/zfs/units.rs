//! Numbers as ZFS prints them: raw (`-p`), rounded with a binary suffix (`1.66T`, `9.5K`),
//! or `-` for "not applicable".

/// Parses `123`, `0B`, `21K`, `1.66T`, `5.67G` (ZFS's `zfs_nicenum`, powers of 1024).
///
/// Returns the value and whether it was rounded (had a suffix other than `B`).
pub(crate) fn parse_size(text: &str) -> Option<(u64, bool)> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(n) = text.parse::<u64>() {
        return Some((n, false));
    }
    let (number, suffix) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let exponent = match suffix {
        "B" => 0,
        "K" | "KB" | "KiB" => 1,
        "M" | "MB" | "MiB" => 2,
        "G" | "GB" | "GiB" => 3,
        "T" | "TB" | "TiB" => 4,
        "P" | "PB" | "PiB" => 5,
        "E" | "EB" | "EiB" => 6,
        _ => return None,
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scaled = value * 1024f64.powi(exponent);
    if !scaled.is_finite() || scaled < 0.0 || scaled >= u64::MAX as f64 {
        return None;
    }
    // Rounded to the nearest unit: the true count is unknowable once ZFS rounded it.
    Some((scaled.round() as u64, exponent > 0 || number.contains('.')))
}

/// `-` (or empty) means "not applicable" in `-H` output.
pub(crate) fn is_dash(text: &str) -> bool {
    let t = text.trim();
    t == "-" || t.is_empty()
}

/// `28%`, `28`, `-`.
pub(crate) fn parse_percent(text: &str) -> Option<u64> {
    text.trim().trim_end_matches('%').parse().ok()
}

/// `1.00x`, `1.00`.
pub(crate) fn parse_ratio(text: &str) -> Option<f64> {
    let v: f64 = text.trim().trim_end_matches('x').parse().ok()?;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_suffix() {
        assert_eq!(parse_size("100980"), Some((100980, false)));
        assert_eq!(parse_size("0B"), Some((0, false)));
        assert_eq!(parse_size("21K"), Some((21 * 1024, true)));
        assert_eq!(parse_size("9.5K"), Some((9728, true)));
        assert_eq!(parse_size("1.2M"), Some((1_258_291, true)));
        assert_eq!(parse_size("1.66T"), Some((1_825_189_302_108, true)));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("1.2Q"), None);
        assert_eq!(parse_size("-1K"), None);
        assert_eq!(parse_size("99999999999999999999E"), None);
    }

    #[test]
    fn percents_and_ratios() {
        assert_eq!(parse_percent("28%"), Some(28));
        assert_eq!(parse_percent("4"), Some(4));
        assert_eq!(parse_percent("-"), None);
        assert_eq!(parse_ratio("1.00x"), Some(1.0));
        assert_eq!(parse_ratio("1.25"), Some(1.25));
        assert!(is_dash("-"));
    }
}
