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
    /// `created`, `running`, `paused`, `restarting`, `exited`, `dead`, …
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
