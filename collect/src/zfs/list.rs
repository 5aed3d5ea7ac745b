//! `zpool list -H[p][v]`, `zpool list -j` and `zfs list -Hp`.
//!
//! `-H` output has no header, so the column set is recognised from the number of columns and
//! where the health word sits. The set the runner asks for is
//! [`run::ZPOOL_LIST_COLUMNS`](super::run::ZPOOL_LIST_COLUMNS) (the same one Telegraf uses,
//! so FreeBSD captures of it are real test data); the default column sets of current,
//! pre-checkpoint and Solaris-era `zpool list` are recognised too. Sizes may be raw (`-p`)
//! or rounded (`2.00T`); `-` means "not applicable" and becomes `None`.

use serde_json::Value;

use super::error::ParseError;
use super::model::{DatasetListEntry, PoolListEntry, PoolListVdev, VdevClass, VdevState};
use super::units::{is_dash, parse_percent, parse_ratio, parse_size};

/// Column sets of `zpool list -H` we recognise, by column count and health position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `-o name,health,size,allocated,free,fragmentation,capacity,dedupratio` (ours).
    Requested,
    /// OpenZFS 0.8+: name size alloc free ckpoint expandsz frag cap dedup health altroot.
    Current,
    /// ZoL 0.6/0.7, illumos: name size alloc free expandsz frag cap dedup health altroot.
    PreCheckpoint,
    /// Solaris 10/11: name size alloc free cap dedup health altroot.
    Solaris,
}

impl Layout {
    fn detect(fields: &[&str]) -> Option<Self> {
        let health_at = |i: usize| {
            fields
                .get(i)
                .and_then(|w| VdevState::from_word(w))
                .is_some()
        };
        match fields.len() {
            8 if health_at(1) => Some(Self::Requested),
            8 if health_at(6) => Some(Self::Solaris),
            10 if health_at(8) => Some(Self::PreCheckpoint),
            11 if health_at(9) => Some(Self::Current),
            _ => None,
        }
    }
}

fn fields(line: &str) -> Vec<&str> {
    if line.contains('\t') {
        line.split('\t').map(str::trim).collect()
    } else {
        line.split_whitespace().collect()
    }
}

struct Row<'a> {
    number: usize,
    text: &'a str,
}

impl Row<'_> {
    fn size(&self, column: &'static str, v: &str) -> Result<Option<u64>, ParseError> {
        if is_dash(v) {
            return Ok(None);
        }
        parse_size(v)
            .map(|s| Some(s.0))
            .ok_or_else(|| self.bad(column, v, "size"))
    }
    fn percent(&self, column: &'static str, v: &str) -> Result<Option<u64>, ParseError> {
        if is_dash(v) {
            return Ok(None);
        }
        parse_percent(v)
            .map(Some)
            .ok_or_else(|| self.bad(column, v, "percentage"))
    }
    fn ratio(&self, v: &str) -> Result<Option<f64>, ParseError> {
        if is_dash(v) {
            return Ok(None);
        }
        parse_ratio(v)
            .map(Some)
            .ok_or_else(|| self.bad("dedupratio", v, "ratio such as 1.00x"))
    }
    fn health(&self, v: &str) -> Result<Option<VdevState>, ParseError> {
        if is_dash(v) {
            return Ok(None);
        }
        VdevState::from_word(v)
            .map(Some)
            .ok_or_else(|| ParseError::UnknownState {
                line: self.number,
                text: v.to_owned(),
            })
    }
    fn bad(&self, column: &'static str, text: &str, expected: &'static str) -> ParseError {
        ParseError::BadValue {
            line: self.number,
            column,
            text: text.to_owned(),
            expected,
        }
    }
    fn unknown_columns(&self, count: usize, command: &'static str) -> ParseError {
        ParseError::UnknownColumns {
            line: self.number,
            count,
            command,
            text: self.text.to_owned(),
        }
    }
}

fn class_header(fields: &[&str]) -> Option<VdevClass> {
    let class = match *fields.first()? {
        "log" | "logs" => VdevClass::Log,
        "cache" => VdevClass::Cache,
        "spare" | "spares" => VdevClass::Spare,
        "special" => VdevClass::Special,
        "dedup" => VdevClass::Dedup,
        _ => return None,
    };
    fields[1..].iter().all(|f| is_dash(f)).then_some(class)
}

