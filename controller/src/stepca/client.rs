//! Talking to a step-ca: bootstrap trust in its root the way `step ca bootstrap` does, then
//! `/1.0/sign` and `/1.0/revoke` with one-time tokens the controller mints with its
//! provisioner key. Every request after the bootstrap verifies the CA's TLS certificate
//! against that root and nothing else (no system roots: a homelab CA is not a public one).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::provisioner_key::{KeyError, ProvisionerKey};
use super::token::{TokenRequest, mint};

/// How long one request to step-ca may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum StepCaError {
    #[error("step-ca at {url} could not be reached: {detail}")]
    Unreachable { url: String, detail: String },
    #[error(
        "step-ca's root has fingerprint {got}, not the configured {expected}: refusing to trust it"
    )]
    WrongRoot { expected: String, got: String },
    #[error("step-ca refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("step-ca answered something unexpected: {0}")]
    BadAnswer(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("could not set up TLS to step-ca: {0}")]
    Tls(String),
}

/// How to reach a step-ca and sign with it.
#[derive(Debug)]
pub struct StepCaSettings {
    /// `https://ca.lan:9000` (no path).
    pub url: String,
    /// SHA-256 of the root certificate (hex, as `step certificate fingerprint` prints it;
    /// colons and case ignored).
    pub root_fingerprint: String,
    /// The JWK provisioner's name.
    pub provisioner: String,
    pub key: ProvisionerKey,
}

/// A certificate step-ca signed.
#[derive(Debug, Clone)]
pub struct Signed {
    pub leaf_der: CertificateDer<'static>,
    /// The intermediates above it, nearest first (without the root).
    pub intermediates: Vec<CertificateDer<'static>>,
}

/// A bootstrapped step-ca.
#[derive(Debug)]
pub struct StepCa {
    url: String,
    root_der: CertificateDer<'static>,
    root_sha256: String,
    provisioner: String,
    key: ProvisionerKey,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct RootAnswer {
    ca: String,
}

#[derive(Deserialize)]
struct SignAnswer {
    crt: String,
    #[serde(default, rename = "certChain")]
    cert_chain: Vec<String>,
    #[serde(default)]
    ca: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    message: String,
}

#[derive(Serialize)]
struct SignBody<'a> {
    csr: String,
    ott: &'a str,
    #[serde(rename = "notAfter", skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
}

#[derive(Serialize)]
struct RevokeBody<'a> {
    serial: &'a str,
    ott: &'a str,
    passive: bool,
    #[serde(rename = "reasonCode")]
    reason_code: u8,
    reason: &'a str,
}

/// A certificate serial in hex (as the controller records it) in decimal, as step-ca's
/// revoke API takes it. `None` for anything but hex digits.
pub fn serial_decimal(hex: &str) -> Option<String> {
    let mut digits: Vec<u8> = vec![0]; // decimal, most significant first
    for c in hex.chars().filter(|c| *c != ':') {
        let mut carry = c.to_digit(16)?;
        for d in digits.iter_mut().rev() {
            let v = u32::from(*d) * 16 + carry;
            *d = u8::try_from(v % 10).unwrap_or(0);
            carry = v / 10;
        }
        while carry > 0 {
            digits.insert(0, u8::try_from(carry % 10).unwrap_or(0));
            carry /= 10;
        }
    }
    let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    let trimmed = text.trim_start_matches('0');
    Some(if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.to_owned()
    })
}

fn normalized_fingerprint(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_ascii_lowercase()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any server certificate: only for fetching the root whose fingerprint is then
/// checked — the same leap `step ca bootstrap` takes, and the only request made this way.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client(tls: rustls::ClientConfig) -> Result<reqwest::Client, StepCaError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| StepCaError::Tls(e.to_string()))
}

fn pem_to_der(pem: &str, what: &str) -> Result<CertificateDer<'static>, StepCaError> {
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| StepCaError::BadAnswer(format!("{what} is not a PEM certificate: {e}")))
}

/// A DER CSR as the PEM `/1.0/sign` takes.
fn csr_pem(der: &[u8]) -> String {
    let body = data_encoding::BASE64.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE REQUEST-----\n");
    pem
}

