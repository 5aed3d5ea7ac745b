//! End to end: a real PostgreSQL, a real controller and real agents over loopback QUIC with
//! real certificates, observed through the real HTTP API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use time::OffsetDateTime;
use unity_agent::enroll::{EnrollError, enroll};
use unity_agent::link::{self, SessionError};
use unity_agent::run::RunOptions;
use unity_agent::state::AgentState;

use unity_controller::store::hosts;
use unity_e2e::{AgentTask, Harness, closed_with, fast_options, open_session};
use unity_pki::agent_key::AgentKey;
use unity_pki::{CertificateAuthority, Fingerprint, HostIdentity};
use unity_protocol::latest::{RefusalReason, Report, ReportBody, ReportReply, close_code};
use uuid::Uuid;

/// The agent's real run loop, reporting every 500 ms.
fn run_agent(state: AgentState) -> AgentTask {
    AgentTask::spawn(
        state,
        RunOptions {
            report_interval: Some(Duration::from_millis(500)),
            ..fast_options()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_each_see_only_their_own_host_with_real_facts() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let b = h.store.create_tenant("beta").await.unwrap();
    let token_a = h.store.create_api_token(a.id, "t").await.unwrap();
    let token_b = h.store.create_api_token(b.id, "t").await.unwrap();
    let agent_a = h.enroll("agent-a", a.id).await;
    let agent_b = h.enroll("agent-b", b.id).await;
    let (host_a, host_b) = (agent_a.enrollment.host_id, agent_b.enrollment.host_id);
    assert_eq!(agent_a.enrollment.tenant_id, a.id);
    assert_eq!(agent_b.enrollment.tenant_id, b.id);
    let key_mode = std::fs::metadata(h.dir.path().join("agent-a/host.key.pem"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
        0o600
    );

    let agent_a = run_agent(agent_a);
    let agent_b = run_agent(agent_b);

    let detail = h.wait_for_facts(&token_a, host_a).await;
    h.wait_for_facts(&token_b, host_b).await;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(detail["facts"]["kernel_version"], kernel.trim());
    assert_eq!(detail["id"], host_a.to_string());
    assert!(detail["last_seen_at"].is_string());

    let (_, list_a) = h.api("/api/v1/hosts", &token_a).await;
    let (_, list_b) = h.api("/api/v1/hosts", &token_b).await;
    let ids = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&list_a), vec![host_a.to_string()]);
    assert_eq!(ids(&list_b), vec![host_b.to_string()]);
    let (status, _) = h.api(&format!("/api/v1/hosts/{host_b}"), &token_a).await;
    assert_eq!(status, 404);
    let (status, _) = h.api(&format!("/api/v1/hosts/{host_a}"), &token_b).await;
    assert_eq!(status, 404);

    agent_a.stop().await;
    agent_b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_refuses_reused_expired_unknown_tokens_and_wrong_fingerprints() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let token = h.enrollment_token(a.id).await;
    enroll(&h.enroll_options("first", token.clone()))
        .await
        .unwrap();

    let err = enroll(&h.enroll_options("second", token))
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::TokenAlreadyUsed), "{err}");
    assert!(!AgentState::is_enrolled(&h.dir.path().join("second")));

    let expired = unity_controller::testing::expired_enrollment_token(&h.store, a.id)
        .await
        .unwrap();
    let err = enroll(&h.enroll_options("third", expired))
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::TokenExpired), "{err}");

    let err = enroll(&h.enroll_options("fourth", "ufe_madeup".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::TokenUnknown), "{err}");

    // A NUL in the hostname is the request's fault, said as such (and the token stays unspent).
    let token = h.enrollment_token(a.id).await;
    let mut options = h.enroll_options("nul", token.clone());
    options.hostname = "bad\0name".into();
    let err = enroll(&options).await.unwrap_err();
    assert!(
        matches!(
            err,
            EnrollError::Refused {
                reason: RefusalReason::BadRequest,
                ..
            }
        ),
        "{err}"
    );
    enroll(&h.enroll_options("nul", token)).await.unwrap();

    let token = h.enrollment_token(a.id).await;
    let mut options = h.enroll_options("fifth", token.clone());
    options.ca_fingerprint = Fingerprint::of_der(b"some other CA");
    let err = enroll(&options).await.unwrap_err();
    assert!(
        matches!(err, EnrollError::FingerprintMismatch { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&h.controller().ca_fingerprint.to_string()),
        "{err}"
    );
    // The token was not spent by the refused attempt: the right fingerprint still works.
    enroll(&h.enroll_options("fifth", token)).await.unwrap();

    let err = enroll(&h.enroll_options("first", h.enrollment_token(a.id).await))
        .await
        .unwrap_err();
    assert!(matches!(err, EnrollError::AlreadyEnrolled { .. }), "{err}");
}

