//! SHA-256 certificate fingerprints, as an operator copies them between machines.

use std::fmt;
use std::str::FromStr;

/// SHA-256 over a certificate's DER bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{input}` is not a SHA-256 fingerprint (expected 64 hex digits, optionally with ':' separators and a 'sha256:' prefix)"
)]
pub struct FingerprintParseError {
    input: String,
}

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    /// Lower-case hex without separators: easy to paste into a command line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintParseError;

    /// Accepts what tools print: `ab12…`, `AB:12:…`, `sha256:ab12…`, `SHA256:AB:12…`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || FingerprintParseError {
            input: input.to_owned(),
        };
        let trimmed = input.trim();
        let body = trimmed
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("sha256:"))
            .map_or(trimmed, |_| &trimmed[7..]);
        let digits: String = body.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(digits).map_err(|_| err())?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| err())?;
        Ok(Fingerprint(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_spellings() {
        let fp = Fingerprint::of_der(b"cert");
        let plain = fp.to_string();
        let colons = fp
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        for s in [
            plain.clone(),
            plain.to_uppercase(),
            colons.clone(),
            format!("sha256:{plain}"),
            format!("SHA256:{colons}"),
            format!("  {plain}\n"),
        ] {
            assert_eq!(s.parse::<Fingerprint>().unwrap(), fp, "{s}");
        }
    }

    #[test]
    fn refuses_wrong_lengths_and_non_hex() {
        for s in ["", "abcd", &"g".repeat(64), &"a".repeat(66), "sha256:"] {
            assert!(s.parse::<Fingerprint>().is_err(), "{s}");
        }
    }
}
