//! Channel URLs carry credentials (SMTP passwords, bot tokens, webhook paths that are the
//! secret). They are stored sealed with AES-256-GCM under a key in the data directory
//! (`notify.key`, 0600, created on first start, in backups like the CA), so a database dump or
//! a read of the tables alone reveals none of them. Every replica needs the same file.

use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

pub const KEY_FILE: &str = "notify.key";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read the notification key {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the notification key")]
    Write(#[from] unity_pki::files::WriteError),
    #[error("the notification key {0} is not 32 bytes")]
    BadKey(PathBuf),
    #[error("no randomness available")]
    Random,
    #[error(
        "a sealed channel secret does not open with this controller's notification key (restored without notify.key?)"
    )]
    Open,
}

/// Seals and opens channel secrets.
pub struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// Loads `data_dir/notify.key`, creating it when missing.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SealError> {
        let path = data_dir.join(KEY_FILE);
        let random = SystemRandom::new();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut fresh = [0u8; 32];
                random.fill(&mut fresh).map_err(|_| SealError::Random)?;
                unity_pki::files::write_private(&path, &fresh)?;
                fresh.to_vec()
            }
            Err(source) => return Err(SealError::Read { path, source }),
        };
        let unbound =
            UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadKey(path.clone()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            random,
        })
    }

    /// `nonce || ciphertext+tag`; `context` (the tenant and channel) is bound as associated
    /// data, so a sealed value copied to another channel does not open.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut sealed,
            )
            .map_err(|_| SealError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut body)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }

    /// A fresh webhook secret (32 random bytes, hex).
    pub fn new_secret(&self) -> Result<String, SealError> {
        let mut bytes = [0u8; 32];
        self.random
            .fill(&mut bytes)
            .map_err(|_| SealError::Random)?;
        Ok(hex::encode(bytes))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_key_and_their_context() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::load_or_create(dir.path()).unwrap();
        let sealed = sealer.seal(b"smtp://u:p@h", b"tenant/channel").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"u:p@"));
        assert_eq!(
            sealer.open(&sealed, b"tenant/channel").unwrap(),
            b"smtp://u:p@h"
        );
        assert!(sealer.open(&sealed, b"tenant/other").is_err());
        // The same key file again opens it; another key does not.
        let again = Sealer::load_or_create(dir.path()).unwrap();
        assert!(again.open(&sealed, b"tenant/channel").is_ok());
        let other = tempfile::tempdir().unwrap();
        let stranger = Sealer::load_or_create(other.path()).unwrap();
        assert!(stranger.open(&sealed, b"tenant/channel").is_err());
        assert!(sealer.open(&sealed[..5], b"tenant/channel").is_err());
    }
}
