//! Protocol version 1. Frozen once released: add variants at the end of enums, never reorder,
//! never remove, never change a field's type. See the crate docs for the rules.
//!
//! # Conversations
//! * **Enrollment** (ALPN [`crate::ALPN_ENROLL`], no client certificate): the agent opens one
//!   bidirectional stream, sends [`EnrollRequest`], reads [`EnrollResponse`].
//! * **Session** (ALPN [`crate::ALPN_AGENT`], mutual TLS): the agent opens the control stream
//!   and sends [`Hello`]; the controller answers [`HelloReply`]. Each report then travels on a
//!   bidirectional stream of its own: [`Report`] → [`ReportReply`]. On the control stream the
//!   agent may later send [`ControlRequest`]s (certificate renewal, release chunks), answered by
//!   [`ControlReply`]s in order.
//! * **Jobs** ([`jobs`]): the controller opens a stream with a [`Push`] (a signed job or the
//!   job-key statements), the agent answers a [`PushReply`]; progress and results come back as
//!   reports.

mod facts;
mod inventory;
pub mod jobs;
mod packages;
mod storage;

pub use facts::{Filesystem, HostFacts};
pub use inventory::{
    ContainerInfo, ContainerReport, DatabaseInfo, DatabaseReport, EngineInfo, ImageInfo,
    ImageUpdate, RunState, UnknownUpdatePolicy, UnknownUpdateState, UpdatePolicy, UpdateState,
};
pub use jobs::{
    AgentUpdateParams, ContainerUpdateParams, JobEnd, JobEvent, JobEventKind, JobKind, JobOutcome,
    JobReceipt, JobRefusalReason, JobSpec, KeyId, KeyStatement, PackageUpgradeParams, PingParams,
    Push, PushReply, RebootPolicy, SignedJob, SignedKeyStatement, UpgradeScope,
};
pub use packages::{PackageReport, PendingUpdate};
pub use storage::{
    ArrayReport, DiskReport, Health, Metric, PoolReport, SourceState, SourceStatus, StorageReport,
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// First message on the control stream of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u16,
    pub agent_version: String,
}

/// The controller's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    Welcome(Welcome),
    Refused(Refusal),
}

/// Session accepted. The identity comes from the agent's certificate, echoed here so the agent
/// can log what the controller believes it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol_version: u16,
    pub controller_version: String,
    pub tenant_id: Uuid,
    pub host_id: Uuid,
    /// How often the controller wants host facts, in seconds.
    pub report_interval_secs: u32,
}

/// Why the controller refuses a session or an enrollment. The agent logs it and, for
/// permanent refusals, stops retrying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub reason: RefusalReason,
    /// Human-readable detail for the operator's log.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalReason {
    UnsupportedProtocolVersion,
    UnknownHost,
    HostRevoked,
    TokenUnknown,
    TokenExpired,
    TokenAlreadyUsed,
    BadRequest,
    Internal,
}

impl RefusalReason {
    /// Whether retrying the same request later can succeed.
    pub fn is_permanent(self) -> bool {
        !matches!(self, RefusalReason::Internal)
    }
}

/// Enrollment: a single-use token plus a certificate signing request for the key the agent
/// generated locally (the private key never leaves the host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub protocol_version: u16,
    pub agent_version: String,
    pub token: String,
    /// DER-encoded PKCS#10 CSR.
    pub csr_der: Vec<u8>,
    /// The host's name as the agent sees it; informational, shown in the API.
    pub hostname: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollResponse {
    Enrolled(EnrollGrant),
    Refused(Refusal),
    /// [`EnrollResponse::Enrolled`] for a certificate that chains to its root through
    /// intermediates (step-ca's): the agent presents `[certificate, intermediates…]`. Sent
    /// only to agents from [`crate::CHAIN_SINCE`] on, and only when there are intermediates.
    EnrolledChain(EnrollGrant, Intermediates),
}

/// The CA certificates between a host certificate and the root the controller trusts,
/// nearest first (DER each). Empty for the built-in CA, which signs directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intermediates {
    pub certificates_der: Vec<Vec<u8>>,
}

