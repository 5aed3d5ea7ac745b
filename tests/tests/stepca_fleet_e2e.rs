//! A fleet whose host certificates come from a real step-ca (`.ci/setup-step-ca.sh`), through
//! the controller (`[pki] issuer = "step-ca"`): enrollment, a session with the issued chain,
//! renewal (the predecessor refused, then revoked at step-ca), host revocation (refused here,
//! revoked there), a restart while step-ca is down (the kept root still trusts its hosts),
//! enrollment while step-ca is down (clear error, token not spent), and switching a fleet from
//! the built-in CA to step-ca and back with every host connected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use unity_agent::enroll::{EnrollError, enroll};
use unity_agent::link::SessionError;
use unity_agent::run::RunOptions;
use unity_agent::state::AgentState;
use unity_controller::config::{PkiConfig, StepCaConfig};
use unity_controller::issuer::IssuerKind;
use unity_controller::store::hosts;
use unity_e2e::stepca::{PASSWORD, PROVISIONER, StepCa};
use unity_e2e::{AgentTask, Harness, fast_options, open_session};
use unity_protocol::io::{read_frame, write_frame};
use unity_protocol::latest::{EnrollRequest, EnrollResponse, RefusalReason};
use uuid::Uuid;
use x509_parser::prelude::{FromDer, X509Certificate};

/// `[pki]` for `ca`, with its key and password written into `dir`.
fn pki(ca: &StepCa, dir: &Path, issuer: IssuerKind) -> PkiConfig {
    let key_file = dir.join("provisioner.jwe");
    let password_file = dir.join("provisioner.password");
    std::fs::write(&key_file, &ca.encrypted_key).unwrap();
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    PkiConfig {
        issuer,
        step_ca: Some(StepCaConfig {
            url: ca.url.clone(),
            root_fingerprint: ca.root_fingerprint.clone(),
            provisioner: PROVISIONER.into(),
            key_file,
            password_file: Some(password_file),
            certificate_lifetime_hours: None,
        }),
    }
}

async fn restart(h: &mut Harness, pki: PkiConfig) {
    let quic = h.stop_controller().await;
    h.start_controller_with(move |options| {
        options.quic_listen = quic;
        options.pki = pki.clone();
    })
    .await;
}

fn issuer_name(der: &[u8]) -> String {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    cert.issuer().to_string()
}

/// Renews over a session the way the agent does and returns the state the agent would store.
async fn renew(h: &Harness, name: &str, state: &AgentState) -> AgentState {
    let mut session = open_session(state).await.unwrap();
    let csr = state
        .key
        .csr_der(&state.enrollment.host_id.to_string())
        .unwrap();
    let (grant, chain) = session.renew(csr).await.unwrap();
    session.close();
    AgentState::save_certificate(
        &h.dir.path().join(name),
        &grant.certificate_der,
        &chain.certificates_der,
    )
    .unwrap();
    AgentState::load(&h.dir.path().join(name)).unwrap()
}

fn refused_as_replaced(result: Result<unity_agent::link::Session, SessionError>) {
    match result {
        Err(SessionError::Refused(refusal)) => {
            assert_eq!(refusal.reason, RefusalReason::HostRevoked);
            assert!(refusal.detail.contains("replaced"), "{}", refusal.detail);
        }
        other => panic!("expected the replaced certificate to be refused: {other:?}"),
    }
}

