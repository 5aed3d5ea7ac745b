//! `mdadm --detail /dev/mdX` text.
//!
//! Shape: a `/dev/mdX:` header, right-aligned `Label : value` lines (the label column width
//! differs between mdadm releases), an occasional continuation line (DDF `Container GUID`),
//! then a device table `Number Major Minor RaidDevice State`.
//!
//! `mdadm --examine` output (one member's superblock: `Magic`, `Device Role`, `Array State`)
//! looks similar but describes a device, not an array; it is refused with
//! [`ParseError::ExamineOutput`] rather than half-parsed into a misleading array record.

use super::error::ParseError;
use super::model::{
    Detail, DetailDevice, DetailSync, DeviceState, KeyValue, RaidLevel, SyncAction,
};

/// Labels that only `--examine` prints.
const EXAMINE_KEYS: &[&str] = &[
    "Magic",
    "Device Role",
    "Array State",
    "Device UUID",
    "Feature Map",
];

/// Parses `mdadm --detail` output for one array.
pub fn parse_detail(text: &str) -> Result<Detail, ParseError> {
    let mut d = Detail {
        device: None,
        version: None,
        creation_time: None,
        level: None,
        array_size_kib: None,
        used_dev_size_kib: None,
        raid_devices: None,
        total_devices: None,
        persistence: None,
        intent_bitmap: None,
        update_time: None,
        state: Vec::new(),
        active_devices: None,
        working_devices: None,
        failed_devices: None,
        spare_devices: None,
        layout: None,
        chunk_size: None,
        consistency_policy: None,
        sync: None,
        name: None,
        uuid: None,
        events: None,
        container: None,
        member_arrays: Vec::new(),
        devices: Vec::new(),
        other: Vec::new(),
    };
    let mut in_table = false;
    let mut any = false;
    let mut last_key: Option<String> = None;
    let mut saw_table = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        let first = !any;
        any = true;
        if t.starts_with("Number") && t.contains("Major") && t.contains("RaidDevice") {
            in_table = true;
            saw_table = true;
            continue;
        }
        if in_table {
            d.devices.push(parse_device_row(t, line)?);
            continue;
        }
        if let Some((key, value)) = t
            .split_once(" : ")
            .or_else(|| t.strip_suffix(" :").map(|k| (k, "")))
        {
            let key = key.trim();
            let value = value.trim();
            if EXAMINE_KEYS.contains(&key) {
                return Err(ParseError::ExamineOutput {
                    line,
                    text: t.to_owned(),
                });
            }
            apply(&mut d, key, value, line)?;
            last_key = Some(key.to_owned());
            continue;
        }
        if t.ends_with(':') && !t.contains(char::is_whitespace) && d.device.is_none() {
            d.device = Some(t.trim_end_matches(':').to_owned());
            continue;
        }
        if first && t.contains("mdadm") {
            // The echoed command line of a pasted capture.
            continue;
        }
        if t.starts_with('(') {
            // Continuation of the previous value (DDF `Container GUID`'s creator line).
            if let Some(key) = &last_key
                && let Some(kv) = d.other.iter_mut().rev().find(|kv| &kv.key == key)
            {
                kv.value.push(' ');
                kv.value.push_str(t);
                continue;
            }
        }
        return Err(ParseError::UnexpectedLine {
            line,
            text: raw.trim_end().to_owned(),
            context: "in `mdadm --detail` output",
        });
    }
    if !any {
        return Err(ParseError::Empty);
    }
    if d.level.is_none() && !saw_table {
        return Err(ParseError::NotDetailOutput);
    }
    Ok(d)
}

fn number<T: std::str::FromStr>(
    field: &'static str,
    v: &str,
    line: usize,
) -> Result<T, ParseError> {
    v.parse().map_err(|_| ParseError::BadValue {
        line,
        field,
        text: v.to_owned(),
        expected: "number",
    })
}

/// `101376 (99.00 MiB 103.81 MB)` → 101376.
fn kib(field: &'static str, v: &str, line: usize) -> Result<u64, ParseError> {
    number(field, v.split_whitespace().next().unwrap_or(""), line)
}

