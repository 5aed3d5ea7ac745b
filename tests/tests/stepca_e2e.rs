//! The controller's step-ca client against a real step-ca (`.ci/setup-step-ca.sh`): trust
//! bootstrapped from the root's fingerprint (a wrong one refused), the provisioner key step-ca
//! itself encrypted opened with its password (a wrong one refused), an agent's CSR signed
//! with the host's identity and the lifetime asked for, a one-time token refused the second
//! time, a certificate revoked, and a CA that is down reported as such.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use time::OffsetDateTime;
use unity_controller::stepca::{KeyError, ProvisionerKey, StepCa, StepCaError, StepCaSettings};
use unity_e2e::stepca::{PASSWORD, PROVISIONER, StepCa as RealStepCa};
use unity_pki::agent_key::AgentKey;
use unity_pki::identity::HostIdentity;
use uuid::Uuid;
use x509_parser::prelude::{FromDer, X509Certificate, X509CertificationRequest};

fn settings(ca: &RealStepCa, fingerprint: &str) -> StepCaSettings {
    StepCaSettings {
        url: ca.url.clone(),
        root_fingerprint: fingerprint.to_owned(),
        provisioner: PROVISIONER.into(),
        key: ProvisionerKey::parse(&ca.encrypted_key, Some(PASSWORD.as_bytes())).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_signs_host_certificates_with_a_real_step_ca() {
    let Some(mut real) = RealStepCa::start() else {
        return;
    };
    // The key as step-ca keeps it: the right password opens it, a wrong one does not.
    assert_eq!(
        ProvisionerKey::parse(&real.encrypted_key, Some(b"not the password")).unwrap_err(),
        KeyError::Decrypt
    );

    // Trust: only the root with the configured fingerprint.
    let wrong = "0".repeat(64);
    match StepCa::bootstrap(settings(&real, &wrong)).await {
        Err(StepCaError::WrongRoot { .. }) => {}
        other => panic!("a wrong fingerprint: {other:?}"),
    }
    let fingerprint = real.root_fingerprint.to_ascii_uppercase();
    let ca = StepCa::bootstrap(settings(&real, &fingerprint))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", real.output()));
    assert_eq!(ca.root().as_ref(), real.root_der.as_slice());

    // An agent's CSR, signed with the identity the controller decides.
    let identity = HostIdentity {
        tenant_id: Uuid::new_v4(),
        host_id: Uuid::new_v4(),
    };
    let agent = AgentKey::generate().unwrap();
    let csr = agent.csr_der("nas").unwrap();
    let now = OffsetDateTime::now_utc();
    let not_after = now + time::Duration::hours(24);
    let signed = ca
        .sign(&csr, "nas", &[identity.uri()], Some(not_after), now)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", real.output()));
    assert_eq!(
        HostIdentity::from_certificate_der(&signed.leaf_der).unwrap(),
        identity
    );
    assert_eq!(
        signed.intermediates.len(),
        1,
        "the intermediate comes along"
    );
    let (_, leaf) = X509Certificate::from_der(&signed.leaf_der).unwrap();
    let (_, inter) = X509Certificate::from_der(&signed.intermediates[0]).unwrap();
    assert_eq!(leaf.issuer(), inter.subject());
    leaf.verify_signature(Some(inter.public_key())).unwrap();
    let expires = leaf.validity().not_after.timestamp();
    assert!(
        (expires - not_after.unix_timestamp()).abs() <= 1,
        "the lifetime asked for"
    );
    assert_eq!(
        leaf.public_key().raw,
        X509CertificationRequest::from_der(&csr)
            .unwrap()
            .1
            .certification_request_info
            .subject_pki
            .raw,
        "the agent's own key"
    );

    // A one-time token works once.
    let token = ca.sign_token("nas", &[identity.uri()], now).unwrap();
    ca.sign_with_token(&csr, &token, Some(not_after))
        .await
        .unwrap();
    match ca.sign_with_token(&csr, &token, Some(not_after)).await {
        Err(StepCaError::Refused {
            status: 401,
            message,
        }) => {
            assert!(!message.is_empty());
        }
        other => panic!("a replayed token: {other:?}"),
    }
    // A CSR naming another identity than the token is refused by step-ca too.
    let other = HostIdentity {
        tenant_id: identity.tenant_id,
        host_id: Uuid::new_v4(),
    };
    let mut forged = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    forged.distinguished_name = rcgen::DistinguishedName::new();
    forged.subject_alt_names = vec![rcgen::SanType::URI(other.uri().try_into().unwrap())];
    let forged_key = rcgen::KeyPair::generate().unwrap();
    let forged_csr = forged.serialize_request(&forged_key).unwrap();
    match ca
        .sign(
            forged_csr.der(),
            "nas",
            &[identity.uri()],
            Some(not_after),
            now,
        )
        .await
    {
        Err(StepCaError::Refused {
            status: 401 | 403, ..
        }) => assert!(
            real.output().contains("valid URIs"),
            "step-ca says why: {}",
            real.output()
        ),
        other => panic!("a CSR for another host: {other:?}"),
    }

    // Revocation.
    let decimal =
        unity_controller::stepca::client::serial_decimal(&hex::encode(leaf.raw_serial())).unwrap();
    assert_eq!(decimal, leaf.serial.to_str_radix(10));
    ca.revoke(&decimal, "host revoked", now)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", real.output()));
    // Twice: what the revocation sweep takes as already done.
    match ca.revoke(&decimal, "host revoked", now).await {
        Err(StepCaError::Refused { message, .. }) if message.contains("already revoked") => {}
        other => panic!("a second revocation: {other:?}\n{}", real.output()),
    }

    // Down: said so, with the address.
    real.stop();
    match ca
        .sign(&csr, "nas", &[identity.uri()], Some(not_after), now)
        .await
    {
        Err(StepCaError::Unreachable { url, .. }) => assert_eq!(url, real.url),
        other => panic!("a CA that is down: {other:?}"),
    }
}
