//! The job journal: one file per job id under `<state_dir>/jobs/`, written and fsynced
//! **before** the job has any effect on the host.
//!
//! It is what makes a job run at most once and never be forgotten:
//! * a job id whose file exists was seen before — a replay is refused, before or after a
//!   restart;
//! * an entry records how far the job got (`phase` + `checkpoint`, saved before each step
//!   with a side effect), so after a crash the agent finishes the rollback or confirms the
//!   new state instead of leaving a service down;
//! * the signed result stays in the entry until the controller acknowledged it, and is sent
//!   again on every connection until then.
//!
//! New entries are created with `O_EXCL` (two deliveries of one id cannot both win), updates
//! replace the file atomically (temp file, fsync, rename, directory fsync). Entries are pruned
//! once the job's expiry (plus the allowed clock skew) has passed and its result was
//! acknowledged: from then on the expiry check refuses the id anyway.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unity_pki::files::sync_parent;
use unity_protocol::latest::{JobReceipt, SignedJob};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("job {0} is already in the journal")]
    AlreadyExists(Uuid),
    #[error("could not write the job journal at {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not read the job journal at {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal entry {path} is damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Where a journaled job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Verified and journaled; nothing done yet.
    Accepted,
    /// Acting on the host; `phase` says how far.
    Running,
    /// Ended; `receipt` holds the signed result.
    Finished,
    /// Verified but refused; `receipt` holds the signed refusal.
    Refused,
}

/// Bytes as hex in JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReceipt {
    #[serde(with = "hex_bytes")]
    pub outcome: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

impl From<&StoredReceipt> for JobReceipt {
    fn from(r: &StoredReceipt) -> Self {
        JobReceipt {
            outcome: r.outcome.clone(),
            signature: r.signature.clone(),
        }
    }
}

/// One job as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub job_id: Uuid,
    /// The signed job exactly as received (verified again after a restart).
    #[serde(with = "hex_bytes")]
    pub key_id: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub spec: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub spec_sha256: Vec<u8>,
    pub kind: String,
    pub received_at_ms: i64,
    pub expires_at_ms: i64,
    pub status: Status,
    /// Kind-specific: the last step begun (e.g. `renamed_old`, `health_gate`).
    pub phase: Option<String>,
    /// Kind-specific data the recovery needs (container ids, names, restart policy).
    pub checkpoint: serde_json::Value,
    /// The next progress event's number (events are numbered from 1 per job).
    pub next_event_seq: u32,
    pub started_at_ms: Option<i64>,
    pub receipt: Option<StoredReceipt>,
    /// The controller stored the receipt (or said it never will).
    pub receipt_acked: bool,
}

impl Entry {
    /// A fresh entry for a verified job.
    pub fn new(job: &SignedJob, job_id: Uuid, kind: &str, now_ms: i64, expires_at_ms: i64) -> Self {
        Self {
            job_id,
            key_id: job.key_id.to_vec(),
            spec: job.spec.clone(),
            signature: job.signature.clone(),
            spec_sha256: job.spec_sha256().to_vec(),
            kind: kind.to_owned(),
            received_at_ms: now_ms,
            expires_at_ms,
            status: Status::Accepted,
            phase: None,
            checkpoint: serde_json::Value::Null,
            next_event_seq: 1,
            started_at_ms: None,
            receipt: None,
            receipt_acked: false,
        }
    }

    /// The signed job as received.
    pub fn signed_job(&self) -> Option<SignedJob> {
        Some(SignedJob {
            key_id: self.key_id.clone().try_into().ok()?,
            spec: self.spec.clone(),
            signature: self.signature.clone(),
        })
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.status, Status::Finished | Status::Refused)
    }
}

