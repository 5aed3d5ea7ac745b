//! Turning a request (API or CLI) into a signed, queued job.
//!
//! The controller fills in what it knows and the requester should not have to: the image the
//! container runs now (the agent refuses to act on a container that drifted from it) and, by
//! default, the newer digest the update check found. Everything the agent acts on goes into
//! the signed [`JobSpec`]; the row's `params` JSON is a copy for people.

use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use unity_pki::job_key::JobKeyError;
use unity_protocol::latest::{
    AgentUpdateParams, ContainerUpdateParams, JobKind, JobSpec, PackageUpgradeParams, PingParams,
    RebootPolicy, SignedJob, UpdateState, UpgradeScope,
};
use uuid::Uuid;

use super::keys::{JobKeys, unix_ms};
use crate::store::inventory::containers;
use crate::store::jobs::{self as job_store, InsertJobError, NewJob};
use crate::store::{StoreError, TenantTx, hosts, releases};

/// Default job lifetime: long enough for a host rebooting or a short outage, short enough
/// that a forgotten job does not run days later.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Defaults of the container update's health gate (docs/jobs.md).
pub const DEFAULT_HEALTH_TIMEOUT_SECS: u32 = 180;
pub const DEFAULT_SETTLE_SECS: u32 = 20;
pub const DEFAULT_STOP_TIMEOUT_SECS: u32 = 10;

/// Defaults of `package_upgrade` (docs/jobs.md): wait 5 min for another apt to finish, allow
/// the upgrade an hour, a rebooting host 15 min to come back.
pub const DEFAULT_LOCK_TIMEOUT_SECS: u32 = 300;
pub const DEFAULT_UPGRADE_TIMEOUT_SECS: u32 = 3600;
pub const DEFAULT_REBOOT_TIMEOUT_SECS: u32 = 900;

/// Default of `agent_update`: the new agent has 2 minutes from its start to reach `Welcome`.
pub const DEFAULT_WELCOME_TIMEOUT_SECS: u32 = 120;

