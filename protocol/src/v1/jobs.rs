//! Signed jobs: what the controller asks an agent to do, and what the agent answers.
//!
//! # Trust
//! A job is the exact postcard bytes of a [`JobSpec`] plus an Ed25519 signature over
//! [`JOB_SIGNATURE_CONTEXT`] followed by those bytes, made with the controller's job-signing
//! key — never a TLS key. The agent checks the signature over the bytes it *received* and only
//! then decodes them (`crate::envelope`), so there is no second encoding whose differences
//! could matter. Every signature in this module is domain-separated by a context prefix: a
//! signature over a job can never be passed off as one over a key statement or a receipt.
//!
//! # Conversations (on an established session)
//! * The controller opens a bidirectional stream and sends one [`Push`]; the agent answers one
//!   [`PushReply`] and both finish the stream.
//! * Progress and the final result travel as reports ([`crate::v1::ReportBody::JobEvent`],
//!   [`crate::v1::ReportBody::JobResult`]), so they are acknowledged after commit and resent
//!   until they are — exactly like every other report.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Prefix of the bytes a job signature covers: `JOB_SIGNATURE_CONTEXT || spec`.
pub const JOB_SIGNATURE_CONTEXT: &[u8] = b"unity-fleet job v1\0";
/// Prefix of the bytes a key-statement signature covers.
pub const KEY_STATEMENT_CONTEXT: &[u8] = b"unity-fleet job-keys v1\0";
/// Prefix of the bytes a receipt signature (host key) covers.
pub const RECEIPT_SIGNATURE_CONTEXT: &[u8] = b"unity-fleet receipt v1\0";

/// SHA-256 of an Ed25519 public key: names the key that signed something.
pub type KeyId = [u8; 32];

/// A job as it travels. `spec` is postcard of [`JobSpec`]; it is decoded only after the
/// signature over it checks out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedJob {
    pub key_id: KeyId,
    pub spec: Vec<u8>,
    /// Ed25519 over `JOB_SIGNATURE_CONTEXT || spec` (64 bytes).
    pub signature: Vec<u8>,
}

/// What a job asks for, for whom, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    /// The one host that may run it.
    pub host_id: Uuid,
    /// Unix milliseconds, controller clock.
    pub issued_at_ms: i64,
    pub not_before_ms: i64,
    pub expires_at_ms: i64,
    /// Who asked: the API token's name, `cli:<user>`, or `policy` (audit trail).
    pub requested_by: String,
    pub kind: JobKind,
}

/// What to do. Append-only; the agent's allow-list names kinds by [`JobKind::name`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    /// Changes nothing on the host: proves the whole job path (signature, allow-list,
    /// journal, receipt) works for it.
    Ping(PingParams),
    /// Recreate a container on a new image, health-gated, rolled back on failure.
    ContainerUpdate(ContainerUpdateParams),
    /// Upgrade operating-system packages (apt), optionally rebooting when required.
    PackageUpgrade(PackageUpgradeParams),
    /// Replace the agent's own binary with a release the controller stores, on trial until
    /// the new agent reaches `Welcome`. Agents before [`crate::AGENT_UPDATE_SINCE`] do not
    /// know it.
    AgentUpdate(AgentUpdateParams),
}

impl JobKind {
    /// Stable name, used by the API, the allow-list and the logs.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Ping(_) => "ping",
            JobKind::ContainerUpdate(_) => "container_update",
            JobKind::PackageUpgrade(_) => "package_upgrade",
            JobKind::AgentUpdate(_) => "agent_update",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingParams {
    /// Echoed back in the result.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerUpdateParams {
    /// Container name or engine id.
    pub container: String,
    /// The image id (`sha256:…`) the container runs when the job is made; the agent refuses
    /// to touch a container that drifted from it.
    pub expected_image_id: String,
    /// The target, pinned by digest: `repo[:tag]@sha256:…`.
    pub image: String,
    /// How long the new container may take to prove itself healthy.
    pub health_timeout_secs: u32,
    /// How long it must then keep running without a restart.
    pub settle_secs: u32,
    /// Grace period when stopping a container before it is killed.
    pub stop_timeout_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageUpgradeParams {
    pub scope: UpgradeScope,
    pub reboot: RebootPolicy,
    /// How long to wait for another package manager (unattended-upgrades, an operator's apt)
    /// to release the dpkg lock before failing.
    pub lock_timeout_secs: u32,
    /// How long the whole upgrade may take before it is stopped and reported failed.
    pub timeout_secs: u32,
    /// With a reboot: how long the host may take to come back (a new boot id) before the job
    /// fails.
    pub reboot_timeout_secs: u32,
}

impl PackageUpgradeParams {
    /// Longest explicit package list.
    pub const MAX_PACKAGES: usize = 1000;

    /// The bounds both sides enforce: the controller before signing, the agent before acting
    /// (a signature proves who asked, not that the request is sane).
    pub fn validate(&self) -> Result<(), String> {
        if let UpgradeScope::Packages(names) = &self.scope {
            if names.is_empty() || names.len() > Self::MAX_PACKAGES {
                return Err(format!(
                    "packages must name 1 to {} packages",
                    Self::MAX_PACKAGES
                ));
            }
            if let Some(bad) = names.iter().find(|n| !is_package_name(n)) {
                return Err(format!("`{bad}` is not a package name"));
            }
        }
        let within = |name: &str, value: u32, min: u32, max: u32| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!("{name} must be between {min} and {max}"))
            }
        };
        within("lock_timeout_secs", self.lock_timeout_secs, 0, 3600)?;
        within("timeout_secs", self.timeout_secs, 60, 6 * 3600)?;
        within(
            "reboot_timeout_secs",
            self.reboot_timeout_secs,
            60,
            3 * 3600,
        )
    }
}

