//! TLS for HTTPS to services outside the fleet: container registries (the agent's update
//! checks) and notification services (the controller's webhooks, ntfy, Gotify, Discord).
//!
//! reqwest 0.13 builds its own rustls configuration from the process-wide default crypto
//! provider and panics in `Client::build` when none is installed (its `rustls-no-provider`
//! feature; the other one would bring aws-lc-rs beside our ring). Handing it this
//! configuration instead keeps one provider ([`crate::crypto_provider`]) and no dependence
//! on global install order. Certificates are checked by `rustls-platform-verifier`, which on
//! Linux trusts the system's roots (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), the
//! same roots reqwest uses by default.

use std::sync::Arc;

use rustls::ClientConfig;

#[derive(Debug, thiserror::Error)]
pub enum WebTlsError {
    #[error("the system's certificate verifier could not be set up")]
    Verifier(#[source] rustls::Error),
    #[error("the crypto provider offers no usable TLS version")]
    Versions(#[source] rustls::Error),
}

/// The client configuration for a reqwest client talking HTTPS to the public web: ring, TLS
/// 1.2 and 1.3, the system's roots, HTTP/1.1 over ALPN (our clients do not enable HTTP/2).
pub fn web_client_config() -> Result<ClientConfig, WebTlsError> {
    let provider = crate::crypto_provider();
    let verifier =
        rustls_platform_verifier::Verifier::new(provider.clone()).map_err(WebTlsError::Verifier)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(WebTlsError::Versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_web_config_builds_with_our_provider_and_offers_http_1_1() {
        let config = web_client_config().expect("system verifier");
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        assert!(
            config
                .crypto_provider()
                .cipher_suites
                .iter()
                .any(|s| s.version().version == rustls::ProtocolVersion::TLSv1_3)
        );
    }
}