/// Parses `zpool list -H` output (with or without `-p`, `-v`, `-P`, `-L`).
pub fn parse_list(text: &str) -> Result<Vec<PoolListEntry>, ParseError> {
    let mut pools: Vec<PoolListEntry> = Vec::new();
    let mut class = VdevClass::Data;
    let mut any = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        any = true;
        let row = Row {
            number: i + 1,
            text: line,
        };
        let f = fields(line);
        if let Some(c) = class_header(&f) {
            class = c;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let f: Vec<&str> = f.into_iter().skip_while(|s| s.is_empty()).collect();
            let Some(pool) = pools.last_mut() else {
                return Err(ParseError::UnexpectedLine {
                    line: row.number,
                    text: line.to_owned(),
                    context: "(a vdev row before any pool row)",
                });
            };
            let (frag, cap) = match f.len() {
                7 => (5, 6),
                n if n >= 8 => (6, 7),
                n => return Err(row.unknown_columns(n, "zpool list -v")),
            };
            pool.vdevs.push(PoolListVdev {
                name: f[0].to_owned(),
                class,
                size_bytes: row.size("size", f[1])?,
                allocated_bytes: row.size("allocated", f[2])?,
                free_bytes: row.size("free", f[3])?,
                fragmentation_percent: row.percent("fragmentation", f[frag])?,
                capacity_percent: row.percent("capacity", f[cap])?,
            });
            continue;
        }
        class = VdevClass::Data;
        let layout =
            Layout::detect(&f).ok_or_else(|| row.unknown_columns(f.len(), "zpool list -H"))?;
        let mut e = PoolListEntry {
            name: f[0].to_owned(),
            size_bytes: None,
            allocated_bytes: None,
            free_bytes: None,
            checkpoint_bytes: None,
            expand_size_bytes: None,
            fragmentation_percent: None,
            capacity_percent: None,
            dedup_ratio: None,
            health: None,
            altroot: None,
            vdevs: Vec::new(),
        };
        let altroot = |v: &str| (!is_dash(v)).then(|| v.to_owned());
        match layout {
            Layout::Requested => {
                e.health = row.health(f[1])?;
                e.size_bytes = row.size("size", f[2])?;
                e.allocated_bytes = row.size("allocated", f[3])?;
                e.free_bytes = row.size("free", f[4])?;
                e.fragmentation_percent = row.percent("fragmentation", f[5])?;
                e.capacity_percent = row.percent("capacity", f[6])?;
                e.dedup_ratio = row.ratio(f[7])?;
            }
            Layout::Current | Layout::PreCheckpoint => {
                let o = usize::from(layout == Layout::Current);
                e.size_bytes = row.size("size", f[1])?;
                e.allocated_bytes = row.size("allocated", f[2])?;
                e.free_bytes = row.size("free", f[3])?;
                if o == 1 {
                    e.checkpoint_bytes = row.size("checkpoint", f[4])?;
                }
                e.expand_size_bytes = row.size("expandsize", f[4 + o])?;
                e.fragmentation_percent = row.percent("fragmentation", f[5 + o])?;
                e.capacity_percent = row.percent("capacity", f[6 + o])?;
                e.dedup_ratio = row.ratio(f[7 + o])?;
                e.health = row.health(f[8 + o])?;
                e.altroot = altroot(f[9 + o]);
            }
            Layout::Solaris => {
                e.size_bytes = row.size("size", f[1])?;
                e.allocated_bytes = row.size("allocated", f[2])?;
                e.free_bytes = row.size("free", f[3])?;
                e.capacity_percent = row.percent("capacity", f[4])?;
                e.dedup_ratio = row.ratio(f[5])?;
                e.health = row.health(f[6])?;
                e.altroot = altroot(f[7]);
            }
        }
        pools.push(e);
    }
    if !any {
        // `zpool list -H` prints nothing at all when there are no pools.
        return Ok(Vec::new());
    }
    Ok(pools)
}

