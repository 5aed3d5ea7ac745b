//! Who signs host certificates: the built-in CA or the operator's step-ca (docs/pki.md).
//!
//! Enrollment and renewal ask a [`HostIssuer`] for a certificate naming the identity the
//! controller decided; they never know which CA answered. The issuer also says which roots
//! agent sessions may chain to: the built-in CA always (it signs the controller's own
//! certificate and every host enrolled before step-ca), and step-ca's root whenever step-ca
//! is configured — also while `issuer = "built-in"`, so a fleet can switch either way with
//! every host connected and renew into the other CA at its own pace.

pub mod revocations;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use unity_pki::rotation::Validity;
use unity_pki::{CertificateAuthority, HostIdentity};

use crate::error_chain;
use crate::stepca::{StepCa, StepCaError};

/// Which CA signed a certificate, as `host_certificates.issuer` and `hosts.cert_issuer` name
/// it.
///
/// The same words name it in `[pki] issuer` (the built-in CA is the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssuerKind {
    #[default]
    BuiltIn,
    StepCa,
}

unity_protocol::word_enum!(IssuerKind, UnknownIssuer, "certificate issuer", {
    BuiltIn => "built-in",
    StepCa => "step-ca",
});

/// For reading the column (`#[sqlx(try_from = "String")]`).
impl TryFrom<String> for IssuerKind {
    type Error = UnknownIssuer;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// A host certificate, whoever signed it.
#[derive(Debug, Clone)]
pub struct IssuedHost {
    pub certificate_der: Vec<u8>,
    /// Between the certificate and its root, nearest first; empty from the built-in CA.
    pub intermediates: Vec<Vec<u8>>,
    /// As `unity_pki::ca::certificate_serial_hex` writes it.
    pub serial_hex: String,
    pub not_after: OffsetDateTime,
    pub issuer: IssuerKind,
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The agent's request cannot be signed: its fault, permanent.
    #[error("the CSR cannot be signed: {0}")]
    BadCsr(String),
    /// The issuer cannot sign now (step-ca down, overloaded, misconfigured): try again.
    #[error("the certificate issuer is unavailable: {0}")]
    Unavailable(String),
}

/// The issuer in use and the roots agent sessions may chain to.
#[derive(Debug)]
pub struct HostIssuer {
    built_in: Arc<CertificateAuthority>,
    step_ca: Option<StepCaIssuer>,
    issues_with: IssuerKind,
}

#[derive(Debug)]
struct StepCaIssuer {
    client: StepCa,
    /// `None`: the provisioner's default lifetime.
    lifetime: Option<Duration>,
}

impl HostIssuer {
    /// The built-in CA alone (the default, and every test that does not need step-ca).
    pub fn built_in(ca: Arc<CertificateAuthority>) -> Self {
        Self {
            built_in: ca,
            step_ca: None,
            issues_with: IssuerKind::BuiltIn,
        }
    }

    /// Both CAs trusted; `issues_with` signs new certificates. `lifetime` is what host
    /// certificates from step-ca are asked to live (`None`: the provisioner's default).
    pub fn with_step_ca(
        ca: Arc<CertificateAuthority>,
        step_ca: StepCa,
        lifetime: Option<Duration>,
        issues_with: IssuerKind,
    ) -> Self {
        Self {
            built_in: ca,
            step_ca: Some(StepCaIssuer {
                client: step_ca,
                lifetime,
            }),
            issues_with,
        }
    }

    pub fn kind(&self) -> IssuerKind {
        self.issues_with
    }

    /// The step-ca client, when step-ca is configured (revocations go through it).
    pub fn step_ca(&self) -> Option<&StepCa> {
        self.step_ca.as_ref().map(|s| &s.client)
    }

    /// The built-in CA's certificate: what agents verify the controller against.
    pub fn built_in_certificate_der(&self) -> &CertificateDer<'static> {
        self.built_in.certificate_der()
    }