/// A certificate for tenant A's host, signed by a CA the controller does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_expired_certificates_are_refused_at_the_handshake() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let real = h.enroll("real", a.id).await;
    let identity = HostIdentity {
        tenant_id: a.id,
        host_id: real.enrollment.host_id,
    };

    let rogue_ca = CertificateAuthority::generate("rogue").unwrap();
    let forged_key = AgentKey::generate().unwrap();
    let forged = rogue_ca
        .issue_host(
            &forged_key.csr_der("x").unwrap(),
            identity,
            Duration::from_secs(3600),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let forged_state = AgentState {
        key: forged_key,
        certificate: forged.der,
        ..AgentState::load(&h.dir.path().join("real")).unwrap()
    };
    let err = open_session(&forged_state).await.unwrap_err();
    assert!(matches!(err, SessionError::Closed(_)), "{err}");

    let expired_key = AgentKey::generate().unwrap();
    let expired = h
        .ca()
        .issue_host(
            &expired_key.csr_der("x").unwrap(),
            identity,
            Duration::from_secs(3600),
            OffsetDateTime::now_utc() - time::Duration::days(2),
        )
        .unwrap();
    let expired_state = AgentState {
        key: expired_key,
        certificate: expired.der,
        ..AgentState::load(&h.dir.path().join("real")).unwrap()
    };
    let err = open_session(&expired_state).await.unwrap_err();
    assert!(matches!(err, SessionError::Closed(_)), "{err}");

    // The controller is unaffected: the real agent still gets in.
    let session = open_session(&real).await.unwrap();
    assert_eq!(session.welcome.host_id, real.enrollment.host_id);
}

