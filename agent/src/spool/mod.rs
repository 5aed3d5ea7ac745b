//! The disk spool: every report is written here before it is sent, and removed only when the
//! controller acknowledged it — so nothing collected is lost to an outage, a crash or a reboot.
//!
//! Layout (`<state_dir>/spool/`, 0700):
//! * `stream.json` — the spool's stream id and the next sequence number. One stream for the
//!   agent's whole life (a new one only if this file is lost or damaged), so the controller's
//!   `(stream, seq)` idempotency covers resends across restarts.
//! * `<seq>.rpt` — one report: `UFSP`, format version, SHA-256 of the payload, payload length,
//!   payload (postcard of the wire `Report`, original collection time included). Written to a
//!   temporary file, fsynced, renamed, directory fsynced.
//!
//! Delivery is strictly in order (the controller applies a stream's reports in `seq` order and
//! treats anything at or below its cursor as a duplicate). A torn or damaged file is renamed
//! `<seq>.corrupt`, counted as dropped and reported — never a crash loop.
//!
//! When the disk cannot take a report (full, read-only, failing), the spool first frees room by
//! dropping its own oldest history, and if the write still fails keeps the report in memory
//! (at most [`MAX_MEMORY_BYTES`]) under a stream id of its own that is never written down: it
//! is delivered like any other, and lost only if the agent stops before it is — numbers of the
//! on-disk stream are never handed out unless they were saved, so nothing is ever renumbered.
//!
//! Bounded by size and age ([`SpoolOptions`]): when over a bound, the oldest report that a
//! newer one of the same kind supersedes is dropped first (history goes, the latest state of
//! every source stays); only when every kind is down to its latest report does age or size
//! drop those too. Every drop is counted ([`Dropped`]) for the log and the next status report.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use unity_pki::files::sync_parent;
use unity_protocol::latest::{Report, ReportBody};
use uuid::Uuid;

const MAGIC: &[u8; 4] = b"UFSP";
/// When a report was last acknowledged (Unix ms, text).
const LAST_DELIVERED: &str = "last-delivered";

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// What `unity-agent status` shows of a spool directory, read without opening it for writing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolSummary {
    pub reports: usize,
    pub bytes: u64,
    pub corrupt: usize,
    pub last_delivered_ms: Option<i64>,
}

/// Reads the spool directory's summary (the running agent may be writing it meanwhile).
pub fn summary(dir: &Path) -> SpoolSummary {
    let mut out = SpoolSummary {
        last_delivered_ms: fs::read_to_string(dir.join(LAST_DELIVERED))
            .ok()
            .and_then(|t| t.trim().parse().ok()),
        ..SpoolSummary::default()
    };
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("rpt") => {
                out.reports += 1;
                out.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
            Some("corrupt") => out.corrupt += 1,
            _ => {}
        }
    }
    out
}
const FORMAT: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 32 + 4;
/// A report larger than this is not spooled (the wire limit is 4 MiB).
const MAX_REPORT: usize = unity_protocol::MAX_FRAME_LEN as usize;

/// How much the spool may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolOptions {
    pub max_bytes: u64,
    pub max_age: Duration,
}

