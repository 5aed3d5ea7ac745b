//! What runs on the host, for the wire: containers (Docker/Podman via `unity-collect`'s
//! `containers`, with image update checks) and databases (`unity-collect`'s `databases`,
//! credential-free). Containers are read first so their images and published ports can
//! guide database discovery.

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use unity_collect::containers::{
    self, CollectorStatus as ContainerStatus, ContainerCollector, ContainerConfig,
    ContainerInventory, ContainerState, HealthStatus, UnknownReason, UpdateStatus,
};
use unity_collect::databases::{
    self, CollectorStatus as DatabaseStatus, ContainerHint, DatabaseInstance, DatabaseInventory,
    DatabaseKind, DiscoveryMemory, DiscoveryOptions, ProbeDetails, ProbeOutcome, Source,
};
use unity_collect::runner::CommandRunner;
use unity_protocol::latest::{
    ContainerInfo, ContainerReport, DatabaseInfo, DatabaseReport, EngineInfo, ImageInfo,
    ImageUpdate, RunState, SourceState, SourceStatus, UpdateState,
};

/// Containers and databases of this host.
#[derive(Debug)]
pub struct HostInventory<R> {
    /// Keeps registry answers and request pacing between rounds.
    containers: tokio::sync::Mutex<ContainerCollector>,
    /// Keeps what database discovery learnt (processes, versions, probe answers), so a round
    /// on an unchanged host re-reads little (`databases::DiscoveryMemory`).
    databases: tokio::sync::Mutex<DiscoveryMemory>,
    runner: R,
    procfs_root: PathBuf,
    discovery: DiscoveryOptions,
}

impl<R: CommandRunner> HostInventory<R> {
    pub fn new(
        config: ContainerConfig,
        runner: R,
        procfs_root: PathBuf,
        discovery: DiscoveryOptions,
    ) -> Self {
        Self {
            containers: tokio::sync::Mutex::new(ContainerCollector::new(config)),
            databases: tokio::sync::Mutex::new(DiscoveryMemory::default()),
            runner,
            procfs_root,
            discovery,
        }
    }

    /// The real host with default settings.
    pub fn system(runner: R) -> Self {
        Self::new(
            ContainerConfig::default(),
            runner,
            PathBuf::from("/proc"),
            DiscoveryOptions::default(),
        )
    }

    /// One round: containers, then databases with the containers as hints.
    pub async fn collect(&self) -> (ContainerReport, DatabaseReport) {
        let inventory = self.containers.lock().await.collect().await;
        let hints = container_hints(&inventory);
        let databases = databases::discover_with(
            &self.procfs_root,
            &hints,
            &self.runner,
            &self.discovery,
            &mut *self.databases.lock().await,
            std::time::Instant::now(),
        )
        .await;
        (map_containers(&inventory), map_databases(&databases))
    }
}

/// Object-safe face of [`HostInventory`] for the run loop.
pub trait InventoryCollector: Send + Sync {
    fn collect_inventory(
        &self,
    ) -> Pin<Box<dyn Future<Output = (ContainerReport, DatabaseReport)> + Send + '_>>;
}

impl<R: CommandRunner + 'static> InventoryCollector for HostInventory<R> {
    fn collect_inventory(
        &self,
    ) -> Pin<Box<dyn Future<Output = (ContainerReport, DatabaseReport)> + Send + '_>> {
        Box::pin(self.collect())
    }
}

fn status(state: SourceState, detail: impl Into<String>) -> SourceStatus {
    SourceStatus {
        state,
        detail: detail.into(),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("could not serialize detail: {e}") }).to_string()
    })
}

fn rfc3339_ms(text: Option<&str>) -> Option<i64> {
    let parsed = OffsetDateTime::parse(text?, &Rfc3339).ok()?;
    // Engines report "0001-01-01T00:00:00Z" for "never".
    (parsed.year() > 1970).then(|| i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok())?
}

