//! `zpool status -j` (OpenZFS 2.3+) into the same [`Pool`] model as the text parser.
//!
//! With `--json-int` numbers are JSON integers; without it every number is a string that may
//! carry a suffix (`"8.29G"`) and times are locale dates. Both are accepted field by field.
//! The JSON is walked as a tree instead of derived structs so that a missing or mistyped
//! field is reported with its full path (`pools.tank.vdevs.tank.state`).

use serde_json::{Map, Value};

use super::error::ParseError;
use super::model::{
    DataErrors, ErrorCounters, Pool, Scan, ScanFunction, ScanProgress, ScanState, ScanTime, Vdev,
    VdevKind, VdevState,
};
use super::status::kind_from_name;
use super::units::parse_size;

/// Parses the output of `zpool status -j [--json-int]`.
pub fn parse_status_json(text: &str) -> Result<Vec<Pool>, ParseError> {
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let doc: Value = serde_json::from_str(text).map_err(|source| ParseError::Json { source })?;
    if let Some(command) = doc
        .pointer("/output_version/command")
        .and_then(Value::as_str)
        && command != "zpool status"
    {
        return Err(ParseError::JsonShape {
            path: "output_version.command".to_owned(),
            expected: "\"zpool status\"",
        });
    }
    let pools = object(&doc, "pools", "")?;
    pools
        .iter()
        .map(|(key, value)| parse_pool(key, value, &format!("pools.{key}")))
        .collect()
}

fn shape(path: &str, expected: &'static str) -> ParseError {
    ParseError::JsonShape {
        path: path.to_owned(),
        expected,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn object<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a Map<String, Value>, ParseError> {
    v.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| shape(&join(path, key), "an object"))
}

fn string<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a str, ParseError> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| shape(&join(path, key), "a string"))
}

/// A number that `--json-int` prints as an integer and plain `-j` as `"0"` or `"8.29G"`.
fn number(v: &Value, key: &str, path: &str) -> Result<Option<(u64, bool)>, ParseError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| Some((n, false)))
            .ok_or_else(|| shape(&join(path, key), "a non-negative integer")),
        Some(Value::String(s)) if s == "-" => Ok(None),
        Some(Value::String(s)) => parse_size(s)
            .map(Some)
            .ok_or_else(|| shape(&join(path, key), "a number or size such as \"8.29G\"")),
        Some(_) => Err(shape(&join(path, key), "a number or numeric string")),
    }
}

fn state(v: &Value, path: &str) -> Result<VdevState, ParseError> {
    let word = string(v, "state", path)?;
    VdevState::from_word(word).ok_or_else(|| shape(&join(path, "state"), "a ZFS state word"))
}

fn parse_pool(key: &str, v: &Value, path: &str) -> Result<Pool, ParseError> {
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(key)
        .to_owned();
    let state = state(v, path)?;
    let vdevs = object(v, "vdevs", path)?;
    let vdevs_path = join(path, "vdevs");
    let (root_key, root_value) = vdevs
        .iter()
        .next()
        .ok_or_else(|| shape(&vdevs_path, "the pool's root vdev"))?;
    let mut root = parse_vdev(root_key, root_value, &join(&vdevs_path, root_key), 0)?;
    root.kind = VdevKind::Root;
    let section = |k: &str| -> Result<Vec<Vdev>, ParseError> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(ck, cv)| parse_vdev(ck, cv, &join(&join(path, k), ck), 0))
                .collect(),
            Some(_) => Err(shape(&join(path, k), "an object of vdevs")),
        }
    };
    let errors = number(v, "error_count", path)?.map(|(count, _)| DataErrors {
        count: Some(count),
        files: Vec::new(),
        unavailable_reason: None,
    });
    let scan = match v.get("scan_stats") {
        None | Some(Value::Null) => None,
        Some(s) => Some(parse_scan(s, &join(path, "scan_stats"))?),
    };
    Ok(Pool {
        name,
        state,
        status: v.get("status").and_then(Value::as_str).map(str::to_owned),
        action: v.get("action").and_then(Value::as_str).map(str::to_owned),
        see: v.get("msgid").and_then(Value::as_str).map(str::to_owned),
        scan,
        more_scans: Vec::new(),
        root,
        logs: section("logs")?,
        cache: section("l2cache")?,
        spares: section("spares")?,
        special: section("special")?,
        dedup: section("dedup")?,
        errors,
        notices: Vec::new(),
    })
}

/// Deeper than any real tree means hostile input; bounded so recursion stays small.
const MAX_DEPTH: usize = 16;