fn apply(d: &mut Detail, key: &str, value: &str, line: usize) -> Result<(), ParseError> {
    let s = || Some(value.to_owned());
    match key {
        "Version" => d.version = s(),
        "Creation Time" => d.creation_time = s(),
        "Raid Level" => d.level = Some(RaidLevel::from_word(value)),
        "Array Size" => d.array_size_kib = Some(kib("Array Size", value, line)?),
        "Used Dev Size" => d.used_dev_size_kib = Some(kib("Used Dev Size", value, line)?),
        "Raid Devices" => d.raid_devices = Some(number("Raid Devices", value, line)?),
        "Total Devices" => d.total_devices = Some(number("Total Devices", value, line)?),
        "Persistence" => d.persistence = s(),
        "Intent Bitmap" => d.intent_bitmap = s(),
        "Update Time" => d.update_time = s(),
        "State" => {
            d.state = value
                .split(',')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect()
        }
        "Active Devices" => d.active_devices = Some(number("Active Devices", value, line)?),
        "Working Devices" => d.working_devices = Some(number("Working Devices", value, line)?),
        "Failed Devices" => d.failed_devices = Some(number("Failed Devices", value, line)?),
        "Spare Devices" => d.spare_devices = Some(number("Spare Devices", value, line)?),
        "Layout" => d.layout = s(),
        "Chunk Size" => d.chunk_size = s(),
        "Consistency Policy" => d.consistency_policy = s(),
        "Name" => d.name = s(),
        "UUID" => d.uuid = s(),
        "Events" => d.events = s(),
        "Container" => d.container = s(),
        "Member Arrays" => d.member_arrays = value.split_whitespace().map(str::to_owned).collect(),
        k if k.ends_with(" Status") => {
            let word = k.trim_end_matches(" Status").to_ascii_lowercase();
            let action = match word.as_str() {
                "rebuild" | "recovery" => SyncAction::Recovery,
                "resync" => SyncAction::Resync,
                "reshape" => SyncAction::Reshape,
                "check" => SyncAction::Check,
                "repair" => SyncAction::Repair,
                _ => {
                    d.other.push(KeyValue {
                        key: key.to_owned(),
                        value: value.to_owned(),
                    });
                    return Ok(());
                }
            };
            let pct = value.split('%').next().unwrap_or("").trim();
            d.sync = Some(DetailSync {
                action,
                percent: number(key_static(&word), pct, line)?,
            });
        }
        _ => d.other.push(KeyValue {
            key: key.to_owned(),
            value: value.to_owned(),
        }),
    }
    Ok(())
}

fn key_static(word: &str) -> &'static str {
    match word {
        "resync" => "Resync Status",
        "reshape" => "Reshape Status",
        "check" => "Check Status",
        "repair" => "Repair Status",
        _ => "Rebuild Status",
    }
}

/// `0 254 1 0 active sync /dev/vda1`, `- 0 0 1 removed`, `- 254 0 - /dev/vda` (container).
fn parse_device_row(t: &str, line: usize) -> Result<DetailDevice, ParseError> {
    let tokens: Vec<&str> = t.split_whitespace().collect();
    if tokens.len() < 4 {
        return Err(ParseError::UnexpectedLine {
            line,
            text: t.to_owned(),
            context: "in the device table (fewer than 4 columns)",
        });
    }
    let opt = |field: &'static str, v: &str| -> Result<Option<u32>, ParseError> {
        if v == "-" {
            Ok(None)
        } else {
            number(field, v, line).map(Some)
        }
    };
    let (path, words) = match tokens.last() {
        Some(p) if p.starts_with('/') && tokens.len() > 4 => {
            (Some((*p).to_owned()), &tokens[4..tokens.len() - 1])
        }
        _ => (None, &tokens[4..]),
    };
    Ok(DetailDevice {
        number: opt("Number", tokens[0])?,
        major: number("Major", tokens[1], line)?,
        minor: number("Minor", tokens[2], line)?,
        raid_device: opt("RaidDevice", tokens[3])?,
        state: words.iter().map(|w| DeviceState::from_word(w)).collect(),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_specific() {
        assert!(matches!(parse_detail(""), Err(ParseError::Empty)));
        assert!(matches!(
            parse_detail("/dev/md0:\n  Version : 1.2\n"),
            Err(ParseError::NotDetailOutput)
        ));
        let e = parse_detail("/dev/md0:\n Raid Devices : two\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: Raid Devices \"two\" is not a number"
        );
        let e = parse_detail("/dev/sda1:\n   Magic : a92b4efc\n").unwrap_err();
        assert!(
            matches!(e, ParseError::ExamineOutput { line: 2, .. }),
            "{e}"
        );
        let e = parse_detail("/dev/md0:\n Raid Level : raid1\n  Number Major Minor RaidDevice State\n  0 x 1 0 active\n")
            .unwrap_err();
        assert!(
            matches!(
                e,
                ParseError::BadValue {
                    line: 4,
                    field: "Major",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn reshape_status_and_unknown_keys_are_kept() {
        let d = parse_detail(
            "/dev/md0:\n Raid Level : raid6\n Reshape Status : 48% complete\n Delta Devices : 2, (4->6)\n",
        )
        .unwrap();
        assert_eq!(
            d.sync,
            Some(DetailSync {
                action: SyncAction::Reshape,
                percent: 48
            })
        );
        assert_eq!(d.other[0].key, "Delta Devices");
    }
}
