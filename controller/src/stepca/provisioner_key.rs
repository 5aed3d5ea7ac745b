//! The key of a step-ca JWK provisioner, as operators have it: the `encryptedKey` step-ca
//! keeps in `ca.json` (a compact JWE, `PBES2-HS256+A128KW` / `A256GCM`, what `step ca init`
//! and `step ca provisioner add --create` write), opened with its password; or the private
//! JWK itself in a file. Pure: bytes and a password in, a signing key out.
//!
//! Only P-256 (`ES256`) keys: step's default for JWK provisioners, and what `ring` signs
//! with. Anything else is refused by name rather than half-supported.

use std::num::NonZeroU32;

use data_encoding::BASE64URL_NOPAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde::Deserialize;

/// PBKDF2 iterations accepted in a JWE header: step writes 100 000 (600 000 in newer
/// releases); a file asking for more than this is refused instead of burning CPU.
const MAX_PBKDF2_ITERATIONS: u32 = 5_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the provisioner key is not a JWK or a compact JWE: {0}")]
    Format(String),
    #[error(
        "the provisioner key uses {0}, not P-256 (ES256): only P-256 JWK provisioners are supported"
    )]
    Unsupported(String),
    #[error("the provisioner key could not be decrypted: wrong password, or the file is damaged")]
    Decrypt,
    #[error("the provisioner key's numbers do not make a P-256 key pair: {0}")]
    Key(String),
}

/// A private EC JWK (RFC 7517/7518).
#[derive(Debug, Deserialize)]
struct PrivateJwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<String>,
    kid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct JweHeader {
    alg: String,
    enc: String,
    p2s: Option<String>,
    p2c: Option<u32>,
}

/// A provisioner's signing key, ready to sign one-time tokens.
#[derive(Debug)]
pub struct ProvisionerKey {
    pair: EcdsaKeyPair,
    /// The JWK's `kid` (step sets the RFC 7638 thumbprint); the JWS header names it so
    /// step-ca finds the provisioner.
    pub kid: String,
}

fn b64(field: &str, text: &str) -> Result<Vec<u8>, KeyError> {
    B64.decode(text.trim_end_matches('=').as_bytes())
        .map_err(|e| KeyError::Format(format!("{field} is not base64url: {e}")))
}

impl ProvisionerKey {
    /// Reads `text`: a private JWK (JSON), or a compact JWE holding one (`password` opens
    /// it). Surrounding whitespace is ignored; a JWE without a password is an error that says
    /// so.
    pub fn parse(text: &str, password: Option<&[u8]>) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.starts_with('{') {
            return Self::from_jwk(text.as_bytes());
        }
        if text.split('.').count() == 5 {
            let password = password.ok_or_else(|| {
                KeyError::Format("the key is encrypted (a JWE) and no password was given".into())
            })?;
            let jwk = decrypt_jwe(text, password)?;
            return Self::from_jwk(&jwk);
        }
        Err(KeyError::Format(
            "expected a JSON JWK or a five-part compact JWE".into(),
        ))
    }

    fn from_jwk(json: &[u8]) -> Result<Self, KeyError> {
        let jwk: PrivateJwk = serde_json::from_slice(json)
            .map_err(|e| KeyError::Format(format!("not a JWK: {e}")))?;
        let crv = jwk.crv.as_deref().unwrap_or("");
        if jwk.kty != "EC" || crv != "P-256" {
            return Err(KeyError::Unsupported(format!("kty {} crv {crv}", jwk.kty)));
        }
        let (Some(x), Some(y), Some(d)) = (&jwk.x, &jwk.y, &jwk.d) else {
            return Err(KeyError::Format(
                "the JWK lacks x, y or d (a public key cannot sign)".into(),
            ));
        };
        let (x, y, d) = (b64("x", x)?, b64("y", y)?, b64("d", d)?);
        if x.len() != 32 || y.len() != 32 || d.len() != 32 {
            return Err(KeyError::Key("x, y and d must be 32 bytes each".into()));
        }
        let mut public = Vec::with_capacity(65);
        public.push(0x04);
        public.extend_from_slice(&x);
        public.extend_from_slice(&y);
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &d,
            &public,
            &SystemRandom::new(),
        )
        .map_err(|e| KeyError::Key(e.to_string()))?;
        let kid = match jwk.kid {
            Some(kid) if !kid.is_empty() => kid,
            _ => thumbprint(&x, &y),
        };
        Ok(Self { pair, kid })
    }

    /// ES256 over `message`: the 64-byte `r || s` JWS wants.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|e| KeyError::Key(format!("signing failed: {e}")))
    }

    /// The public key, uncompressed (`04 || x || y`).
    pub fn public_key(&self) -> &[u8] {
        ring::signature::KeyPair::public_key(&self.pair).as_ref()
    }
}

