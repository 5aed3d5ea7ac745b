//! The built-in certificate authority.
//!
//! One self-signed ECDSA P-256 root, persisted as `ca.key.pem` (0600) and `ca.cert.pem` in the
//! controller's data directory. It signs host certificates from agents' CSRs — taking only the
//! public key from the CSR; the subject and SANs are ours — and the controller's own server
//! certificate.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::{
    CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use time::OffsetDateTime;

use crate::files::{self, WriteError};
use crate::fingerprint::Fingerprint;
use crate::identity::{CONTROLLER_SERVER_NAME, CONTROLLER_URI, HostIdentity};

const KEY_FILE: &str = "ca.key.pem";
const CERT_FILE: &str = "ca.cert.pem";
/// The root lives ten years; host certificates are short-lived and rotate underneath it.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Backdating absorbs modest clock skew between controller and hosts.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("could not generate the CA key pair or certificate")]
    Generate(#[source] rcgen::Error),
    #[error("could not read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not hold a usable CA {what}")]
    Corrupt {
        path: String,
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error(
        "only one of {key} and {cert} exists; restore the other or remove both to create a new CA"
    )]
    HalfPresent { key: String, cert: String },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("certificate signing request is invalid or its signature does not verify")]
    BadCsr(#[source] rcgen::Error),
    #[error("could not sign the certificate")]
    Sign(#[source] rcgen::Error),
    #[error("validity of {0:?} is out of range")]
    Validity(Duration),
}

/// A certificate just issued.
#[derive(Clone)]
pub struct IssuedCertificate {
    pub der: CertificateDer<'static>,
    pub pem: String,
    /// Hex serial, as shown by `openssl x509 -serial`, for records and revocation.
    pub serial_hex: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("serial_hex", &self.serial_hex)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A server identity for the controller: the certificate chain (leaf, then CA) and its key.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub not_after: OffsetDateTime,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The built-in CA. Its key is never printed: `Debug` shows only the fingerprint.
pub struct CertificateAuthority {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Generates a new root CA in memory.
    pub fn generate(name: &str) -> Result<Self, CaError> {
        let key = KeyPair::generate().map_err(CaError::Generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(CaError::Generate)?;
        let cert_der = cert.der().clone();
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the CA from `dir`, or creates and persists a new one if neither file exists.
    /// Refuses to overwrite when only one of the two files is present: that is damage the
    /// operator must look at, not something to paper over with a new CA that orphans every host.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<Self, CaError> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        match (key_path.exists(), cert_path.exists()) {
            (true, true) => Self::load(dir),
            (false, false) => {
                let ca = Self::generate(name)?;
                files::create_private_dir(dir)?;
                files::write_private(&key_path, ca.issuer.key().serialize_pem().as_bytes())?;
                files::write_public(&cert_path, ca.cert_pem.as_bytes())?;
                tracing::info!(fingerprint = %ca.fingerprint(), dir = %dir.display(), "created built-in CA");
                Ok(ca)
            }
            _ => Err(CaError::HalfPresent {
                key: key_path.display().to_string(),
                cert: cert_path.display().to_string(),
            }),
        }
    }

    /// Loads an existing CA from `dir`.
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| CaError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let key_pem = read(KEY_FILE)?;
        let cert_pem = read(CERT_FILE)?;
        let corrupt = |name: &str, what, source| CaError::Corrupt {
            path: dir.join(name).display().to_string(),
            what,
            source,
        };
        let key = KeyPair::from_pem(&key_pem).map_err(|e| corrupt(KEY_FILE, "key", e))?;
        let cert_der = pem_to_der(&cert_pem).ok_or_else(|| {
            corrupt(
                CERT_FILE,
                "certificate",
                rcgen::Error::CouldNotParseCertificate,
            )
        })?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| corrupt(CERT_FILE, "certificate", e))?;
        Ok(Self {
            cert_der,
            cert_pem,
            issuer,
        })
    }

    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// What operators pin on agents (`--ca-fingerprint`).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.cert_der)
    }

    /// Checks that `csr_der` is a CSR whose self-signature verifies, without issuing anything:
    /// enrollment validates the request before it spends the single-use token.
    pub fn check_csr(csr_der: &[u8]) -> Result<(), CaError> {
        CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
            .map(|_| ())
            .map_err(CaError::BadCsr)
    }

    /// The common name a CSR asks for, if any (an issuer that keeps the CSR's subject — step-ca
    /// requires it to equal the token's subject — needs it; the built-in CA ignores it).
    pub fn csr_common_name(csr_der: &[u8]) -> Result<Option<String>, CaError> {
        use x509_parser::prelude::{FromDer, X509CertificationRequest};
        Self::check_csr(csr_der)?;
        // rcgen parsed it just now; x509-parser disagreeing is still a bad CSR.
        let (_, csr) = X509CertificationRequest::from_der(csr_der)
            .map_err(|_| CaError::BadCsr(rcgen::Error::CouldNotParseCertificationRequest))?;
        let subject = &csr.certification_request_info.subject;
        Ok(subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned))
    }

    /// Issues a host certificate for the public key in `csr_der`.
    ///
    /// Only the CSR's key is used (after its self-signature verifies): the subject, SANs, usages
    /// and lifetime are decided here, so an agent cannot ask for someone else's identity.
    pub fn issue_host(
        &self,
        csr_der: &[u8],
        identity: HostIdentity,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, CaError> {
        let csr =
            CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
                .map_err(CaError::BadCsr)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, identity.host_id.to_string());
            dn.push(DnType::OrganizationName, identity.tenant_id.to_string());
            dn
        };
        params.subject_alt_names = vec![SanType::URI(
            identity.uri().try_into().map_err(CaError::Sign)?,
        )];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, &csr.public_key, validity, now)
    }

    /// Issues the controller's server certificate for a fresh key. The chain returned is
    /// `[leaf, ca]`: agents enrolling by fingerprint find the CA in it.
    pub fn issue_controller(&self, validity: Duration) -> Result<ServerIdentity, CaError> {
        let key = KeyPair::generate().map_err(CaError::Generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name("unity-controller");
        params.subject_alt_names = vec![
            SanType::DnsName(CONTROLLER_SERVER_NAME.try_into().map_err(CaError::Sign)?),
            SanType::URI(CONTROLLER_URI.try_into().map_err(CaError::Sign)?),
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let issued = self.sign(params, &key, validity, OffsetDateTime::now_utc())?;
        Ok(ServerIdentity {
            chain: vec![issued.der, self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            not_after: issued.not_after,
        })
    }

    /// A signed CRL revoking `serials` (upper-case hex, as in [`IssuedCertificate::serial_hex`]).
    /// Fed to [`crate::tls::controller_server_config`] so a revoked host fails the handshake.
    pub fn revocation_list(
        &self,
        serials: &[String],
        crl_number: u64,
        now: OffsetDateTime,
    ) -> Result<rustls_pki_types::CertificateRevocationListDer<'static>, CaError> {
        let revoked_certs = serials
            .iter()
            .filter_map(|serial| hex::decode(serial).ok())
            .map(|bytes| rcgen::RevokedCertParams {
                serial_number: SerialNumber::from_slice(&bytes),
                revocation_time: now,
                reason_code: Some(rcgen::RevocationReason::CessationOfOperation),
                invalidity_date: None,
            })
            .collect();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - BACKDATE,
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(CaError::Sign)?;
        Ok(crl.der().clone())
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        public_key: &impl rcgen::PublicKeyData,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, CaError> {
        let validity_time =
            time::Duration::try_from(validity).map_err(|_| CaError::Validity(validity))?;
        params.not_before = now - BACKDATE;
        params.not_after = now
            .checked_add(validity_time)
            .ok_or(CaError::Validity(validity))?;
        let serial = random_serial()?;
        let serial_hex = hex::encode_upper(serial.to_bytes());
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(public_key, &self.issuer)
            .map_err(CaError::Sign)?;
        Ok(IssuedCertificate {
            pem: cert.pem(),
            der: cert.der().clone(),
            serial_hex,
            not_before: params.not_before,
            not_after: params.not_after,
        })
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Unity Fleet");
    dn
}

/// 16 random bytes with the top bit clear, so the DER INTEGER is positive and ≤ 20 octets.
fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| CaError::Generate(rcgen::Error::RingUnspecified))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Decodes the first PEM CERTIFICATE block.
pub fn pem_to_der(pem: &str) -> Option<CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).ok()
}