/// What an enrolled agent stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollGrant {
    pub tenant_id: Uuid,
    pub host_id: Uuid,
    /// DER certificate issued for the agent's key.
    pub certificate_der: Vec<u8>,
    /// DER of the CA that issued it (the agent already pinned its fingerprint).
    pub ca_certificate_der: Vec<u8>,
    /// Ed25519 public keys (32 bytes each) allowed to sign jobs for this host.
    pub job_signing_keys: Vec<Vec<u8>>,
}

/// One report, idempotent by `(stream_id, seq)`: the agent picks a new `stream_id` each time
/// it starts and numbers reports from 1; the controller applies each pair at most once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub stream_id: Uuid,
    pub seq: u64,
    /// When the data was collected, Unix milliseconds (agent clock).
    pub collected_at_ms: i64,
    pub body: ReportBody,
}

/// What a report carries. Append-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReportBody {
    HostFacts(HostFacts),
    Storage(StorageReport),
    Containers(ContainerReport),
    Databases(DatabaseReport),
    /// Progress of a job this host runs.
    JobEvent(JobEvent),
    /// The signed final result of a job (or of its refusal, when no stream could carry it).
    JobResult(JobReceipt),
    /// The agent's own state: its spool, and what it had to drop.
    AgentStatus(AgentStatus),
    /// Pending package updates and whether a reboot is required. Controllers before
    /// [`crate::PACKAGES_SINCE`] cannot decode it: agents send it only to newer ones.
    Packages(PackageReport),
    /// The labels the host's own config declares (`[host] labels`), sent at every connection;
    /// they replace the ones it declared before. Controllers before [`crate::LABELS_SINCE`]
    /// cannot decode it.
    Labels(HostLabels),
}

/// Labels a host declares for itself. An operator's label of the same key (API) wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLabels {
    pub labels: std::collections::BTreeMap<String, String>,
}

impl HostLabels {
    /// Most labels a host may carry.
    pub const MAX: usize = 64;

    /// The rules both sides enforce (the controller's table checks them too).
    pub fn validate(&self) -> Result<(), String> {
        if self.labels.len() > Self::MAX {
            return Err(format!("at most {} labels per host", Self::MAX));
        }
        match self
            .labels
            .iter()
            .find(|(k, v)| !valid_label_key(k) || !valid_label_value(v))
        {
            Some((key, _)) => Err(format!(
                "label `{key}` is not valid (keys: a-z 0-9 . _ / -, starting with a letter or \
                 digit, at most 63; values at most 128 characters, no control characters)"
            )),
            None => Ok(()),
        }
    }
}

/// A label key: lower-case letters, digits, `. _ / -`, starting with a letter or digit, at
/// most 63 characters.
pub fn valid_label_key(key: &str) -> bool {
    (1..=63).contains(&key.len())
        && key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._/-".contains(&b))
}

/// A label value: at most 128 bytes, no control characters.
pub fn valid_label_value(value: &str) -> bool {
    value.len() <= 128 && !value.chars().any(char::is_control)
}

/// How the agent's spool stands (sent after a backlog was delivered, and when it dropped
/// anything).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Reports waiting in the spool, and their bytes.
    pub spool_reports: u64,
    pub spool_bytes: u64,
    /// Collection time of the oldest report waiting (Unix ms).
    pub oldest_queued_ms: Option<i64>,
    /// Reports the spool gave up since the agent started (bounds, damaged files).
    pub dropped_reports: u64,
    pub dropped_bytes: u64,
    /// Of those, damaged files.
    pub dropped_corrupt: u64,
    /// `kind: count` of the dropped ones, for people.
    pub dropped_detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportReply {
    /// Committed to the store (or already was: `duplicate`). The agent may forget the report.
    Ack { seq: u64, duplicate: bool },
    /// The controller will never accept this report; the agent drops it and logs why.
    Rejected { seq: u64, detail: String },
}

