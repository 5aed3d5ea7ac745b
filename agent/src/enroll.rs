//! `unity-agent enroll`: generate the host key here, send a CSR with a single-use token, pin
//! the controller's CA by fingerprint, store the issued certificate.

use unity_pki::agent_key::{AgentKey, AgentKeyError};
use unity_pki::{Fingerprint, HostIdentity};
use unity_protocol::PROTOCOL_VERSION;
use unity_protocol::io::{FrameIoError, read_frame, write_frame};
use unity_protocol::latest::{EnrollGrant, EnrollRequest, EnrollResponse, RefusalReason};

use crate::link::{self, ConnectError, REPLY_TIMEOUT};
use crate::state::{AgentState, Enrollment, StateError};

/// Enrollment replies are small.
const MAX_REPLY_FRAME: u32 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// `HOST:PORT` of the controller's QUIC endpoint.
    pub controller: String,
    pub token: String,
    pub ca_fingerprint: Fingerprint,
    pub state_dir: std::path::PathBuf,
    /// Name shown for this host; defaults to the system hostname.
    pub hostname: String,
    /// Replace an existing enrollment in `state_dir`.
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{dir} already holds an enrollment; pass --force to replace it")]
    AlreadyEnrolled { dir: String },
    #[error(
        "the controller's CA fingerprint is {presented}, not the pinned {pinned}: \
         check --ca-fingerprint against `unity-controller ca fingerprint` on the controller \
         (if they differ, you may not be talking to your controller)"
    )]
    FingerprintMismatch {
        pinned: Fingerprint,
        presented: String,
    },
    #[error(
        "the enrollment token was already used; create a new one with `unity-controller enroll-token create`"
    )]
    TokenAlreadyUsed,
    #[error(
        "the enrollment token has expired; create a new one with `unity-controller enroll-token create`"
    )]
    TokenExpired,
    #[error(
        "the controller does not know this enrollment token; check for typos or create a new one"
    )]
    TokenUnknown,
    #[error("the controller refused enrollment ({reason:?}): {detail}")]
    Refused {
        reason: RefusalReason,
        detail: String,
    },
    #[error("the controller sent a certificate that does not match its own reply: {0}")]
    InconsistentGrant(String),
    #[error("could not reach the controller")]
    Connect(#[from] ConnectError),
    #[error("enrollment exchange failed")]
    Exchange(#[from] FrameIoError),
    #[error("enrollment exchange failed")]
    Stream(#[source] quinn::ConnectionError),
    #[error("the controller did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("could not create the host key")]
    Key(#[from] AgentKeyError),
    #[error("could not build the TLS configuration")]
    Tls(#[from] unity_pki::tls::TlsConfigError),
    #[error("could not save the enrollment")]
    Save(#[from] StateError),
    #[error("the state directory {path} is not writable; nothing was sent (the token is unspent)")]
    StateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Fails before the token is spent when the enrollment could not be saved afterwards (today
/// an unwritable directory would spend the token and leave an orphaned host record).
fn check_writable(dir: &std::path::Path) -> Result<(), EnrollError> {
    let wrap = |source| EnrollError::StateDir {
        path: dir.display().to_string(),
        source,
    };
    unity_pki::files::create_private_dir(dir).map_err(|e| wrap(e.source))?;
    let probe = dir.join(".enroll-probe");
    std::fs::write(&probe, b"probe").map_err(wrap)?;
    std::fs::remove_file(&probe).map_err(wrap)?;
    Ok(())
}

/// Enrolls this host; on success the state directory holds everything `run` needs.
pub async fn enroll(options: &EnrollOptions) -> Result<Enrollment, EnrollError> {
    if AgentState::is_enrolled(&options.state_dir) && !options.force {
        return Err(EnrollError::AlreadyEnrolled {
            dir: options.state_dir.display().to_string(),
        });
    }
    check_writable(&options.state_dir)?;
    let key = AgentKey::generate()?;
    let csr_der = key.csr_der(&options.hostname)?;
    let (tls, pin_check) = unity_pki::tls::enrollment_client_config(options.ca_fingerprint)?;
    let (endpoint, connection) = match link::connect_any(&options.controller, tls).await {
        Ok(pair) => pair,
        Err(error) => {
            if let Some(presented) = pin_check.mismatch() {
                return Err(EnrollError::FingerprintMismatch {
                    pinned: options.ca_fingerprint,
                    presented: presented
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" or "),
                });
            }
            return Err(error.into());
        }
    };
    let request = EnrollRequest {
        protocol_version: PROTOCOL_VERSION,
        agent_version: crate::version().to_owned(),
        token: options.token.trim().to_owned(),
        csr_der,
        hostname: options.hostname.clone(),
    };
    let exchange = async {
        let (mut send, mut recv) = connection.open_bi().await.map_err(EnrollError::Stream)?;
        write_frame(&mut send, &request).await?;
        let _ = send.finish();
        Ok::<_, EnrollError>(read_frame::<_, EnrollResponse>(&mut recv, MAX_REPLY_FRAME).await?)
    };
    let response = tokio::time::timeout(REPLY_TIMEOUT, exchange)
        .await
        .map_err(|_| EnrollError::Timeout(REPLY_TIMEOUT));
    connection.close(0u32.into(), b"enrolled");
    endpoint.wait_idle().await;
    let (grant, intermediates) = match response?? {
        EnrollResponse::Enrolled(grant) => (grant, Vec::new()),
        EnrollResponse::EnrolledChain(grant, chain) => (grant, chain.certificates_der),
        EnrollResponse::Refused(refusal) => {
            return Err(match refusal.reason {
                RefusalReason::TokenAlreadyUsed => EnrollError::TokenAlreadyUsed,
                RefusalReason::TokenExpired => EnrollError::TokenExpired,
                RefusalReason::TokenUnknown => EnrollError::TokenUnknown,
                reason => EnrollError::Refused {
                    reason,
                    detail: refusal.detail,
                },
            });
        }
    };
    let enrollment = check_grant(&grant, options)?;
    AgentState::save(
        &options.state_dir,
        &key,
        &grant.certificate_der,
        &intermediates,
        &grant.ca_certificate_der,
        &enrollment,
    )?;
    // Keys rotated for a previous enrollment are not this one's.
    let _ = std::fs::remove_file(options.state_dir.join("job-keys.json"));
    Ok(enrollment)
}

#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Session(#[from] link::SessionError),
    #[error("could not build the TLS configuration")]
    Tls(#[from] unity_pki::tls::TlsConfigError),
}

/// Tells the controller that `old` (this host's previous enrollment) is replaced: proven by
/// its own certificate, the controller revokes that host record, so a re-enrollment with
/// `--force` leaves no orphan behind.
pub async fn retire(old: &AgentState) -> Result<(), RetireError> {
    let tls = unity_pki::tls::agent_client_config(&old.ca, old.chain(), old.private_key_der())?;
    let (_endpoint, connection) = link::connect_any(&old.enrollment.controller, tls).await?;
    let mut session = link::Session::open(connection, crate::version()).await?;
    session.retire().await?;
    session.close();
    Ok(())
}

/// The grant must name the CA we pinned and carry a certificate for the identity it claims.
fn check_grant(grant: &EnrollGrant, options: &EnrollOptions) -> Result<Enrollment, EnrollError> {
    let ca = Fingerprint::of_der(&grant.ca_certificate_der);
    if ca != options.ca_fingerprint {
        return Err(EnrollError::InconsistentGrant(format!(
            "CA in the grant has fingerprint {ca}"
        )));
    }
    let identity = HostIdentity::from_certificate_der(&grant.certificate_der)
        .map_err(|e| EnrollError::InconsistentGrant(e.to_string()))?;
    if identity.tenant_id != grant.tenant_id || identity.host_id != grant.host_id {
        return Err(EnrollError::InconsistentGrant(format!(
            "certificate names {identity}, grant says tenant {} host {}",
            grant.tenant_id, grant.host_id
        )));
    }
    Ok(Enrollment {
        controller: options.controller.clone(),
        tenant_id: grant.tenant_id,
        host_id: grant.host_id,
        job_signing_keys: grant.job_signing_keys.iter().map(hex::encode).collect(),
    })
}