/// What the database discovery may learn from containers: images and published ports.
pub fn container_hints(inventory: &ContainerInventory) -> Vec<ContainerHint> {
    inventory
        .engines
        .iter()
        .flat_map(|engine| engine.containers.iter())
        .filter(|c| c.container.state == ContainerState::Running)
        .map(|c| ContainerHint {
            image: c.container.image_reference.clone(),
            published: c
                .container
                .ports
                .iter()
                .filter_map(|p| {
                    let port = p.host_port?;
                    let ip = p
                        .host_ip
                        .as_deref()
                        .and_then(|ip| ip.parse::<IpAddr>().ok())
                        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
                    Some((ip, port))
                })
                .collect(),
            container_id: c.container.id.clone(),
            name: c.container.name.clone(),
        })
        .collect()
}

/// Maps a container inventory. A host with several engines (Docker and Podman) reports the
/// first reachable engine's details and the containers and images of all of them.
pub fn map_containers(inventory: &ContainerInventory) -> ContainerReport {
    let source = match &inventory.status {
        ContainerStatus::Ok => {
            let problems: Vec<String> = inventory
                .engines
                .iter()
                .filter(|e| e.engine.is_none() || !matches!(e.status, containers::EngineStatus::Ok))
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.endpoint,
                        containers::engine::describe(&e.status)
                    )
                })
                .collect();
            status(SourceState::Ok, problems.join("; "))
        }
        ContainerStatus::NoEngine => status(
            SourceState::NotPresent,
            "no container engine (looked at DOCKER_HOST, /var/run/docker.sock, /run/podman/podman.sock)",
        ),
        ContainerStatus::AllEnginesFailed => {
            let detail = inventory
                .engines
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.endpoint,
                        containers::engine::describe(&e.status)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let state = if inventory
                .engines
                .iter()
                .all(|e| matches!(e.status, containers::EngineStatus::PermissionDenied { .. }))
            {
                SourceState::PermissionDenied
            } else {
                SourceState::Failed
            };
            status(state, detail)
        }
    };
    let engine = inventory
        .engines
        .iter()
        .find_map(|e| e.engine.as_ref())
        .map(|e| EngineInfo {
            kind: match e.kind {
                containers::EngineKind::Docker => "docker",
                containers::EngineKind::Podman => "podman",
            }
            .to_owned(),
            version: e.version.clone().unwrap_or_default(),
            api_version: e.api_version.clone().unwrap_or_default(),
            storage_driver: e.storage_driver.clone().unwrap_or_default(),
            rootless: e.rootless,
            endpoint: e.endpoint.clone(),
        });
    let containers = inventory
        .engines
        .iter()
        .flat_map(|engine| engine.containers.iter())
        .map(|report| {
            let c = &report.container;
            ContainerInfo {
                id: c.id.clone(),
                name: c.name.clone(),
                image: c.image_reference.clone(),
                image_id: c.image_id.clone().unwrap_or_default(),
                repo_digest: c.repo_digests.first().cloned(),
                state: run_state(&c.state).to_string(),
                health: match c.health {
                    HealthStatus::None => None,
                    HealthStatus::Starting => Some("starting".to_owned()),
                    HealthStatus::Healthy => Some("healthy".to_owned()),
                    HealthStatus::Unhealthy => Some("unhealthy".to_owned()),
                },
                exit_code: c.exit_code,
                restart_count: Some(c.restart_count),
                created_at_ms: rfc3339_ms(c.created.as_deref()),
                started_at_ms: rfc3339_ms(c.started_at.as_deref()),
                ports: c
                    .ports
                    .iter()
                    .map(|p| match (&p.host_ip, p.host_port) {
                        (ip, Some(host_port)) => format!(
                            "{}:{host_port}->{}/{}",
                            ip.as_deref().unwrap_or("0.0.0.0"),
                            p.container_port,
                            p.protocol
                        ),
                        (_, None) => format!("{}/{}", p.container_port, p.protocol),
                    })
                    .collect(),
                compose_project: c.compose.as_ref().map(|r| r.project.clone()),
                compose_service: c.compose.as_ref().and_then(|r| r.service.clone()),
                update: map_update(report.update.as_ref(), &c.state),
                detail_json: to_json(report),
            }
        })
        .collect();
    let mut images: Vec<ImageInfo> = Vec::new();
    for image in inventory.engines.iter().flat_map(|e| e.images.iter()) {
        if images.iter().any(|i| i.id == image.id) {
            continue;
        }
        images.push(ImageInfo {
            id: image.id.clone(),
            tags: image.tags.clone(),
            digests: image.repo_digests.clone(),
            size_bytes: image.size_bytes,
            created_at_ms: rfc3339_ms(image.created.as_deref()),
        });
    }
    ContainerReport {
        status: source,
        engine,
        containers,
        images,
    }
}

