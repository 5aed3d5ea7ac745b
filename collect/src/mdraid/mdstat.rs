//! `/proc/mdstat`.
//!
//! Shape: a `Personalities :` line, then per array a header `mdN : active raid1 sda1[0] …`
//! followed by detail lines (blocks/layout, bitmap, sync progress), then `unused devices:`.
//! Detail lines are recognised by what they say, not by indentation: real captures indent
//! them by 2, 5, 6, 7 spaces, tabs, or (Synology) not at all.
//!
//! Accepted noise: an echoed `cat /proc/mdstat` prompt line, old kernels' `read_ahead` and
//! `Event:` lines, a missing `Personalities` line or `unused devices:` trailer (fragments),
//! no trailing newline, trailing (also non-breaking) spaces, and a status line wrapped onto
//! the next line (a capture pasted through a mail client or a narrow terminal).
//!
//! One unreadable line never throws the file away: it becomes a notice naming the line on
//! the array it belongs to (or on the file, before any array), the rest is kept, and the
//! array's verdict cannot be "healthy" (`MdArray::is_partial`). The file is an error only
//! when nothing in it is recognisable as mdstat, or when an array header has no state word
//! (md prints `active` or `inactive`; without it there is no record to keep).

use super::error::ParseError;
use super::model::{
    Bitmap, MdArray, Mdstat, Member, RaidLevel, ReadOnly, SyncAction, SyncState, SyncStatus,
};

/// Parses the whole of `/proc/mdstat`.
pub fn parse_mdstat(text: &str) -> Result<Mdstat, ParseError> {
    let mut out = Mdstat {
        personalities: None,
        arrays: Vec::new(),
        unused_devices: None,
        notices: Vec::new(),
    };
    let mut any = false;
    // The first line outside any array that could not be read: the error when nothing else
    // in the file turns out to be mdstat.
    let mut first_stray: Option<ParseError> = None;
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let line = raw.trim_end_matches(char::is_whitespace);
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let first_content = !any;
        any = true;
        if let Some(rest) = t.strip_prefix("Personalities") {
            let rest = rest.trim_start().trim_start_matches(':');
            out.personalities = Some(
                rest.split_whitespace()
                    .map(|p| p.trim_matches(['[', ']']).to_owned())
                    .collect(),
            );
        } else if let Some(rest) = t.strip_prefix("unused devices:") {
            out.unused_devices = Some(
                rest.split_whitespace()
                    .filter(|d| *d != "<none>")
                    .map(str::to_owned)
                    .collect(),
            );
        } else if t.starts_with("read_ahead") || t.starts_with("Event:") {
            // Old kernels print these global lines; they say nothing about health.
        } else if let Some((name, rest)) = array_header(t) {
            let mut array = parse_header(name, rest, number, line)?;
            // Unreadable lines before this array may be part of it (a header wrapped or
            // garbled): the first array after them carries them, so they reach the report.
            array.notices.splice(0..0, out.notices.drain(..));
            out.arrays.push(array);
        } else if first_content && t.ends_with("/proc/mdstat") {
            // The shell prompt and command of a pasted capture.
        } else if let Some(array) = out.arrays.last_mut() {
            if let Err(e) = parse_detail_line(array, t, number) {
                array.notices.push(e.to_string());
            }
        } else {
            let e = ParseError::UnexpectedLine {
                line: number,
                text: line.to_owned(),
                context: "before any array",
            };
            out.notices.push(e.to_string());
            first_stray.get_or_insert(e);
        }
    }
    if !any {
        return Err(ParseError::Empty);
    }
    let recognised =
        out.personalities.is_some() || !out.arrays.is_empty() || out.unused_devices.is_some();
    if let (false, Some(e)) = (recognised, first_stray) {
        return Err(e);
    }
    link_containers(&mut out.arrays);
    Ok(out)
}

/// Fills `container` on member arrays and `member_arrays` on their firmware-RAID container,
/// so each record says where it belongs whichever order the kernel listed them in.
fn link_containers(arrays: &mut [MdArray]) {
    let links: Vec<(String, String)> = arrays
        .iter()
        .filter_map(|a| Some((a.container_of_superblock()?.to_owned(), a.name.clone())))
        .collect();
    for array in arrays.iter_mut() {
        array.container = array.container_of_superblock().map(str::to_owned);
        if array.container_format().is_some() {
            array.member_arrays = links
                .iter()
                .filter(|(container, _)| *container == array.name)
                .map(|(_, member)| member.clone())
                .collect();
        }
    }
}

