//! Handshakes between real rustls client and server state machines, in memory. Every verdict
//! the QUIC link relies on is pinned here without sockets; the QUIC tests repeat the important
//! ones over loopback.

use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConnection, ServerConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use crate::agent_key::AgentKey;
use crate::ca::CertificateAuthority;
use crate::identity::HostIdentity;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn identity() -> HostIdentity {
    HostIdentity {
        tenant_id: Uuid::new_v4(),
        host_id: Uuid::new_v4(),
    }
}

/// Runs a handshake to completion; returns the server side on success.
fn handshake(
    client: ClientConfig,
    server: ServerConfig,
) -> Result<ServerConnection, rustls::Error> {
    let name = ServerName::try_from(CONTROLLER_SERVER_NAME)
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut c = ClientConnection::new(Arc::new(client), name)?;
    let mut s = ServerConnection::new(Arc::new(server))?;
    for _ in 0..10 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf)
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        s.read_tls(&mut &buf[..])
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let server_result = s.process_new_packets();
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf)
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        }
        c.read_tls(&mut &buf[..])
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let client_result = c.process_new_packets();
        server_result?;
        client_result?;
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(s);
        }
    }
    Err(rustls::Error::General("handshake did not finish".into()))
}

struct Pki {
    ca: CertificateAuthority,
    server: ServerConfig,
}

fn pki_with_crl(revoked: &[String]) -> Pki {
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let server_id = ca.issue_controller(DAY).unwrap();
    let crls = if revoked.is_empty() {
        vec![]
    } else {
        vec![
            ca.revocation_list(revoked, 1, OffsetDateTime::now_utc())
                .unwrap(),
        ]
    };
    let server = controller_server_config(
        std::slice::from_ref(ca.certificate_der()),
        server_id.chain,
        server_id.key,
        crls,
    )
    .unwrap();
    Pki { ca, server }
}

fn agent_config(
    ca: &CertificateAuthority,
    issued_at: OffsetDateTime,
) -> (ClientConfig, HostIdentity, String) {
    let key = AgentKey::generate().unwrap();
    let id = identity();
    let cert = ca
        .issue_host(&key.csr_der("host").unwrap(), id, 30 * DAY, issued_at)
        .unwrap();
    let config =
        agent_client_config(ca.certificate_der(), vec![cert.der], key.private_key_der()).unwrap();
    (config, id, cert.serial_hex)
}

#[test]
fn agent_with_host_certificate_is_accepted_and_identified() {
    let pki = pki_with_crl(&[]);
    let (client, id, _) = agent_config(&pki.ca, OffsetDateTime::now_utc());
    let server = handshake(client, pki.server).unwrap();
    assert_eq!(server.alpn_protocol(), Some(ALPN_AGENT));
    let peer = server.peer_certificates().unwrap();
    assert_eq!(HostIdentity::from_certificate_der(&peer[0]).unwrap(), id);
}

#[test]
fn certificate_from_another_ca_is_refused() {
    let pki = pki_with_crl(&[]);
    let other = CertificateAuthority::generate("rogue").unwrap();
    let key = AgentKey::generate().unwrap();
    let cert = other
        .issue_host(
            &key.csr_der("h").unwrap(),
            identity(),
            DAY,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    // The rogue agent trusts the real controller, but presents a rogue certificate.
    let client = agent_client_config(
        pki.ca.certificate_der(),
        vec![cert.der],
        key.private_key_der(),
    )
    .unwrap();
    let err = handshake(client, pki.server).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );
}

#[test]
fn expired_host_certificate_is_refused() {
    let pki = pki_with_crl(&[]);
    let (client, _, _) = agent_config(&pki.ca, OffsetDateTime::now_utc() - 60 * DAY);
    let err = handshake(client, pki.server).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. })
                | rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
        ),
        "{err:?}"
    );
}