/// Sent by the agent on the control stream after [`Welcome`]. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Renew the host certificate for the key in this CSR. The identity of the new certificate
    /// is the session's — whatever the CSR says.
    Renew(RenewRequest),
    /// This host enrolled again (`enroll --force`): revoke the session's host record. Proven
    /// by the old certificate itself, so no one else can retire a host.
    Retire,
    /// Chunk `chunk` of the agent release with this SHA-256, for an `agent_update` job the
    /// host has in progress. Controllers before [`crate::AGENT_UPDATE_SINCE`] do not know it.
    FetchRelease(FetchRelease),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRelease {
    pub sha256: [u8; 32],
    /// Index of a [`jobs::RELEASE_CHUNK_LEN`]-byte chunk, from 0.
    pub chunk: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    /// DER PKCS#10 CSR.
    pub csr_der: Vec<u8>,
}

/// The controller's answer to a [`ControlRequest`], on the control stream. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlReply {
    Renewed(RenewGrant),
    Refused(Refusal),
    /// The session's host is revoked; the connection closes.
    Retired,
    /// One chunk of a release ([`ControlRequest::FetchRelease`]).
    ReleaseChunk(ReleaseChunk),
    /// [`ControlReply::Renewed`] with the intermediates the new certificate needs (see
    /// [`EnrollResponse::EnrolledChain`]); only to agents from [`crate::CHAIN_SINCE`] on.
    RenewedChain(RenewGrant, Intermediates),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseChunk {
    pub chunk: u64,
    /// Serialized as bytes: postcard writes the same length-prefixed bytes as for a
    /// `Vec<u8>` sequence, without visiting each element (the golden test pins it).
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewGrant {
    pub certificate_der: Vec<u8>,
}

/// QUIC application close codes. A peer that closes with one of these also sends a short
/// reason; both sides log code and reason.
pub mod close_code {
    /// Orderly shutdown. A controller that is stopping (a restart, an upgrade) may add a
    /// `retry_after=<seconds>` hint ([`restart_reason`]) sized to how many agents it drops,
    /// so they come back spread over that window instead of all in the same second.
    pub const NORMAL: u32 = 0;
    /// A frame was oversized, truncated or undecodable, or messages came out of order.
    pub const PROTOCOL_VIOLATION: u32 = 1;
    /// An agent session (ALPN `unity/1`) without a client certificate.
    pub const CLIENT_CERTIFICATE_REQUIRED: u32 = 2;
    /// The certificate is valid but names no active host of its tenant (unknown or revoked).
    pub const IDENTITY_REFUSED: u32 = 3;
    /// The peer speaks a protocol version we do not.
    pub const UNSUPPORTED_VERSION: u32 = 4;
    /// The controller failed internally; retry later.
    pub const INTERNAL_ERROR: u32 = 5;
    /// The exchange timed out waiting for the peer.
    pub const TIMEOUT: u32 = 6;
    /// A newer session of the same host took over (one live session per host).
    pub const SESSION_REPLACED: u32 = 7;
    /// The controller cannot store anything now (its database is unreachable). The reason
    /// carries a hint, `retry_after=<seconds>` ([`unavailable_reason`]): an agent comes back
    /// then (with jitter) instead of backing off further, so a fleet returns within seconds of
    /// the database, spread out.
    pub const UNAVAILABLE: u32 = 8;

    /// The longest hint an agent honours; a larger one is taken as this.
    pub const MAX_RETRY_AFTER_SECS: u32 = 300;

    /// The close reason of [`UNAVAILABLE`].
    pub fn unavailable_reason(retry_after_secs: u32) -> String {
        format!("store unavailable; retry_after={retry_after_secs}")
    }

    /// The close reason of [`NORMAL`] from a controller that is stopping.
    pub fn restart_reason(retry_after_secs: u32) -> String {
        format!("controller shutting down; retry_after={retry_after_secs}")
    }

    /// The `retry_after=<seconds>` hint in a close reason, capped at
    /// [`MAX_RETRY_AFTER_SECS`]; `None` when there is none (or it is not a number).
    pub fn retry_after(reason: &[u8]) -> Option<u32> {
        let text = std::str::from_utf8(reason).ok()?;
        let value = text
            .split(|c: char| c == ';' || c.is_whitespace())
            .find_map(|part| part.strip_prefix("retry_after="))?;
        let secs: u32 = value.parse().ok()?;
        Some(secs.min(MAX_RETRY_AFTER_SECS))
    }
}

#[cfg(test)]
mod tests;
