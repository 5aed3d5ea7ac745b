//! What the agent checks before a job may touch the host. Pure: the trusted keys, the host's
//! identity, its allow-list and the time are passed in.
//!
//! Order (each failure is a precise refusal, never a silent drop):
//! 1. signature over the received bytes by a trusted job-signing key, then decoding;
//! 2. tenant and host are this host's;
//! 3. (replay: the journal, in `jobs::mod`)
//! 4. the time window, with [`Expectations::clock_skew_ms`] of tolerance either way;
//! 5. the kind is on this host's allow-list;
//! 6. the parameters can be acted on.

use unity_collect::containers::ImageReference;
use unity_protocol::envelope::EnvelopeError;
use unity_protocol::latest::{JobKind, JobRefusalReason, JobSpec, SignedJob};
use uuid::Uuid;

/// A refusal: the reason code and a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: JobRefusalReason,
    pub detail: String,
}

impl Refusal {
    pub fn new(reason: JobRefusalReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// What this host accepts.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub tenant_id: Uuid,
    pub host_id: Uuid,
    pub trusted_keys: &'a [[u8; 32]],
    /// Kind names (`JobKind::name`) this host runs.
    pub allowed_kinds: &'a [String],
    pub clock_skew_ms: i64,
    /// Longest lifetime (expiry − not-before) a job may have.
    pub max_lifetime_ms: i64,
}

/// Step 1: the signature, then the bytes.
pub fn open(job: &SignedJob, expect: &Expectations<'_>) -> Result<JobSpec, Refusal> {
    job.open(expect.trusted_keys).map_err(|error| {
        let reason = match error {
            EnvelopeError::UnknownKey { .. } => JobRefusalReason::UnknownKey,
            EnvelopeError::BadSignature { .. } => JobRefusalReason::BadSignature,
            EnvelopeError::Malformed(_) => JobRefusalReason::Malformed,
        };
        Refusal::new(reason, error.to_string())
    })
}

/// Step 2.
pub fn check_target(spec: &JobSpec, expect: &Expectations<'_>) -> Result<(), Refusal> {
    if spec.tenant_id != expect.tenant_id {
        return Err(Refusal::new(
            JobRefusalReason::WrongTenant,
            format!(
                "job is for tenant {}, this host belongs to tenant {}",
                spec.tenant_id, expect.tenant_id
            ),
        ));
    }
    if spec.host_id != expect.host_id {
        return Err(Refusal::new(
            JobRefusalReason::WrongHost,
            format!(
                "job is for host {}, this is host {}",
                spec.host_id, expect.host_id
            ),
        ));
    }
    Ok(())
}

/// Steps 4 to 6.
pub fn check_runnable(
    spec: &JobSpec,
    expect: &Expectations<'_>,
    now_ms: i64,
) -> Result<(), Refusal> {
    let skew = expect.clock_skew_ms;
    if spec.expires_at_ms <= spec.not_before_ms
        || spec.expires_at_ms.saturating_sub(spec.not_before_ms) > expect.max_lifetime_ms
    {
        return Err(Refusal::new(
            JobRefusalReason::InvalidParameters,
            format!(
                "validity window {}..{} ms is empty or longer than {} ms",
                spec.not_before_ms, spec.expires_at_ms, expect.max_lifetime_ms
            ),
        ));
    }
    if now_ms.saturating_add(skew) < spec.not_before_ms {
        return Err(Refusal::new(
            JobRefusalReason::NotYetValid,
            format!(
                "job is valid from {} (unix ms); this host's clock says {now_ms}, allowed skew {skew} ms",
                spec.not_before_ms
            ),
        ));
    }
    if now_ms.saturating_sub(skew) >= spec.expires_at_ms {
        return Err(Refusal::new(
            JobRefusalReason::Expired,
            format!(
                "job expired at {} (unix ms); this host's clock says {now_ms}, allowed skew {skew} ms",
                spec.expires_at_ms
            ),
        ));
    }
    let kind = spec.kind.name();
    if !expect.allowed_kinds.iter().any(|k| k == kind) {
        return Err(Refusal::new(
            JobRefusalReason::KindNotAllowed,
            format!(
                "this host does not run `{kind}` jobs (allowed: [{}]); see [jobs] allow in agent.toml",
                expect.allowed_kinds.join(", ")
            ),
        ));
    }
    check_params(&spec.kind)
}

fn check_params(kind: &JobKind) -> Result<(), Refusal> {
    match kind {
        JobKind::Ping(p) if p.message.len() > 1024 => Err(Refusal::new(
            JobRefusalReason::InvalidParameters,
            "ping message is longer than 1024 bytes",
        )),
        JobKind::Ping(_) => Ok(()),
        JobKind::PackageUpgrade(p) => p
            .validate()
            .map_err(|detail| Refusal::new(JobRefusalReason::InvalidParameters, detail)),
        JobKind::AgentUpdate(p) => check_agent_update(p, crate::version(), std::env::consts::ARCH),
        JobKind::ContainerUpdate(p) => {
            let invalid =
                |detail: String| Err(Refusal::new(JobRefusalReason::InvalidParameters, detail));
            let reference = match ImageReference::parse(&p.image) {
                Ok(r) => r,
                Err(e) => return invalid(format!("image `{}`: {e}", p.image)),
            };
            if reference.digest.is_none() {
                return invalid(format!(
                    "image `{}` is not pinned by digest (repo[:tag]@sha256:…)",
                    p.image
                ));
            }
            if p.container.is_empty() || p.container.len() > 255 {
                return invalid("container name must be 1-255 bytes".into());
            }
            if !p.expected_image_id.starts_with("sha256:") {
                return invalid(format!(
                    "expected image id `{}` is not a sha256: image id",
                    p.expected_image_id
                ));
            }
            if p.health_timeout_secs == 0 || p.health_timeout_secs > 3600 {
                return invalid("health_timeout_secs must be 1-3600".into());
            }
            if p.settle_secs > 3600 || p.stop_timeout_secs == 0 || p.stop_timeout_secs > 600 {
                return invalid("settle_secs must be 0-3600, stop_timeout_secs 1-600".into());
            }
            Ok(())
        }
    }
}

/// An agent release this build may install: sane bounds, this machine's architecture, and
/// not older than `running` unless the job allows a downgrade. (`running` and `architecture`
/// are this build's constants.)
pub fn check_agent_update(
    p: &unity_protocol::latest::AgentUpdateParams,
    running: &str,
    architecture: &str,
) -> Result<(), Refusal> {
    use unity_protocol::latest::jobs::parse_version;
    let invalid = |detail: String| Err(Refusal::new(JobRefusalReason::InvalidParameters, detail));
    if let Err(detail) = p.validate() {
        return invalid(detail);
    }
    if p.architecture != architecture {
        return invalid(format!(
            "release is for {}, this agent runs on {architecture}",
            p.architecture
        ));
    }
    let (Some(wanted), Some(current)) = (parse_version(&p.version), parse_version(running)) else {
        return invalid(format!("version `{}` cannot be compared", p.version));
    };
    if wanted < current && !p.allow_downgrade {
        return invalid(format!(
            "{} is older than this agent ({running}); a downgrade must be allowed by the job",
            p.version
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_updates_for_another_machine_or_downgrades_are_refused() {
        let p = unity_protocol::latest::AgentUpdateParams {
            version: "0.3.1".into(),
            architecture: "x86_64".into(),
            sha256: [0; 32],
            size: 10,
            allow_downgrade: false,
            welcome_timeout_secs: 60,
        };
        assert_eq!(check_agent_update(&p, "0.3.0", "x86_64"), Ok(()));
        assert_eq!(check_agent_update(&p, "0.3.1", "x86_64"), Ok(()));
        let refused = |p: &unity_protocol::latest::AgentUpdateParams, running, arch| {
            check_agent_update(p, running, arch).unwrap_err().reason
        };
        assert_eq!(
            refused(&p, "0.3.0", "aarch64"),
            JobRefusalReason::InvalidParameters
        );
        assert_eq!(
            refused(&p, "0.4.0", "x86_64"),
            JobRefusalReason::InvalidParameters
        );
        let downgrade = unity_protocol::latest::AgentUpdateParams {
            allow_downgrade: true,
            ..p.clone()
        };
        assert_eq!(check_agent_update(&downgrade, "0.4.0", "x86_64"), Ok(()));
        let pre = unity_protocol::latest::AgentUpdateParams {
            version: "0.3.1-rc.1".into(),
            ..p
        };
        assert_eq!(
            refused(&pre, "0.3.1", "x86_64"),
            JobRefusalReason::InvalidParameters
        );
    }
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    use unity_protocol::envelope::key_id;
    use unity_protocol::latest::{ContainerUpdateParams, PingParams};

    const NOW: i64 = 1_800_000_000_000;
    const SKEW: i64 = 300_000;

    fn key(seed: u8) -> (Ed25519KeyPair, [u8; 32]) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        (pair, public)
    }

    fn spec(kind: JobKind) -> JobSpec {
        JobSpec {
            job_id: Uuid::from_u128(9),
            tenant_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
            issued_at_ms: NOW,
            not_before_ms: NOW,
            expires_at_ms: NOW + 3_600_000,
            requested_by: "t".into(),
            kind,
        }
    }

    fn ping() -> JobKind {
        JobKind::Ping(PingParams {
            message: "hi".into(),
        })
    }

    fn seal(spec: &JobSpec, pair: &Ed25519KeyPair, public: &[u8; 32]) -> SignedJob {
        SignedJob::seal(spec, key_id(public), |b| {
            pair.sign(b).as_ref().try_into().unwrap()
        })
        .unwrap()
    }

    fn check(spec: &JobSpec, allowed: &[&str], now: i64) -> Result<(), Refusal> {
        let (_, public) = key(1);
        let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
        let expect = Expectations {
            tenant_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
            trusted_keys: &[public],
            allowed_kinds: &allowed,
            clock_skew_ms: SKEW,
            max_lifetime_ms: 8 * 24 * 3_600_000,
        };
        check_target(spec, &expect)?;
        check_runnable(spec, &expect, now)
    }

    fn reason(result: Result<(), Refusal>) -> JobRefusalReason {
        result.unwrap_err().reason
    }

    #[test]
    fn signature_checks_map_to_reasons() {
        let (pair, public) = key(1);
        let (rogue, rogue_public) = key(2);
        let allowed = vec!["ping".to_owned()];
        let expect = Expectations {
            tenant_id: Uuid::from_u128(1),
            host_id: Uuid::from_u128(2),
            trusted_keys: &[public],
            allowed_kinds: &allowed,
            clock_skew_ms: SKEW,
            max_lifetime_ms: i64::MAX,
        };
        let good = seal(&spec(ping()), &pair, &public);
        assert_eq!(open(&good, &expect).unwrap(), spec(ping()));
        let mut tampered = good.clone();
        *tampered.spec.last_mut().unwrap() ^= 1;
        assert_eq!(
            open(&tampered, &expect).unwrap_err().reason,
            JobRefusalReason::BadSignature
        );
        let unknown = seal(&spec(ping()), &rogue, &rogue_public);
        assert_eq!(
            open(&unknown, &expect).unwrap_err().reason,
            JobRefusalReason::UnknownKey
        );
    }

    #[test]
    fn target_time_and_kind() {
        let ok = spec(ping());
        assert_eq!(check(&ok, &["ping"], NOW), Ok(()));
        let mut other_host = ok.clone();
        other_host.host_id = Uuid::from_u128(3);
        assert_eq!(
            reason(check(&other_host, &["ping"], NOW)),
            JobRefusalReason::WrongHost
        );
        let mut other_tenant = ok.clone();
        other_tenant.tenant_id = Uuid::from_u128(3);
        assert_eq!(
            reason(check(&other_tenant, &["ping"], NOW)),
            JobRefusalReason::WrongTenant
        );
        // The skew tolerates a host clock a little behind or ahead, not more.
        assert_eq!(check(&ok, &["ping"], NOW - SKEW), Ok(()));
        assert_eq!(
            reason(check(&ok, &["ping"], NOW - SKEW - 1)),
            JobRefusalReason::NotYetValid
        );
        assert_eq!(check(&ok, &["ping"], ok.expires_at_ms + SKEW - 1), Ok(()));
        assert_eq!(
            reason(check(&ok, &["ping"], ok.expires_at_ms + SKEW)),
            JobRefusalReason::Expired
        );
        assert_eq!(
            reason(check(&ok, &[], NOW)),
            JobRefusalReason::KindNotAllowed
        );
        let detail = check(&ok, &["container_update"], NOW).unwrap_err().detail;
        assert!(detail.contains("agent.toml"), "{detail}");
        let mut endless = ok.clone();
        endless.expires_at_ms = NOW + 30 * 24 * 3_600_000;
        assert_eq!(
            reason(check(&endless, &["ping"], NOW)),
            JobRefusalReason::InvalidParameters
        );
    }

    #[test]
    fn container_update_needs_a_digest_pinned_image() {
        let update = |image: &str| {
            spec(JobKind::ContainerUpdate(ContainerUpdateParams {
                container: "web".into(),
                expected_image_id: "sha256:1".into(),
                image: image.into(),
                health_timeout_secs: 60,
                settle_secs: 5,
                stop_timeout_secs: 10,
            }))
        };
        let pinned = format!("registry.lan:5000/app:2@sha256:{}", "a".repeat(64));
        assert_eq!(check(&update(&pinned), &["container_update"], NOW), Ok(()));
        for bad in ["registry.lan:5000/app:2", "", "UPPER/Case@sha256:x"] {
            assert_eq!(
                reason(check(&update(bad), &["container_update"], NOW)),
                JobRefusalReason::InvalidParameters,
                "{bad}"
            );
        }
    }
}
