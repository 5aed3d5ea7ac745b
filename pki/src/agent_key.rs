//! The agent's own key pair, generated on the host. The private key never leaves it: only a CSR
//! (public key + self-signature) is sent at enrollment.

use std::fmt;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SigningKey as _};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, thiserror::Error)]
pub enum AgentKeyError {
    #[error("could not generate the host key")]
    Generate(#[source] rcgen::Error),
    #[error("stored host key is not a valid PEM private key")]
    Parse(#[source] rcgen::Error),
    #[error("could not build the certificate signing request")]
    Csr(#[source] rcgen::Error),
    #[error("could not sign a job receipt with the host key")]
    Sign(#[source] rcgen::Error),
}

/// An ECDSA P-256 key pair. `Debug` never shows key material.
pub struct AgentKey {
    key: KeyPair,
}

impl fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgentKey(<redacted>)")
    }
}

impl AgentKey {
    pub fn generate() -> Result<Self, AgentKeyError> {
        Ok(Self {
            key: KeyPair::generate().map_err(AgentKeyError::Generate)?,
        })
    }

    pub fn from_pem(pem: &str) -> Result<Self, AgentKeyError> {
        Ok(Self {
            key: KeyPair::from_pem(pem).map_err(AgentKeyError::Parse)?,
        })
    }

    /// PKCS#8 PEM, for the 0600 key file.
    pub fn to_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The key in the form rustls takes for client authentication.
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// Signs a job outcome (the bytes of `unity_protocol::envelope::receipt_signed_bytes`):
    /// ECDSA P-256 with SHA-256, ASN.1 DER — what [`crate::receipt::verify`] checks against
    /// the host certificate's key.
    pub fn sign_receipt(&self, outcome: &[u8]) -> Result<Vec<u8>, AgentKeyError> {
        let bytes = unity_protocol::envelope::receipt_signed_bytes(outcome);
        self.key.sign(&bytes).map_err(AgentKeyError::Sign)
    }

    /// A DER CSR. The subject is informational (the CA decides the real identity).
    pub fn csr_der(&self, hostname: &str) -> Result<Vec<u8>, AgentKeyError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, hostname);
        params.distinguished_name = dn;
        let csr = params
            .serialize_request(&self.key)
            .map_err(AgentKeyError::Csr)?;
        Ok(csr.der().to_vec())
    }
}