#[test]
fn revoked_host_certificate_is_refused() {
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let (client, _, serial) = agent_config(&ca, OffsetDateTime::now_utc());
    let server_id = ca.issue_controller(DAY).unwrap();
    let crl = ca
        .revocation_list(&[serial], 1, OffsetDateTime::now_utc())
        .unwrap();
    let server = controller_server_config(
        std::slice::from_ref(ca.certificate_der()),
        server_id.chain,
        server_id.key,
        vec![crl],
    )
    .unwrap();
    let err = handshake(client, server).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
        ),
        "{err:?}"
    );
}

#[test]
fn unrevoked_host_passes_a_crl_naming_others() {
    let pki = pki_with_crl(&["0123ABCD".to_string()]);
    let (client, _, _) = agent_config(&pki.ca, OffsetDateTime::now_utc());
    handshake(client, pki.server).unwrap();
}

#[test]
fn enrollment_with_the_pinned_fingerprint_succeeds_without_client_certificate() {
    let pki = pki_with_crl(&[]);
    let (client, check) = enrollment_client_config(pki.ca.fingerprint()).unwrap();
    let server = handshake(client, pki.server).unwrap();
    assert!(check.mismatch().is_none());
    assert_eq!(server.alpn_protocol(), Some(ALPN_ENROLL));
    assert!(server.peer_certificates().is_none());
}

#[test]
fn enrollment_with_a_wrong_fingerprint_is_refused_by_the_agent() {
    let pki = pki_with_crl(&[]);
    let other = CertificateAuthority::generate("other").unwrap();
    let (client, check) = enrollment_client_config(other.fingerprint()).unwrap();
    let err = handshake(client, pki.server).unwrap_err();
    assert_eq!(check.mismatch(), Some(vec![pki.ca.fingerprint()]));
    let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = &err else {
        panic!("unexpected error {err:?}");
    };
    let mismatch = other.0.downcast_ref::<FingerprintMismatch>().unwrap();
    assert!(
        mismatch.to_string().contains("pinned fingerprint"),
        "{mismatch}"
    );
}

#[test]
fn agent_refuses_a_controller_certificate_from_another_ca() {
    let pki = pki_with_crl(&[]);
    let (client, _, _) = agent_config(&pki.ca, OffsetDateTime::now_utc());
    let rogue = CertificateAuthority::generate("rogue").unwrap();
    let rogue_id = rogue.issue_controller(DAY).unwrap();
    let rogue_server = controller_server_config(
        std::slice::from_ref(rogue.certificate_der()),
        rogue_id.chain,
        rogue_id.key,
        vec![],
    )
    .unwrap();
    assert!(handshake(client, rogue_server).is_err());
}

#[test]
fn ca_survives_a_reload_and_keeps_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::load_or_create(&dir.path().join("ca"), "test").unwrap();
    let again = CertificateAuthority::load_or_create(&dir.path().join("ca"), "test").unwrap();
    assert_eq!(ca.fingerprint(), again.fingerprint());
    // A certificate issued by the reloaded CA verifies against the original.
    let (client, _, _) = agent_config(&again, OffsetDateTime::now_utc());
    let server_id = ca.issue_controller(DAY).unwrap();
    let server = controller_server_config(
        std::slice::from_ref(ca.certificate_der()),
        server_id.chain,
        server_id.key,
        vec![],
    )
    .unwrap();
    handshake(client, server).unwrap();
}

#[test]
fn half_present_ca_is_refused_rather_than_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    CertificateAuthority::load_or_create(&ca_dir, "test").unwrap();
    std::fs::remove_file(ca_dir.join("ca.cert.pem")).unwrap();
    assert!(matches!(
        CertificateAuthority::load_or_create(&ca_dir, "test"),
        Err(crate::CaError::HalfPresent { .. })
    ));
}

#[test]
fn csr_with_a_bad_signature_is_refused() {
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let mut csr = AgentKey::generate().unwrap().csr_der("h").unwrap();
    let last = csr.len() - 1;
    csr[last] ^= 0xff;
    assert!(matches!(
        ca.issue_host(&csr, identity(), DAY, OffsetDateTime::now_utc()),
        Err(crate::CaError::BadCsr(_))
    ));
    assert!(matches!(
        ca.issue_host(b"garbage", identity(), DAY, OffsetDateTime::now_utc()),
        Err(crate::CaError::BadCsr(_))
    ));
}
