//! The pure part of the engine side: bollard's generated API types (and the raw JSON the
//! engine sends) → our [`model`](super::model). No I/O, so every real API response we have
//! (`../shared/fixtures/docker-api/`, `fixtures/containers/`) is a test case.

use std::collections::BTreeMap;

use bollard_stubs::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary, HealthStatusEnum,
    ImageInspect, ImageSummary, SystemInfo, SystemVersion,
};

use super::model::{
    ComposeRef, Container, ContainerState, EngineInfo, EngineKind, HealthStatus, Image, Mount,
    NetworkAttachment, PortMapping, ResourceLimits,
};

/// Compose's project label.
pub const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
/// Compose's service label.
pub const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";

/// Why an engine answer could not be mapped.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("{what} is not the expected engine API JSON")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} has no `{field}`")]
    Missing {
        what: &'static str,
        field: &'static str,
    },
    #[error("{what}: `{field}` has an invalid value {value:?}")]
    Invalid {
        what: &'static str,
        field: &'static str,
        value: String,
    },
}

/// A row of `GET /containers/json`: enough to decide what to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedContainer {
    pub id: String,
    pub name: Option<String>,
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub state: ContainerState,
}

fn json<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> Result<T, MapError> {
    serde_json::from_str(text).map_err(|source| MapError::Json { what, source })
}

/// `GET /containers/{id}/json` text → [`Container`] (no repo digests: those come from the
/// image, see [`map_container`]).
pub fn parse_container_inspect(text: &str) -> Result<Container, MapError> {
    map_container(&json("container inspect", text)?, &[])
}

/// `GET /containers/json` text → rows.
pub fn parse_container_list(text: &str) -> Result<Vec<ListedContainer>, MapError> {
    let rows: Vec<ContainerSummary> = json("container list", text)?;
    rows.iter().map(map_container_summary).collect()
}

/// `GET /images/json` text (Docker, and Podman's libpod list, which has the same fields) →
/// images.
pub fn parse_image_list(text: &str) -> Result<Vec<Image>, MapError> {
    let rows: Vec<ImageSummary> = json("image list", text)?;
    rows.iter().map(map_image_summary).collect()
}

/// `GET /images/{name}/json` text → [`Image`].
pub fn parse_image_inspect(text: &str) -> Result<Image, MapError> {
    map_image_inspect(&json("image inspect", text)?)
}

/// `GET /info` text (and optionally `GET /version` text) → [`EngineInfo`].
pub fn parse_engine(
    endpoint: &str,
    info: &str,
    version: Option<&str>,
) -> Result<EngineInfo, MapError> {
    let info: SystemInfo = json("engine info", info)?;
    let version: SystemVersion = match version {
        Some(v) => json("engine version", v)?,
        None => SystemVersion::default(),
    };
    Ok(map_engine(endpoint, &info, &version))
}

/// `host.security.rootless` of Podman's libpod `GET /libpod/info`.
pub fn parse_libpod_info_rootless(text: &str) -> Result<bool, MapError> {
    let v: serde_json::Value = json("libpod info", text)?;
    match v.pointer("/host/security/rootless") {
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(other) => Err(MapError::Invalid {
            what: "libpod info",
            field: "host.security.rootless",
            value: other.to_string(),
        }),
        None => Err(MapError::Missing {
            what: "libpod info",
            field: "host.security.rootless",
        }),
    }
}

/// A list row → [`ListedContainer`].
pub fn map_container_summary(c: &ContainerSummary) -> Result<ListedContainer, MapError> {
    let id = non_empty(c.id.as_deref()).ok_or(MapError::Missing {
        what: "container list entry",
        field: "Id",
    })?;
    let state = match c.state {
        Some(s) => map_state_str(s.as_ref()),
        None => ContainerState::Unknown,
    };
    Ok(ListedContainer {
        id: id.to_owned(),
        name: c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_owned()),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        state,
    })
}

