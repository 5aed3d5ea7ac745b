//! Passwords of console users: argon2id (RustCrypto's `argon2`, OWASP's parameters), and the
//! login throttle — a pure rule over "failed logins since the last good one" and when the
//! last failed, so the store only records and the rule decides.

use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use time::OffsetDateTime;

/// Shortest password accepted; longer limits only what people may paste.
pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 1024;

/// Failed logins allowed in a row before each further attempt has to wait.
pub const FREE_FAILURES: i32 = 5;
/// The longest wait between attempts once throttled.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("a password must be {MIN_LENGTH} to {MAX_LENGTH} characters")]
    Length,
    #[error("could not hash the password: {0}")]
    Hash(String),
}

/// argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): ~20 ms a login on
/// the project's 2-core machine, which is the cost a guesser pays per guess.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks `password`'s length (in characters, not bytes).
pub fn check(password: &str) -> Result<(), PasswordError> {
    let length = password.chars().count();
    if (MIN_LENGTH..=MAX_LENGTH).contains(&length) {
        Ok(())
    } else {
        Err(PasswordError::Length)
    }
}

/// The PHC string stored for `password` (a fresh salt every time).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check(password)?;
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored `phc` string. A stored value that is not a PHC
/// string matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of nothing anyone knows, verified when the login name does not exist, so an
/// unknown name costs the same time as a wrong password (no user enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("not a password anyone has: unity fleet").unwrap_or_default())
}

/// How long a login for an account with `failed` failures in a row, the last at
/// `last_failed_at`, must still wait at `now`; `None` when it may try now. After
/// [`FREE_FAILURES`], the wait doubles with each failure from 1 s to [`MAX_WAIT`].
pub fn wait_before_login(
    failed: i32,
    last_failed_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Option<Duration> {
    if failed < FREE_FAILURES {
        return None;
    }
    let over = failed - FREE_FAILURES;
    let last = last_failed_at?;
    let wait = Duration::from_secs(1u64 << over.clamp(0, 20)).min(MAX_WAIT);
    let waited = now - last;
    let left = time::Duration::try_from(wait).ok()? - waited;
    (left > time::Duration::ZERO).then(|| left.try_into().unwrap_or(wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterY", &a));
        assert!(!verify("correct horse battery", "not a phc string"));
        assert!(!verify("", dummy_hash()));
    }

    #[test]
    fn length_is_counted_in_characters() {
        assert_eq!(check("short"), Err(PasswordError::Length));
        assert_eq!(hash("elevenchars"), Err(PasswordError::Length));
        assert!(check("ääääääääääää").is_ok(), "12 characters, 24 bytes");
        assert_eq!(check(&"x".repeat(1025)), Err(PasswordError::Length));
    }

    #[test]
    fn throttle_starts_after_five_failures_and_doubles_to_a_cap() {
        let t0 = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        assert_eq!(wait_before_login(0, None, t0), None);
        assert_eq!(wait_before_login(4, Some(t0), t0), None);
        assert_eq!(
            wait_before_login(5, Some(t0), t0),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            wait_before_login(7, Some(t0), t0),
            Some(Duration::from_secs(4))
        );
        let later = t0 + time::Duration::seconds(3);
        assert_eq!(
            wait_before_login(7, Some(t0), later),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            wait_before_login(7, Some(t0), t0 + time::Duration::seconds(4)),
            None
        );
        assert_eq!(wait_before_login(40, Some(t0), t0), Some(MAX_WAIT));
        assert_eq!(wait_before_login(i32::MAX, Some(t0), t0), Some(MAX_WAIT));
    }
}