fn unreachable(url: &str) -> impl Fn(reqwest::Error) -> StepCaError + '_ {
    move |e| StepCaError::Unreachable {
        url: url.to_owned(),
        detail: crate::error_chain(&e),
    }
}

/// step-ca's error answer as an error.
async fn refused(response: reqwest::Response) -> StepCaError {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorAnswer>(&text)
        .map(|e| e.message)
        .unwrap_or_else(|_| text.chars().take(300).collect());
    StepCaError::Refused { status, message }
}

impl StepCa {
    /// Fetches `/root/{fingerprint}`, checks the certificate's SHA-256 is that fingerprint,
    /// and from then on trusts only it; `/health` over the verified connection proves the
    /// CA's own certificate chains to it.
    pub async fn bootstrap(settings: StepCaSettings) -> Result<Self, StepCaError> {
        let url = settings.url.trim_end_matches('/').to_owned();
        let expected = normalized_fingerprint(&settings.root_fingerprint);
        if expected.len() != 64 {
            return Err(StepCaError::WrongRoot {
                expected: settings.root_fingerprint,
                got: "(the configured fingerprint is not 64 hex digits)".into(),
            });
        }
        let insecure = client(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| StepCaError::Tls(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
                .with_no_client_auth(),
        )?;
        let response = insecure
            .get(format!("{url}/root/{expected}"))
            .send()
            .await
            .map_err(unreachable(&url))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(StepCaError::WrongRoot {
                expected,
                got: "(step-ca has no root with that fingerprint)".into(),
            });
        }
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        let root: RootAnswer = response
            .json()
            .await
            .map_err(|e| StepCaError::BadAnswer(format!("/root: {e}")))?;
        let root_der = pem_to_der(&root.ca, "the root")?;
        let got = hex::encode(ring::digest::digest(&ring::digest::SHA256, &root_der));
        if got != expected {
            return Err(StepCaError::WrongRoot { expected, got });
        }
        let ca = Self::with_root(settings, root_der)?;
        let health = ca
            .http
            .get(format!("{}/health", ca.url))
            .send()
            .await
            .map_err(unreachable(&ca.url))?;
        if !health.status().is_success() {
            return Err(refused(health).await);
        }
        tracing::info!(url = %ca.url, root_sha256 = %ca.root_sha256,
            provisioner = %ca.provisioner, "step-ca bootstrapped");
        Ok(ca)
    }

    /// Whether `root_der` is the root `settings` names (its SHA-256 is the configured
    /// fingerprint), checked before a cached root is used.
    pub fn is_configured_root(settings: &StepCaSettings, root_der: &[u8]) -> bool {
        hex::encode(ring::digest::digest(&ring::digest::SHA256, root_der))
            == normalized_fingerprint(&settings.root_fingerprint)
    }

    /// A step-ca whose root is already known (the controller keeps the one it bootstrapped,
    /// so a restart while step-ca is down still trusts its hosts). The root must have the
    /// configured fingerprint; no request is made.
    pub fn with_root(
        settings: StepCaSettings,
        root_der: CertificateDer<'static>,
    ) -> Result<Self, StepCaError> {
        let url = settings.url.trim_end_matches('/').to_owned();
        let expected = normalized_fingerprint(&settings.root_fingerprint);
        let got = hex::encode(ring::digest::digest(&ring::digest::SHA256, &root_der));
        if got != expected {
            return Err(StepCaError::WrongRoot { expected, got });
        }
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(root_der.clone())
            .map_err(|e| StepCaError::BadAnswer(format!("the root is not a usable CA: {e}")))?;
        let http = client(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| StepCaError::Tls(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )?;
        Ok(Self {
            url,
            root_der,
            root_sha256: got,
            provisioner: settings.provisioner,
            key: settings.key,
            http,
        })
    }

    /// The root agents' certificates chain to.
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.root_der
    }

