//! Local wall-clock times as operators type them (`HH:MM`), one parser for every place that
//! takes one: maintenance windows, rollout schedules, notification quiet hours.
//!
//! Accepted: one or two hour digits and exactly two minute digits, `7:05` and `07:05` alike,
//! 00:00–23:59. Refused: signs (`+7:00`, `7:-0`, which integer parsing alone lets through),
//! seconds, spaces, `24:00`.

/// Minutes after midnight of `text`, or `None` when it is not such a time.
pub fn parse_hhmm(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&hours.len()) || minutes.len() != 2 || !digits(hours) || !digits(minutes) {
        return None;
    }
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

/// `HH:MM` of minutes after midnight (the form every answer uses).
pub fn format_hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60 % 24, minutes % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_forms_and_nothing_else() {
        for (text, minutes) in [
            ("00:00", 0),
            ("7:05", 425),
            ("07:05", 425),
            ("23:59", 1439),
            ("0:00", 0),
        ] {
            assert_eq!(parse_hhmm(text), Some(minutes), "{text}");
        }
        for bad in [
            "", "7", "7:5", "07:005", "24:00", "12:60", "+7:00", "7:-0", "-1:00", " 7:00", "7:00 ",
            "07:00:00", "007:00", "٣:00", "7:0a", ":00",
        ] {
            assert_eq!(parse_hhmm(bad), None, "{bad:?}");
        }
        assert_eq!(format_hhmm(425), "07:05");
        assert_eq!(format_hhmm(0), "00:00");
    }
}