/// An inspected container → [`Container`]. `repo_digests` are the `RepoDigests` of its
/// image (looked up by image id in the image list).
pub fn map_container(
    c: &ContainerInspectResponse,
    repo_digests: &[String],
) -> Result<Container, MapError> {
    const WHAT: &str = "container inspect";
    let id = non_empty(c.id.as_deref()).ok_or(MapError::Missing {
        what: WHAT,
        field: "Id",
    })?;
    let name = non_empty(c.name.as_deref()).ok_or(MapError::Missing {
        what: WHAT,
        field: "Name",
    })?;
    let config = c.config.as_ref().ok_or(MapError::Missing {
        what: WHAT,
        field: "Config",
    })?;
    let image_reference = non_empty(config.image.as_deref()).ok_or(MapError::Missing {
        what: WHAT,
        field: "Config.Image",
    })?;
    let state = c.state.as_ref();
    let container_state = match state.and_then(|s| s.status) {
        Some(s) => map_state(s),
        None => ContainerState::Unknown,
    };
    let health = state.and_then(|s| s.health.as_ref());
    let health_status = match health.and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => HealthStatus::Starting,
        Some(HealthStatusEnum::HEALTHY) => HealthStatus::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => HealthStatus::Unhealthy,
        Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) | None => HealthStatus::None,
    };
    let restart_count = match c.restart_count {
        Some(n) => u64::try_from(n).map_err(|_| MapError::Invalid {
            what: WHAT,
            field: "RestartCount",
            value: n.to_string(),
        })?,
        None => 0,
    };
    let labels: BTreeMap<String, String> = config
        .labels
        .as_ref()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let compose = labels
        .get(COMPOSE_PROJECT_LABEL)
        .filter(|p| !p.is_empty())
        .map(|project| ComposeRef {
            project: project.clone(),
            service: labels.get(COMPOSE_SERVICE_LABEL).cloned(),
        });
    let settings = c.network_settings.as_ref();
    let mut ports = Vec::new();
    if let Some(map) = settings.and_then(|s| s.ports.as_ref()) {
        for (key, bindings) in map {
            let (port, protocol) = parse_port_key(key)?;
            match bindings {
                Some(list) if !list.is_empty() => {
                    for b in list {
                        let host_port = match non_empty(b.host_port.as_deref()) {
                            Some(p) => Some(p.parse::<u16>().map_err(|_| MapError::Invalid {
                                what: WHAT,
                                field: "NetworkSettings.Ports[].HostPort",
                                value: p.to_owned(),
                            })?),
                            None => None,
                        };
                        ports.push(PortMapping {
                            container_port: port,
                            protocol: protocol.clone(),
                            host_ip: non_empty(b.host_ip.as_deref()).map(str::to_owned),
                            host_port,
                        });
                    }
                }
                _ => ports.push(PortMapping {
                    container_port: port,
                    protocol: protocol.clone(),
                    host_ip: None,
                    host_port: None,
                }),
            }
        }
    }
    ports.sort();
    let mut networks: Vec<NetworkAttachment> = settings
        .and_then(|s| s.networks.as_ref())
        .map(|n| {
            n.iter()
                .map(|(name, e)| NetworkAttachment {
                    name: name.clone(),
                    ip_address: non_empty(e.ip_address.as_deref()).map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default();
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    let mut mounts = Vec::new();
    for m in c.mounts.iter().flatten() {
        let destination = non_empty(m.destination.as_deref()).ok_or(MapError::Missing {
            what: WHAT,
            field: "Mounts[].Destination",
        })?;
        mounts.push(Mount {
            kind: m
                .typ
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), ToString::to_string),
            source: non_empty(m.source.as_deref()).map(str::to_owned),
            destination: destination.to_owned(),
            name: non_empty(m.name.as_deref()).map(str::to_owned),
            read_write: m.rw.unwrap_or(true),
        });
    }
    let host = c.host_config.as_ref();
    let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
    let mut nano_cpus = positive(host.and_then(|h| h.nano_cpus));
    if nano_cpus.is_none()
        && let Some(quota) = positive(host.and_then(|h| h.cpu_quota))
    {
        // `--cpu-quota`/`--cpu-period` instead of `--cpus`: the same limit in other units.
        let period = positive(host.and_then(|h| h.cpu_period)).unwrap_or(100_000);
        nano_cpus = quota.checked_mul(1_000_000_000).map(|n| n / period);
    }
    let limits = ResourceLimits {
        memory_bytes: positive(host.and_then(|h| h.memory)),
        nano_cpus,
        pids: positive(host.and_then(|h| h.pids_limit)),
    };
    Ok(Container {
        id: id.to_owned(),
        name: name.trim_start_matches('/').to_owned(),
        image_reference: image_reference.to_owned(),
        image_id: non_empty(c.image.as_deref()).map(str::to_owned),
        repo_digests: repo_digests.to_vec(),
        created: non_empty(c.created.as_deref()).map(str::to_owned),
        started_at: real_time(state.and_then(|s| s.started_at.as_deref())),
        finished_at: real_time(state.and_then(|s| s.finished_at.as_deref())),
        state: container_state,
        health: health_status,
        health_failing_streak: health
            .and_then(|h| h.failing_streak)
            .and_then(|n| u64::try_from(n).ok()),
        restart_count,
        exit_code: state.and_then(|s| s.exit_code),
        oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
        error: non_empty(state.and_then(|s| s.error.as_deref())).map(str::to_owned),
        ports,
        mounts,
        networks,
        labels,
        compose,
        limits,
    })
}

/// An image list row → [`Image`].
pub fn map_image_summary(i: &ImageSummary) -> Result<Image, MapError> {
    if i.id.is_empty() {
        return Err(MapError::Missing {
            what: "image list entry",
            field: "Id",
        });
    }
    Ok(Image {
        id: i.id.clone(),
        tags: real_tags(&i.repo_tags),
        repo_digests: real_digests(&i.repo_digests),
        size_bytes: u64::try_from(i.size).ok(),
        created: unix_to_rfc3339(i.created),
    })
}

/// An inspected image → [`Image`].
pub fn map_image_inspect(i: &ImageInspect) -> Result<Image, MapError> {
    let id = non_empty(i.id.as_deref()).ok_or(MapError::Missing {
        what: "image inspect",
        field: "Id",
    })?;
    Ok(Image {
        id: id.to_owned(),
        tags: real_tags(i.repo_tags.as_deref().unwrap_or_default()),
        repo_digests: real_digests(i.repo_digests.as_deref().unwrap_or_default()),
        size_bytes: i.size.and_then(|s| u64::try_from(s).ok()),
        created: non_empty(i.created.as_deref()).map(str::to_owned),
    })
}

/// `/info` + `/version` → [`EngineInfo`].
pub fn map_engine(endpoint: &str, info: &SystemInfo, version: &SystemVersion) -> EngineInfo {
    let podman = version
        .components
        .iter()
        .flatten()
        .any(|c| c.name.to_ascii_lowercase().contains("podman"));
    let rootless = info
        .security_options
        .iter()
        .flatten()
        .any(|o| o.split(',').any(|part| part == "name=rootless"));
    EngineInfo {
        endpoint: endpoint.to_owned(),
        kind: if podman {
            EngineKind::Podman
        } else {
            EngineKind::Docker
        },
        version: non_empty(version.version.as_deref())
            .or(non_empty(info.server_version.as_deref()))
            .map(str::to_owned),
        api_version: non_empty(version.api_version.as_deref()).map(str::to_owned),
        storage_driver: non_empty(info.driver.as_deref()).map(str::to_owned),
        rootless,
        os: non_empty(info.operating_system.as_deref()).map(str::to_owned),
        os_type: non_empty(info.os_type.as_deref()).map(str::to_owned),
        architecture: non_empty(info.architecture.as_deref()).map(str::to_owned),
    }
}

fn map_state(s: ContainerStateStatusEnum) -> ContainerState {
    match s {
        ContainerStateStatusEnum::CREATED => ContainerState::Created,
        ContainerStateStatusEnum::RUNNING => ContainerState::Running,
        ContainerStateStatusEnum::PAUSED => ContainerState::Paused,
        ContainerStateStatusEnum::RESTARTING => ContainerState::Restarting,
        ContainerStateStatusEnum::REMOVING => ContainerState::Removing,
        ContainerStateStatusEnum::EXITED => ContainerState::Exited,
        ContainerStateStatusEnum::DEAD => ContainerState::Dead,
        ContainerStateStatusEnum::STOPPING => ContainerState::Stopping,
        ContainerStateStatusEnum::EMPTY => ContainerState::Unknown,
    }
}

fn map_state_str(s: &str) -> ContainerState {
    match s {
        "created" => ContainerState::Created,
        "running" => ContainerState::Running,
        "paused" => ContainerState::Paused,
        "restarting" => ContainerState::Restarting,
        "removing" => ContainerState::Removing,
        "exited" => ContainerState::Exited,
        "dead" => ContainerState::Dead,
        "stopping" => ContainerState::Stopping,
        _ => ContainerState::Unknown,
    }
}

/// `"8080/tcp"` → (8080, "tcp"); a key without protocol is tcp.
fn parse_port_key(key: &str) -> Result<(u16, String), MapError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let port = port.parse::<u16>().map_err(|_| MapError::Invalid {
        what: "container inspect",
        field: "NetworkSettings.Ports",
        value: key.to_owned(),
    })?;
    Ok((port, proto.to_owned()))
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// The engines write Go's zero time for "never".
fn real_time(s: Option<&str>) -> Option<String> {
    non_empty(s)
        .filter(|s| !s.starts_with("0001-01-01"))
        .map(str::to_owned)
}

/// Docker lists untagged images with `<none>:<none>` / `<none>@<none>`.
fn real_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter(|t| !t.starts_with("<none>"))
        .cloned()
        .collect()
}