/// RFC 7638 thumbprint of a P-256 public key: what step uses as the `kid`.
pub fn thumbprint(x: &[u8], y: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        B64.encode(x),
        B64.encode(y)
    );
    B64.encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
}

/// Opens a compact JWE made with a password (RFC 7518 §4.8 key wrapping, §5.3 content
/// encryption): PBKDF2-HMAC-SHA256 → AES-128 key wrap → AES-256-GCM.
fn decrypt_jwe(compact: &str, password: &[u8]) -> Result<Vec<u8>, KeyError> {
    let parts: Vec<&str> = compact.split('.').collect();
    let [header_b64, wrapped, iv, ciphertext, tag] = parts[..] else {
        return Err(KeyError::Format("a compact JWE has five parts".into()));
    };
    let header: JweHeader = serde_json::from_slice(&b64("JWE header", header_b64)?)
        .map_err(|e| KeyError::Format(format!("JWE header: {e}")))?;
    if header.alg != "PBES2-HS256+A128KW" || header.enc != "A256GCM" {
        return Err(KeyError::Unsupported(format!(
            "JWE alg {} enc {} (step writes PBES2-HS256+A128KW / A256GCM)",
            header.alg, header.enc
        )));
    }
    let salt_input = b64("p2s", header.p2s.as_deref().unwrap_or(""))?;
    let iterations = header
        .p2c
        .filter(|&n| n <= MAX_PBKDF2_ITERATIONS)
        .and_then(NonZeroU32::new)
        .ok_or_else(|| {
            KeyError::Format(format!(
                "p2c must be 1 to {MAX_PBKDF2_ITERATIONS} PBKDF2 iterations"
            ))
        })?;
    let mut salt = b"PBES2-HS256+A128KW".to_vec();
    salt.push(0);
    salt.extend_from_slice(&salt_input);
    let mut kek = [0u8; 16];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password,
        &mut kek,
    );
    let wrapped = b64("encrypted key", wrapped)?;
    let cek = aes_kw::KekAes128::from(kek)
        .unwrap_vec(&wrapped)
        .map_err(|_| KeyError::Decrypt)?;
    let iv = b64("iv", iv)?;
    let mut sealed = b64("ciphertext", ciphertext)?;
    sealed.extend_from_slice(&b64("tag", tag)?);
    let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &cek)
        .map_err(|_| KeyError::Format("the content key is not 256 bits".into()))?;
    let nonce = ring::aead::Nonce::try_assume_unique_for_key(&iv)
        .map_err(|_| KeyError::Format("the iv is not 96 bits".into()))?;
    let plain = ring::aead::LessSafeKey::new(key)
        .open_in_place(
            nonce,
            ring::aead::Aad::from(header_b64.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| KeyError::Decrypt)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The private JWK inside the key step-ca made (tests/fixtures/MANIFEST.tsv), as a plain
    /// key file holds it.
    pub(crate) fn fixture_jwk() -> String {
        let made: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/stepca-provisioner-key.json"
        ))
        .unwrap();
        let plain = decrypt_jwe(
            made["encryptedKey"].as_str().unwrap(),
            b"unity fixture password",
        )
        .unwrap();
        String::from_utf8(plain).unwrap()
    }

    #[test]
    fn a_plain_jwk_signs_and_its_kid_is_the_thumbprint() {
        let jwk = fixture_jwk();
        let key = ProvisionerKey::parse(&jwk, None).unwrap();
        assert_eq!(key.kid.len(), 43, "a base64url SHA-256");
        let sig = key.sign(b"message").unwrap();
        assert_eq!(sig.len(), 64);
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            key.public_key(),
        );
        public.verify(b"message", &sig).unwrap();
    }

    #[test]
    fn wrong_shapes_are_refused_by_name() {
        let mut public_only: serde_json::Value = serde_json::from_str(&fixture_jwk()).unwrap();
        let d = public_only["d"].as_str().unwrap().to_owned();
        public_only.as_object_mut().unwrap().remove("d");
        assert!(
            matches!(ProvisionerKey::parse(&public_only.to_string(), None), Err(KeyError::Format(m)) if m.contains("lacks"))
        );
        let rsa = r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#;
        assert!(matches!(
            ProvisionerKey::parse(rsa, None),
            Err(KeyError::Unsupported(_))
        ));
        assert!(
            matches!(ProvisionerKey::parse("a.b.c.d.e", None), Err(KeyError::Format(m)) if m.contains("no password"))
        );
        assert!(matches!(
            ProvisionerKey::parse("garbage", None),
            Err(KeyError::Format(_))
        ));
        let wrong_d = fixture_jwk().replace(&d, &format!("AA{}", &d[2..]));
        assert!(matches!(
            ProvisionerKey::parse(&wrong_d, None),
            Err(KeyError::Key(_))
        ));
    }

    /// A key step-ca generated and encrypted (tests/fixtures/MANIFEST.tsv).
    #[test]
    fn the_key_step_ca_encrypted_opens_with_its_password_only() {
        let made: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/stepca-provisioner-key.json"
        ))
        .unwrap();
        let jwe = made["encryptedKey"].as_str().unwrap();
        let key = ProvisionerKey::parse(jwe, Some(b"unity fixture password")).unwrap();
        assert_eq!(key.kid, made["key"]["kid"].as_str().unwrap());
        let x = B64
            .decode(made["key"]["x"].as_str().unwrap().as_bytes())
            .unwrap();
        let y = B64
            .decode(made["key"]["y"].as_str().unwrap().as_bytes())
            .unwrap();
        assert_eq!(key.public_key(), [&[4u8][..], &x, &y].concat());
        assert_eq!(
            thumbprint(&x, &y),
            key.kid,
            "step's kid is the RFC 7638 thumbprint"
        );
        assert_eq!(
            ProvisionerKey::parse(jwe, Some(b"unity fixture passwore")).unwrap_err(),
            KeyError::Decrypt
        );
        let mut damaged = jwe.to_owned();
        damaged.replace_range(damaged.len() - 3.., "AAA");
        assert_eq!(
            ProvisionerKey::parse(&damaged, Some(b"unity fixture password")).unwrap_err(),
            KeyError::Decrypt
        );
    }

    /// Damaged keys of every kind come back as errors, never a panic: thousands of byte
    /// mutations of the plain JWK, and of the JWE's header, key and tag (the JWE's PBKDF2
    /// makes each try cost milliseconds, hence fewer).
    #[test]
    fn mutated_keys_are_errors_not_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut mutate = |text: &str, tries: usize| {
            let bytes = text.as_bytes();
            for _ in 0..tries {
                let mut b = bytes.to_vec();
                for _ in 0..=(next() % 4) {
                    let at = usize::try_from(next()).unwrap_or(0) % b.len();
                    match next() % 3 {
                        0 => b[at] = u8::try_from(next() % 256).unwrap_or(0),
                        1 => {
                            b.remove(at);
                        }
                        _ => b.truncate(at),
                    }
                    if b.is_empty() {
                        break;
                    }
                }
                let text = String::from_utf8_lossy(&b);
                let _ = ProvisionerKey::parse(&text, Some(b"unity fixture password"));
            }
        };
        mutate(&fixture_jwk(), 5000);
        let made: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/stepca-provisioner-key.json"
        ))
        .unwrap();
        let jwe = made["encryptedKey"].as_str().unwrap();
        let (header, rest) = jwe.split_once('.').unwrap();
        let hostile_header =
            B64.encode(br#"{"alg":"PBES2-HS256+A128KW","enc":"A256GCM","p2s":"AAAA","p2c":1}"#);
        mutate(&format!("{hostile_header}.{rest}"), 2000);
        mutate(&format!("{header}.{rest}"), 30);
    }

    #[test]
    fn a_jwe_with_a_hostile_iteration_count_is_refused_before_any_work() {
        let header = B64.encode(
            br#"{"alg":"PBES2-HS256+A128KW","enc":"A256GCM","p2s":"AAAA","p2c":4000000000}"#,
        );
        let jwe = format!("{header}.AAAA.AAAA.AAAA.AAAA");
        assert!(
            matches!(ProvisionerKey::parse(&jwe, Some(b"pw")), Err(KeyError::Format(m)) if m.contains("p2c"))
        );
    }
}