impl Default for SpoolOptions {
    /// 64 MiB and 7 days: a week of a busy host's reports (facts every minute, storage and
    /// inventory every five) is ~40 MiB.
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("could not write the spool at {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not read the spool at {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("report could not be encoded")]
    Encode(#[source] postcard::Error),
    #[error("the spool's stream file could not be encoded")]
    Json(#[source] serde_json::Error),
    #[error("report of {0} bytes is larger than the wire allows")]
    TooLarge(usize),
}

/// What a report is about: the unit of "latest state" the spool never drops first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    Facts,
    Storage,
    Containers,
    Databases,
    JobEvent,
    JobResult,
    Status,
    Packages,
    Labels,
}

impl Kind {
    pub fn of(body: &ReportBody) -> Self {
        match body {
            ReportBody::HostFacts(_) => Kind::Facts,
            ReportBody::Storage(_) => Kind::Storage,
            ReportBody::Containers(_) => Kind::Containers,
            ReportBody::Databases(_) => Kind::Databases,
            ReportBody::JobEvent(_) => Kind::JobEvent,
            ReportBody::JobResult(_) => Kind::JobResult,
            ReportBody::AgentStatus(_) => Kind::Status,
            ReportBody::Packages(_) => Kind::Packages,
            ReportBody::Labels(_) => Kind::Labels,
        }
    }

    /// Whether a newer report of the kind makes an older one mere history.
    fn supersedes(self) -> bool {
        !matches!(self, Kind::JobEvent | Kind::JobResult)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Facts => "host facts",
            Kind::Storage => "storage",
            Kind::Containers => "containers",
            Kind::Databases => "databases",
            Kind::JobEvent => "job event",
            Kind::JobResult => "job result",
            Kind::Status => "agent status",
            Kind::Packages => "packages",
            Kind::Labels => "labels",
        }
    }
}

/// Reports kept in memory while the disk cannot take them: 8 MiB is hours of a busy host's
/// latest states, and small beside the agent's budget.
pub const MAX_MEMORY_BYTES: u64 = 8 * 1024 * 1024;
/// How many history files the spool gives up to make room on a full disk before it falls
/// back to memory for one report.
const ROOM_ATTEMPTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    stream_id: Uuid,
    seq: u64,
    /// Held in [`MemoryStream`], not in a file.
    in_memory: bool,
    kind: Kind,
    collected_at_ms: i64,
    bytes: u64,
}

/// Reports the spool had to give up, since the agent started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    pub reports: u64,
    pub bytes: u64,
    /// Of those, damaged files found on disk.
    pub corrupt: u64,
    pub by_kind: BTreeMap<Kind, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StreamFile {
    stream_id: Uuid,
    next_seq: u64,
}

/// Reports the disk could not take, numbered on a stream of their own that lives only as long
/// as the process (a restart cannot reuse its numbers because it cannot remember them).
#[derive(Debug)]
struct MemoryStream {
    stream_id: Uuid,
    next_seq: u64,
    reports: BTreeMap<u64, Vec<u8>>,
    bytes: u64,
    /// Reports ever held here, since the agent started.
    held: u64,
}

