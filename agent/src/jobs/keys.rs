//! The job-signing keys this host trusts, and how they change: only by a statement signed by
//! a key it already trusts, with a higher version than the last one it applied.
//!
//! Starts from the keys pinned at enrollment (`enrollment.json`, version 0); every applied
//! statement is saved to `job-keys.json` (0644: public keys, but only root may write the state
//! directory). A statement signed by an untrusted key is skipped — an agent enrolled after a
//! rotation does not trust the keys the older statements were signed with, and needs none of
//! them — and a statement no newer than what the agent holds is ignored, so an old statement
//! can never roll the keys back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unity_protocol::envelope::EnvelopeError;
use unity_protocol::latest::SignedKeyStatement;

const KEYS_FILE: &str = "job-keys.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKeys {
    pub version: u64,
    /// Hex Ed25519 public keys.
    keys: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{path} is damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] unity_pki::files::WriteError),
}

/// What applying a chain of statements did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The trusted set changed to the statement of this version.
    Changed { version: u64 },
    /// Nothing newer that this host can verify.
    Unchanged { version: u64 },
}

impl TrustedKeys {
    pub fn new(version: u64, keys: &[[u8; 32]]) -> Self {
        Self {
            version,
            keys: keys.iter().map(hex::encode).collect(),
        }
    }

    /// The saved set, or the enrollment's (version 0) when there is none yet.
    pub fn load(state_dir: &Path, enrolled: &[String]) -> Result<Self, KeysError> {
        let path = state_dir.join(KEYS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let keys: Self =
                    serde_json::from_slice(&bytes).map_err(|e| KeysError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if keys.public_keys().len() != keys.keys.len() {
                    return Err(KeysError::Corrupt {
                        path,
                        reason: "a key is not 32 bytes of hex".into(),
                    });
                }
                Ok(keys)
            }
            Err(_) => Ok(Self {
                version: 0,
                keys: enrolled.to_vec(),
            }),
        }
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), KeysError> {
        let path = state_dir.join(KEYS_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| KeysError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        unity_pki::files::write_public(&path, &json)?;
        Ok(())
    }

    /// The keys as raw bytes (malformed entries are left out).
    pub fn public_keys(&self) -> Vec<[u8; 32]> {
        self.keys
            .iter()
            .filter_map(|k| hex::decode(k).ok()?.try_into().ok())
            .collect()
    }

    /// Applies `chain` (oldest first). A statement that claims a trusted signer but does not
    /// verify, or says nothing sensible, is an error: someone is tampering.
    pub fn apply(&mut self, chain: &[SignedKeyStatement]) -> Result<Applied, String> {
        let start = self.version;
        for signed in chain {
            let trusted = self.public_keys();
            let statement = match signed.open(&trusted) {
                Ok(statement) => statement,
                // Signed by a key this host never trusted (an older rotation): not for us.
                Err(EnvelopeError::UnknownKey { .. }) => continue,
                Err(error) => return Err(format!("key statement refused: {error}")),
            };
            if statement.version <= self.version {
                continue;
            }
            if statement.keys.is_empty() {
                return Err(format!(
                    "key statement {} names no key; refused",
                    statement.version
                ));
            }
            *self = Self::new(statement.version, &statement.keys);
        }
        Ok(if self.version == start {
            Applied::Unchanged {
                version: self.version,
            }
        } else {
            Applied::Changed {
                version: self.version,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    use unity_protocol::envelope::key_id;
    use unity_protocol::latest::KeyStatement;

    fn key(seed: u8) -> (Ed25519KeyPair, [u8; 32]) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        (pair, public)
    }

    fn statement(signer: u8, version: u64, keys: &[[u8; 32]]) -> SignedKeyStatement {
        let (pair, public) = key(signer);
        SignedKeyStatement::seal(
            &KeyStatement {
                version,
                issued_at_ms: 1,
                keys: keys.to_vec(),
            },
            key_id(&public),
            |b| pair.sign(b).as_ref().try_into().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn rotations_apply_in_order_and_never_roll_back() {
        let (_, a) = key(1);
        let (_, b) = key(2);
        let (_, c) = key(3);
        let chain = vec![statement(1, 1, &[b]), statement(2, 2, &[c])];
        let mut trusted = TrustedKeys::new(0, &[a]);
        assert_eq!(trusted.apply(&chain), Ok(Applied::Changed { version: 2 }));
        assert_eq!(trusted.public_keys(), vec![c]);
        // The same chain again, or an old statement alone: nothing changes.
        assert_eq!(trusted.apply(&chain), Ok(Applied::Unchanged { version: 2 }));
        assert_eq!(
            trusted.apply(&chain[..1]),
            Ok(Applied::Unchanged { version: 2 })
        );
        assert_eq!(trusted.public_keys(), vec![c]);
    }

    #[test]
    fn an_agent_enrolled_after_a_rotation_skips_what_it_cannot_verify() {
        let (_, b) = key(2);
        let (_, c) = key(3);
        let (_, d) = key(4);
        // Enrolled with C; the chain starts with A → B and B → C.
        let chain = vec![
            statement(1, 1, &[b]),
            statement(2, 2, &[c]),
            statement(3, 3, &[d]),
        ];
        let mut trusted = TrustedKeys::new(0, &[c]);
        assert_eq!(trusted.apply(&chain), Ok(Applied::Changed { version: 3 }));
        assert_eq!(trusted.public_keys(), vec![d]);
    }

    #[test]
    fn statements_by_untrusted_keys_change_nothing_and_forgeries_are_errors() {
        let (_, a) = key(1);
        let (_, evil) = key(9);
        let mut trusted = TrustedKeys::new(0, &[a]);
        assert_eq!(
            trusted.apply(&[statement(9, 5, &[evil])]),
            Ok(Applied::Unchanged { version: 0 })
        );
        // Claims to be signed by A, signed by someone else.
        let mut forged = statement(9, 5, &[evil]);
        forged.signer = key_id(&a);
        assert!(trusted.apply(&[forged]).is_err());
        assert!(trusted.apply(&[statement(1, 1, &[])]).is_err());
        assert_eq!(trusted.public_keys(), vec![a]);
    }

    #[test]
    fn saved_keys_reload_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (_, a) = key(1);
        let enrolled = vec![hex::encode(a)];
        let loaded = TrustedKeys::load(dir.path(), &enrolled).unwrap();
        assert_eq!((loaded.version, loaded.public_keys()), (0, vec![a]));
        let (_, b) = key(2);
        TrustedKeys::new(4, &[b]).save(dir.path()).unwrap();
        let loaded = TrustedKeys::load(dir.path(), &enrolled).unwrap();
        assert_eq!((loaded.version, loaded.public_keys()), (4, vec![b]));
        std::fs::write(dir.path().join(KEYS_FILE), b"{").unwrap();
        assert!(TrustedKeys::load(dir.path(), &enrolled).is_err());
    }
}