/// Decodes every PEM CERTIFICATE block, in order (a leaf followed by its intermediates, as
/// the agent stores a chain). `None` when there is none or one is damaged.
pub fn pem_chain_to_der(pem: &str) -> Option<Vec<CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    (!chain.is_empty()).then_some(chain)
}

/// The serial of a DER certificate in upper-case hex without leading zero octets — the form
/// [`IssuedCertificate::serial_hex`] records, whichever CA signed the certificate.
pub fn certificate_serial_hex(der: &[u8]) -> Result<String, crate::IdentityError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| crate::IdentityError::BadCertificate {
            reason: e.to_string(),
        })?;
    let raw = cert.raw_serial();
    let first = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    Ok(hex::encode_upper(&raw[first..]))
}

/// Encodes a DER certificate as PEM.
pub fn der_to_pem(der: &[u8]) -> String {
    let body = data_encoding::BASE64.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::agent_key::AgentKey;
    use uuid::Uuid;

    #[test]
    fn a_certificates_serial_reads_back_as_recorded_and_chains_round_trip_through_pem() {
        let ca = CertificateAuthority::generate("t").unwrap();
        let key = AgentKey::generate().unwrap();
        let identity = HostIdentity {
            tenant_id: Uuid::new_v4(),
            host_id: Uuid::new_v4(),
        };
        let issue = || {
            ca.issue_host(
                &key.csr_der("h").unwrap(),
                identity,
                Duration::from_secs(3600),
                OffsetDateTime::now_utc(),
            )
            .unwrap()
        };
        for _ in 0..50 {
            let issued = issue();
            assert_eq!(
                certificate_serial_hex(&issued.der).unwrap(),
                issued.serial_hex
            );
        }
        let issued = issue();
        let pem = der_to_pem(&issued.der) + &der_to_pem(ca.certificate_der());
        let chain = pem_chain_to_der(&pem).unwrap();
        assert_eq!(
            chain,
            vec![issued.der.clone(), ca.certificate_der().clone()]
        );
        assert!(pem_chain_to_der("").is_none());
        assert!(
            pem_chain_to_der("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n")
                .is_none()
        );
        assert!(certificate_serial_hex(b"not a certificate").is_err());
        assert_eq!(
            CertificateAuthority::csr_common_name(&key.csr_der("nas.lan").unwrap()).unwrap(),
            Some("nas.lan".to_owned())
        );
        assert!(CertificateAuthority::csr_common_name(b"junk").is_err());
    }
}
