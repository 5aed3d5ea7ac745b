//! Naming tenants and hosts inside certificates.
//!
//! A host certificate carries exactly one URI SAN of the form
//! `urn:unity:tenant:<tenant-uuid>:host:<host-uuid>` (lower-case hyphenated UUIDs). The
//! controller derives the tenant of every message from this SAN — never from anything the agent
//! says in a message — and checks it against the host's record.
//!
//! The controller's certificate carries the DNS SAN [`CONTROLLER_SERVER_NAME`] and the URI
//! [`CONTROLLER_URI`]. Agents always verify the controller against that name, whatever address
//! they dial, so an operator can reach the controller by IP, by LAN name or through NAT without
//! re-issuing anything: the pinned CA is what makes the name trustworthy.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The DNS name every agent verifies the controller's certificate against. `.invalid` is
/// reserved (RFC 2606): it can never collide with a real name on the operator's network.
pub const CONTROLLER_SERVER_NAME: &str = "controller.unity.invalid";
/// URI SAN in the controller's certificate.
pub const CONTROLLER_URI: &str = "urn:unity:controller";

const PREFIX: &str = "urn:unity:tenant:";
const HOST_PART: &str = ":host:";

/// Which tenant a host belongs to and which host it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostIdentity {
    pub tenant_id: Uuid,
    pub host_id: Uuid,
}

/// A certificate or URI that does not name a host the way we issue them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("`{uri}` is not a Unity host URI (expected urn:unity:tenant:<uuid>:host:<uuid>)")]
    MalformedUri { uri: String },
    #[error("certificate could not be parsed: {reason}")]
    BadCertificate { reason: String },
    #[error("certificate has no Unity host URI SAN")]
    NoHostUri,
    #[error("certificate has {count} Unity host URI SANs; exactly one is allowed")]
    SeveralHostUris { count: usize },
}

impl HostIdentity {
    pub fn uri(&self) -> String {
        self.to_string()
    }

    /// Reads the identity from a DER certificate (normally the peer's, after rustls verified
    /// its chain). Exactly one host URI is accepted: a certificate naming two hosts is refused
    /// rather than guessed at.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| IdentityError::BadCertificate {
                reason: e.to_string(),
            })?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::BadCertificate {
                reason: e.to_string(),
            })?;
        let uris: Vec<&str> = san
            .into_iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with(PREFIX) => Some(*uri),
                _ => None,
            })
            .collect();
        match uris.as_slice() {
            [] => Err(IdentityError::NoHostUri),
            [uri] => uri.parse(),
            many => Err(IdentityError::SeveralHostUris { count: many.len() }),
        }
    }
}

impl fmt::Display for HostIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}{HOST_PART}{}", self.tenant_id, self.host_id)
    }
}

impl FromStr for HostIdentity {
    type Err = IdentityError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let malformed = || IdentityError::MalformedUri {
            uri: uri.to_owned(),
        };
        let rest = uri.strip_prefix(PREFIX).ok_or_else(malformed)?;
        let (tenant, host) = rest.split_once(HOST_PART).ok_or_else(malformed)?;
        let parse = |s: &str| {
            // Only the canonical hyphenated form, so one identity has one spelling.
            Uuid::try_parse(s)
                .ok()
                .filter(|u| u.hyphenated().to_string() == s)
        };
        Ok(HostIdentity {
            tenant_id: parse(tenant).ok_or_else(malformed)?,
            host_id: parse(host).ok_or_else(malformed)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_round_trips() {
        let id = HostIdentity {
            tenant_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
        };
        assert_eq!(
            id.uri(),
            "urn:unity:tenant:00000000-0000-0000-0000-000000000001:host:00000000-0000-0000-0000-000000000002"
        );
        assert_eq!(id.uri().parse::<HostIdentity>().unwrap(), id);
    }

    #[test]
    fn malformed_uris_are_refused() {
        for bad in [
            "",
            "urn:unity:tenant:",
            "urn:unity:tenant:00000000-0000-0000-0000-000000000001",
            "urn:unity:tenant:x:host:y",
            "urn:unity:tenant:00000000000000000000000000000001:host:00000000-0000-0000-0000-000000000002",
            "urn:unity:tenant:00000000-0000-0000-0000-000000000001:host:00000000-0000-0000-0000-000000000002:extra",
            "URN:UNITY:TENANT:00000000-0000-0000-0000-000000000001:host:00000000-0000-0000-0000-000000000002",
        ] {
            assert!(bad.parse::<HostIdentity>().is_err(), "{bad}");
        }
    }
}
