//! When to renew a certificate: at two thirds of its lifetime (like linkerd's identity
//! client), so a host that is offline for a while still has a third of the lifetime — ten
//! days with the default 30 — to come back and renew before it is locked out.

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::IdentityError;

/// A certificate's validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    pub fn of_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| IdentityError::BadCertificate {
                reason: e.to_string(),
            })?;
        let validity = cert.validity();
        let convert = |t: x509_parser::time::ASN1Time| {
            OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| {
                IdentityError::BadCertificate {
                    reason: e.to_string(),
                }
            })
        };
        Ok(Self {
            not_before: convert(validity.not_before)?,
            not_after: convert(validity.not_after)?,
        })
    }

    /// The moment renewal becomes due: two thirds into the window.
    pub fn renew_at(&self) -> OffsetDateTime {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }

    pub fn renewal_due(&self, now: OffsetDateTime) -> bool {
        now >= self.renew_at()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent_key::AgentKey;
    use crate::ca::CertificateAuthority;
    use crate::identity::HostIdentity;

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime() {
        let ca = CertificateAuthority::generate("t").unwrap();
        let key = AgentKey::generate().unwrap();
        let issued_at = OffsetDateTime::now_utc();
        let cert = ca
            .issue_host(
                &key.csr_der("h").unwrap(),
                HostIdentity {
                    tenant_id: uuid::Uuid::new_v4(),
                    host_id: uuid::Uuid::new_v4(),
                },
                Duration::from_secs(30 * 24 * 3600),
                issued_at,
            )
            .unwrap();
        let validity = Validity::of_der(&cert.der).unwrap();
        assert_eq!(
            validity.not_after.unix_timestamp(),
            cert.not_after.unix_timestamp()
        );
        assert!(!validity.renewal_due(issued_at));
        assert!(!validity.renewal_due(issued_at + time::Duration::days(19)));
        assert!(validity.renewal_due(issued_at + time::Duration::days(21)));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Validity::of_der(b"nope").is_err());
    }
}