/// Certificates revoked at step-ca so far (the superuser URL bypasses row-level security).
async fn revoked_at_step_ca(h: &Harness) -> i64 {
    let pool = sqlx::PgPool::connect(&h.database_url).await.unwrap();
    let count = sqlx::query_scalar(
        "SELECT count(*) FROM host_certificates WHERE issuer_revoked_at IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    count
}

async fn expiring_alerts(h: &Harness) -> i64 {
    let pool = sqlx::PgPool::connect(&h.database_url).await.unwrap();
    let count = sqlx::query_scalar(
        "SELECT count(*) FROM alerts WHERE kind = 'certificate_expiring' AND severity = 'warning'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    count
}

async fn wait_revoked_at_step_ca(h: &Harness, want: i64, ca: &StepCa) {
    for _ in 0..300 {
        if revoked_at_step_ca(h).await >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "step-ca never heard of {want} revocations:\n{}",
        ca.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_enroll_renew_and_are_revoked_through_a_real_step_ca() {
    let Some(mut ca) = StepCa::start() else {
        return;
    };
    let mut h = Harness::start().await;
    let config = pki(&ca, h.dir.path(), IssuerKind::StepCa);
    restart(&mut h, config.clone()).await;
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let reader = h.store.create_api_token(tenant.id, "t").await.unwrap();

    // Enrollment: the certificate comes from step-ca's intermediate, which the agent keeps
    // and presents; 24 h, the provisioner's default.
    let state = h.enroll("nas", tenant.id).await;
    assert_eq!(
        state.intermediates.len(),
        1,
        "step-ca's intermediate is kept"
    );
    assert!(
        issuer_name(&state.certificate).contains("Homelab Intermediate CA"),
        "{}",
        issuer_name(&state.certificate)
    );
    let validity = unity_pki::rotation::Validity::of_der(&state.certificate).unwrap();
    let lifetime = validity.not_after - validity.not_before;
    assert!(
        (lifetime - time::Duration::hours(24)).abs() <= time::Duration::minutes(2),
        "{lifetime}"
    );
    let host = state.enrollment.host_id;

    // The real agent loop reports through a session with that chain.
    let agent = AgentTask::spawn(
        AgentState::load(&h.dir.path().join("nas")).unwrap(),
        RunOptions {
            report_interval: Some(Duration::from_millis(500)),
            ..fast_options()
        },
    );
    let detail = h.wait_for_facts(&reader, host).await;
    assert_eq!(detail["cert_issuer"], "step-ca", "{detail}");
    agent.stop().await;
    // Its 24 h certificate is judged by its own lifetime, not the built-in 30 days: no alert
    // now, one in its last quarter (18 h in).
    let month = Duration::from_secs(30 * 24 * 3600);
    let now = time::OffsetDateTime::now_utc();
    unity_controller::expiry::sweep(&h.store, month, now)
        .await
        .unwrap();
    assert_eq!(expiring_alerts(&h).await, 0);
    unity_controller::expiry::sweep(&h.store, month, now + time::Duration::hours(17))
        .await
        .unwrap();
    assert_eq!(expiring_alerts(&h).await, 0);
    unity_controller::expiry::sweep(&h.store, month, now + time::Duration::hours(19))
        .await
        .unwrap();
    assert_eq!(expiring_alerts(&h).await, 1);

    // Renewal through step-ca: the old certificate is refused once the new one was used,
    // and revoked at step-ca.
    let renewed = renew(&h, "nas", &state).await;
    assert_eq!(renewed.intermediates.len(), 1);
    assert_ne!(renewed.certificate, state.certificate);
    open_session(&renewed).await.unwrap().close();
    refused_as_replaced(open_session(&state).await);
    wait_revoked_at_step_ca(&h, 1, &ca).await;
    assert!(ca.output().contains("revoke"), "{}", ca.output());

    // A restart while step-ca is down: the root kept from the bootstrap still trusts hosts.
    ca.stop();
    restart(&mut h, config.clone()).await;
    open_session(&renewed).await.unwrap().close();
    // Enrollment cannot be signed now: a clear error, and the token is not spent.
    let token = h.enrollment_token(tenant.id).await;
    match enroll(&h.enroll_options("pi", token.clone())).await {
        Err(EnrollError::Refused { reason, detail }) => {
            assert_eq!(reason, RefusalReason::Internal);
            assert!(detail.contains("step-ca"), "{detail}");
            assert!(detail.contains("not spent"), "{detail}");
        }
        other => panic!("enrollment with step-ca down: {other:?}"),
    }
    ca.run();
    let pi = enroll(&h.enroll_options("pi", token)).await.unwrap();
    assert_ne!(pi.host_id, host);

    // An agent too old to hold a chain is told so, and its token is not spent.
    let token = h.enrollment_token(tenant.id).await;
    match enroll_as_version(&h, "0.3.0", &token).await {
        EnrollResponse::Refused(refusal) => {
            assert_eq!(refusal.reason, RefusalReason::BadRequest);
            assert!(
                refusal.detail.contains("update the agent"),
                "{}",
                refusal.detail
            );
        }
        other => panic!("a 0.3.0 agent under step-ca: {other:?}"),
    }
    assert!(matches!(
        enroll_as_version(&h, unity_agent::version(), &token).await,
        EnrollResponse::EnrolledChain(..)
    ));

    // Revoking the host: refused here at once, and revoked at step-ca by the sweep.
    let mut tx = h.store.tenant_tx(tenant.id).await.unwrap();
    assert!(hosts::revoke_host(&mut tx, host).await.unwrap());
    tx.commit().await.unwrap();
    match open_session(&renewed).await {
        Err(SessionError::Refused(refusal)) => {
            assert_eq!(refusal.reason, RefusalReason::HostRevoked)
        }
        other => panic!("a revoked host: {other:?}"),
    }
    wait_revoked_at_step_ca(&h, 2, &ca).await;
}

/// A fleet on the built-in CA moves to step-ca and back without re-enrolling anyone: with
/// step-ca configured both roots are trusted, hosts renew into whichever CA issues now, and
/// once no host holds a certificate from a CA it can be dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_switches_to_step_ca_and_back_without_re_enrolling() {
    let Some(ca) = StepCa::start() else {
        return;
    };
    let mut h = Harness::start().await;
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let old = h.enroll("old", tenant.id).await;
    assert!(
        old.intermediates.is_empty(),
        "the built-in CA signs directly"
    );

    // Switch on: the built-in host still connects, and renews into step-ca.
    let to_step_ca = pki(&ca, h.dir.path(), IssuerKind::StepCa);
    restart(&mut h, to_step_ca).await;
    open_session(&old).await.unwrap().close();
    let moved = renew(&h, "old", &old).await;
    assert_eq!(moved.intermediates.len(), 1);
    assert!(issuer_name(&moved.certificate).contains("Homelab"));
    open_session(&moved).await.unwrap().close();
    let fresh = h.enroll("fresh", tenant.id).await;
    assert_eq!(fresh.intermediates.len(), 1);
    assert_eq!(counts(&h, tenant.id).await, vec![("step-ca".into(), 2)]);

    // And back: step-ca's hosts still connect, and renew into the built-in CA.
    let back_to_built_in = pki(&ca, h.dir.path(), IssuerKind::BuiltIn);
    restart(&mut h, back_to_built_in).await;
    open_session(&fresh).await.unwrap().close();
    let back = renew(&h, "fresh", &fresh).await;
    assert!(back.intermediates.is_empty());
    open_session(&back).await.unwrap().close();
    assert_eq!(
        counts(&h, tenant.id).await,
        vec![("built-in".into(), 1), ("step-ca".into(), 1)]
    );
    // What the operator reads before dropping step-ca: one host still holds its certificate.
    let status = ca_status(&h, &ca);
    for line in [
        "issues new host certificates: built-in",
        &format!("step-ca:      {} root {}", ca.url, ca.root_fingerprint),
        "root kept from the bootstrap",
    ] {
        assert!(status.contains(line), "{line:?} in:\n{status}");
    }
    let per_issuer: Vec<Vec<&str>> = status
        .lines()
        .filter(|l| l.trim_start().starts_with("homelab"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        per_issuer,
        vec![
            vec!["homelab", "built-in", "1"],
            vec!["homelab", "step-ca", "1"]
        ],
        "{status}"
    );

    // Without step-ca configured its root is trusted no more: the host still on it fails
    // the handshake, the one back on the built-in CA connects.
    restart(&mut h, PkiConfig::default()).await;
    assert!(matches!(
        open_session(&moved).await,
        Err(SessionError::Closed(_))
    ));
    open_session(&back).await.unwrap().close();
}

/// One enrollment exchange as an agent of `version` would make it.
async fn enroll_as_version(h: &Harness, version: &str, token: &str) -> EnrollResponse {
    let (tls, _) = unity_pki::tls::enrollment_client_config(h.controller().ca_fingerprint).unwrap();
    let (_endpoint, connection) = unity_agent::link::connect(h.controller().quic_addr, tls)
        .await
        .unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let key = unity_pki::agent_key::AgentKey::generate().unwrap();
    let request = EnrollRequest {
        protocol_version: unity_protocol::PROTOCOL_VERSION,
        agent_version: version.into(),
        token: token.into(),
        csr_der: key.csr_der("old-agent").unwrap(),
        hostname: "old-agent".into(),
    };
    write_frame(&mut send, &request).await.unwrap();
    let _ = send.finish();
    let response = read_frame(&mut recv, 1 << 20).await.unwrap();
    connection.close(0u32.into(), b"done");
    response
}

/// `unity-controller ca status` with the same `[pki]` as the running controller.
fn ca_status(h: &Harness, ca: &StepCa) -> String {
    let config = h.dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[pki]\nissuer = \"built-in\"\n[pki.step_ca]\nurl = \"{}\"\n\
             root_fingerprint = \"{}\"\nprovisioner = \"{PROVISIONER}\"\n\
             key_file = \"{}\"\n",
            ca.url,
            ca.root_fingerprint,
            h.dir.path().join("provisioner.jwe").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-controller"))
        .args(["--config", config.to_str().unwrap(), "ca", "status"])
        .env("DATABASE_URL", &h.database_url)
        .env(
            "UNITY_DATA_DIR",
            h.dir.path().join("controller").display().to_string(),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn counts(h: &Harness, tenant: Uuid) -> Vec<(String, i64)> {
    let mut tx = h.store.tenant_tx(tenant).await.unwrap();
    let counts = unity_controller::store::certificates::issuer_counts(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    counts
}

/// A step-ca certificate that expired while its host was away: the controller refuses it in
/// the handshake, and the agent says to re-enroll instead of dialing (step-ca's shortest
/// lifetime here is its `minTLSCertDuration`, one minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_step_ca_certificate_is_refused_and_the_agent_says_re_enroll() {
    let Some(ca) = StepCa::start() else {
        return;
    };
    let mut h = Harness::start().await;
    let config = pki(&ca, h.dir.path(), IssuerKind::StepCa);
    restart(&mut h, config.clone()).await;
    let tenant = h.store.create_tenant("homelab").await.unwrap();
    let state = h.enroll("laptop", tenant.id).await;
    // A one-minute certificate for the same host and key, as the controller would get it.
    let step = config.step_ca.unwrap();
    let client =
        unity_controller::stepca::StepCa::bootstrap(unity_controller::stepca::StepCaSettings {
            url: step.url,
            root_fingerprint: step.root_fingerprint,
            provisioner: step.provisioner,
            key: unity_controller::stepca::ProvisionerKey::parse(
                &ca.encrypted_key,
                Some(PASSWORD.as_bytes()),
            )
            .unwrap(),
        })
        .await
        .unwrap();
    let identity = unity_pki::HostIdentity {
        tenant_id: tenant.id,
        host_id: state.enrollment.host_id,
    };
    let now = time::OffsetDateTime::now_utc();
    let csr = state
        .key
        .csr_der(&state.enrollment.host_id.to_string())
        .unwrap();
    let short = client
        .sign(
            &csr,
            &state.enrollment.host_id.to_string(),
            &[identity.uri()],
            Some(now + time::Duration::seconds(61)),
            now,
        )
        .await
        .unwrap();
    let short_state = AgentState {
        certificate: short.leaf_der.clone(),
        intermediates: short.intermediates.clone(),
        ..AgentState::load(&h.dir.path().join("laptop")).unwrap()
    };
    let not_after = unity_pki::rotation::Validity::of_der(&short_state.certificate)
        .unwrap()
        .not_after;
    let wait = not_after - time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    tokio::time::sleep(Duration::try_from(wait).unwrap()).await;
    // Refused in the handshake (rustls: expired), before any identity check.
    assert!(matches!(
        open_session(&short_state).await,
        Err(SessionError::Closed(_))
    ));
    // The real agent with that certificate does not dial; it stops with the reason.
    let expired_dir = h.dir.path().join("laptop");
    AgentState::save_certificate(
        &expired_dir,
        &short.leaf_der,
        &short
            .intermediates
            .iter()
            .map(|c| c.to_vec())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_e2e-agent"))
        .args(["--state-dir", expired_dir.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("EXPIRED: re-enroll this host"), "{text}");
}
