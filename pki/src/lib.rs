//! Identities and trust for Unity Fleet.
//!
//! * [`ca`] — the built-in certificate authority (rcgen): persisted CA key and certificate,
//!   host certificates issued from agents' CSRs, the controller's own certificate.
//! * [`identity`] — how a tenant and host are named inside a certificate (a URI SAN) and how
//!   that name is read back from a peer's certificate.
//! * [`agent_key`] — the agent's locally generated key pair and its CSR.
//! * [`tls`] — the rustls configurations both sides use: the controller requires a client
//!   certificate from our CA on agent sessions; agents pin the CA.
//! * [`fingerprint`] — SHA-256 fingerprints an operator copies from the controller to the agent.
//! * [`job_key`] — the Ed25519 job-signing key, which is deliberately *not* a TLS key.
//! * [`receipt`] — checking a job receipt against the host certificate's key.
//! * [`rotation`] — when a certificate is due for renewal (two thirds of its life).
//! * [`files`] — writing key material with 0600 permissions, atomically.

pub mod agent_key;
pub mod ca;
pub mod files;
pub mod fingerprint;
pub mod identity;
pub mod job_key;
pub mod receipt;
pub mod rotation;
pub mod tls;
pub mod web_tls;

pub use ca::{CaError, CertificateAuthority, IssuedCertificate};
pub use fingerprint::Fingerprint;
pub use identity::{CONTROLLER_SERVER_NAME, HostIdentity, IdentityError};

/// The one crypto provider used in the whole tree (ring). Building every config from this
/// instead of a process-wide default means no code path depends on global install order.
pub fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
