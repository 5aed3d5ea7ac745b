//! What the container collector reports: plain structs and enums, independent of bollard's
//! generated types (which follow the engine's API version, not ours).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which engine answered on a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngineKind {
    Docker,
    Podman,
}

/// Facts about one container engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// Where we reached it, e.g. `unix:///var/run/docker.sock`.
    pub endpoint: String,
    pub kind: EngineKind,
    /// Engine version (`/version` `Version`, e.g. `20.10.24+dfsg1` or `4.3.1`).
    pub version: Option<String>,
    /// Highest API version the engine speaks (`/version` `ApiVersion`).
    pub api_version: Option<String>,
    /// Storage driver (`overlay2`, `devicemapper`, `vfs`, `windowsfilter`, …).
    pub storage_driver: Option<String>,
    /// Whether the engine runs rootless (Docker: `SecurityOptions` holds `name=rootless`;
    /// Podman: the same entry in its Docker-compatible `/info`, `host.security.rootless` in
    /// libpod's).
    pub rootless: bool,
    pub os: Option<String>,
    pub os_type: Option<String>,
    pub architecture: Option<String>,
}

/// A container's lifecycle state as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Stopping,
    /// The engine reported no state (empty string or field absent).
    Unknown,
}

/// Result of the container's health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthStatus {
    /// The image/container defines no health check.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

/// A container port and where it is published on the host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Host address, when published (`0.0.0.0`, `::`, `127.0.0.1` …).
    pub host_ip: Option<String>,
    /// Host port, when published.
    pub host_port: Option<u16>,
}

/// A mount inside a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, `npipe`, `image`, `cluster`.
    pub kind: String,
    /// Host path (bind) or volume path on the host.
    pub source: Option<String>,
    /// Path inside the container.
    pub destination: String,
    /// Volume name, for volumes.
    pub name: Option<String>,
    pub read_write: bool,
}

/// A network the container is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    pub name: String,
    pub ip_address: Option<String>,
}

/// Docker Compose membership, from `com.docker.compose.project` / `.service` labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposeRef {
    pub project: String,
    pub service: Option<String>,
}

/// Resource limits; `None` means unlimited (the engine reports 0 or -1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    pub memory_bytes: Option<u64>,
    /// CPU limit in units of 10⁻⁹ CPUs (`--cpus 1.5` = 1 500 000 000).
    pub nano_cpus: Option<u64>,
    pub pids: Option<u64>,
}

/// One container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// The image reference as configured (`Config.Image`), e.g. `nginx:1.25`.
    pub image_reference: String,
    /// The image id (`sha256:…`).
    pub image_id: Option<String>,
    /// `repo@sha256:…` digests of the image, from the image's `RepoDigests`; empty for an
    /// image that was built or imported locally and never pushed or pulled.
    pub repo_digests: Vec<String>,
    /// RFC 3339, as the engine reported it.
    pub created: Option<String>,
    /// RFC 3339; `None` when never started.
    pub started_at: Option<String>,
    /// RFC 3339; `None` when never finished.
    pub finished_at: Option<String>,
    pub state: ContainerState,
    pub health: HealthStatus,
    /// Consecutive failed health checks.
    pub health_failing_streak: Option<u64>,
    pub restart_count: u64,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// The engine's error for the last start, if any.
    pub error: Option<String>,
    pub ports: Vec<PortMapping>,
    pub mounts: Vec<Mount>,
    pub networks: Vec<NetworkAttachment>,
    pub labels: BTreeMap<String, String>,
    pub compose: Option<ComposeRef>,
    pub limits: ResourceLimits,
}

/// One local image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size_bytes: Option<u64>,
    /// RFC 3339 (UTC).
    pub created: Option<String>,
}

/// Whether a container's image is behind its registry tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateStatus {
    /// The registry's digest for the tag is one of the image's repo digests.
    UpToDate,
    /// The tag now points to `new_digest`.
    UpdateAvailable { new_digest: String },
    /// The reference is pinned to a digest: nothing can move under it, nothing to check.
    Pinned { digest: String },
    /// We could not tell, and why.
    Unknown { reason: UnknownReason },
}

/// Why an update check could not decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnknownReason {
    /// The image has no repo digest for this repository: it was built or imported locally
    /// (or loaded from a tarball), so there is nothing to compare with.
    NoRepoDigest,
    /// The container was created from an image id, not a registry reference.
    NotARegistryReference { reference: String },
    /// The reference could not be parsed.
    InvalidReference { reference: String, error: String },
    /// Connection refused, DNS failure, TLS failure or timeout.
    RegistryUnreachable { registry: String, detail: String },
    /// 401/403 and no way to get in: no token realm, or credentials missing or refused.
    Unauthorized { registry: String, detail: String },
    /// 429 from the registry (or its token service); `retry_after_s` from `Retry-After`.
    RateLimited {
        registry: String,
        retry_after_s: Option<u64>,
    },
    /// The tag (or repository) does not exist on the registry (404).
    NotFound { registry: String },
    /// 5xx from the registry.
    ServerError { registry: String, status: u16 },
    /// Any other status code.
    UnexpectedStatus { registry: String, status: u16 },
    /// A 2xx answer we could not use: no or malformed `Docker-Content-Digest`, a token
    /// response that is not JSON, …
    BadResponse { registry: String, detail: String },
    /// Our own per-registry pacing (or a back-off after a 429) deferred the check.
    Deferred { registry: String },
    /// Update checks are switched off in the configuration.
    Disabled,
}

/// How talking to one engine went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngineStatus {
    Ok,
    /// Some containers or images could not be read; the rest were.
    Partial {
        errors: Vec<String>,
    },
    /// The socket exists but nothing accepts connections on it.
    Unreachable {
        detail: String,
    },
    PermissionDenied {
        detail: String,
    },
    /// The engine did not answer within the per-call timeout.
    TimedOut {
        call: String,
        timeout_ms: u64,
    },
    /// The engine answered with an error status.
    EngineError {
        call: String,
        status: u16,
        message: String,
    },
    /// The engine answered something we could not read.
    Unparseable {
        call: String,
        error: String,
    },
}

/// Everything learned from one engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInventory {
    pub endpoint: String,
    pub status: EngineStatus,
    /// `None` when the engine could not be asked.
    pub engine: Option<EngineInfo>,
    pub containers: Vec<ContainerReport>,
    pub images: Vec<Image>,
}

/// A container and, for running ones whose image names a registry tag, its update status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerReport {
    pub container: Container,
    /// `None` for containers that are not running (no check is made for them).
    pub update: Option<UpdateStatus>,
    /// From the `unity.update` label (`notify` without one).
    #[serde(default)]
    pub policy: super::policy::UpdatePolicy,
    /// For `patch`/`minor`/`major` policies: the newest tag the policy allows, if newer.
    #[serde(default)]
    pub candidate: Option<super::policy::UpdateCandidate>,
}

/// How the whole collection went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CollectorStatus {
    /// At least one engine answered.
    Ok,
    /// No container engine on this host: nothing to collect, not an error.
    NoEngine,
    /// Engines were found but none answered; each engine's status says why.
    AllEnginesFailed,
}

/// The result of [`super::collect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInventory {
    pub status: CollectorStatus,
    pub engines: Vec<EngineInventory>,
}
