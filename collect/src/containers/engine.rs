//! The thin engine part: find the engines on this host and ask each, through bollard, for
//! its facts, containers and images. Every call has its own timeout, so a hung socket costs
//! one timeout, never a stalled collection; every failure becomes an [`EngineStatus`].

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, ListImagesOptions};

use super::config::ContainerConfig;
use super::map::{map_container, map_container_summary, map_engine, map_image_summary};
use super::model::{ContainerReport, EngineInventory, EngineStatus, Image};
use crate::error_chain as chain;

/// The engine endpoints to try, in order, without duplicates: `DOCKER_HOST` (when given and
/// honoured), then the configured list. Unix sockets that do not exist are left out (`exists`
/// is the file check, passed in so the order can be tested).
pub fn discover(
    config: &ContainerConfig,
    docker_host: Option<&str>,
    exists: impl Fn(&Path) -> bool,
) -> Vec<String> {
    let mut candidates: Vec<String> = Vec::new();
    if config.honour_docker_host
        && let Some(host) = docker_host.map(str::trim).filter(|h| !h.is_empty())
    {
        candidates.push(host.to_owned());
    }
    candidates.extend(config.endpoints.iter().cloned());
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for candidate in candidates {
        let normalized = normalize(&candidate);
        if let Some(path) = socket_path(&normalized) {
            if !exists(path) {
                continue;
            }
            // /var/run is a symlink to /run: one engine, one entry.
            let key = std::fs::canonicalize(path)
                .unwrap_or_else(|_| PathBuf::from(path))
                .display()
                .to_string();
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
        } else if seen.contains(&normalized) {
            continue;
        } else {
            seen.push(normalized.clone());
        }
        out.push(normalized);
    }
    out
}

/// A bare path becomes `unix://path`.
fn normalize(endpoint: &str) -> String {
    if endpoint.starts_with('/') {
        format!("unix://{endpoint}")
    } else {
        endpoint.to_owned()
    }
}

fn socket_path(endpoint: &str) -> Option<&Path> {
    endpoint.strip_prefix("unix://").map(Path::new)
}

/// Reads one engine: facts, containers (inspected) and images. Update checks are added by
/// the caller.
pub async fn collect_engine(endpoint: &str, timeout: Duration) -> EngineInventory {
    let mut inventory = EngineInventory {
        endpoint: endpoint.to_owned(),
        status: EngineStatus::Ok,
        engine: None,
        containers: Vec::new(),
        images: Vec::new(),
    };
    let docker = match connect(endpoint, timeout) {
        Ok(d) => d,
        Err(status) => {
            inventory.status = status;
            return inventory;
        }
    };
    let docker = match timed("version negotiation", timeout, docker.negotiate_version()).await {
        Ok(d) => d,
        Err(status) => {
            inventory.status = status;
            return inventory;
        }
    };
    let version = match timed("version", timeout, docker.version()).await {
        Ok(v) => v,
        Err(status) => {
            inventory.status = status;
            return inventory;
        }
    };
    let info = match timed("info", timeout, docker.info()).await {
        Ok(v) => v,
        Err(status) => {
            inventory.status = status;
            return inventory;
        }
    };
    inventory.engine = Some(map_engine(endpoint, &info, &version));

    let mut errors = Vec::new();
    let images: Vec<Image> = match timed(
        "image list",
        timeout,
        docker.list_images(Some(ListImagesOptions::default())),
    )
    .await
    {
        Ok(rows) => rows
            .iter()
            .filter_map(|row| match map_image_summary(row) {
                Ok(image) => Some(image),
                Err(e) => {
                    errors.push(chain(&e));
                    None
                }
            })
            .collect(),
        Err(status) => {
            errors.push(describe(&status));
            Vec::new()
        }
    };
    let digests_by_id: HashMap<&str, &[String]> = images
        .iter()
        .map(|i| (i.id.as_str(), i.repo_digests.as_slice()))
        .collect();

    let list = timed(
        "container list",
        timeout,
        docker.list_containers(Some(ListContainersOptions {
            all: true,
            ..ListContainersOptions::default()
        })),
    )
    .await;
    let rows = match list {
        Ok(rows) => rows,
        Err(status) => {
            inventory.status = status;
            inventory.images = images;
            return inventory;
        }
    };
    for row in &rows {
        let listed = match map_container_summary(row) {
            Ok(l) => l,
            Err(e) => {
                errors.push(chain(&e));
                continue;
            }
        };
        let inspected = timed(
            "container inspect",
            timeout,
            docker.inspect_container(&listed.id, None),
        )
        .await;
        let inspected = match inspected {
            Ok(c) => c,
            // Removed between list and inspect: not an error.
            Err(EngineStatus::EngineError { status: 404, .. }) => {
                tracing::debug!(container = %listed.id, "container vanished during collection");
                continue;
            }
            Err(status) => {
                errors.push(format!("container {}: {}", listed.id, describe(&status)));
                continue;
            }
        };
        let image_id = inspected.image.as_deref().unwrap_or_default();
        let repo_digests = digests_by_id.get(image_id).copied().unwrap_or_default();
        match map_container(&inspected, repo_digests) {
            Ok(container) => inventory.containers.push(ContainerReport {
                policy: super::policy::from_labels(container.labels.iter()),
                container,
                update: None,
                candidate: None,
            }),
            Err(e) => errors.push(format!("container {}: {}", listed.id, chain(&e))),
        }
    }
    inventory
        .containers
        .sort_by(|a, b| a.container.name.cmp(&b.container.name));
    inventory.images = images;
    if !errors.is_empty() {
        tracing::debug!(%endpoint, ?errors, "some containers or images could not be read");
        inventory.status = EngineStatus::Partial { errors };
    }
    inventory
}