fn parse_vdev(key: &str, v: &Value, path: &str, depth: usize) -> Result<Vdev, ParseError> {
    if depth > MAX_DEPTH {
        return Err(shape(path, "a vdev tree of realistic depth"));
    }
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(key)
        .to_owned();
    let kind = match v.get("vdev_type").and_then(Value::as_str) {
        Some("root") => VdevKind::Root,
        Some("disk") => VdevKind::Disk,
        Some("file") => VdevKind::File,
        Some("mirror") => VdevKind::Mirror,
        Some("draid") => VdevKind::Draid,
        Some("replacing") => VdevKind::Replacing,
        Some("spare") => VdevKind::SpareGroup,
        Some("raidz") => match kind_from_name(&name) {
            k @ (VdevKind::Raidz1 | VdevKind::Raidz2 | VdevKind::Raidz3) => k,
            _ => VdevKind::Other("raidz".to_owned()),
        },
        Some(other) => VdevKind::Other(other.to_owned()),
        None => kind_from_name(&name),
    };
    let counters = match (
        number(v, "read_errors", path)?,
        number(v, "write_errors", path)?,
        number(v, "checksum_errors", path)?,
    ) {
        (Some(r), Some(w), Some(c)) => Some(ErrorCounters {
            read: r.0,
            write: w.0,
            checksum: c.0,
            approximate: r.1 || w.1 || c.1,
        }),
        _ => None,
    };
    let children = match v.get("vdevs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(ck, cv)| parse_vdev(ck, cv, &join(&join(path, "vdevs"), ck), depth + 1))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(shape(&join(path, "vdevs"), "an object of vdevs")),
    };
    let note = v.get("aux").and_then(Value::as_str).map(str::to_owned);
    let was = v
        .get("was")
        .or_else(|| v.get("not_present").and(v.get("path")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Vdev {
        name,
        kind,
        state: state(v, path)?,
        counters,
        note,
        was,
        children,
    })
}

fn time(v: &Value, key: &str) -> Option<ScanTime> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64().map(ScanTime::UnixSeconds),
        Value::String(s) if s == "-" || s.is_empty() => None,
        Value::String(s) => Some(
            s.parse::<i64>()
                .map_or_else(|_| ScanTime::Text(s.clone()), ScanTime::UnixSeconds),
        ),
        _ => None,
    }
}

fn parse_scan(v: &Value, path: &str) -> Result<Scan, ParseError> {
    let function = match v.get("function").and_then(Value::as_str) {
        Some("SCRUB") => ScanFunction::Scrub,
        Some("RESILVER") => ScanFunction::Resilver,
        Some("ERRORSCRUB") => ScanFunction::ErrorScrub,
        Some("NONE") | None => ScanFunction::None,
        Some(_) => ScanFunction::Unknown,
    };
    let paused = number(v, "scrub_pause", path)?.is_some_and(|(n, _)| n != 0);
    let state = match v.get("state").and_then(Value::as_str) {
        Some("SCANNING") if paused => ScanState::Paused,
        Some("SCANNING") => ScanState::InProgress,
        Some("FINISHED") => ScanState::Finished,
        Some("CANCELED") => ScanState::Canceled,
        Some("NONE") | None => ScanState::NoneRequested,
        Some(_) => ScanState::Unknown,
    };
    let total = number(v, "to_examine", path)?.map(|n| n.0);
    let issued = number(v, "issued", path)?.map(|n| n.0);
    let progress = matches!(state, ScanState::InProgress | ScanState::Paused).then(|| {
        ScanProgress {
            scanned_bytes: number(v, "examined", path).ok().flatten().map(|n| n.0),
            issued_bytes: issued,
            total_bytes: total,
            rate: None,
            processed_bytes: number(v, "processed", path).ok().flatten().map(|n| n.0),
            // ZFS's own figure is issued / to_examine; JSON does not print it.
            percent_done: match (issued, total) {
                (Some(i), Some(t)) if t > 0 => Some(i as f64 * 100.0 / t as f64),
                _ => None,
            },
            eta: None,
            no_estimate: false,
        }
    });
    Ok(Scan {
        vdev: None,
        function,
        state,
        started: time(v, "start_time"),
        ended: if state == ScanState::Finished || state == ScanState::Canceled {
            time(v, "end_time")
        } else {
            None
        },
        duration: None,
        processed_bytes: number(v, "processed", path)?.map(|n| n.0),
        errors: number(v, "errors", path)?.map(|n| n.0),
        progress,
        raw: v.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_path() {
        assert!(matches!(
            parse_status_json("{"),
            Err(ParseError::Json { .. })
        ));
        let err =
            parse_status_json(r#"{"pools":{"t":{"name":"t","state":"ONLINE"}}}"#).unwrap_err();
        assert_eq!(err.to_string(), "JSON `pools.t.vdevs`: expected an object");
        let err = parse_status_json(
            r#"{"pools":{"t":{"state":"ONLINE","vdevs":{"t":{"vdev_type":"root","state":"ONLINE","read_errors":"x","write_errors":0,"checksum_errors":0}}}}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "JSON `pools.t.vdevs.t.read_errors`: expected a number or size such as \"8.29G\""
        );
        let err = parse_status_json(r#"{"output_version":{"command":"zpool list"},"pools":{}}"#)
            .unwrap_err();
        assert!(matches!(err, ParseError::JsonShape { .. }), "{err}");
    }

    #[test]
    fn scanning_pool_gets_progress() {
        let pools = parse_status_json(
            r#"{"pools":{"t":{"state":"ONLINE","scan_stats":{"function":"RESILVER","state":"SCANNING","to_examine":200,"issued":50,"errors":0},"vdevs":{"t":{"vdev_type":"root","state":"ONLINE"}}}}}"#,
        )
        .unwrap();
        let scan = pools[0].scan.as_ref().unwrap();
        assert_eq!(
            (scan.function, scan.state),
            (ScanFunction::Resilver, ScanState::InProgress)
        );
        assert_eq!(scan.progress.as_ref().unwrap().percent_done, Some(25.0));
    }
}