/// The on-disk queue.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    stream_id: Uuid,
    next_seq: u64,
    queue: VecDeque<Meta>,
    bytes: u64,
    options: SpoolOptions,
    dropped: Dropped,
    memory: MemoryStream,
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Write {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` durably: temp file, fsync, rename, directory fsync.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(write_err(&tmp))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(write_err(&tmp));
    drop(file);
    if let Err(error) = written {
        // A half-written temporary file holds the space a full disk lacks.
        let _ = fs::remove_file(&tmp);
        return Err(error);
    }
    fs::rename(&tmp, path).map_err(write_err(path))?;
    sync_parent(path).map_err(write_err(path))
}

impl SpoolError {
    /// The filesystem is out of space or quota: freeing some of our own files may help.
    fn is_out_of_space(&self) -> bool {
        // ENOSPC and EDQUOT on Linux.
        matches!(self, SpoolError::Write { source, .. }
            if matches!(source.raw_os_error(), Some(28) | Some(122)))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    unity_protocol::envelope::sha256(bytes)
}

/// A spool file's bytes for `report`.
pub fn encode(report: &Report) -> Result<Vec<u8>, SpoolError> {
    let payload = postcard::to_allocvec(report).map_err(SpoolError::Encode)?;
    if payload.len() > MAX_REPORT {
        return Err(SpoolError::TooLarge(payload.len()));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&sha256(&payload));
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The report in a spool file's bytes, or why they are not one (pure: fuzzed and tested
/// on torn writes).
pub fn decode(bytes: &[u8]) -> Result<Report, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes, shorter than the header", bytes.len()));
    }
    if &bytes[..4] != MAGIC {
        return Err("not a spool file (magic)".into());
    }
    if bytes[4] != FORMAT {
        return Err(format!("spool format {} is not {FORMAT}", bytes[4]));
    }
    let digest = &bytes[5..37];
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[37..41]);
    let len = u32::from_be_bytes(len) as usize;
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != len {
        return Err(format!(
            "payload is {} bytes, the header says {len} (torn write)",
            payload.len()
        ));
    }
    if sha256(payload) != digest {
        return Err("payload does not match its checksum".into());
    }
    unity_protocol::decode_payload(payload).map_err(|e| e.to_string())
}

impl Spool {
    /// Opens (creating) the spool in `dir`. Damaged files are set aside and returned as
    /// problems for the log; they count as dropped.
    pub fn open(dir: &Path, options: SpoolOptions) -> Result<(Self, Vec<String>), SpoolError> {
        unity_pki::files::create_private_dir(dir).map_err(|e| SpoolError::Write {
            path: e.path,
            source: e.source,
        })?;
        let mut problems = Vec::new();
        let stream_path = dir.join("stream.json");
        let stream = match fs::read(&stream_path) {
            Ok(bytes) => match serde_json::from_slice::<StreamFile>(&bytes) {
                Ok(stream) => Some(stream),
                Err(e) => {
                    problems.push(format!(
                        "{} is damaged ({e}); the spool starts a new stream",
                        stream_path.display()
                    ));
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(SpoolError::Read {
                    path: stream_path,
                    source,
                });
            }
        };
        let mut dropped = Dropped::default();
        let mut queue = Vec::new();
        let listing = fs::read_dir(dir).map_err(|source| SpoolError::Read {
            path: dir.to_owned(),
            source,
        })?;
        for entry in listing.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                // An append that never finished: nothing was acknowledged for it.
                let _ = fs::remove_file(&path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rpt") {
                continue;
            }
            let bytes = fs::read(&path).map_err(|source| SpoolError::Read {
                path: path.clone(),
                source,
            })?;
            match decode(&bytes) {
                Ok(report) => queue.push(Meta {
                    stream_id: report.stream_id,
                    seq: report.seq,
                    in_memory: false,
                    kind: Kind::of(&report.body),
                    collected_at_ms: report.collected_at_ms,
                    bytes: bytes.len() as u64,
                }),
                Err(reason) => {
                    let aside = path.with_extension("corrupt");
                    let _ = fs::rename(&path, &aside);
                    problems.push(format!(
                        "spooled report {} is damaged ({reason}); set aside as {}",
                        path.display(),
                        aside.display()
                    ));
                    dropped.reports += 1;
                    dropped.corrupt += 1;
                    dropped.bytes += bytes.len() as u64;
                }
            }
        }
        queue.sort_by_key(|m| m.seq);
        let highest = queue.last().map_or(0, |m| m.seq);
        let (stream_id, next_seq) = match stream {
            Some(s) => (s.stream_id, s.next_seq.max(highest + 1)),
            // A new stream: whatever files remain keep their numbers, new ones follow them.
            None => (Uuid::new_v4(), highest + 1),
        };
        let spool = Self {
            dir: dir.to_owned(),
            stream_id,
            next_seq,
            bytes: queue.iter().map(|m| m.bytes).sum(),
            queue: queue.into(),
            options,
            dropped,
            memory: MemoryStream {
                stream_id: Uuid::new_v4(),
                next_seq: 1,
                reports: BTreeMap::new(),
                bytes: 0,
                held: 0,
            },
        };
        if spool.queue.iter().any(|m| m.seq >= spool.next_seq) || !stream_path.exists() {
            spool.save_stream()?;
        }
        Ok((spool, problems))
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.rpt"))
    }

    fn save_stream(&self) -> Result<(), SpoolError> {
        let json = serde_json::to_vec(&StreamFile {
            stream_id: self.stream_id,
            next_seq: self.next_seq,
        })
        .map_err(SpoolError::Json)?;
        write_durably(&self.dir.join("stream.json"), &json)
    }

    pub fn stream_id(&self) -> Uuid {
        self.stream_id
    }

    /// Reports waiting, and their bytes (those held in memory included).
    pub fn depth(&self) -> (usize, u64) {
        (self.queue.len(), self.bytes)
    }

    /// Reports waiting in memory because the disk could not take them, and how many ever were.
    pub fn in_memory(&self) -> (usize, u64) {
        (self.memory.reports.len(), self.memory.held)
    }

    /// Collection time of the oldest report waiting.
    pub fn oldest_ms(&self) -> Option<i64> {
        self.queue.iter().map(|m| m.collected_at_ms).min()
    }

    pub fn dropped(&self) -> &Dropped {
        &self.dropped
    }

    /// Spools `body` collected at `collected_at_ms` (durably, before it may be sent), then
    /// applies the bounds at `now_ms`. Returns what the bounds (or making room on a full disk)
    /// dropped. A disk that cannot take the report is not an error: the report is kept in
    /// memory (see the module documentation).
    pub fn append(
        &mut self,
        body: ReportBody,
        collected_at_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<(u64, Kind)>, SpoolError> {
        let mut report = Report {
            stream_id: self.stream_id,
            seq: self.next_seq,
            collected_at_ms,
            body,
        };
        let bytes = encode(&report)?;
        let kind = Kind::of(&report.body);
        let mut dropped = Vec::new();
        let mut written = self.write_report(report.seq, &bytes);
        let mut attempts = 0;
        while matches!(&written, Err(e) if e.is_out_of_space()) && attempts < ROOM_ATTEMPTS {
            // Our own history is the likeliest thing filling the disk, and the cheapest to lose.
            let Some(victim) = self.oldest_history_on_disk() else {
                break;
            };
            dropped.extend(self.drop_at(victim));
            attempts += 1;
            written = self.write_report(report.seq, &bytes);
        }
        match written {
            Ok(()) => self.push(Meta {
                stream_id: report.stream_id,
                seq: report.seq,
                in_memory: false,
                kind,
                collected_at_ms,
                bytes: bytes.len() as u64,
            }),
            Err(error) => {
                report.stream_id = self.memory.stream_id;
                report.seq = self.memory.next_seq;
                let bytes = encode(&report)?;
                self.memory.next_seq += 1;
                self.memory.held += 1;
                tracing::warn!(kind = kind.as_str(), error = %crate::error_chain(&error),
                    in_memory = self.memory.reports.len() + 1,
                    "spool cannot write to disk; report kept in memory until delivered (lost if the agent stops first)");
                self.memory.bytes += bytes.len() as u64;
                self.push(Meta {
                    stream_id: report.stream_id,
                    seq: report.seq,
                    in_memory: true,
                    kind,
                    collected_at_ms,
                    bytes: bytes.len() as u64,
                });
                self.memory.reports.insert(report.seq, bytes);
            }
        }
        dropped.extend(self.enforce(now_ms));
        Ok(dropped)
    }

    /// Saves the stream file, then the report's file. The number is saved first: a crash (or
    /// a full disk) after that wastes one, never reuses one; and a number whose saving failed
    /// is never used, so the memory fallback cannot collide with a later restart.
    fn write_report(&mut self, seq: u64, bytes: &[u8]) -> Result<(), SpoolError> {
        debug_assert_eq!(seq, self.next_seq);
        self.next_seq = seq + 1;
        if let Err(error) = self.save_stream() {
            self.next_seq = seq;
            return Err(error);
        }
        write_durably(&self.path(seq), bytes)
    }

    fn push(&mut self, meta: Meta) {
        self.bytes += meta.bytes;
        self.queue.push_back(meta);
    }

    /// The oldest on-disk report a newer one of its kind supersedes.
    fn oldest_history_on_disk(&self) -> Option<usize> {
        (0..self.queue.len()).find(|&i| !self.queue[i].in_memory && self.superseded(i))
    }

    /// Whether a report queued after the one at `index` (the queue is in collection order,
    /// across the disk and memory streams) makes it mere history.
    fn superseded(&self, index: usize) -> bool {
        let kind = self.queue[index].kind;
        kind.supersedes() && self.queue.iter().skip(index + 1).any(|n| n.kind == kind)
    }

    /// Drops the report at `index` (file or memory), counted; returns what went.
    fn drop_at(&mut self, index: usize) -> Option<(u64, Kind)> {
        let meta = self.queue.remove(index)?;
        self.forget(&meta);
        self.count_drop(meta, false);
        Some((meta.seq, meta.kind))
    }

    /// Releases what `meta` holds: its file or its memory.
    fn forget(&mut self, meta: &Meta) {
        self.bytes = self.bytes.saturating_sub(meta.bytes);
        if meta.in_memory {
            if self.memory.reports.remove(&meta.seq).is_some() {
                self.memory.bytes = self.memory.bytes.saturating_sub(meta.bytes);
            }
        } else {
            let _ = fs::remove_file(self.path(meta.seq));
        }
    }

    /// The oldest report waiting. A file damaged since it was written is set aside (counted
    /// as dropped) and the next one is returned.
    pub fn front(&mut self) -> Result<Option<Report>, SpoolError> {
        while let Some(meta) = self.queue.front().copied() {
            if meta.in_memory {
                let decoded = self.memory.reports.get(&meta.seq).map(|b| decode(b));
                match decoded {
                    Some(Ok(report)) => return Ok(Some(report)),
                    // Encoded by this process moments ago: only a bug gets here.
                    Some(Err(reason)) => {
                        tracing::error!(%reason, "report held in memory does not decode; dropped")
                    }
                    None => tracing::error!(seq = meta.seq, "report held in memory vanished"),
                }
                self.queue.pop_front();
                self.forget(&meta);
                self.count_drop(meta, true);
                continue;
            }
            let path = self.path(meta.seq);
            match fs::read(&path) {
                Ok(bytes) => match decode(&bytes) {
                    Ok(report) => return Ok(Some(report)),
                    Err(reason) => {
                        tracing::error!(path = %path.display(), %reason,
                            "spooled report damaged; set aside");
                        let _ = fs::rename(&path, path.with_extension("corrupt"));
                        self.forget_front(true);
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::error!(path = %path.display(), "spooled report vanished");
                    self.forget_front(true);
                }
                Err(source) => return Err(SpoolError::Read { path, source }),
            }
        }
        Ok(None)
    }

    fn forget_front(&mut self, as_dropped: bool) {
        if let Some(meta) = self.queue.pop_front() {
            self.bytes = self.bytes.saturating_sub(meta.bytes);
            if as_dropped {
                self.count_drop(meta, true);
            }
        }
    }

    fn count_drop(&mut self, meta: Meta, corrupt: bool) {
        self.dropped.reports += 1;
        self.dropped.bytes += meta.bytes;
        if corrupt {
            self.dropped.corrupt += 1;
        }
        *self.dropped.by_kind.entry(meta.kind).or_default() += 1;
    }

    /// The controller acknowledged (or rejected for good) report `seq` of `stream_id`: forget
    /// it.
    pub fn remove(&mut self, stream_id: Uuid, seq: u64) -> Result<(), SpoolError> {
        let Some(index) = self
            .queue
            .iter()
            .position(|m| m.stream_id == stream_id && m.seq == seq)
        else {
            return Ok(());
        };
        let meta = self.queue[index];
        if !meta.in_memory {
            let path = self.path(seq);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(SpoolError::Write { path, source }),
            }
        }
        self.queue.remove(index);
        self.forget(&meta);
        // For `unity-agent status`; not worth an fsync.
        let _ = fs::write(self.dir.join(LAST_DELIVERED), now_ms().to_string());
        Ok(())
    }

    /// Applies the bounds; returns what was dropped.
    fn enforce(&mut self, now_ms: i64) -> Vec<(u64, Kind)> {
        let mut out = Vec::new();
        let max_age_ms = i64::try_from(self.options.max_age.as_millis()).unwrap_or(i64::MAX);
        loop {
            let over_size = self.bytes > self.options.max_bytes;
            let memory_over = self.memory.bytes > MAX_MEMORY_BYTES;
            let over = |m: &Meta| {
                over_size
                    || (memory_over && m.in_memory)
                    || now_ms.saturating_sub(m.collected_at_ms) > max_age_ms
            };
            // History first: the oldest report a newer one of its kind supersedes.
            let history =
                (0..self.queue.len()).find(|&i| over(&self.queue[i]) && self.superseded(i));
            let victim = history.or_else(|| {
                // Then job events, oldest first (their result stays in the job journal).
                self.queue
                    .iter()
                    .position(|m| over(m) && m.kind == Kind::JobEvent)
            });
            let victim = victim.or_else(|| {
                // Only latest states remain: age drops them too, size the oldest of them —
                // except the newest report of all, which is why the bound was hit.
                let last = self.queue.len().saturating_sub(1);
                self.queue
                    .iter()
                    .enumerate()
                    .position(|(i, m)| i < last && over(m))
            });
            let Some(index) = victim else { break };
            let Some(dropped) = self.drop_at(index) else {
                break;
            };
            out.push(dropped);
        }
        out
    }
}

#[cfg(test)]
mod tests;
