//! step-ca as the issuer of host certificates (issue 13, docs/pki.md): the controller holds
//! a JWK provisioner's key, checks the agent's enrollment (or session) itself, and asks
//! step-ca to sign the agent's CSR with a one-time token naming the host's identity — so the
//! agent never needs to reach step-ca, and step-ca never decides who a host is.
//!
//! * [`provisioner_key`] — the provisioner's key from step's encrypted JWE or a plain JWK.
//! * [`token`] — the one-time token (pure, time passed in).
//! * [`client`] — bootstrap by root fingerprint, `/1.0/sign`, `/1.0/revoke`.

pub mod client;
pub mod provisioner_key;
pub mod token;

pub use client::{Signed, StepCa, StepCaError, StepCaSettings};
pub use provisioner_key::{KeyError, ProvisionerKey};
