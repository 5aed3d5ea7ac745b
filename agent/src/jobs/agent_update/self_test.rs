//! `unity-agent self-test`: what a release must pass before it is started on trial. It runs
//! the new binary against this host's real state — the config was already parsed by the
//! command line, then the enrollment, the key, a TLS configuration from them, the job journal
//! — and reports the binary's own version and architecture, which the job compares with what
//! it signed.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::state::AgentState;

/// What a passing self-test prints (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfTestReport {
    pub version: String,
    pub architecture: String,
    pub protocol_version: u16,
    pub host_id: uuid::Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum SelfTestError {
    #[error("the enrollment cannot be loaded")]
    State(#[from] crate::state::StateError),
    #[error("no TLS configuration can be built from the enrollment")]
    Tls(#[from] unity_pki::tls::TlsConfigError),
    #[error("the job journal cannot be opened")]
    Journal(#[from] crate::jobs::journal::JournalError),
}

pub fn run(state_dir: &Path) -> Result<SelfTestReport, SelfTestError> {
    let state = AgentState::load(state_dir)?;
    unity_pki::tls::agent_client_config(&state.ca, state.chain(), state.private_key_der())?;
    crate::jobs::journal::Journal::open(&state.dir.join("jobs"))?;
    Ok(SelfTestReport {
        version: crate::version().to_owned(),
        architecture: std::env::consts::ARCH.to_owned(),
        protocol_version: unity_protocol::PROTOCOL_VERSION,
        host_id: state.enrollment.host_id,
    })
}
