//! The agent's enrolled state, in its state directory (default `/var/lib/unity-agent`):
//!
//! | file | mode | what |
//! |---|---|---|
//! | `host.key.pem` | 0600 | the host's private key, generated here, never sent anywhere |
//! | `host.cert.pem` | 0644 | the host certificate, then any intermediates it needs (step-ca) |
//! | `ca.cert.pem` | 0644 | the CA the agent trusts (its fingerprint was pinned at enrollment) |
//! | `enrollment.json` | 0644 | controller address, tenant and host ids, job-signing public keys |

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use unity_pki::agent_key::{AgentKey, AgentKeyError};
use unity_pki::ca::{der_to_pem, pem_chain_to_der, pem_to_der};
use unity_pki::files::{self, WriteError};
use uuid::Uuid;

const KEY_FILE: &str = "host.key.pem";
const CERT_FILE: &str = "host.cert.pem";
const CA_FILE: &str = "ca.cert.pem";
const ENROLLMENT_FILE: &str = "enrollment.json";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("this host is not enrolled ({path} is missing); run `unity-agent enroll` first")]
    NotEnrolled { path: PathBuf },
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("stored host key is unusable")]
    Key(#[from] AgentKeyError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Identity and controller details recorded at enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// `HOST:PORT` as given to `unity-agent enroll`.
    pub controller: String,
    pub tenant_id: Uuid,
    pub host_id: Uuid,
    /// Hex Ed25519 public keys allowed to sign jobs for this host.
    pub job_signing_keys: Vec<String>,
}

/// Everything `run` needs, loaded from the state directory.
#[derive(Debug)]
pub struct AgentState {
    pub dir: PathBuf,
    pub enrollment: Enrollment,
    pub key: AgentKey,
    /// The host certificate.
    pub certificate: CertificateDer<'static>,
    /// The CA certificates between it and its root, nearest first; presented with it. Empty
    /// for the built-in CA.
    pub intermediates: Vec<CertificateDer<'static>>,
    /// The CA the agent verifies the controller with.
    pub ca: CertificateDer<'static>,
}

impl AgentState {
    /// Whether `dir` already holds an enrollment.
    pub fn is_enrolled(dir: &Path) -> bool {
        dir.join(ENROLLMENT_FILE).exists()
    }

    pub fn load(dir: &Path) -> Result<Self, StateError> {
        let enrollment_path = dir.join(ENROLLMENT_FILE);
        if !enrollment_path.exists() {
            return Err(StateError::NotEnrolled {
                path: enrollment_path,
            });
        }
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| StateError::Read { path, source })
        };
        let enrollment: Enrollment =
            serde_json::from_str(&read(ENROLLMENT_FILE)?).map_err(|e| StateError::Corrupt {
                path: enrollment_path.clone(),
                reason: e.to_string(),
            })?;
        let cert = |name: &str| {
            pem_to_der(&read(name)?).ok_or_else(|| StateError::Corrupt {
                path: dir.join(name),
                reason: "no PEM certificate".into(),
            })
        };
        let mut chain = pem_chain_to_der(&read(CERT_FILE)?)
            .ok_or_else(|| StateError::Corrupt {
                path: dir.join(CERT_FILE),
                reason: "no PEM certificate, or a damaged one".into(),
            })?
            .into_iter();
        let certificate = chain.next().ok_or_else(|| StateError::Corrupt {
            path: dir.join(CERT_FILE),
            reason: "no PEM certificate".into(),
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            key: AgentKey::from_pem(&read(KEY_FILE)?)?,
            certificate,
            intermediates: chain.collect(),
            ca: cert(CA_FILE)?,
            enrollment,
        })
    }

    /// Writes a fresh enrollment: key first (0600), enrollment record last, so a crash midway
    /// leaves a directory that still reads as "not enrolled".
    pub fn save(
        dir: &Path,
        key: &AgentKey,
        certificate: &[u8],
        intermediates: &[Vec<u8>],
        ca: &[u8],
        enrollment: &Enrollment,
    ) -> Result<(), StateError> {
        files::create_private_dir(dir)?;
        files::write_private(&dir.join(KEY_FILE), key.to_pem().as_bytes())?;
        Self::save_certificate(dir, certificate, intermediates)?;
        files::write_public(&dir.join(CA_FILE), der_to_pem(ca).as_bytes())?;
        let json = serde_json::to_vec_pretty(enrollment).map_err(|e| StateError::Corrupt {
            path: dir.join(ENROLLMENT_FILE),
            reason: e.to_string(),
        })?;
        files::write_public(&dir.join(ENROLLMENT_FILE), &json)?;
        Ok(())
    }

    /// Replaces the stored host certificate and its intermediates (after renewal), in one
    /// atomic write: a crash leaves the old chain or the new one, never a mix.
    pub fn save_certificate(
        dir: &Path,
        certificate: &[u8],
        intermediates: &[Vec<u8>],
    ) -> Result<(), StateError> {
        let mut pem = der_to_pem(certificate);
        for intermediate in intermediates {
            pem.push_str(&der_to_pem(intermediate));
        }
        files::write_public(&dir.join(CERT_FILE), pem.as_bytes())?;
        Ok(())
    }

    /// What the agent presents: the certificate, then its intermediates.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        std::iter::once(self.certificate.clone())
            .chain(self.intermediates.iter().cloned())
            .collect()
    }

    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        self.key.private_key_der()
    }
}

/// `/var/lib/unity-agent` for root (the packaged service), a per-user directory otherwise.
pub fn default_state_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/unity-agent");
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("unity-agent")
}

/// Whether this process runs as root (the packaged service; tests that install packages).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|ids| ids.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