/// Which agent release to run. The bytes come over the session ([`crate::v1::ControlRequest::
/// FetchRelease`]); the signature over this job is what makes them trusted: the agent runs
/// nothing whose size and SHA-256 differ from what is signed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUpdateParams {
    /// The release's version (`major.minor.patch[-pre]`); the new binary's self-test must
    /// report exactly this.
    pub version: String,
    /// Target architecture as the agent reports it (`x86_64`, `aarch64`).
    pub architecture: String,
    /// SHA-256 of the binary.
    pub sha256: [u8; 32],
    pub size: u64,
    /// Whether a version lower than the running one may be installed.
    pub allow_downgrade: bool,
    /// How long the new agent has, from its start, to reach `Welcome` before the previous
    /// binary takes over again.
    pub welcome_timeout_secs: u32,
}

impl AgentUpdateParams {
    /// The largest release accepted (a static agent binary is ~15 MiB).
    pub const MAX_SIZE: u64 = 256 * 1024 * 1024;

    pub fn validate(&self) -> Result<(), String> {
        if parse_version(&self.version).is_none() {
            return Err(format!(
                "version `{}` is not major.minor.patch[-pre]",
                self.version
            ));
        }
        if !(1..=32).contains(&self.architecture.len())
            || !self
                .architecture
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!(
                "architecture `{}` is not a machine name",
                self.architecture
            ));
        }
        if !(1..=Self::MAX_SIZE).contains(&self.size) {
            return Err(format!(
                "size must be between 1 and {} bytes",
                Self::MAX_SIZE
            ));
        }
        if !(10..=3600).contains(&self.welcome_timeout_secs) {
            return Err("welcome_timeout_secs must be between 10 and 3600".into());
        }
        Ok(())
    }

    /// How many [`RELEASE_CHUNK_LEN`] chunks the release has.
    pub fn chunks(&self) -> u64 {
        self.size.div_ceil(RELEASE_CHUNK_LEN)
    }
}

/// Releases travel in chunks of this many bytes (the last one shorter): one chunk is one
/// control-stream reply, well under the frame limit and the stream's receive window.
pub const RELEASE_CHUNK_LEN: u64 = 1024 * 1024;

/// `major.minor.patch` with an optional `-pre` (build metadata after `+` ignored), as
/// [`semver`] orders them: a pre-release is lower than its release.
pub fn parse_version(version: &str) -> Option<semver::Version> {
    if version.len() > 64 {
        return None;
    }
    let mut parsed = semver::Version::parse(version).ok()?;
    parsed.build = semver::BuildMetadata::EMPTY;
    Some(parsed)
}

/// A Debian package name (policy 5.6.1: lower-case letters, digits, `+ - .`, starting with a
/// letter or digit, at least two characters), optionally `:arch`. What reaches apt's command
/// line is only ever such a name: no option, no glob, no path.
pub fn is_package_name(name: &str) -> bool {
    let (base, arch) = match name.split_once(':') {
        Some((base, arch)) => (base, Some(arch)),
        None => (name, None),
    };
    let base_ok = (2..=128).contains(&base.len())
        && base
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && base
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    let arch_ok = arch.is_none_or(|a| {
        (1..=32).contains(&a.len())
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    base_ok && arch_ok
}

/// Which upgrades. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpgradeScope {
    /// Every pending upgrade (new dependencies may be installed; nothing is removed).
    All,
    /// Only upgrades whose new version comes from a security archive.
    SecurityOnly,
    /// Exactly these installed packages (upgraded if an upgrade is pending; never installed).
    Packages(Vec<String>),
}

/// Whether the job may reboot the host. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RebootPolicy {
    Never,
    /// When the upgrade leaves the distribution's reboot-required flag set.
    IfRequired,
}