/// The collector's engine state as the protocol names it (the wire carries its word).
fn run_state(state: &ContainerState) -> RunState {
    match state {
        ContainerState::Created => RunState::Created,
        ContainerState::Running => RunState::Running,
        ContainerState::Paused => RunState::Paused,
        ContainerState::Restarting => RunState::Restarting,
        ContainerState::Removing => RunState::Removing,
        ContainerState::Exited => RunState::Exited,
        ContainerState::Dead => RunState::Dead,
        ContainerState::Stopping => RunState::Stopping,
        ContainerState::Unknown => RunState::Unknown,
    }
}

fn map_update(update: Option<&UpdateStatus>, state: &ContainerState) -> ImageUpdate {
    let not_checked = |reason: String| ImageUpdate {
        state: UpdateState::NotChecked,
        new_digest: None,
        reason,
    };
    let unknown = |reason: String| ImageUpdate {
        state: UpdateState::Unknown,
        new_digest: None,
        reason,
    };
    match update {
        None if *state == ContainerState::Running => not_checked("not checked this round".into()),
        None => not_checked("only running containers are checked".into()),
        Some(UpdateStatus::UpToDate) => ImageUpdate {
            state: UpdateState::UpToDate,
            new_digest: None,
            reason: String::new(),
        },
        Some(UpdateStatus::UpdateAvailable { new_digest }) => ImageUpdate {
            state: UpdateState::UpdateAvailable,
            new_digest: Some(new_digest.clone()),
            reason: String::new(),
        },
        Some(UpdateStatus::Pinned { digest }) => {
            not_checked(format!("pinned to {digest}: nothing to update"))
        }
        Some(UpdateStatus::Unknown { reason }) => match reason {
            UnknownReason::NoRepoDigest => {
                not_checked("image was built or imported locally (no repo digest)".into())
            }
            UnknownReason::NotARegistryReference { reference } => {
                not_checked(format!("`{reference}` does not name a registry tag"))
            }
            UnknownReason::Disabled => not_checked("update checks are disabled".into()),
            UnknownReason::InvalidReference { reference, error } => {
                unknown(format!("image reference `{reference}` is invalid: {error}"))
            }
            UnknownReason::RegistryUnreachable { registry, detail } => {
                unknown(format!("registry {registry} unreachable: {detail}"))
            }
            UnknownReason::Unauthorized { registry, detail } => unknown(format!(
                "registry {registry} refused anonymous access (configure credentials): {detail}"
            )),
            UnknownReason::RateLimited {
                registry,
                retry_after_s,
            } => unknown(match retry_after_s {
                Some(s) => format!("registry {registry} rate-limited us; retry after {s} s"),
                None => format!("registry {registry} rate-limited us"),
            }),
            UnknownReason::NotFound { registry } => {
                unknown(format!("registry {registry} does not have this tag"))
            }
            UnknownReason::ServerError { registry, status } => {
                unknown(format!("registry {registry} failed with HTTP {status}"))
            }
            UnknownReason::UnexpectedStatus { registry, status } => {
                unknown(format!("registry {registry} answered HTTP {status}"))
            }
            UnknownReason::BadResponse { registry, detail } => unknown(format!(
                "registry {registry} sent an unreadable answer: {detail}"
            )),
            UnknownReason::Deferred { registry } => unknown(format!(
                "check of registry {registry} deferred by the rate limit; next round"
            )),
        },
    }
}