/// The journal directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating, 0700) the journal in `dir`.
    pub fn open(dir: &Path) -> Result<Self, JournalError> {
        unity_pki::files::create_private_dir(dir).map_err(|e| JournalError::Write {
            path: e.path,
            source: e.source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn set_aside_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{id}.corrupt"))
    }

    /// Whether job `id` was ever journaled (a damaged entry still counts: its id was seen).
    pub fn contains(&self, id: Uuid) -> bool {
        self.path(id).exists() || self.set_aside_path(id).exists()
    }

    /// Journals a new job durably; fails if the id is already there.
    pub fn create(&self, entry: &Entry) -> Result<(), JournalError> {
        let path = self.path(entry.job_id);
        let write = |source| JournalError::Write {
            path: path.clone(),
            source,
        };
        if self.set_aside_path(entry.job_id).exists() {
            return Err(JournalError::AlreadyExists(entry.job_id));
        }
        let bytes = encode(entry, &path)?;
        let mut file = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(JournalError::AlreadyExists(entry.job_id));
            }
            Err(e) => return Err(write(e)),
        };
        // A failure after the name exists (disk full mid-write) leaves a damaged entry: the id
        // still counts as seen, and the job is not run.
        file.write_all(&bytes).map_err(write)?;
        file.sync_all().map_err(write)?;
        sync_parent(&path).map_err(write)?;
        Ok(())
    }

    /// Replaces an existing entry atomically and durably.
    pub fn save(&self, entry: &Entry) -> Result<(), JournalError> {
        let path = self.path(entry.job_id);
        let bytes = encode(entry, &path)?;
        unity_pki::files::write_private(&path, &bytes).map_err(|e| JournalError::Write {
            path: e.path,
            source: e.source,
        })
    }

    pub fn load(&self, id: Uuid) -> Result<Option<Entry>, JournalError> {
        let path = self.path(id);
        match fs::read(&path) {
            Ok(bytes) => decode(&bytes, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(JournalError::Read { path, source }),
        }
    }

    /// Every entry. A damaged one is renamed `<id>.corrupt` (so it is reported once, and its
    /// id still counts as seen) and returned as an error.
    pub fn all(&self) -> Vec<Result<Entry, JournalError>> {
        let mut out = Vec::new();
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return out;
        };
        let mut paths: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let entry = fs::read(&path)
                .map_err(|source| JournalError::Read {
                    path: path.clone(),
                    source,
                })
                .and_then(|bytes| decode(&bytes, &path));
            if entry.is_err() {
                let aside = path.with_extension("corrupt");
                let _ = fs::rename(&path, &aside);
            }
            out.push(entry);
        }
        out
    }

    /// Removes entries that can never matter again: acknowledged, and past expiry plus
    /// `skew_ms`. Returns how many.
    pub fn prune(&self, now_ms: i64, skew_ms: i64) -> usize {
        let mut removed = 0;
        for entry in self.all().into_iter().flatten() {
            if entry.is_finished()
                && entry.receipt_acked
                && entry.expires_at_ms.saturating_add(skew_ms) < now_ms
                && fs::remove_file(self.path(entry.job_id)).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }
}

fn encode(entry: &Entry, path: &Path) -> Result<Vec<u8>, JournalError> {
    serde_json::to_vec_pretty(entry).map_err(|e| JournalError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn decode(bytes: &[u8], path: &Path) -> Result<Entry, JournalError> {
    serde_json::from_slice(bytes).map_err(|e| JournalError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u128) -> Entry {
        let job = SignedJob {
            key_id: [1; 32],
            spec: vec![1, 2, 3],
            signature: vec![4; 64],
        };
        Entry::new(&job, Uuid::from_u128(id), "ping", 1_000, 5_000)
    }

    #[test]
    fn an_id_is_journaled_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("jobs")).unwrap();
        let e = entry(1);
        journal.create(&e).unwrap();
        assert!(matches!(
            journal.create(&e),
            Err(JournalError::AlreadyExists(_))
        ));
        let reopened = Journal::open(&dir.path().join("jobs")).unwrap();
        assert!(reopened.contains(e.job_id));
        assert_eq!(reopened.load(e.job_id).unwrap(), Some(e.clone()));
        assert_eq!(reopened.load(Uuid::from_u128(2)).unwrap(), None);
    }

    #[test]
    fn a_damaged_entry_is_set_aside_reported_and_still_counts_as_seen() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let e = entry(3);
        journal.create(&e).unwrap();
        journal.create(&entry(4)).unwrap();
        // A torn write: half the JSON.
        let path = dir.path().join(format!("{}.json", e.job_id));
        let text = fs::read(&path).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        let all = journal.all();
        assert_eq!(all.iter().filter(|r| r.is_ok()).count(), 1);
        assert!(matches!(
            all.iter().find(|r| r.is_err()),
            Some(Err(JournalError::Corrupt { .. }))
        ));
        assert!(journal.contains(e.job_id));
        assert!(matches!(
            journal.create(&e),
            Err(JournalError::AlreadyExists(_))
        ));
        // Reported once: the next read sees only the good entry.
        assert_eq!(journal.all().len(), 1);
    }

    #[test]
    fn prune_keeps_unacknowledged_and_unexpired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let mut done = entry(5);
        done.status = Status::Finished;
        done.receipt_acked = true;
        let mut unacked = entry(6);
        unacked.status = Status::Finished;
        let running = entry(7);
        for e in [&done, &unacked, &running] {
            journal.create(e).unwrap();
        }
        assert_eq!(journal.prune(5_500, 1_000), 0, "within the skew");
        assert_eq!(journal.prune(6_001, 1_000), 1);
        assert!(!journal.contains(done.job_id));
        assert!(journal.contains(unacked.job_id) && journal.contains(running.job_id));
    }
}
