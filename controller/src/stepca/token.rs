//! The one-time token step-ca's JWK provisioner accepts (`/1.0/sign`, `/1.0/revoke`): a JWS
//! (ES256) whose claims name the provisioner (`iss`), the endpoint (`aud`), the subject and
//! SANs the certificate will carry, a short validity and a unique `jti` — step-ca refuses a
//! `jti` it has seen, so each token works once. Pure: the time and the id are passed in.

use data_encoding::BASE64URL_NOPAD as B64;
use serde::Serialize;
use time::OffsetDateTime;

use super::provisioner_key::{KeyError, ProvisionerKey};

/// How long a token is valid: it is used at once, by the controller itself.
pub const TOKEN_LIFETIME: time::Duration = time::Duration::minutes(5);

/// What a token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest<'a> {
    /// The provisioner's name in step-ca's `ca.json`.
    pub issuer: &'a str,
    /// The full URL the token will be presented to (`https://ca:9000/1.0/sign`).
    pub audience: &'a str,
    /// For signing, the certificate's common name; for revocation, the serial (decimal).
    pub subject: &'a str,
    /// The certificate's SANs (signing only).
    pub sans: &'a [String],
    /// The root's SHA-256 fingerprint (hex), as `step ca token` sets `sha`.
    pub root_sha256: &'a str,
    /// Unique per token.
    pub jti: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    sans: &'a [String],
    sha: &'a str,
    jti: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

/// The compact JWS for `request`, valid from `now` for [`TOKEN_LIFETIME`].
pub fn mint(
    key: &ProvisionerKey,
    request: &TokenRequest<'_>,
    now: OffsetDateTime,
) -> Result<String, KeyError> {
    let header = Header {
        alg: "ES256",
        kid: &key.kid,
        typ: "JWT",
    };
    let iat = now.unix_timestamp();
    let claims = Claims {
        iss: request.issuer,
        aud: request.audience,
        sub: request.subject,
        sans: request.sans,
        sha: request.root_sha256,
        jti: request.jti,
        iat,
        nbf: iat,
        exp: iat + TOKEN_LIFETIME.whole_seconds(),
    };
    let signing_input = format!("{}.{}", part(&header)?, part(&claims)?);
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", B64.encode(&signature)))
}

/// One base64url JSON part of the JWS.
fn part<T: Serialize>(value: &T) -> Result<String, KeyError> {
    serde_json::to_vec(value)
        .map(|json| B64.encode(&json))
        .map_err(|e| KeyError::Format(format!("could not encode a token part: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_carries_the_claims_step_ca_checks_and_verifies() {
        let mut jwk: serde_json::Value =
            serde_json::from_str(&crate::stepca::provisioner_key::tests::fixture_jwk()).unwrap();
        jwk["kid"] = "prov-kid".into();
        let key = ProvisionerKey::parse(&jwk.to_string(), None).unwrap();
        let sans = vec!["urn:unity:tenant:t:host:h".to_owned()];
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let token = mint(
            &key,
            &TokenRequest {
                issuer: "unity",
                audience: "https://ca.lan:9000/1.0/sign",
                subject: "nas",
                sans: &sans,
                root_sha256: "ab12",
                jti: "once",
            },
            now,
        )
        .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[0].as_bytes()).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "kid": "prov-kid", "typ": "JWT"})
        );
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[1].as_bytes()).unwrap()).unwrap();
        assert_eq!(claims["iss"], "unity");
        assert_eq!(claims["aud"], "https://ca.lan:9000/1.0/sign");
        assert_eq!(claims["sub"], "nas");
        assert_eq!(claims["sans"], serde_json::json!(sans));
        assert_eq!(claims["jti"], "once");
        assert_eq!(claims["nbf"], 1_800_000_000);
        assert_eq!(claims["exp"], 1_800_000_300);
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            key.public_key(),
        );
        public
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &B64.decode(parts[2].as_bytes()).unwrap(),
            )
            .unwrap();
    }
}