/// Maps a database inventory.
pub fn map_databases(inventory: &DatabaseInventory) -> DatabaseReport {
    let source = match &inventory.status {
        DatabaseStatus::Ok => status(SourceState::Ok, ""),
        DatabaseStatus::Partial { problems } => status(SourceState::Ok, problems.join("; ")),
        DatabaseStatus::ProcUnreadable { path, error } => {
            status(SourceState::Failed, format!("cannot read {path}: {error}"))
        }
    };
    DatabaseReport {
        status: source,
        databases: inventory.instances.iter().map(database_info).collect(),
    }
}

fn database_info(instance: &DatabaseInstance) -> DatabaseInfo {
    let (probe, probe_detail) = match instance.probe.as_ref().map(|p| &p.outcome) {
        None => ("not_probed", String::new()),
        Some(ProbeOutcome::Confirmed) => ("confirmed", String::new()),
        Some(ProbeOutcome::AuthRequired { detail }) => ("auth_required", detail.clone()),
        Some(ProbeOutcome::WrongProtocol { seen }) => ("wrong_protocol", seen.clone()),
        Some(ProbeOutcome::Timeout { after_ms }) => {
            ("timeout", format!("no answer within {after_ms} ms"))
        }
        Some(ProbeOutcome::Refused) => ("refused", String::new()),
        Some(ProbeOutcome::Error { detail }) => ("error", detail.clone()),
    };
    let details = instance.probe.as_ref().map(|p| &p.details);
    let kind = match instance.kind {
        DatabaseKind::Postgres => "postgresql",
        DatabaseKind::MySql => {
            let mariadb = instance
                .version
                .as_deref()
                .is_some_and(|v| v.to_ascii_lowercase().contains("mariadb"))
                || instance
                    .process
                    .as_ref()
                    .is_some_and(|p| p.name.contains("mariadb"));
            if mariadb { "mariadb" } else { "mysql" }
        }
        DatabaseKind::MongoDb => "mongodb",
        DatabaseKind::Redis => match details {
            Some(ProbeDetails::Redis { flavour, .. }) if flavour.eq_ignore_ascii_case("valkey") => {
                "valkey"
            }
            _ => "redis",
        },
        DatabaseKind::MinIo => "minio",
    };
    DatabaseInfo {
        kind: kind.to_owned(),
        version: instance.version.clone(),
        listen: instance.listen.iter().map(ToString::to_string).collect(),
        pid: instance.process.as_ref().map(|p| p.pid),
        process: instance.process.as_ref().map(|p| p.name.clone()),
        container_id: instance.containers.first().map(|c| c.container_id.clone()),
        data_dir: instance.data_dir.as_ref().map(|d| d.path.clone()),
        found_by: instance
            .sources
            .iter()
            .map(|s| {
                match s {
                    Source::Process => "process",
                    Source::ListeningSocket => "socket",
                    Source::ContainerImage => "container",
                    Source::WellKnownPort => "well_known_port",
                    Source::Probe => "probe",
                }
                .to_owned()
            })
            .collect(),
        probe: probe.to_owned(),
        probe_detail,
        detail_json: to_json(instance),
    }
}

#[cfg(test)]
mod tests {
    use unity_collect::containers::map::{
        parse_container_inspect, parse_engine, parse_image_inspect,
    };
    use unity_collect::containers::{ContainerReport as Collected, EngineInventory, EngineStatus};

    use super::*;