/// A valid certificate from our CA whose tenant does not own the host is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_naming_the_wrong_tenant_is_refused() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let b = h.store.create_tenant("beta").await.unwrap();
    let real = h.enroll("real", a.id).await;
    let key = AgentKey::generate().unwrap();
    let cross = h
        .ca()
        .issue_host(
            &key.csr_der("x").unwrap(),
            HostIdentity {
                tenant_id: b.id,
                host_id: real.enrollment.host_id,
            },
            Duration::from_secs(3600),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let state = AgentState {
        key,
        certificate: cross.der,
        ..AgentState::load(&h.dir.path().join("real")).unwrap()
    };
    match open_session(&state).await {
        Err(SessionError::Refused(refusal)) => {
            assert_eq!(refusal.reason, RefusalReason::UnknownHost)
        }
        other => panic!("expected UnknownHost refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_host_is_refused() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let state = h.enroll("host", a.id).await;
    open_session(&state).await.unwrap();
    let mut tx = h.store.tenant_tx(a.id).await.unwrap();
    assert!(
        hosts::revoke_host(&mut tx, state.enrollment.host_id)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    match open_session(&state).await {
        Err(error @ SessionError::Refused(_)) => {
            assert!(error.is_permanent());
            let SessionError::Refused(refusal) = error else {
                unreachable!()
            };
            assert_eq!(refusal.reason, RefusalReason::HostRevoked);
        }
        other => panic!("expected HostRevoked refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_report_is_acknowledged_but_applied_once() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let state = h.enroll("host", a.id).await;
    let mut session = open_session(&state).await.unwrap();
    let report = Report {
        stream_id: Uuid::new_v4(),
        seq: 1,
        collected_at_ms: 1_700_000_000_000,
        body: ReportBody::HostFacts(unity_agent::reports::host::collect()),
    };
    assert_eq!(
        session.send_report(&report).await.unwrap(),
        ReportReply::Ack {
            seq: 1,
            duplicate: false
        }
    );
    assert_eq!(
        session.send_report(&report).await.unwrap(),
        ReportReply::Ack {
            seq: 1,
            duplicate: true
        }
    );
    let bad_time = Report {
        seq: 2,
        collected_at_ms: i64::MAX,
        ..report
    };
    assert!(matches!(
        session.send_report(&bad_time).await.unwrap(),
        ReportReply::Rejected { seq: 2, .. }
    ));
}

/// Raw QUIC with a valid host certificate, then bytes that are not a valid frame.
async fn raw_session(state: &AgentState) -> quinn::Connection {
    let tls = unity_pki::tls::agent_client_config(
        &state.ca,
        vec![state.certificate.clone()],
        state.private_key_der(),
    )
    .unwrap();
    let addr = link::resolve(&state.enrollment.controller).await.unwrap();
    let (endpoint, connection) = link::connect(addr, tls).await.unwrap();
    // Keep the endpoint alive as long as the connection.
    std::mem::forget(endpoint);
    connection
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_undecodable_frames_close_only_that_connection() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let state = h.enroll("host", a.id).await;

    let connection = raw_session(&state).await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_eq!(
        closed_with(&connection).await,
        u64::from(close_code::PROTOCOL_VIOLATION)
    );

    let connection = raw_session(&state).await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    send.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    send.finish().unwrap();
    assert_eq!(
        closed_with(&connection).await,
        u64::from(close_code::PROTOCOL_VIOLATION)
    );

    // A well-behaved agent is unaffected.
    let session = open_session(&state).await.unwrap();
    assert_eq!(session.welcome.tenant_id, a.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_session_without_client_certificate_is_closed() {
    let h = Harness::start().await;
    let provider = unity_pki::crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(h.ca().certificate_der().clone()).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![unity_protocol::ALPN_AGENT.to_vec()];
    let (_endpoint, connection) = link::connect(h.controller().quic_addr, tls).await.unwrap();
    assert_eq!(
        closed_with(&connection).await,
        u64::from(close_code::CLIENT_CERTIFICATE_REQUIRED)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reconnects_after_the_controller_restarts() {
    let mut h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let token = h.store.create_api_token(a.id, "t").await.unwrap();
    let state = h.enroll("host", a.id).await;
    let host = state.enrollment.host_id;
    let agent = run_agent(state);
    h.wait_for_facts(&token, host).await;
    // A second host's bare session sees how the controller says goodbye: a normal close
    // that says when to come back (a second per thousand agents; here the minimum).
    let watcher = h.enroll("watcher", a.id).await;
    let watching = open_session(&watcher).await.unwrap();

    let quic = h.stop_controller().await;
    let closed = tokio::time::timeout(Duration::from_secs(20), watching.connection().closed());
    match closed.await {
        Ok(quinn::ConnectionError::ApplicationClosed(close)) => {
            assert_eq!(close.error_code.into_inner(), 0, "NORMAL");
            assert_eq!(
                unity_protocol::latest::close_code::retry_after(&close.reason),
                Some(1),
                "{close:?}"
            );
        }
        other => panic!("expected the controller's close, got {other:?}"),
    }
    h.start_controller_on(quic).await;
    let before: String =
        h.api(&format!("/api/v1/hosts/{host}"), &token).await.1["facts_collected_at"]
            .as_str()
            .unwrap()
            .to_owned();
    let mut advanced = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, detail) = h.api(&format!("/api/v1/hosts/{host}"), &token).await;
        if detail["facts_collected_at"].as_str() != Some(before.as_str()) {
            advanced = true;
            break;
        }
    }
    assert!(
        advanced,
        "agent did not report again after the controller restarted"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_renews_its_certificate_before_expiry_and_keeps_working_after() {
    // Three-second certificates: due for renewal at once (two thirds of a window that
    // includes the CA's five-minute backdating), expired three seconds after issuance.
    let h = Harness::start_with(Duration::from_secs(1), Duration::from_secs(3)).await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let token = h.store.create_api_token(a.id, "t").await.unwrap();
    let state_dir = h.dir.path().join("agent");
    h.enroll("agent", a.id).await;
    let original = AgentState::load(&state_dir).unwrap();
    let original_not_after = unity_pki::rotation::Validity::of_der(&original.certificate)
        .unwrap()
        .not_after;
    let host = original.enrollment.host_id;
    let agent = run_agent(AgentState::load(&state_dir).unwrap());

    let mut renewed = false;
    for _ in 0..100 {
        let (_, detail) = h.api(&format!("/api/v1/hosts/{host}"), &token).await;
        let not_after = time::OffsetDateTime::parse(
            detail["cert_not_after"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        if not_after > original_not_after {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        renewed,
        "the controller never recorded a renewed certificate"
    );
    // Let the enrollment certificate expire.
    let wait = original_not_after - time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    if wait.is_positive() {
        tokio::time::sleep(Duration::try_from(wait).unwrap()).await;
    }
    agent.stop().await;

    // The expired enrollment certificate is refused at the handshake…
    assert!(matches!(
        open_session(&original).await,
        Err(SessionError::Closed(_))
    ));
    // …the renewed one the agent stored works.
    let stored = AgentState::load(&state_dir).unwrap();
    assert_ne!(stored.certificate, original.certificate);
    let session = open_session(&stored).await.unwrap();
    assert_eq!(session.welcome.host_id, host);
}

/// A renewal retires the predecessor: once the new certificate opened a session the old one
/// opens none. A renewal whose answer the agent never saved (a crash) leaves the old one
/// working, and the lost certificate is retired by the next renewal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_retires_the_predecessor_once_the_new_certificate_is_used() {
    let h = Harness::start().await;
    let a = h.store.create_tenant("alpha").await.unwrap();
    let old = h.enroll("host", a.id).await;
    let renewed_state = |grant: unity_protocol::latest::RenewGrant| AgentState {
        certificate: grant.certificate_der.into(),
        intermediates: Vec::new(),
        ..AgentState::load(&h.dir.path().join("host")).unwrap()
    };
    let csr = || {
        old.key
            .csr_der(&old.enrollment.host_id.to_string())
            .unwrap()
    };

    // Renewed, and the answer "lost": the old certificate still opens sessions.
    let mut session = open_session(&old).await.unwrap();
    let (lost, chain) = session.renew(csr()).await.unwrap();
    assert!(
        chain.certificates_der.is_empty(),
        "the built-in CA needs no intermediates"
    );
    session.close();
    let lost = renewed_state(lost);
    let mut session = open_session(&old).await.unwrap();
    // Renewed again from the old certificate: the lost one is retired at once.
    let (kept, _) = session.renew(csr()).await.unwrap();
    session.close();
    let kept = renewed_state(kept);
    match open_session(&lost).await {
        Err(SessionError::Refused(refusal)) => {
            assert_eq!(refusal.reason, RefusalReason::HostRevoked);
            assert!(refusal.detail.contains("replaced"), "{}", refusal.detail);
        }
        other => panic!("the unsaved certificate must be retired: {other:?}"),
    }
    // The old one still works until the new one is used…
    open_session(&old).await.unwrap().close();
    open_session(&kept).await.unwrap().close();
    // …and not after.
    match open_session(&old).await {
        Err(SessionError::Refused(refusal)) => {
            assert_eq!(refusal.reason, RefusalReason::HostRevoked);
            assert!(refusal.detail.contains("replaced"), "{}", refusal.detail);
        }
        other => panic!("the predecessor must be refused: {other:?}"),
    }
    let again = open_session(&kept).await.unwrap();
    assert_eq!(again.welcome.host_id, old.enrollment.host_id);
}
