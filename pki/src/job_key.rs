//! The Ed25519 job-signing key.
//!
//! Jobs are signed with this key, never with a TLS key: a stolen TLS session or TLS key can
//! talk to agents but cannot make them run anything. Agents pin the public half at enrollment.

use std::fmt;
use std::path::Path;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use crate::files::{self, WriteError};

#[derive(Debug, thiserror::Error)]
pub enum JobKeyError {
    #[error("could not generate the job-signing key")]
    Generate,
    #[error("could not read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not hold an Ed25519 PKCS#8 key")]
    Corrupt { path: String },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The controller's signing key. `Debug` shows only the public key.
pub struct JobSigningKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for JobSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "JobSigningKey(public={})",
            hex::encode(self.public_key())
        )
    }
}

impl JobSigningKey {
    pub fn generate() -> Result<(Self, Vec<u8>), JobKeyError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| JobKeyError::Generate)?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| JobKeyError::Generate)?;
        Ok((Self { pair }, pkcs8.as_ref().to_vec()))
    }

    /// Loads the key from `path`, creating it (0600) if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, JobKeyError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::from_pkcs8(&bytes, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, pkcs8) = Self::generate()?;
                files::write_private(path, &pkcs8)?;
                Ok(key)
            }
            Err(source) => Err(JobKeyError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Parses a PKCS#8 Ed25519 key (as `generate` returns and the key file holds).
    pub fn from_pkcs8(bytes: &[u8], path: &Path) -> Result<Self, JobKeyError> {
        Ed25519KeyPair::from_pkcs8(bytes)
            .map(|pair| Self { pair })
            .map_err(|_| JobKeyError::Corrupt {
                path: path.display().to_string(),
            })
    }

    /// Reads an existing key file (no creation).
    pub fn load(path: &Path) -> Result<Self, JobKeyError> {
        let bytes = std::fs::read(path).map_err(|source| JobKeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pkcs8(&bytes, path)
    }

    /// SHA-256 of the public key: the id signed envelopes carry.
    pub fn key_id(&self) -> [u8; 32] {
        unity_protocol::envelope::key_id(&self.public_key())
    }

    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        out
    }
}

/// Checks an Ed25519 signature over the exact bytes received.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persisted_key_signs_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.pk8");
        let key = JobSigningKey::load_or_create(&path).unwrap();
        let again = JobSigningKey::load_or_create(&path).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let sig = again.sign(b"job");
        assert!(verify(&key.public_key(), b"job", &sig));
        assert!(!verify(&key.public_key(), b"jo", &sig));
    }

    #[test]
    fn corrupt_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.pk8");
        std::fs::write(&path, b"nope").unwrap();
        assert!(matches!(
            JobSigningKey::load_or_create(&path),
            Err(JobKeyError::Corrupt { .. })
        ));
    }
}