    /// The roots a host certificate may chain to.
    pub fn client_roots(&self) -> Vec<CertificateDer<'static>> {
        let mut roots = vec![self.built_in.certificate_der().clone()];
        if let Some(step_ca) = &self.step_ca {
            roots.push(step_ca.client.root().clone());
        }
        roots
    }

    /// Checks a CSR the way the issuer will, before anything is spent on it.
    pub fn check_csr(csr_der: &[u8]) -> Result<(), IssueError> {
        CertificateAuthority::check_csr(csr_der).map_err(|e| IssueError::BadCsr(error_chain(&e)))
    }

    /// A certificate for the key in `csr_der` naming `identity`, valid for `validity` (the
    /// built-in CA) or the configured step-ca lifetime.
    pub async fn issue(
        &self,
        csr_der: &[u8],
        identity: HostIdentity,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedHost, IssueError> {
        match (self.issues_with, &self.step_ca) {
            (IssuerKind::StepCa, Some(step_ca)) => {
                Self::issue_at_step_ca(step_ca, csr_der, identity, now).await
            }
            _ => {
                let issued = self
                    .built_in
                    .issue_host(csr_der, identity, validity, now)
                    .map_err(|e| IssueError::BadCsr(error_chain(&e)))?;
                Ok(IssuedHost {
                    certificate_der: issued.der.to_vec(),
                    intermediates: Vec::new(),
                    serial_hex: issued.serial_hex,
                    not_after: issued.not_after,
                    issuer: IssuerKind::BuiltIn,
                })
            }
        }
    }

    async fn issue_at_step_ca(
        step_ca: &StepCaIssuer,
        csr_der: &[u8],
        identity: HostIdentity,
        now: OffsetDateTime,
    ) -> Result<IssuedHost, IssueError> {
        // step-ca keeps the CSR's subject and requires its common name to be empty or the
        // token's subject: the agent's CN (its hostname, or its host id on renewal) is it.
        let subject = CertificateAuthority::csr_common_name(csr_der)
            .map_err(|e| IssueError::BadCsr(error_chain(&e)))?
            .filter(|cn| !cn.is_empty())
            .unwrap_or_else(|| identity.host_id.to_string());
        let not_after = step_ca
            .lifetime
            .and_then(|lifetime| time::Duration::try_from(lifetime).ok())
            .map(|lifetime| now + lifetime);
        let signed = step_ca
            .client
            .sign(csr_der, &subject, &[identity.uri()], not_after, now)
            .await
            .map_err(|error| match error {
                // A 4xx about this CSR is the request's fault; step-ca's own trouble, its
                // configuration (provisioner limits) and the network are not the agent's.
                StepCaError::Refused { status, message }
                    if status == 400 && message.to_ascii_lowercase().contains("csr") =>
                {
                    IssueError::BadCsr(format!("step-ca refused the CSR: {message}"))
                }
                other => IssueError::Unavailable(error_chain(&other)),
            })?;
        let leaf = signed.leaf_der.to_vec();
        // A custom step-ca template could name something else: never hand that out.
        match HostIdentity::from_certificate_der(&leaf) {
            Ok(named) if named == identity => {}
            other => {
                return Err(IssueError::Unavailable(format!(
                    "step-ca returned a certificate that does not name {identity} ({other:?}); \
                     check the provisioner's template"
                )));
            }
        }
        let serial_hex = unity_pki::ca::certificate_serial_hex(&leaf)
            .map_err(|e| IssueError::Unavailable(format!("step-ca's certificate: {e}")))?;
        let not_after = Validity::of_der(&leaf)
            .map_err(|e| IssueError::Unavailable(format!("step-ca's certificate: {e}")))?
            .not_after;
        Ok(IssuedHost {
            certificate_der: leaf,
            intermediates: signed.intermediates.iter().map(|c| c.to_vec()).collect(),
            serial_hex,
            not_after,
            issuer: IssuerKind::StepCa,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_names_round_trip() {
        for kind in [IssuerKind::BuiltIn, IssuerKind::StepCa] {
            assert_eq!(kind.as_str().parse::<IssuerKind>(), Ok(kind));
        }
        assert!("acme".parse::<IssuerKind>().is_err());
    }
}