/// `md0 : active …` → (`md0`, `active …`).
fn array_header(t: &str) -> Option<(&str, &str)> {
    let (name, rest) = t.split_once(" : ")?;
    let name = name.trim();
    let ok = name.starts_with("md")
        && !name.contains(char::is_whitespace)
        && name.len() > 2
        && name[2..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then_some((name, rest.trim()))
}

fn parse_header(name: &str, rest: &str, line: usize, text: &str) -> Result<MdArray, ParseError> {
    let mut tokens = rest.split_whitespace().peekable();
    let active = match tokens.next() {
        Some("active") => true,
        Some("inactive") => false,
        _ => {
            return Err(ParseError::MissingArrayState {
                line,
                array: name.to_owned(),
                text: text.to_owned(),
            });
        }
    };
    let mut read_only = ReadOnly::No;
    let mut level = None;
    let mut members = Vec::new();
    let mut notices = Vec::new();
    let mut seen_member = false;
    for token in tokens {
        match token {
            "(read-only)" => read_only = ReadOnly::ReadOnly,
            "(auto-read-only)" => read_only = ReadOnly::AutoReadOnly,
            t if !t.contains('[') && !seen_member && level.is_none() => {
                level = Some(RaidLevel::from_word(t));
            }
            t => {
                seen_member = true;
                match parse_member(t, line) {
                    Ok(m) => members.push(m),
                    Err(e) => notices.push(e.to_string()),
                }
            }
        }
    }
    Ok(MdArray {
        name: name.to_owned(),
        active,
        read_only,
        level,
        members,
        blocks: None,
        superblock: None,
        chunk_kib: None,
        algorithm: None,
        layout: Vec::new(),
        raid_disks: None,
        working_disks: None,
        slot_map: None,
        bitmap: None,
        sync: None,
        container: None,
        member_arrays: Vec::new(),
        notices,
    })
}

/// `sda1[3]`, `sdc1[1](F)`, `sdd1[10](S)`, `sdb[2](W)(R)`.
fn parse_member(token: &str, line: usize) -> Result<Member, ParseError> {
    let bad = || ParseError::BadMember {
        line,
        text: token.to_owned(),
    };
    let (device, rest) = token.split_once('[').ok_or_else(bad)?;
    let (index, mut flags) = rest.split_once(']').ok_or_else(bad)?;
    if device.is_empty() {
        return Err(bad());
    }
    let mut m = Member {
        device: device.to_owned(),
        index: index.parse().map_err(|_| bad())?,
        faulty: false,
        spare: false,
        write_mostly: false,
        replacement: false,
        journal: false,
    };
    while !flags.is_empty() {
        let flag = match flags.get(..3) {
            Some(f) => f,
            None => return Err(bad()),
        };
        match flag {
            "(F)" => m.faulty = true,
            "(S)" => m.spare = true,
            "(W)" => m.write_mostly = true,
            "(R)" => m.replacement = true,
            "(J)" => m.journal = true,
            _ => return Err(bad()),
        }
        flags = &flags[3..];
    }
    Ok(m)
}

fn parse_detail_line(a: &mut MdArray, t: &str, line: usize) -> Result<(), ParseError> {
    let bad = |field, text: &str, expected| ParseError::BadValue {
        line,
        field,
        text: text.to_owned(),
        expected,
    };
    if let Some(rest) = t.strip_prefix("bitmap:") {
        a.bitmap = Some(
            parse_bitmap(rest)
                .ok_or_else(|| bad("bitmap line", t, "`N/M pages [NKB], NKB chunk`"))?,
        );
        return Ok(());
    }
    if let Some((word, state)) = t.split_once('=') {
        let word = word.trim();
        if let (Some(action), "DELAYED" | "PENDING") = (SyncAction::from_word(word), state.trim()) {
            a.sync = Some(SyncStatus {
                action,
                state: if state.trim() == "DELAYED" {
                    SyncState::Delayed
                } else {
                    SyncState::Pending
                },
                percent: None,
                done: None,
                total: None,
                finish_minutes: None,
                speed_kib_per_sec: None,
            });
            return Ok(());
        }
    }
    if t.starts_with('[')
        || SyncAction::from_word(t.split_whitespace().next().unwrap_or("")).is_some()
    {
        a.sync = Some(parse_progress(t).ok_or_else(|| {
            bad(
                "progress line",
                t,
                "`action = P% (done/total) finish=Nmin speed=NK/sec`",
            )
        })?);
        return Ok(());
    }
    let mut tokens = t.split_whitespace().peekable();
    if let (Some(n), Some(&"blocks")) = (tokens.next(), tokens.peek()) {
        match n.parse() {
            Ok(blocks) => a.blocks = Some(blocks),
            Err(_) => a.notices.push(bad("blocks", n, "number").to_string()),
        }
        tokens.next();
        status_tokens(a, tokens, line);
        return Ok(());
    }
    // The rest of a status line wrapped onto this one: it starts where a status line's
    // later words do.
    if t.split_whitespace().next().is_some_and(starts_status) {
        status_tokens(a, t.split_whitespace().peekable(), line);
        return Ok(());
    }
    Err(ParseError::UnexpectedLine {
        line,
        text: t.to_owned(),
        context: "in an array's detail lines",
    })
}

/// Whether `token` can open the remainder of a wrapped status line: `[2/2]`, `[UU]`,
/// `super`, `level`, `algorithm`, `64k` (chunk or rounding).
fn starts_status(token: &str) -> bool {
    let token = token.trim_end_matches(',');
    token.starts_with('[')
        || matches!(token, "super" | "level" | "algorithm")
        || token
            .strip_suffix(['k', 'K'])
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The words after `N blocks` (the personality's status): superblock, level, chunk,
/// algorithm, `[n/m]`, the slot map, layout words. A word that cannot be read becomes a
/// notice and the others are still taken.
fn status_tokens<'a>(
    a: &mut MdArray,
    mut tokens: std::iter::Peekable<impl Iterator<Item = &'a str>>,
    line: usize,
) {
    let bad = |field, text: &str, expected| {
        ParseError::BadValue {
            line,
            field,
            text: text.to_owned(),
            expected,
        }
        .to_string()
    };
    while let Some(tok) = tokens.next() {
        let tok = tok.trim_end_matches(',');
        match tok {
            "super" => a.superblock = tokens.next().map(str::to_owned),
            "level" => {
                if let Some(l) = tokens.next() {
                    let l = l.trim_end_matches(',');
                    if a.level.is_none() {
                        a.level = Some(RaidLevel::from_word(l));
                    }
                }
            }
            "algorithm" => {
                let v = tokens.next().unwrap_or("");
                match v.parse() {
                    Ok(n) => a.algorithm = Some(n),
                    Err(_) => a.notices.push(bad("algorithm", v, "number")),
                }
            }
            t if t.starts_with('[') && t.contains('/') => {
                let parsed = t
                    .trim_matches(['[', ']'])
                    .split_once('/')
                    .and_then(|(n, m)| Some((n.parse().ok()?, m.parse().ok()?)));
                match parsed {
                    Some((n, m)) => {
                        a.raid_disks = Some(n);
                        a.working_disks = Some(m);
                    }
                    None => a.notices.push(bad("[n/m]", t, "`[n/m]`")),
                }
            }
            t if t.starts_with('[') => {
                let map = t.trim_matches(['[', ']']);
                if map.chars().all(|c| c == 'U' || c == '_') {
                    a.slot_map = Some(map.to_owned());
                } else {
                    a.notices.push(bad("status map", t, "`[U_]` map"));
                }
            }
            t if t.ends_with('k') || t.ends_with('K') => {
                let next = tokens.peek().map(|n| n.trim_end_matches(','));
                if matches!(next, Some("chunk" | "chunks")) {
                    tokens.next();
                    match t[..t.len() - 1].parse() {
                        Ok(n) => a.chunk_kib = Some(n),
                        Err(_) => a.notices.push(bad("chunk", t, "size in KiB")),
                    }
                } else if next == Some("rounding") {
                    tokens.next();
                    a.layout.push(format!("{t} rounding"));
                } else {
                    a.layout.push(t.to_owned());
                }
            }
            other => a.layout.push(other.to_owned()),
        }
    }
}

/// ` 4/15 pages [16KB], 65536KB chunk[, file: /x]`
fn parse_bitmap(rest: &str) -> Option<Bitmap> {
    let mut parts = rest.split(',').map(str::trim);
    let pages = parts.next()?;
    let (used_total, mem) = pages.split_once(" pages")?;
    let (used, total) = used_total.trim().split_once('/')?;
    let memory = mem.trim().trim_matches(['[', ']']).strip_suffix("KB")?;
    let chunk = parts.next()?.strip_suffix(" chunk")?.strip_suffix("KB")?;
    let file = parts
        .next()
        .and_then(|f| f.strip_prefix("file:"))
        .map(|f| f.trim().to_owned());
    Some(Bitmap {
        pages_used: used.parse().ok()?,
        pages_total: total.parse().ok()?,
        memory_kib: memory.parse().ok()?,
        chunk_kib: chunk.parse().ok()?,
        file,
    })
}

/// `[=>....]  recovery =  8.5% (16775552/195310144) finish=17.0min speed=259783K/sec`
fn parse_progress(t: &str) -> Option<SyncStatus> {
    let t = match t.find(']') {
        Some(i) if t.starts_with('[') => &t[i + 1..],
        _ => t,
    };
    let (action, rest) = t.split_once('=')?;
    let action = SyncAction::from_word(action.trim())?;
    let mut s = SyncStatus {
        action,
        state: SyncState::Running,
        percent: None,
        done: None,
        total: None,
        finish_minutes: None,
        speed_kib_per_sec: None,
    };
    for tok in rest.split_whitespace() {
        if let Some(p) = tok.strip_suffix('%') {
            s.percent = p.parse().ok().filter(|v: &f64| v.is_finite());
        } else if let Some(inner) = tok.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
            let (d, tot) = inner.split_once('/')?;
            s.done = Some(d.parse().ok()?);
            s.total = Some(tot.parse().ok()?);
        } else if let Some(f) = tok.strip_prefix("finish=") {
            s.finish_minutes = f
                .strip_suffix("min")?
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite());
        } else if let Some(sp) = tok.strip_prefix("speed=") {
            s.speed_kib_per_sec = Some(sp.strip_suffix("K/sec")?.parse().ok()?);
        }
    }
    s.percent?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_flags() {
        let m = parse_member("sdb[2](W)(R)", 1).unwrap();
        assert!(m.write_mostly && m.replacement && !m.faulty);
        assert_eq!(m.index, 2);
        for bad in ["sdb", "sdb[x]", "[1]", "sdb[1](Q)", "sdb[1](F"] {
            assert!(
                matches!(
                    parse_member(bad, 7),
                    Err(ParseError::BadMember { line: 7, .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn raid10_layout_and_bitmap_file() {
        let s = parse_mdstat(
            "Personalities : [raid10]\nmd5 : active raid10 sdd[3] sdc[2] sdb[1] sda[0]\n      1953260544 blocks super 1.2 512K chunks 2 near-copies [4/4] [UUUU]\n      bitmap: 0/15 pages [0KB], 65536KB chunk, file: /var/md5.bitmap\n",
        )
        .unwrap();
        let a = &s.arrays[0];
        assert_eq!(a.level, Some(RaidLevel::Raid10));
        assert_eq!(a.chunk_kib, Some(512));
        assert_eq!(a.layout, ["2", "near-copies"]);
        assert_eq!(
            a.bitmap.as_ref().unwrap().file.as_deref(),
            Some("/var/md5.bitmap")
        );
        assert_eq!(s.unused_devices, None);
    }

    #[test]
    fn errors_are_specific() {
        assert!(matches!(parse_mdstat(" \n"), Err(ParseError::Empty)));
        let e = parse_mdstat("hello\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: unexpected text \"hello\" before any array"
        );
        let e = parse_mdstat("md0 : sleeping raid1 sda[0]\n").unwrap_err();
        assert!(
            matches!(e, ParseError::MissingArrayState { line: 1, .. }),
            "{e}"
        );
    }

    #[test]
    fn an_unreadable_line_is_a_notice_on_its_array_and_the_rest_is_kept() {
        let s = parse_mdstat("md0 : active raid1 sda[0]\n  12 blocks [2/x] [UU]\n").unwrap();
        let a = &s.arrays[0];
        assert_eq!((a.blocks, a.slot_map.as_deref()), (Some(12), Some("UU")));
        assert_eq!(a.notices, ["line 2: [n/m] \"[2/x]\" is not a `[n/m]`"]);
        let s = parse_mdstat(
            "Personalities : [raid1]\nstray words\nmd0 : active raid1 sda[0]\n  what is this\n  12 blocks [1/1] [U]\n",
        )
        .unwrap();
        // The stray line before md0 is reported with md0.
        assert!(s.notices.is_empty());
        let a = &s.arrays[0];
        assert_eq!(a.raid_disks, Some(1));
        assert_eq!(
            a.notices,
            [
                "line 2: unexpected text \"stray words\" before any array",
                "line 4: unexpected text \"what is this\" in an array's detail lines"
            ]
        );
        // After the last array (and with no array at all) it stays on the file.
        let s = parse_mdstat("Personalities : [raid1]\nunused devices: <none>\nstray\n").unwrap();
        assert_eq!(
            s.notices,
            ["line 3: unexpected text \"stray\" before any array"]
        );
    }

    #[test]
    fn a_status_line_wrapped_onto_the_next_is_joined() {
        let s = parse_mdstat(
            "md124 : active raid5 sdd[3] sdb[2] sda[1] sde[0]\n      2831155200 blocks super external:/md126/0 level 5,\n 128k chunk, algorithm 0 [4/4] [UUUU]\n",
        )
        .unwrap();
        let a = &s.arrays[0];
        assert!(a.notices.is_empty(), "{:?}", a.notices);
        assert_eq!(a.chunk_kib, Some(128));
        assert_eq!(a.algorithm, Some(0));
        assert_eq!((a.raid_disks, a.working_disks), (Some(4), Some(4)));
        assert_eq!(a.slot_map.as_deref(), Some("UUUU"));
        assert_eq!(a.container.as_deref(), Some("md126"));
    }
}
