//! rustls configurations for both ends of the agent ↔ controller link.
//!
//! * The controller offers two ALPNs. On [`ALPN_AGENT`] the agent **must** present a
//!   certificate chaining to our CA (the controller closes a session without one before reading
//!   a byte); on [`ALPN_ENROLL`] it may present none and can only enroll with a token. Any
//!   certificate that *is* presented is verified during the handshake — unknown CA, expired or
//!   not-yet-valid certificates, and revoked serials fail there.
//! * Agents verify the controller against [`CONTROLLER_SERVER_NAME`] and our CA only. Before
//!   enrollment they know just the CA's fingerprint: [`enrollment_client_config`] accepts a
//!   server chain only if it contains a CA certificate with exactly that fingerprint, and then
//!   verifies the leaf against it like any other chain.
//!
//! TLS 1.3 only (QUIC requires it); no early data on either side.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use unity_protocol::{ALPN_AGENT, ALPN_ENROLL};

use crate::fingerprint::Fingerprint;

pub use crate::identity::CONTROLLER_SERVER_NAME;

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("CA certificate is not usable as a trust anchor")]
    TrustAnchor(#[source] rustls::Error),
    #[error("could not build the client-certificate verifier")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
    #[error("could not build the server-certificate verifier")]
    ServerVerifier(#[source] rustls::server::VerifierBuilderError),
    #[error("certificate chain and key do not form a usable TLS identity")]
    Identity(#[source] rustls::Error),
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, TlsConfigError> {
    roots_of(std::slice::from_ref(ca))
}

fn roots_of(cas: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsConfigError> {
    let mut store = RootCertStore::empty();
    for ca in cas {
        store.add(ca.clone()).map_err(TlsConfigError::TrustAnchor)?;
    }
    Ok(Arc::new(store))
}

/// The controller's QUIC server configuration.
///
/// `client_roots` are the CAs whose host certificates open agent sessions: the built-in CA,
/// and step-ca's root when one is configured (both while a fleet switches issuer; see
/// docs/pki.md). Whichever signed, the session still has to name an active host. `crls`
/// revoke host certificates by serial during the handshake.
pub fn controller_server_config(
    client_roots: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<ServerConfig, TlsConfigError> {
    let provider = crate::crypto_provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots_of(client_roots)?, provider.clone())
            .with_crls(crls)
            // Enrollment connections have no certificate yet; the controller enforces that agent
            // sessions do (see module docs).
            .allow_unauthenticated()
            .build()
            .map_err(TlsConfigError::ClientVerifier)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsConfigError::Identity)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(TlsConfigError::Identity)?;
    config.alpn_protocols = vec![ALPN_AGENT.to_vec(), ALPN_ENROLL.to_vec()];
    config.max_early_data_size = 0;
    Ok(config)
}

/// An enrolled agent's client configuration: pins our CA, presents the host certificate.
pub fn agent_client_config(
    ca: &CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ClientConfig, TlsConfigError> {
    let provider = crate::crypto_provider();
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsConfigError::Identity)?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(chain, key)
        .map_err(TlsConfigError::Identity)?;
    config.alpn_protocols = vec![ALPN_AGENT.to_vec()];
    config.enable_early_data = false;
    Ok(config)
}

/// Client configuration for enrollment: no client certificate, server trusted only if its
/// chain contains the CA with `pinned` fingerprint.
///
/// The returned [`PinCheck`] tells, after a failed handshake, which certificates the server
/// actually presented — so the agent can tell the operator exactly what did not match instead
/// of a bare "handshake failed".
pub fn enrollment_client_config(
    pinned: Fingerprint,
) -> Result<(ClientConfig, PinCheck), TlsConfigError> {
    let provider = crate::crypto_provider();
    let check = PinCheck::default();
    let verifier = PinnedCaVerifier {
        pinned,
        provider: provider.clone(),
        check: check.clone(),
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsConfigError::Identity)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_ENROLL.to_vec()];
    config.enable_early_data = false;
    Ok((config, check))
}

/// What the enrollment verifier saw when the pin did not match.
#[derive(Debug, Clone, Default)]
pub struct PinCheck {
    presented: Arc<std::sync::Mutex<Option<Vec<Fingerprint>>>>,
}

impl PinCheck {
    /// Fingerprints of the CA candidates the server presented, if the pin did not match any.
    pub fn mismatch(&self) -> Option<Vec<Fingerprint>> {
        self.presented.lock().ok().and_then(|seen| seen.clone())
    }

    fn record_mismatch(&self, presented: Vec<Fingerprint>) {
        if let Ok(mut seen) = self.presented.lock() {
            *seen = Some(presented);
        }
    }
}

/// Trusts a server chain only when it carries the pinned CA, then verifies it with webpki.
#[derive(Debug)]
struct PinnedCaVerifier {
    pinned: Fingerprint,
    provider: Arc<rustls::crypto::CryptoProvider>,
    check: PinCheck,
}

/// The pinned fingerprint was not found in what the server sent.
#[derive(Debug, thiserror::Error)]
#[error(
    "the controller's CA does not match the pinned fingerprint {pinned}; \
     check --ca-fingerprint against `unity-controller ca fingerprint`"
)]
pub struct FingerprintMismatch {
    pub pinned: Fingerprint,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| Fingerprint::of_der(c) == self.pinned)
        else {
            self.check.record_mismatch(
                intermediates
                    .iter()
                    .map(|c| Fingerprint::of_der(c))
                    .collect(),
            );
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                    FingerprintMismatch {
                        pinned: self.pinned,
                    },
                ))),
            ));
        };
        let roots =
            roots(&ca.clone().into_owned()).map_err(|e| rustls::Error::General(e.to_string()))?;
        let inner = WebPkiServerVerifier::builder_with_provider(roots, self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests;
