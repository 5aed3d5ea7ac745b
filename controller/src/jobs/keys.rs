//! The job-signing key on disk, and its rotation.
//!
//! The private key is a file of the controller's (`<data_dir>/job-signing.pk8`, 0600) and
//! never enters the database: whoever can write the database can queue bytes but cannot sign
//! them. Replicas share the file (a Kubernetes secret); it is read again for every job, so a
//! rotation by `unity-controller job-key rotate` takes effect without a restart.
//!
//! Rotation, crash-safe in three steps:
//! 1. the new key is written to `job-signing.next.pk8` (kept if it already exists);
//! 2. statement N+1 — "the job keys are now {new}" — signed by the current key, is recorded in
//!    `job_key_statements` (NOTIFY tells every replica to push it to its agents);
//! 3. the new key replaces `job-signing.pk8` (rename).
//!
//! A crash after 2 leaves a recorded statement naming the `next` key: the next start (or
//! rotate) finishes step 3. A crash before 2 leaves an unused `next` key that the next rotate
//! uses. Queued jobs signed by the retired key are cancelled (every agent would refuse them).

use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use unity_pki::job_key::{JobKeyError, JobSigningKey};
use unity_protocol::latest::{KeyStatement, SignedKeyStatement};

use crate::store::jobs::{self as job_store, StatementRow};
use crate::store::{Store, StoreError};

const CURRENT_FILE: &str = "job-signing.pk8";
const NEXT_FILE: &str = "job-signing.next.pk8";

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Key(#[from] JobKeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not encode the key statement")]
    Encode(#[source] postcard::Error),
    #[error("could not put the new key in place ({path})")]
    Rename {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub version: i64,
    pub old_key_id: [u8; 32],
    pub new_key_id: [u8; 32],
    pub cancelled_jobs: u64,
}

/// The controller's job-signing key files.
#[derive(Debug, Clone)]
pub struct JobKeys {
    dir: PathBuf,
}

impl JobKeys {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.to_owned(),
        }
    }

    fn current_path(&self) -> PathBuf {
        self.dir.join(CURRENT_FILE)
    }

    fn next_path(&self) -> PathBuf {
        self.dir.join(NEXT_FILE)
    }

    /// Creates the key on first start.
    pub fn load_or_create(&self) -> Result<JobSigningKey, JobKeyError> {
        JobSigningKey::load_or_create(&self.current_path())
    }

    /// The key that signs jobs now, read from disk.
    pub fn current(&self) -> Result<JobSigningKey, JobKeyError> {
        JobSigningKey::load(&self.current_path())
    }

    /// Finishes a rotation whose statement was recorded but whose key was not yet put in
    /// place (a crash between steps 2 and 3). Returns true when it did.
    pub async fn finish_interrupted_rotation(&self, store: &Store) -> Result<bool, RotateError> {
        let next_path = self.next_path();
        if !next_path.exists() {
            return Ok(false);
        }
        let next = JobSigningKey::load(&next_path)?;
        let statements = job_store::key_statements(store).await?;
        let recorded = statements
            .last()
            .is_some_and(|s| s.public_key == next.public_key());
        if recorded {
            self.promote_next()?;
            tracing::info!(key_id = %short(&next.key_id()),
                "finished an interrupted job-key rotation");
        }
        Ok(recorded)
    }

    fn promote_next(&self) -> Result<(), RotateError> {
        let current = self.current_path();
        std::fs::rename(self.next_path(), &current).map_err(|source| RotateError::Rename {
            path: current.clone(),
            source,
        })?;
        // The rename is durable only once the directory is.
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Rotates the key (see the module docs).
    pub async fn rotate(
        &self,
        store: &Store,
        now: OffsetDateTime,
    ) -> Result<Rotation, RotateError> {
        self.finish_interrupted_rotation(store).await?;
        let current = self.current()?;
        let next = JobSigningKey::load_or_create(&self.next_path())?;
        let statements = job_store::key_statements(store).await?;
        let version = statements.last().map_or(1, |s| s.version + 1);
        let statement = KeyStatement {
            version: u64::try_from(version).unwrap_or(u64::MAX),
            issued_at_ms: unix_ms(now),
            keys: vec![next.public_key()],
        };
        let sealed =
            SignedKeyStatement::seal(&statement, current.key_id(), |bytes| current.sign(bytes))
                .map_err(RotateError::Encode)?;
        job_store::insert_key_statement(
            store,
            &StatementRow {
                version,
                signer: sealed.signer.to_vec(),
                statement: sealed.statement,
                signature: sealed.signature,
                public_key: next.public_key().to_vec(),
            },
        )
        .await?;
        self.promote_next()?;
        let cancelled_jobs = job_store::cancel_queued_signed_by(store, &current.key_id()).await?;
        tracing::info!(version, old = %short(&current.key_id()), new = %short(&next.key_id()),
            cancelled_jobs, "job-signing key rotated");
        Ok(Rotation {
            version,
            old_key_id: current.key_id(),
            new_key_id: next.key_id(),
            cancelled_jobs,
        })
    }
}

/// The statement chain as agents receive it.
pub async fn statement_chain(store: &Store) -> Result<Vec<SignedKeyStatement>, StoreError> {
    Ok(job_store::key_statements(store)
        .await?
        .into_iter()
        .filter_map(|row| {
            Some(SignedKeyStatement {
                signer: row.signer.try_into().ok()?,
                statement: row.statement,
                signature: row.signature,
            })
        })
        .collect())
}

/// The first 8 bytes of a key id, hex, for logs.
pub fn short(key_id: &[u8; 32]) -> String {
    hex::encode(&key_id[..8])
}

pub fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