/// Sent by the controller on a stream it opens. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Push {
    Job(SignedJob),
    /// The chain of key statements, oldest first; the agent applies those newer than the
    /// version it holds, each signed by a key it trusts at that point.
    JobKeys(Vec<SignedKeyStatement>),
}

/// The agent's answer to a [`Push`]. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PushReply {
    /// Verified and journaled; it will run (or already runs: `already_known`).
    JobAccepted {
        job_id: Uuid,
        already_known: bool,
    },
    /// Not run, ever; the receipt says why.
    JobRefused(JobReceipt),
    /// The agent now trusts the keys of statement `version`.
    JobKeysApplied {
        version: u64,
    },
    JobKeysRefused {
        detail: String,
    },
}

/// A statement that the job-signing keys are now exactly `keys`, signed by a key the agent
/// already trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedKeyStatement {
    pub signer: KeyId,
    /// postcard of [`KeyStatement`].
    pub statement: Vec<u8>,
    /// Ed25519 over `KEY_STATEMENT_CONTEXT || statement`.
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatement {
    /// Increases by one per rotation; an agent never goes back to a lower version.
    pub version: u64,
    pub issued_at_ms: i64,
    /// Ed25519 public keys (32 bytes each) allowed to sign jobs from now on.
    pub keys: Vec<[u8; 32]>,
}

/// Progress of a running job. `seq` counts from 1 per job, so events are stored once and in
/// order whatever the delivery does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: Uuid,
    pub seq: u32,
    pub at_ms: i64,
    pub kind: JobEventKind,
    pub message: String,
    /// Structured evidence (plan, digests, health output), JSON.
    pub detail_json: String,
}

/// Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobEventKind {
    /// The agent began to act on the host.
    Started,
    Progress,
    Warning,
}

/// A final result signed with the host key: evidence that the host itself reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReceipt {
    /// postcard of [`JobOutcome`].
    pub outcome: Vec<u8>,
    /// ECDSA P-256 / SHA-256 (ASN.1 DER) over `RECEIPT_SIGNATURE_CONTEXT || outcome`, by the
    /// key of the host certificate.
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// As the job claimed it; for a refused signature this is whatever the bytes said, which
    /// is why `spec_sha256` binds the receipt to what was actually received.
    pub job_id: Uuid,
    /// SHA-256 of the received `SignedJob::spec` bytes.
    pub spec_sha256: [u8; 32],
    pub tenant_id: Uuid,
    pub host_id: Uuid,
    pub end: JobEnd,
    pub refusal: Option<JobRefusalReason>,
    /// One line for people.
    pub summary: String,
    /// Evidence (digests, health log, exit code, restarts), JSON.
    pub detail_json: String,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: i64,
}

/// How a job ended on the host. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobEnd {
    Succeeded,
    Failed,
    /// The change failed its health gate and the previous state was restored.
    RolledBack,
    /// Never started: see [`JobOutcome::refusal`].
    Refused,
}

/// Why an agent refused a job. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobRefusalReason {
    /// The signature does not verify over the received bytes.
    BadSignature,
    /// Signed by a key this host does not trust.
    UnknownKey,
    /// Verified, but the bytes are not a job this agent understands.
    Malformed,
    NotYetValid,
    Expired,
    WrongTenant,
    WrongHost,
    /// This job id was seen before.
    Replay,
    /// The host's own config does not allow this kind.
    KindNotAllowed,
    /// The parameters cannot be acted on (e.g. an image not pinned by digest).
    InvalidParameters,
    /// What the job acts on is not what the job expected (a container that drifted to
    /// another image, or is not running); nothing was changed.
    TargetChanged,
    /// The agent could not record the job safely (journal unwritable, disk full).
    Internal,
}

crate::word_enum!(JobRefusalReason, UnknownJobRefusalReason, "refusal reason", {
    BadSignature => "bad_signature",
    UnknownKey => "unknown_key",
    Malformed => "malformed",
    NotYetValid => "not_yet_valid",
    Expired => "expired",
    WrongTenant => "wrong_tenant",
    WrongHost => "wrong_host",
    Replay => "replay",
    KindNotAllowed => "kind_not_allowed",
    InvalidParameters => "invalid_parameters",
    TargetChanged => "target_changed",
    Internal => "internal",
});

crate::word_enum!(JobEnd, UnknownJobEnd, "job end", {
    Succeeded => "succeeded",
    Failed => "failed",
    RolledBack => "rolled_back",
    Refused => "refused",
});