    fn fixture(name: &str) -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/docker-api/"
        )
        .to_owned()
            + name;
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Real Docker API answers (shared fixtures) through the collector's mapping and ours.
    fn inventory() -> ContainerInventory {
        let running =
            parse_container_inspect(&fixture("container-inspect-running-portainer.json")).unwrap();
        let exited =
            parse_container_inspect(&fixture("container-inspect-restarting-exited-code1.json"))
                .unwrap();
        let engine = parse_engine(
            "unix:///var/run/docker.sock",
            &fixture("info-linux-devicemapper-api122.json"),
            None,
        )
        .unwrap();
        let image = parse_image_inspect(&fixture("image-inspect-watchtower.json")).unwrap();
        ContainerInventory {
            status: ContainerStatus::Ok,
            engines: vec![EngineInventory {
                endpoint: "unix:///var/run/docker.sock".into(),
                status: EngineStatus::Ok,
                engine: Some(engine),
                containers: vec![
                    Collected {
                        container: running,
                        update: Some(UpdateStatus::UpdateAvailable {
                            new_digest: "sha256:feed".into(),
                        }),
                        policy: Default::default(),
                        candidate: None,
                    },
                    Collected {
                        container: exited,
                        update: None,
                        policy: Default::default(),
                        candidate: None,
                    },
                ],
                images: vec![image.clone(), image],
            }],
        }
    }

    #[test]
    fn real_docker_answers_map_to_the_wire() {
        let inventory = inventory();
        let report = map_containers(&inventory);
        assert_eq!(report.status.state, SourceState::Ok, "{:?}", report.status);
        let engine = report.engine.as_ref().unwrap();
        assert_eq!(engine.kind, "docker");
        assert_eq!(engine.storage_driver, "devicemapper");
        let running = report
            .containers
            .iter()
            .find(|c| c.state == "running")
            .unwrap();
        assert!(running.name.contains("portainer"), "{running:?}");
        assert_eq!(running.update.state, UpdateState::UpdateAvailable);
        assert_eq!(running.update.new_digest.as_deref(), Some("sha256:feed"));
        assert!(
            running
                .started_at_ms
                .is_some_and(|ms| ms > 1_400_000_000_000)
        );
        let detail: serde_json::Value = serde_json::from_str(&running.detail_json).unwrap();
        assert!(detail["container"]["mounts"].is_array(), "{detail}");
        let other = report
            .containers
            .iter()
            .find(|c| c.state != "running")
            .unwrap();
        assert_eq!(other.exit_code, Some(1), "{other:?}");
        assert_eq!(other.update.state, UpdateState::NotChecked);
        assert_eq!(
            report.images.len(),
            1,
            "the same image from two engines is listed once"
        );
        // Running containers become hints for database discovery.
        let hints = container_hints(&inventory);
        assert!(hints.iter().all(|h| h.container_id == running.id));
    }

    #[test]
    fn no_engine_and_failed_engines_say_why() {
        let none = map_containers(&ContainerInventory {
            status: ContainerStatus::NoEngine,
            engines: vec![],
        });
        assert_eq!(none.status.state, SourceState::NotPresent);
        let failed = map_containers(&ContainerInventory {
            status: ContainerStatus::AllEnginesFailed,
            engines: vec![EngineInventory {
                endpoint: "unix:///run/podman/podman.sock".into(),
                status: EngineStatus::PermissionDenied {
                    detail: "EACCES".into(),
                },
                engine: None,
                containers: vec![],
                images: vec![],
            }],
        });
        assert_eq!(failed.status.state, SourceState::PermissionDenied);
        assert!(
            failed.status.detail.contains("podman.sock"),
            "{:?}",
            failed.status
        );
    }

    #[test]
    fn update_reasons_split_into_unknown_and_not_checked() {
        let running = ContainerState::Running;
        let rate_limited = map_update(
            Some(&UpdateStatus::Unknown {
                reason: UnknownReason::RateLimited {
                    registry: "docker.io".into(),
                    retry_after_s: Some(60),
                },
            }),
            &running,
        );
        assert_eq!(rate_limited.state, UpdateState::Unknown);
        assert!(rate_limited.reason.contains("60"), "{rate_limited:?}");
        let local = map_update(
            Some(&UpdateStatus::Unknown {
                reason: UnknownReason::NoRepoDigest,
            }),
            &running,
        );
        assert_eq!(local.state, UpdateState::NotChecked);
    }
}