/// `POST /api/v1/jobs` body, also what `unity-controller job create` builds.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub host_id: Uuid,
    /// `ping`, `container_update`, `package_upgrade` or `agent_update`.
    pub kind: String,
    /// Parameters of the kind (docs/jobs.md). `container_update`: `container` (name or id,
    /// required), `image` (`repo[:tag]@sha256:…`; default: the newer digest the update check
    /// found), `health_timeout_secs` (180), `settle_secs` (20), `stop_timeout_secs` (10, as `docker stop`).
    /// `ping`: `message`. `package_upgrade`: `scope` (`all` | `security`), or `packages`
    /// (names), `reboot` (`never` | `if_required`), `lock_timeout_secs` (300),
    /// `timeout_secs` (3600), `reboot_timeout_secs` (900). `agent_update`: `version`
    /// (a release added with `unity-controller agent-release add`; required),
    /// `allow_downgrade` (false), `welcome_timeout_secs` (120).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// How long the job stays valid, in seconds (default 3600, at most 604800).
    pub expires_in_secs: Option<u64>,
    /// Not before this time (RFC 3339; default now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub not_before: Option<OffsetDateTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PingRequest {
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainerUpdateRequest {
    container: String,
    image: Option<String>,
    health_timeout_secs: Option<u32>,
    settle_secs: Option<u32>,
    stop_timeout_secs: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageUpgradeRequest {
    /// `all` (default), `security`, or absent with `packages`.
    scope: Option<String>,
    packages: Option<Vec<String>>,
    /// `never` (default) or `if_required`.
    reboot: Option<String>,
    lock_timeout_secs: Option<u32>,
    timeout_secs: Option<u32>,
    reboot_timeout_secs: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentUpdateRequest {
    version: String,
    #[serde(default)]
    allow_downgrade: bool,
    welcome_timeout_secs: Option<u32>,
}

impl AgentUpdateRequest {
    /// What can be checked without a host: the version to install and the welcome timeout.
    fn checked(&self) -> Result<(semver::Version, u32), CreateJobError> {
        let version =
            unity_protocol::latest::jobs::parse_version(&self.version).ok_or_else(|| {
                CreateJobError::Invalid(format!(
                    "version `{}` is not major.minor.patch[-pre]",
                    self.version
                ))
            })?;
        let welcome_timeout_secs = ranged(
            "welcome_timeout_secs",
            self.welcome_timeout_secs,
            DEFAULT_WELCOME_TIMEOUT_SECS,
            10,
            3600,
        )?;
        Ok((version, welcome_timeout_secs))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateJobError {
    #[error("host not found")]
    HostNotFound,
    #[error("invalid job: {0}")]
    Invalid(String),
    /// The request is valid but cannot be acted on now.
    #[error("{0}")]
    Conflict(String),
    #[error("could not read the job-signing key")]
    Key(#[from] JobKeyError),
    #[error("could not encode the job")]
    Encode(#[source] postcard::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<InsertJobError> for CreateJobError {
    fn from(error: InsertJobError) -> Self {
        match error {
            InsertJobError::TargetBusy { .. } => CreateJobError::Conflict(error.to_string()),
            InsertJobError::Store(e) => CreateJobError::Store(e),
        }
    }
}

/// The job as queued.
#[derive(Debug, Clone)]
pub struct CreatedJob {
    pub id: Uuid,
    pub spec: JobSpec,
}

/// Validates, signs and queues `request` for `tenant_id` inside `tx` (the caller commits;
/// the commit is what notifies the replica holding the host's session).
pub async fn create_job(
    tx: &mut TenantTx,
    keys: &JobKeys,
    tenant_id: Uuid,
    request: &JobRequest,
    requested_by: &str,
    now: OffsetDateTime,
) -> Result<CreatedJob, CreateJobError> {
    let host = hosts::get_host(tx, request.host_id)
        .await?
        .ok_or(CreateJobError::HostNotFound)?;
    if host.summary.revoked_at.is_some() {
        return Err(CreateJobError::Conflict(
            "the host is revoked; it will never run a job".into(),
        ));
    }
    let lifetime = request
        .expires_in_secs
        .map_or(DEFAULT_LIFETIME, Duration::from_secs);
    if lifetime.is_zero() || lifetime > MAX_LIFETIME {
        return Err(CreateJobError::Invalid(format!(
            "expires_in_secs must be between 1 and {}",
            MAX_LIFETIME.as_secs()
        )));
    }
    let not_before = request.not_before.unwrap_or(now).max(now);
    let expires_at = not_before + lifetime;
    let (kind, target) = kind_from_request(tx, request).await?;
    let spec = JobSpec {
        job_id: Uuid::new_v4(),
        tenant_id,
        host_id: request.host_id,
        issued_at_ms: unix_ms(now),
        not_before_ms: unix_ms(not_before),
        expires_at_ms: unix_ms(expires_at),
        requested_by: requested_by.to_owned(),
        kind,
    };
    let key = keys.current()?;
    let signed = SignedJob::seal(&spec, key.key_id(), |bytes| key.sign(bytes))
        .map_err(CreateJobError::Encode)?;
    let params = params_json(&spec.kind);
    job_store::insert(
        tx,
        &NewJob {
            id: spec.job_id,
            tenant_id,
            host_id: spec.host_id,
            kind: spec.kind.name(),
            params: &params,
            target: target.as_deref(),
            requested_by,
            key_id: &signed.key_id,
            spec: &signed.spec,
            signature: &signed.signature,
            spec_sha256: &signed.spec_sha256(),
            created_at: now,
            not_before,
            expires_at,
        },
    )
    .await?;
    tracing::info!(job_id = %spec.job_id, %tenant_id, host_id = %spec.host_id,
        kind = spec.kind.name(), requested_by, "job queued");
    Ok(CreatedJob {
        id: spec.job_id,
        spec,
    })
}

/// Checks `params` for `kind` as far as that can be done without a host (for rollouts, whose
/// jobs are made later, host by host).
pub fn check_params(kind: &str, params: &serde_json::Value) -> Result<(), CreateJobError> {
    let params = if params.is_null() {
        serde_json::json!({})
    } else {
        params.clone()
    };
    let invalid =
        |e: serde_json::Error| CreateJobError::Invalid(format!("params for `{kind}`: {e}"));
    match kind {
        "ping" => ping(serde_json::from_value(params).map_err(invalid)?).map(|_| ()),
        "container_update" => {
            let p: ContainerUpdateRequest = serde_json::from_value(params).map_err(invalid)?;
            if let Some(image) = &p.image {
                check_pinned(image).map_err(CreateJobError::Invalid)?;
            }
            Ok(())
        }
        "package_upgrade" => {
            let p: PackageUpgradeRequest = serde_json::from_value(params).map_err(invalid)?;
            package_upgrade(p).map(|_| ())
        }
        "agent_update" => {
            let p: AgentUpdateRequest = serde_json::from_value(params).map_err(invalid)?;
            p.checked().map(|_| ())
        }
        other => Err(unknown_kind(other)),
    }
}

/// The kind with its parameters, and what it acts on.
async fn kind_from_request(
    tx: &mut TenantTx,
    request: &JobRequest,
) -> Result<(JobKind, Option<String>), CreateJobError> {
    let params = if request.params.is_null() {
        serde_json::json!({})
    } else {
        request.params.clone()
    };
    let invalid = |e: serde_json::Error| {
        CreateJobError::Invalid(format!("params for `{}`: {e}", request.kind))
    };
    match request.kind.as_str() {
        "ping" => Ok((
            JobKind::Ping(ping(serde_json::from_value(params).map_err(invalid)?)?),
            None,
        )),
        "container_update" => {
            let p: ContainerUpdateRequest = serde_json::from_value(params).map_err(invalid)?;
            let update = container_update(tx, request.host_id, p).await?;
            let target = format!("container:{}", update.container);
            Ok((JobKind::ContainerUpdate(update), Some(target)))
        }
        "package_upgrade" => {
            let p: PackageUpgradeRequest = serde_json::from_value(params).map_err(invalid)?;
            Ok((
                JobKind::PackageUpgrade(package_upgrade(p)?),
                Some("packages".to_owned()),
            ))
        }
        "agent_update" => {
            let p: AgentUpdateRequest = serde_json::from_value(params).map_err(invalid)?;
            Ok((
                JobKind::AgentUpdate(agent_update(tx, request.host_id, p).await?),
                Some("agent".to_owned()),
            ))
        }
        other => Err(unknown_kind(other)),
    }
}

fn unknown_kind(kind: &str) -> CreateJobError {
    CreateJobError::Invalid(format!(
        "kind `{kind}` is not one of ping, container_update, package_upgrade, agent_update"
    ))
}

/// The release for the host's architecture, checked against the agent it runs now: an agent
/// too old to know the kind, or a downgrade not asked for, is refused here (the agent checks
/// the version again, against itself).
async fn agent_update(
    tx: &mut TenantTx,
    host_id: Uuid,
    p: AgentUpdateRequest,
) -> Result<AgentUpdateParams, CreateJobError> {
    use unity_protocol::latest::jobs::parse_version;
    let (wanted, welcome_timeout_secs) = p.checked()?;
    let host = hosts::get_host(tx, host_id)
        .await?
        .ok_or(CreateJobError::HostNotFound)?;
    let Some(facts) = host.facts else {
        return Err(CreateJobError::Conflict(
            "the host has not reported its facts yet (architecture and agent version)".into(),
        ));
    };
    if !unity_protocol::version_at_least(&facts.agent_version, unity_protocol::AGENT_UPDATE_SINCE) {
        return Err(CreateJobError::Conflict(format!(
            "the host runs agent {}, which cannot update itself; install a newer agent by hand",
            facts.agent_version
        )));
    }
    let running = parse_version(&facts.agent_version);
    if !p.allow_downgrade && running.as_ref().is_some_and(|running| wanted < *running) {
        return Err(CreateJobError::Invalid(format!(
            "{} is older than the agent the host runs ({}); set allow_downgrade to install it",
            p.version, facts.agent_version
        )));
    }
    let architecture = releases::release_architecture(&facts.architecture).to_owned();
    let release = releases::find(tx, &p.version, &architecture)
        .await?
        .ok_or_else(|| {
            CreateJobError::Invalid(format!(
                "no release {} for {architecture} is stored; add it with `unity-controller                  agent-release add FILE --version {}`",
                p.version, p.version
            ))
        })?;
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&release.sha256, &mut sha256).map_err(|_| {
        CreateJobError::Conflict(format!("release {} has a damaged digest", release.version))
    })?;
    let params = AgentUpdateParams {
        version: release.version,
        architecture,
        sha256,
        size: u64::try_from(release.size).unwrap_or(0),
        allow_downgrade: p.allow_downgrade,
        welcome_timeout_secs,
    };
    params.validate().map_err(CreateJobError::Invalid)?;
    Ok(params)
}

async fn container_update(
    tx: &mut TenantTx,
    host_id: Uuid,
    p: ContainerUpdateRequest,
) -> Result<ContainerUpdateParams, CreateJobError> {
    let container = containers::find_present(tx, host_id, &p.container)
        .await?
        .ok_or_else(|| {
            CreateJobError::Invalid(format!(
                "no container `{}` in this host's inventory",
                p.container
            ))
        })?;
    let image = match p.image {
        Some(image) => {
            check_pinned(&image).map_err(CreateJobError::Invalid)?;
            image
        }
        None => match (container.update_state.parse(), &container.update_new_digest) {
            (Ok(UpdateState::UpdateAvailable), Some(digest)) => pinned(&container.image, digest),
            _ => {
                return Err(CreateJobError::Conflict(format!(
                    "no newer image is known for container `{}` (update state `{}`); give \
                     params.image as repo[:tag]@sha256:…",
                    container.name, container.update_state
                )));
            }
        },
    };
    Ok(ContainerUpdateParams {
        health_timeout_secs: ranged(
            "health_timeout_secs",
            p.health_timeout_secs,
            DEFAULT_HEALTH_TIMEOUT_SECS,
            1,
            3600,
        )?,
        settle_secs: ranged("settle_secs", p.settle_secs, DEFAULT_SETTLE_SECS, 0, 3600)?,
        stop_timeout_secs: ranged(
            "stop_timeout_secs",
            p.stop_timeout_secs,
            DEFAULT_STOP_TIMEOUT_SECS,
            1,
            600,
        )?,
        container: container.name,
        expected_image_id: container.image_id,
        image,
    })
}

fn ranged(
    name: &str,
    value: Option<u32>,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, CreateJobError> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(CreateJobError::Invalid(format!(
            "{name} must be between {min} and {max}"
        )))
    }
}

fn ping(p: PingRequest) -> Result<PingParams, CreateJobError> {
    if p.message.len() > 1024 {
        return Err(CreateJobError::Invalid(
            "ping message is longer than 1024 bytes".into(),
        ));
    }
    Ok(PingParams { message: p.message })
}

fn package_upgrade(p: PackageUpgradeRequest) -> Result<PackageUpgradeParams, CreateJobError> {
    let scope = match (p.scope.as_deref(), p.packages) {
        (Some("all") | None, None) => UpgradeScope::All,
        (Some("security"), None) => UpgradeScope::SecurityOnly,
        (Some("packages") | None, Some(packages)) => UpgradeScope::Packages(packages),
        (Some(other), None) => {
            return Err(CreateJobError::Invalid(format!(
                "scope `{other}` is not one of all, security, packages"
            )));
        }
        (Some(_), Some(_)) => {
            return Err(CreateJobError::Invalid(
                "give either scope all/security or a packages list".into(),
            ));
        }
    };
    let reboot = match p.reboot.as_deref() {
        None | Some("never") => RebootPolicy::Never,
        Some("if_required") => RebootPolicy::IfRequired,
        Some(other) => {
            return Err(CreateJobError::Invalid(format!(
                "reboot `{other}` is not one of never, if_required"
            )));
        }
    };
    let params = PackageUpgradeParams {
        scope,
        reboot,
        // The bounds are the protocol's (`PackageUpgradeParams::validate`), which the agent
        // enforces too: one definition for both sides.
        lock_timeout_secs: p.lock_timeout_secs.unwrap_or(DEFAULT_LOCK_TIMEOUT_SECS),
        timeout_secs: p.timeout_secs.unwrap_or(DEFAULT_UPGRADE_TIMEOUT_SECS),
        reboot_timeout_secs: p.reboot_timeout_secs.unwrap_or(DEFAULT_REBOOT_TIMEOUT_SECS),
    };
    params.validate().map_err(CreateJobError::Invalid)?;
    Ok(params)
}

/// `image` with its tag kept and its digest replaced by `digest`.
pub fn pinned(image: &str, digest: &str) -> String {
    let base = image.split_once('@').map_or(image, |(name, _)| name);
    format!("{base}@{digest}")
}

/// A reference pinned by a SHA-256 digest: `name[:tag]@sha256:<64 hex>`.
pub fn check_pinned(image: &str) -> Result<(), String> {
    let Some((name, digest)) = image.rsplit_once('@') else {
        return Err(format!(
            "image `{image}` is not pinned by digest (repo[:tag]@sha256:…)"
        ));
    };
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    let name_ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b));
    if !name_ok {
        return Err(format!("image name `{name}` is not a valid reference"));
    }
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "image digest `{digest}` is not sha256: followed by 64 lower-case hex digits"
        ));
    }
    Ok(())
}

