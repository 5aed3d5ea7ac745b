//! Checking a job receipt against the host certificate's key.
//!
//! A receipt is the agent's final word on a job, signed with the host key that also
//! authenticates its TLS sessions (`AgentKey::sign_receipt`). The controller keeps receipt,
//! signature and the certificate's public key, so a job's history is evidence the host itself
//! reported the outcome — not something a database writer made up.

use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    #[error("the host certificate cannot be read: {0}")]
    Certificate(String),
    #[error("the host certificate's key is not ECDSA P-256")]
    KeyType,
    #[error("the receipt signature does not verify with the host certificate's key")]
    BadSignature,
}

/// The SubjectPublicKeyInfo's key bits (an uncompressed P-256 point) of `cert_der`.
pub fn certificate_public_key(cert_der: &[u8]) -> Result<Vec<u8>, ReceiptError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| ReceiptError::Certificate(e.to_string()))?;
    let spki = cert.public_key();
    // id-ecPublicKey; the curve is checked by ring when it parses the point.
    if spki.algorithm.algorithm.to_id_string() != "1.2.840.10045.2.1" {
        return Err(ReceiptError::KeyType);
    }
    Ok(spki.subject_public_key.data.to_vec())
}

/// Verifies `signature` over the receipt bytes of `outcome` with `public_key` (as returned by
/// [`certificate_public_key`]).
pub fn verify(public_key: &[u8], outcome: &[u8], signature: &[u8]) -> Result<(), ReceiptError> {
    let bytes = unity_protocol::envelope::receipt_signed_bytes(outcome);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(&bytes, signature)
        .map_err(|_| ReceiptError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_key::AgentKey;
    use crate::{CertificateAuthority, HostIdentity};
    use std::time::Duration;
    use uuid::Uuid;

    #[test]
    fn receipt_signed_by_the_host_key_verifies_with_its_certificate_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path(), "test").unwrap();
        let key = AgentKey::generate().unwrap();
        let other = AgentKey::generate().unwrap();
        let identity = HostIdentity {
            tenant_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
        };
        let issued = ca
            .issue_host(
                &key.csr_der("h").unwrap(),
                identity,
                Duration::from_secs(3600),
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let public = certificate_public_key(&issued.der).unwrap();
        let signature = key.sign_receipt(b"outcome").unwrap();
        assert_eq!(verify(&public, b"outcome", &signature), Ok(()));
        assert_eq!(
            verify(&public, b"outcomf", &signature),
            Err(ReceiptError::BadSignature)
        );
        let forged = other.sign_receipt(b"outcome").unwrap();
        assert_eq!(
            verify(&public, b"outcome", &forged),
            Err(ReceiptError::BadSignature)
        );
        assert!(certificate_public_key(b"not a certificate").is_err());
    }
}