/// Parses `zpool list -j [--json-int]` (OpenZFS 2.3+): properties are `{value, source}`.
pub fn parse_list_json(text: &str) -> Result<Vec<PoolListEntry>, ParseError> {
    let doc: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|source| ParseError::Json { source })?;
    let pools =
        doc.get("pools")
            .and_then(Value::as_object)
            .ok_or_else(|| ParseError::JsonShape {
                path: "pools".to_owned(),
                expected: "an object",
            })?;
    let mut out = Vec::new();
    for (key, pool) in pools {
        let path = format!("pools.{key}.properties");
        let props = pool.get("properties").and_then(Value::as_object);
        let prop = |name: &str| -> Option<String> {
            match props?.get(name)?.get("value")? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let bad = |name: &str, expected: &'static str| ParseError::JsonShape {
            path: format!("{path}.{name}.value"),
            expected,
        };
        let size = |name: &str| -> Result<Option<u64>, ParseError> {
            match prop(name) {
                None => Ok(None),
                Some(v) if is_dash(&v) => Ok(None),
                Some(v) => parse_size(&v)
                    .map(|s| Some(s.0))
                    .ok_or_else(|| bad(name, "a size")),
            }
        };
        let percent = |name: &str| -> Result<Option<u64>, ParseError> {
            match prop(name) {
                None => Ok(None),
                Some(v) if is_dash(&v) => Ok(None),
                Some(v) => parse_percent(&v)
                    .map(Some)
                    .ok_or_else(|| bad(name, "a percentage")),
            }
        };
        let health = match prop("health") {
            Some(h) => Some(VdevState::from_word(&h).ok_or_else(|| bad("health", "a state word"))?),
            None => None,
        };
        out.push(PoolListEntry {
            name: pool
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(key)
                .to_owned(),
            size_bytes: size("size")?,
            allocated_bytes: size("allocated")?,
            free_bytes: size("free")?,
            checkpoint_bytes: size("checkpoint")?,
            expand_size_bytes: size("expandsize")?,
            fragmentation_percent: percent("fragmentation")?,
            capacity_percent: percent("capacity")?,
            dedup_ratio: prop("dedupratio").and_then(|v| parse_ratio(&v)),
            health,
            altroot: prop("altroot").filter(|v| !is_dash(v)),
            vdevs: Vec::new(),
        });
    }
    Ok(out)
}

/// Parses `zfs list -Hp -o name,avail,used,usedsnap,usedds` (what the runner asks for), or
/// the default `zfs list -H` columns `name used avail refer mountpoint`, told apart by the
/// last column being a mount point (`/…`, `none`, `legacy`).
pub fn parse_dataset_list(text: &str) -> Result<Vec<DatasetListEntry>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let row = Row {
            number: i + 1,
            text: line,
        };
        let f = fields(line);
        if f.len() != 5 {
            return Err(row.unknown_columns(f.len(), "zfs list -H"));
        }
        let last = f[4];
        let default_layout = last.starts_with('/') || last == "none" || last == "legacy";
        out.push(if default_layout {
            DatasetListEntry {
                name: f[0].to_owned(),
                used_bytes: row.size("used", f[1])?,
                available_bytes: row.size("avail", f[2])?,
                referenced_bytes: row.size("refer", f[3])?,
                mountpoint: Some(last.to_owned()),
                used_by_snapshots_bytes: None,
                used_by_dataset_bytes: None,
            }
        } else {
            DatasetListEntry {
                name: f[0].to_owned(),
                available_bytes: row.size("avail", f[1])?,
                used_bytes: row.size("used", f[2])?,
                used_by_snapshots_bytes: row.size("usedsnap", f[3])?,
                used_by_dataset_bytes: row.size("usedds", f[4])?,
                referenced_bytes: None,
                mountpoint: None,
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_default_layout_with_checkpoint_column() {
        let l = parse_list("tank\t1000\t600\t400\t-\t-\t12\t60\t1.00\tDEGRADED\t/mnt\n").unwrap();
        assert_eq!(l[0].capacity_percent, Some(60));
        assert_eq!(l[0].health, Some(VdevState::Degraded));
        assert_eq!(l[0].altroot.as_deref(), Some("/mnt"));
        assert_eq!(l[0].checkpoint_bytes, None);
    }

    #[test]
    fn solaris_layout_and_errors() {
        let l = parse_list("rpool 68G 20G 48G 29% 1.00x ONLINE -\n").unwrap();
        assert_eq!(l[0].capacity_percent, Some(29));
        assert_eq!(l[0].health, Some(VdevState::Online));
        let err = parse_list("tank\tONLINE\tbig\t1\t1\t1\t1\t1.00\n").unwrap_err();
        assert_eq!(err.to_string(), "line 1: size value \"big\" is not a size");
        assert!(matches!(
            parse_list("a b c\n"),
            Err(ParseError::UnknownColumns { count: 3, .. })
        ));
        assert!(parse_list("").unwrap().is_empty());
    }

    #[test]
    fn default_zfs_list_layout() {
        let d = parse_dataset_list("tank\t100\t200\t50\t/tank\n").unwrap();
        assert_eq!(d[0].mountpoint.as_deref(), Some("/tank"));
        assert_eq!(d[0].used_bytes, Some(100));
        assert_eq!(d[0].available_bytes, Some(200));
    }
}