/// The parameters as stored for people (`params`).
pub fn params_json(kind: &JobKind) -> serde_json::Value {
    match kind {
        JobKind::Ping(p) => serde_json::json!({ "message": p.message }),
        JobKind::ContainerUpdate(p) => serde_json::json!({
            "container": p.container,
            "expected_image_id": p.expected_image_id,
            "image": p.image,
            "health_timeout_secs": p.health_timeout_secs,
            "settle_secs": p.settle_secs,
            "stop_timeout_secs": p.stop_timeout_secs,
        }),
        JobKind::PackageUpgrade(p) => serde_json::json!({
            "scope": match &p.scope {
                UpgradeScope::All => "all",
                UpgradeScope::SecurityOnly => "security",
                UpgradeScope::Packages(_) => "packages",
            },
            "packages": match &p.scope {
                UpgradeScope::Packages(list) => serde_json::json!(list),
                _ => serde_json::Value::Null,
            },
            "reboot": match p.reboot {
                RebootPolicy::Never => "never",
                RebootPolicy::IfRequired => "if_required",
            },
            "lock_timeout_secs": p.lock_timeout_secs,
            "timeout_secs": p.timeout_secs,
            "reboot_timeout_secs": p.reboot_timeout_secs,
        }),
        JobKind::AgentUpdate(p) => serde_json::json!({
            "version": p.version,
            "architecture": p.architecture,
            // Lower-case hex: what a session's fetch is checked against.
            "sha256": hex::encode(p.sha256),
            "size": p.size,
            "allow_downgrade": p.allow_downgrade,
            "welcome_timeout_secs": p.welcome_timeout_secs,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_references() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            pinned("registry.lan:5000/app:1.2", &digest),
            format!("registry.lan:5000/app:1.2@{digest}")
        );
        assert_eq!(
            pinned(&format!("app:1@sha256:{}", "b".repeat(64)), &digest),
            format!("app:1@{digest}")
        );
        assert_eq!(check_pinned(&format!("app:1@{digest}")), Ok(()));
        assert!(check_pinned("app:1").is_err());
        assert!(check_pinned("app@sha256:abc").is_err());
        assert!(check_pinned(&format!("app@sha256:{}", "A".repeat(64))).is_err());
        assert!(check_pinned(&format!("ap p@{digest}")).is_err());
        assert!(check_pinned(&format!("@{digest}")).is_err());
    }
}