fn real_digests(digests: &[String]) -> Vec<String> {
    digests
        .iter()
        .filter(|d| !d.starts_with("<none>"))
        .cloned()
        .collect()
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ`; `None` for 0/negative (unknown) and years past
/// 9999.
pub fn unix_to_rfc3339(secs: i64) -> Option<String> {
    if secs <= 0 {
        return None;
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year > 9999 {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unix_time_formatting() {
        assert_eq!(unix_to_rfc3339(0), None);
        assert_eq!(unix_to_rfc3339(1).as_deref(), Some("1970-01-01T00:00:01Z"));
        assert_eq!(
            unix_to_rfc3339(1_554_925_882).as_deref(),
            Some("2019-04-10T19:51:22Z")
        );
        assert_eq!(
            unix_to_rfc3339(951_782_400).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(unix_to_rfc3339(i64::MAX), None);
    }

    #[test]
    fn port_keys() {
        assert_eq!(parse_port_key("80/tcp").unwrap(), (80, "tcp".to_owned()));
        assert_eq!(parse_port_key("53/udp").unwrap(), (53, "udp".to_owned()));
        assert_eq!(parse_port_key("9000").unwrap(), (9000, "tcp".to_owned()));
        assert!(parse_port_key("x/tcp").is_err());
        assert!(parse_port_key("70000/tcp").is_err());
    }

    #[test]
    fn libpod_rootless() {
        assert!(parse_libpod_info_rootless(r#"{"host":{"security":{"rootless":true}}}"#).unwrap());
        assert!(
            !parse_libpod_info_rootless(r#"{"host":{"security":{"rootless":false}}}"#).unwrap()
        );
        assert!(matches!(
            parse_libpod_info_rootless(r#"{"host":{}}"#),
            Err(MapError::Missing { .. })
        ));
        assert!(matches!(
            parse_libpod_info_rootless(r#"{"host":{"security":{"rootless":"yes"}}}"#),
            Err(MapError::Invalid { .. })
        ));
        assert!(matches!(
            parse_libpod_info_rootless("nope"),
            Err(MapError::Json { .. })
        ));
    }
}
