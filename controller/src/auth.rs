//! Bearer and enrollment tokens: generated with the OS CSPRNG, shown once, stored as SHA-256.
//!
//! The tokens carry 160 random bits, so a plain SHA-256 (not a slow password hash) is the right
//! tool: nothing can be brute-forced, and a lookup by hash is one index probe.

use data_encoding::BASE32_NOPAD;

/// Prefix of tenant API tokens (`Authorization: Bearer ufa_…`).
pub const API_TOKEN_PREFIX: &str = "ufa_";
/// Prefix of the controller operator's tokens (tenant creation; no tenant's data).
pub const OPERATOR_TOKEN_PREFIX: &str = "ufo_";
/// Prefix of single-use enrollment tokens.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "ufe_";

/// What an API token may do. Each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read everything of the tenant.
    Read,
    /// Also create and cancel jobs.
    Operate,
    /// Also administer the tenant (reserved for the admin API).
    Admin,
}

unity_protocol::word_enum!(Scope, UnknownScope, "token scope", {
    Read => "read",
    Operate => "operate",
    Admin => "admin",
});

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomnessError;

/// A new random token with `prefix`.
pub fn generate_token(prefix: &str) -> Result<String, RandomnessError> {
    let mut bytes = [0u8; 20];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| RandomnessError)?;
    Ok(format!(
        "{prefix}{}",
        BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
    ))
}

/// What the database stores and looks tokens up by.
pub fn hash_token(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.trim().as_bytes())
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_unique_and_hash_to_32_bytes() {
        let a = generate_token(API_TOKEN_PREFIX).unwrap();
        let b = generate_token(API_TOKEN_PREFIX).unwrap();
        assert!(a.starts_with("ufa_") && a.len() == 4 + 32, "{a}");
        assert_ne!(a, b);
        assert_eq!(hash_token(&a).len(), 32);
        assert_eq!(hash_token(&a), hash_token(&format!(" {a}\n")));
        assert_ne!(hash_token(&a), hash_token(&b));
    }
}
