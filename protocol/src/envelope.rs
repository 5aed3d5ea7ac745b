//! Sealing and opening signed messages: jobs and key statements (Ed25519), and the bytes a
//! receipt signature covers.
//!
//! The contract (the `Signed<T>` habit of `awslabs/tough`): **verify the signature over the
//! exact bytes received, then decode them**; never decode, re-encode and verify, because two
//! encodings of "the same" value need not be the same bytes. Opening is pure: the trusted keys
//! are passed in, and time, targets and replay are the caller's checks on the decoded spec.

use ring::signature::{ED25519, UnparsedPublicKey};

use crate::frame::DecodeError;
use crate::v1::jobs::{
    JOB_SIGNATURE_CONTEXT, JobSpec, KEY_STATEMENT_CONTEXT, KeyId, KeyStatement,
    RECEIPT_SIGNATURE_CONTEXT, SignedJob, SignedKeyStatement,
};

/// Why a signed message was not opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("signed by key {} which this host does not trust", hex_id(.key_id))]
    UnknownKey { key_id: KeyId },
    #[error("signature by key {} does not verify over the received bytes", hex_id(.key_id))]
    BadSignature { key_id: KeyId },
    #[error("signed bytes do not decode")]
    Malformed(#[source] DecodeError),
}

fn hex_id(id: &KeyId) -> String {
    id[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The id of an Ed25519 public key: its SHA-256.
pub fn key_id(public_key: &[u8; 32]) -> KeyId {
    sha256(public_key)
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// `context || message`: what a signature covers.
pub fn signed_bytes(context: &[u8], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(context.len() + message.len());
    out.extend_from_slice(context);
    out.extend_from_slice(message);
    out
}

/// What a receipt's host-key signature covers, for the agent (sign) and controller (verify).
pub fn receipt_signed_bytes(outcome: &[u8]) -> Vec<u8> {
    signed_bytes(RECEIPT_SIGNATURE_CONTEXT, outcome)
}

fn verify(
    trusted: &[[u8; 32]],
    key_id: &KeyId,
    context: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), EnvelopeError> {
    let key = trusted
        .iter()
        .find(|k| self::key_id(k) == *key_id)
        .ok_or(EnvelopeError::UnknownKey { key_id: *key_id })?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&signed_bytes(context, message), signature)
        .map_err(|_| EnvelopeError::BadSignature { key_id: *key_id })
}

impl SignedJob {
    /// Encodes `spec` and signs the bytes with `sign` (an Ed25519 signer over the bytes it is
    /// given) as the key `key_id`.
    pub fn seal(
        spec: &JobSpec,
        key_id: KeyId,
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> Result<Self, postcard::Error> {
        let bytes = postcard::to_allocvec(spec)?;
        let signature = sign(&signed_bytes(JOB_SIGNATURE_CONTEXT, &bytes)).to_vec();
        Ok(Self {
            key_id,
            spec: bytes,
            signature,
        })
    }

    /// Verifies the signature over the received bytes with one of `trusted`, then decodes.
    pub fn open(&self, trusted: &[[u8; 32]]) -> Result<JobSpec, EnvelopeError> {
        verify(
            trusted,
            &self.key_id,
            JOB_SIGNATURE_CONTEXT,
            &self.spec,
            &self.signature,
        )?;
        crate::decode_payload(&self.spec).map_err(EnvelopeError::Malformed)
    }

    /// SHA-256 of the spec bytes, which receipts and the controller's records name.
    pub fn spec_sha256(&self) -> [u8; 32] {
        sha256(&self.spec)
    }
}

impl SignedKeyStatement {
    pub fn seal(
        statement: &KeyStatement,
        signer: KeyId,
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> Result<Self, postcard::Error> {
        let bytes = postcard::to_allocvec(statement)?;
        let signature = sign(&signed_bytes(KEY_STATEMENT_CONTEXT, &bytes)).to_vec();
        Ok(Self {
            signer,
            statement: bytes,
            signature,
        })
    }

    pub fn open(&self, trusted: &[[u8; 32]]) -> Result<KeyStatement, EnvelopeError> {
        verify(
            trusted,
            &self.signer,
            KEY_STATEMENT_CONTEXT,
            &self.statement,
            &self.signature,
        )?;
        crate::decode_payload(&self.statement).map_err(EnvelopeError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::jobs::{JobKind, PingParams};
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    use uuid::Uuid;

    fn keypair(seed: u8) -> (Ed25519KeyPair, [u8; 32]) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        (pair, public)
    }

    fn sign_with(pair: &Ed25519KeyPair) -> impl FnOnce(&[u8]) -> [u8; 64] + '_ {
        move |bytes| {
            let mut out = [0u8; 64];
            out.copy_from_slice(pair.sign(bytes).as_ref());
            out
        }
    }

    fn spec() -> JobSpec {
        JobSpec {
            job_id: Uuid::from_u128(1),
            tenant_id: Uuid::from_u128(2),
            host_id: Uuid::from_u128(3),
            issued_at_ms: 1_000,
            not_before_ms: 1_000,
            expires_at_ms: 3_601_000,
            requested_by: "ops".into(),
            kind: JobKind::Ping(PingParams {
                message: "hi".into(),
            }),
        }
    }

    #[test]
    fn sealed_job_opens_with_its_key_only() {
        let (pair, public) = keypair(7);
        let (_, other) = keypair(8);
        let job = SignedJob::seal(&spec(), key_id(&public), sign_with(&pair)).unwrap();
        assert_eq!(job.open(&[other, public]).unwrap(), spec());
        assert_eq!(
            job.open(&[other]),
            Err(EnvelopeError::UnknownKey {
                key_id: key_id(&public)
            })
        );
    }

    #[test]
    fn every_flipped_bit_of_the_spec_or_signature_is_refused() {
        let (pair, public) = keypair(7);
        let job = SignedJob::seal(&spec(), key_id(&public), sign_with(&pair)).unwrap();
        for byte in 0..job.spec.len() {
            let mut tampered = job.clone();
            tampered.spec[byte] ^= 0x01;
            assert!(
                matches!(
                    tampered.open(&[public]),
                    Err(EnvelopeError::BadSignature { .. })
                ),
                "byte {byte}"
            );
        }
        for byte in 0..job.signature.len() {
            let mut tampered = job.clone();
            tampered.signature[byte] ^= 0x80;
            assert!(tampered.open(&[public]).is_err(), "signature byte {byte}");
        }
        let mut short = job.clone();
        short.signature.truncate(63);
        assert!(short.open(&[public]).is_err());
    }

    #[test]
    fn a_key_id_claiming_a_trusted_key_with_another_keys_signature_fails() {
        let (_, trusted) = keypair(7);
        let (rogue, _) = keypair(9);
        let forged = SignedJob::seal(&spec(), key_id(&trusted), sign_with(&rogue)).unwrap();
        assert!(matches!(
            forged.open(&[trusted]),
            Err(EnvelopeError::BadSignature { .. })
        ));
    }

    #[test]
    fn signed_garbage_is_malformed_not_a_panic() {
        let (pair, public) = keypair(7);
        let bytes = vec![0xff; 40];
        let signature = sign_with(&pair)(&signed_bytes(JOB_SIGNATURE_CONTEXT, &bytes)).to_vec();
        let job = SignedJob {
            key_id: key_id(&public),
            spec: bytes,
            signature,
        };
        assert!(matches!(
            job.open(&[public]),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn a_job_signature_is_not_a_key_statement_signature() {
        let (pair, public) = keypair(7);
        let statement = KeyStatement {
            version: 1,
            issued_at_ms: 5,
            keys: vec![public],
        };
        let sealed =
            SignedKeyStatement::seal(&statement, key_id(&public), sign_with(&pair)).unwrap();
        assert_eq!(sealed.open(&[public]).unwrap(), statement);
        // The same bytes presented as a job: the context differs, so the signature fails.
        let as_job = SignedJob {
            key_id: key_id(&public),
            spec: sealed.statement.clone(),
            signature: sealed.signature.clone(),
        };
        assert!(matches!(
            as_job.open(&[public]),
            Err(EnvelopeError::BadSignature { .. })
        ));
    }
}
