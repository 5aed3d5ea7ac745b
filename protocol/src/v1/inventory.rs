//! What runs on a host: containers (Docker/Podman) with image update status, and databases
//! found without credentials. Like storage: a frozen summary per object plus `detail_json`
//! with the agent's full record.

use serde::{Deserialize, Serialize};

use super::storage::SourceStatus;

/// One container-engine collection round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerReport {
    /// `not_present` when no engine socket exists on the host.
    pub status: SourceStatus,
    pub engine: Option<EngineInfo>,
    pub containers: Vec<ContainerInfo>,
    pub images: Vec<ImageInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EngineInfo {
    /// `docker` or `podman`.
    pub kind: String,
    pub version: String,
    pub api_version: String,
    pub storage_driver: String,
    pub rootless: bool,
    /// The socket or URL the agent used.
    pub endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerInfo {
    /// Full engine id; the controller keys containers by (host, id).
    pub id: String,
    pub name: String,
    /// The image reference as configured (`nginx:1.27`, `ghcr.io/x/y@sha256:…`).
    pub image: String,
    pub image_id: String,
    /// `repo@sha256:…` the local image was pulled as; `None` for built or imported images.
    pub repo_digest: Option<String>,
    /// `created`, `running`, `paused`, `restarting`, `exited`, `dead`, … — the engine's word,
    /// kept as text on the wire so a new engine state needs no protocol change; read it with
    /// [`ContainerInfo::run_state`].
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`; `None` without a health check.
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    pub restart_count: Option<u64>,
    pub created_at_ms: Option<i64>,
    pub started_at_ms: Option<i64>,
    /// `0.0.0.0:8080->80/tcp` style, one per published port.
    pub ports: Vec<String>,
    pub compose_project: Option<String>,
    pub compose_service: Option<String>,
    pub update: ImageUpdate,
    /// Full record (mounts, networks, labels, limits), JSON.
    pub detail_json: String,
}

/// Whether the registry has a newer image for the container's tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageUpdate {
    pub state: UpdateState,
    /// The registry's current digest when `update_available`.
    pub new_digest: Option<String>,
    /// Why the state is `unknown` or `not_checked`.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    UpToDate,
    UpdateAvailable,
    Unknown,
    /// Not a registry tag (pinned digest, local image) or not running.
    NotChecked,
}

// In wire (postcard variant) order, as the enum is.
crate::word_enum!(UpdateState, UnknownUpdateState, "update state", {
    UpToDate => "up_to_date",
    UpdateAvailable => "update_available",
    Unknown => "unknown",
    NotChecked => "not_checked",
});

/// What a container's `unity.update` label (or the operator's override over the API) lets
/// the controller do about a newer image (docs/jobs.md). The agent reads the label and sends
/// the word inside the container's `detail_json`; the controller's sweep decides on it. One
/// enum for both, ordered by how much it allows, so "acts" and "follows versions" are
/// comparisons rather than lists that could drift.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum UpdatePolicy {
    /// Not even a notification.
    Off,
    /// Raise the `update available` alert; never update by itself.
    #[default]
    Notify,
    /// Update when the same tag points to a new digest.
    Digest,
    /// Move to a newer patch version of the same major.minor (and follow digests).
    Patch,
    /// Move to a newer minor version of the same major (and follow digests).
    Minor,
    /// Move to any newer version of the same shape (and follow digests).
    Major,
}

crate::word_enum!(UpdatePolicy, UnknownUpdatePolicy, "update policy", {
    Off => "off",
    Notify => "notify",
    Digest => "digest",
    Patch => "patch",
    Minor => "minor",
    Major => "major",
});

impl UpdatePolicy {
    /// Whether the policy lets the controller update by itself.
    pub fn acts(self) -> bool {
        self >= UpdatePolicy::Digest
    }

    /// Whether it looks for newer tags (not just new digests of the same tag).
    pub fn follows_versions(self) -> bool {
        self >= UpdatePolicy::Patch
    }

    /// A label as an operator typed it: case and surrounding blanks do not matter
    /// (`unity.update=Minor`), unlike the API and stored words, which are exact.
    pub fn from_label(value: &str) -> Result<Self, UnknownUpdatePolicy> {
        value.trim().to_ascii_lowercase().parse()
    }
}

/// A container's run state, as Docker and Podman name it. The wire carries the engine's word
/// ([`ContainerInfo::state`]) so an engine that invents a state needs no protocol change; this
/// is that word read once, with [`RunState::Other`] keeping anything new verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RunState {
    Created,
    /// Podman: created and configured, never started.
    Configured,
    /// Podman: set up, about to start.
    Initialized,
    Running,
    Paused,
    Restarting,
    Removing,
    /// Podman: being stopped.
    Stopping,
    /// Podman: stopped by a user (Docker says `exited`).
    Stopped,
    Exited,
    Dead,
    /// The engine itself said `unknown`.
    Unknown,
    /// A word no engine used when this was written, kept as the engine sent it.
    Other(String),
}

impl RunState {
    /// Every state with a name of its own, for API filters and docs.
    pub const KNOWN: [RunState; 12] = [
        RunState::Created,
        RunState::Configured,
        RunState::Initialized,
        RunState::Running,
        RunState::Paused,
        RunState::Restarting,
        RunState::Removing,
        RunState::Stopping,
        RunState::Stopped,
        RunState::Exited,
        RunState::Dead,
        RunState::Unknown,
    ];

    /// The engine's word for this state (the wire, the database and the API use it).
    pub fn as_str(&self) -> &str {
        match self {
            RunState::Created => "created",
            RunState::Configured => "configured",
            RunState::Initialized => "initialized",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Restarting => "restarting",
            RunState::Removing => "removing",
            RunState::Stopping => "stopping",
            RunState::Stopped => "stopped",
            RunState::Exited => "exited",
            RunState::Dead => "dead",
            RunState::Unknown => "unknown",
            RunState::Other(word) => word,
        }
    }

    /// Reads an engine's word; never fails (unknown words become [`RunState::Other`]).
    pub fn from_word(word: &str) -> RunState {
        RunState::known(word).unwrap_or_else(|| RunState::Other(word.to_owned()))
    }

    /// The named state for `word`, `None` for a word outside [`RunState::KNOWN`] — what an
    /// API filter accepts.
    pub fn known(word: &str) -> Option<RunState> {
        RunState::KNOWN
            .into_iter()
            .find(|state| state.as_str() == word)
    }

    /// Not running and not on its way back: the states a container-down alert is about.
    pub fn is_down(&self) -> bool {
        matches!(self, RunState::Exited | RunState::Dead)
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ContainerInfo {
    /// [`ContainerInfo::state`] read as a [`RunState`].
    pub fn run_state(&self) -> RunState {
        RunState::from_word(&self.state)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageInfo {
    pub id: String,
    pub tags: Vec<String>,
    pub digests: Vec<String>,
    pub size_bytes: Option<u64>,
    pub created_at_ms: Option<i64>,
}

/// One database-discovery round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatabaseReport {
    pub status: SourceStatus,
    pub databases: Vec<DatabaseInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatabaseInfo {
    /// `postgresql`, `mysql`, `mariadb`, `mongodb`, `redis`, `valkey`, `minio`.
    pub kind: String,
    pub version: Option<String>,
    /// `127.0.0.1:5432`, `[::]:6379`, `/run/postgresql/.s.PGSQL.5432`.
    pub listen: Vec<String>,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub container_id: Option<String>,
    pub data_dir: Option<String>,
    /// Which sources agreed: `socket`, `process`, `container`.
    pub found_by: Vec<String>,
    /// `confirmed`, `auth_required`, `wrong_protocol`, `timeout`, `refused`, `error`,
    /// `not_probed`.
    pub probe: String,
    pub probe_detail: String,
    pub detail_json: String,
}