    pub fn root_sha256(&self) -> &str {
        &self.root_sha256
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn token(
        &self,
        path: &str,
        subject: &str,
        sans: &[String],
        now: OffsetDateTime,
    ) -> Result<String, StepCaError> {
        let audience = format!("{}{path}", self.url);
        let jti = Uuid::new_v4().simple().to_string();
        Ok(mint(
            &self.key,
            &TokenRequest {
                issuer: &self.provisioner,
                audience: &audience,
                subject,
                sans,
                root_sha256: &self.root_sha256,
                jti: &jti,
            },
            now,
        )?)
    }

    /// Signs `csr_der` with the common name `subject` and exactly `sans`, valid until
    /// `not_after` (within the provisioner's limits, or step-ca refuses) or, with `None`, for
    /// the provisioner's default lifetime.
    pub async fn sign(
        &self,
        csr_der: &[u8],
        subject: &str,
        sans: &[String],
        not_after: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<Signed, StepCaError> {
        let ott = self.token("/1.0/sign", subject, sans, now)?;
        self.sign_with_token(csr_der, &ott, not_after).await
    }

    /// [`StepCa::sign`] with a token made beforehand (tests replay one).
    pub async fn sign_with_token(
        &self,
        csr_der: &[u8],
        ott: &str,
        not_after: Option<OffsetDateTime>,
    ) -> Result<Signed, StepCaError> {
        let not_after = match not_after {
            Some(at) => Some(
                at.format(&Rfc3339)
                    .map_err(|e| StepCaError::BadAnswer(e.to_string()))?,
            ),
            None => None,
        };
        let body = SignBody {
            csr: csr_pem(csr_der),
            ott,
            not_after,
        };
        let response = self
            .http
            .post(format!("{}/1.0/sign", self.url))
            .json(&body)
            .send()
            .await
            .map_err(unreachable(&self.url))?;
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        let answer: SignAnswer = response
            .json()
            .await
            .map_err(|e| StepCaError::BadAnswer(format!("/1.0/sign: {e}")))?;
        let leaf_der = pem_to_der(&answer.crt, "the certificate")?;
        // `certChain` is [leaf, intermediates…]; older step-ca answers only `ca`.
        let mut intermediates = Vec::new();
        for pem in answer.cert_chain.iter().skip(1) {
            intermediates.push(pem_to_der(pem, "an intermediate")?);
        }
        if intermediates.is_empty()
            && let Some(ca) = &answer.ca
        {
            intermediates.push(pem_to_der(ca, "the intermediate")?);
        }
        Ok(Signed {
            leaf_der,
            intermediates,
        })
    }

    /// A one-time token for signing (tests use it twice to see step-ca refuse the replay).
    pub fn sign_token(
        &self,
        subject: &str,
        sans: &[String],
        now: OffsetDateTime,
    ) -> Result<String, StepCaError> {
        self.token("/1.0/sign", subject, sans, now)
    }

    /// Revokes the certificate with `serial_decimal` (passive: step-ca records it and refuses
    /// to renew it; the controller refuses the host itself).
    pub async fn revoke(
        &self,
        serial_decimal: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<(), StepCaError> {
        let ott = self.token("/1.0/revoke", serial_decimal, &[], now)?;
        let response = self
            .http
            .post(format!("{}/1.0/revoke", self.url))
            .json(&RevokeBody {
                serial: serial_decimal,
                ott: &ott,
                passive: true,
                reason_code: 0,
                reason,
            })
            .send()
            .await
            .map_err(unreachable(&self.url))?;
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_turn_decimal() {
        assert_eq!(serial_decimal("00").as_deref(), Some("0"));
        assert_eq!(serial_decimal("ff").as_deref(), Some("255"));
        assert_eq!(serial_decimal("01:00").as_deref(), Some("256"));
        assert_eq!(
            serial_decimal("ffffffffffffffffffffffffffffffff").as_deref(),
            Some("340282366920938463463374607431768211455")
        );
        assert_eq!(serial_decimal("xyz"), None);
    }

    #[test]
    fn fingerprints_are_compared_as_bare_lower_hex() {
        assert_eq!(normalized_fingerprint("AB:cd:01"), "abcd01");
    }
}