/// A client for `endpoint` (`unix://…` or `tcp://…`) whose calls time out after `timeout`.
pub fn connect(endpoint: &str, timeout: Duration) -> Result<Docker, EngineStatus> {
    let secs = timeout.as_secs().max(1);
    let connected = if endpoint.starts_with("unix://") {
        Docker::connect_with_unix(endpoint, secs, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_host(endpoint).map(|d| d.with_timeout(Duration::from_secs(secs)))
    };
    connected.map_err(|e| status_of("connect", &e))
}

/// Runs one engine call under `timeout`.
pub async fn timed<T>(
    call: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, EngineStatus> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::debug!(call, error = %chain(&e), "engine call failed");
            Err(status_of(call, &e))
        }
        Err(_) => Err(EngineStatus::TimedOut {
            call: call.to_owned(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

/// What a bollard error means for the engine.
pub fn status_of(call: &str, e: &bollard::errors::Error) -> EngineStatus {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError {
            status_code,
            message,
        } => EngineStatus::EngineError {
            call: call.to_owned(),
            status: *status_code,
            message: message.clone(),
        },
        E::JsonDataError { .. } | E::JsonSerdeError { .. } | E::APIVersionParseError {} => {
            EngineStatus::Unparseable {
                call: call.to_owned(),
                error: chain(e),
            }
        }
        E::RequestTimeoutError => EngineStatus::TimedOut {
            call: call.to_owned(),
            timeout_ms: 0,
        },
        E::SocketNotFoundError(path) => EngineStatus::Unreachable {
            detail: format!("socket {path} does not exist"),
        },
        other => {
            let detail = chain(other);
            if detail.to_ascii_lowercase().contains("permission denied") {
                EngineStatus::PermissionDenied { detail }
            } else if detail.contains("connect") || detail.contains("Connection refused") {
                EngineStatus::Unreachable { detail }
            } else {
                EngineStatus::Unparseable {
                    call: call.to_owned(),
                    error: detail,
                }
            }
        }
    }
}

/// A status in words.
pub fn describe(status: &EngineStatus) -> String {
    match status {
        EngineStatus::Ok => "ok".to_owned(),
        EngineStatus::Partial { errors } => errors.join("; "),
        EngineStatus::Unreachable { detail } => format!("engine unreachable: {detail}"),
        EngineStatus::PermissionDenied { detail } => format!("permission denied: {detail}"),
        EngineStatus::TimedOut { call, timeout_ms } => {
            format!("{call} did not answer within {timeout_ms} ms")
        }
        EngineStatus::EngineError {
            call,
            status,
            message,
        } => format!("{call}: engine answered {status}: {message}"),
        EngineStatus::Unparseable { call, error } => format!("{call}: unreadable answer: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoints: &[&str], honour: bool) -> ContainerConfig {
        ContainerConfig {
            honour_docker_host: honour,
            endpoints: endpoints.iter().map(|s| (*s).to_owned()).collect(),
            ..ContainerConfig::default()
        }
    }

    #[test]
    fn discovery_order_docker_host_then_list_and_missing_sockets_skipped() {
        let exists = |p: &Path| p != Path::new("/run/podman/podman.sock");
        let c = ContainerConfig::default();
        assert_eq!(
            discover(&c, Some("tcp://10.0.0.5:2375"), exists),
            vec!["tcp://10.0.0.5:2375", "unix:///var/run/docker.sock"]
        );
        assert_eq!(
            discover(&c, None, |_| true),
            vec![
                "unix:///var/run/docker.sock",
                "unix:///run/podman/podman.sock"
            ]
        );
        assert!(discover(&c, None, |_| false).is_empty());
        // DOCKER_HOST naming a listed socket is not collected twice; bare paths are sockets.
        let c = config(&["/x/docker.sock", "unix:///x/docker.sock"], true);
        assert_eq!(
            discover(&c, Some("unix:///x/docker.sock"), |_| true),
            vec!["unix:///x/docker.sock"]
        );
        let c = config(&["/x/docker.sock"], false);
        assert_eq!(
            discover(&c, Some("tcp://h:1"), |_| true),
            vec!["unix:///x/docker.sock"]
        );
        assert_eq!(discover(&c, Some("  "), |_| true).len(), 1);
    }
}
