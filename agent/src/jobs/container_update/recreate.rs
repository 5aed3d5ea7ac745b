//! How a container is created again on a new image with the configuration it has now. Pure:
//! inspect data in, a create request out, tested on real engine answers.
//!
//! The engine's inspect output mixes what the operator configured with what the *old image*
//! supplied (its env, labels, entrypoint, cmd, workdir, user, healthcheck, volumes, exposed
//! ports). Copying it wholesale would pin the old image's defaults onto the new one — a new
//! version that changes its entrypoint or healthcheck on purpose would be overridden. So,
//! as Watchtower does, every value identical to the old image's is left out and the new
//! image supplies its own; what differs is the operator's and is kept. Beyond that:
//! * an auto-generated hostname (the old id's first 12 characters) is dropped;
//! * anonymous volumes are re-attached by name, so their data survives (Watchtower loses
//!   them);
//! * networks keep their aliases (minus the old short id the engine added) and static IPs;
//!   the create call takes the primary network, the others are connected before start;
//! * labels stay — Compose's included, so `docker compose ps` still owns the container.

use std::collections::{HashMap, HashSet};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, ImageConfig, NetworkingConfig,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the engine's inspect answer has no {0}")]
    Missing(&'static str),
}

/// What to create and what to connect afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct RecreatePlan {
    /// The container's name (without the engine's leading `/`).
    pub name: String,
    pub body: ContainerCreateBody,
    /// Networks beyond the primary one, connected after create and before start.
    pub extra_networks: Vec<(String, EndpointSettings)>,
}

/// The create request for `old` on `new_image`. `old_image` is the configuration of the image
/// `old` runs (None if it is gone: everything is then kept as configured).
pub fn plan(
    old: &ContainerInspectResponse,
    old_image: Option<&ImageConfig>,
    new_image: &str,
) -> Result<RecreatePlan, PlanError> {
    let name = old
        .name
        .as_deref()
        .map(|n| n.trim_start_matches('/').to_owned())
        .filter(|n| !n.is_empty())
        .ok_or(PlanError::Missing("name"))?;
    let config = old.config.clone().ok_or(PlanError::Missing("Config"))?;
    let mut host_config = old
        .host_config
        .clone()
        .ok_or(PlanError::Missing("HostConfig"))?;
    let image = old_image.cloned().unwrap_or_default();
    let short_id: String = old
        .id
        .as_deref()
        .unwrap_or_default()
        .chars()
        .take(12)
        .collect();
    let network_mode = host_config.network_mode.clone().unwrap_or_default();

    let same = |a: &Option<Vec<String>>, b: &Option<Vec<String>>| {
        a.as_deref().unwrap_or_default() == b.as_deref().unwrap_or_default()
    };
    let entrypoint_is_image_default = same(&config.entrypoint, &image.entrypoint);
    let cmd_is_image_default = entrypoint_is_image_default && same(&config.cmd, &image.cmd);
    let image_env: HashSet<&String> = image.env.iter().flatten().collect();
    let image_labels = image.labels.clone().unwrap_or_default();
    let image_volumes: HashSet<&String> = image.volumes.iter().flatten().collect();
    let image_ports: HashSet<&String> = image.exposed_ports.iter().flatten().collect();

    let keep_unless_default = |value: Option<String>, default: &Option<String>| {
        value.filter(|v| !v.is_empty() && Some(v) != default.as_ref())
    };
    let hostname = config
        .hostname
        .clone()
        .filter(|h| !h.is_empty() && *h != short_id && !network_mode.starts_with("container:"));
    let env: Vec<String> = config
        .env
        .iter()
        .flatten()
        .filter(|e| !image_env.contains(e))
        .cloned()
        .collect();
    let labels: HashMap<String, String> = config
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, v)| image_labels.get(k) != Some(v))
        .collect();
    let volumes: Vec<String> = config
        .volumes
        .iter()
        .flatten()
        .filter(|v| !image_volumes.contains(v))
        .cloned()
        .collect();
    let mut exposed: Vec<String> = config
        .exposed_ports
        .iter()
        .flatten()
        .filter(|p| !image_ports.contains(p))
        .cloned()
        .collect();
    for port in host_config.port_bindings.iter().flat_map(|b| b.keys()) {
        if !exposed.contains(port) {
            exposed.push(port.clone());
        }
    }
    exposed.sort();
    let healthcheck = config
        .healthcheck
        .clone()
        .filter(|h| Some(h) != image.healthcheck.as_ref());

    reattach_anonymous_volumes(old, &mut host_config);
    normalize_ulimits(&mut host_config);

    let (endpoints, extra_networks) = networks(old, &network_mode, &short_id);
    let body = ContainerCreateBody {
        hostname,
        domainname: config.domainname.clone().filter(|d| !d.is_empty()),
        user: keep_unless_default(config.user.clone(), &image.user),
        attach_stdin: config.attach_stdin,
        attach_stdout: config.attach_stdout,
        attach_stderr: config.attach_stderr,
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
        env: (!env.is_empty()).then_some(env),
        cmd: if cmd_is_image_default {
            None
        } else {
            config.cmd.clone()
        },
        healthcheck,
        args_escaped: config.args_escaped,
        image: Some(new_image.to_owned()),
        volumes: (!volumes.is_empty()).then_some(volumes),
        working_dir: keep_unless_default(config.working_dir.clone(), &image.working_dir),
        entrypoint: if entrypoint_is_image_default {
            None
        } else {
            config.entrypoint.clone()
        },
        network_disabled: config.network_disabled,
        on_build: None,
        labels: (!labels.is_empty()).then_some(labels),
        stop_signal: keep_unless_default(config.stop_signal.clone(), &image.stop_signal),
        stop_timeout: config.stop_timeout,
        shell: config
            .shell
            .clone()
            .filter(|s| Some(s) != image.shell.as_ref()),
        host_config: Some(host_config),
        networking_config: endpoints.map(|endpoints_config| NetworkingConfig {
            endpoints_config: Some(endpoints_config),
        }),
    };
    Ok(RecreatePlan {
        name,
        body,
        extra_networks,
    })
}

/// Podman's compatible API reports ulimits as `RLIMIT_NOFILE` but accepts only `nofile` when
/// creating (Docker uses `nofile` both ways): names are written the way both accept.
fn normalize_ulimits(host_config: &mut bollard::models::HostConfig) {
    for ulimit in host_config.ulimits.iter_mut().flatten() {
        if let Some(name) = &ulimit.name {
            let short = name
                .strip_prefix("RLIMIT_")
                .or_else(|| name.strip_prefix("rlimit_"))
                .unwrap_or(name);
            ulimit.name = Some(short.to_ascii_lowercase());
        }
    }
}

/// Volumes the engine created for the container (an image `VOLUME`, or `-v /path`) are not in
/// `Binds`/`Mounts`; a new container would get new, empty ones. Name them explicitly.
fn reattach_anonymous_volumes(
    old: &ContainerInspectResponse,
    host_config: &mut bollard::models::HostConfig,
) {
    let mut covered: HashSet<String> = host_config
        .binds
        .iter()
        .flatten()
        .filter_map(|b| b.split(':').nth(1).map(str::to_owned))
        .collect();
    covered.extend(
        host_config
            .mounts
            .iter()
            .flatten()
            .filter_map(|m| m.target.clone()),
    );
    let mut binds = host_config.binds.clone().unwrap_or_default();
    for mount in old.mounts.iter().flatten() {
        let is_volume = mount.typ.as_ref().is_some_and(|t| t == "volume");
        let (Some(name), Some(destination)) = (&mount.name, &mount.destination) else {
            continue;
        };
        if !is_volume || covered.contains(destination) {
            continue;
        }
        let mode = if mount.rw == Some(false) { ":ro" } else { "" };
        binds.push(format!("{name}:{destination}{mode}"));
        covered.insert(destination.clone());
    }
    if !binds.is_empty() {
        host_config.binds = Some(binds);
    }
}

/// The primary network's endpoint for create, and the others to connect afterwards.
#[allow(clippy::type_complexity)]
fn networks(
    old: &ContainerInspectResponse,
    network_mode: &str,
    short_id: &str,
) -> (
    Option<HashMap<String, EndpointSettings>>,
    Vec<(String, EndpointSettings)>,
) {
    // These modes have no endpoints of their own.
    if network_mode == "host" || network_mode == "none" || network_mode.starts_with("container:") {
        return (None, Vec::new());
    }
    let primary = if network_mode.is_empty() || network_mode == "default" {
        "bridge"
    } else {
        network_mode
    };
    let mut networks: Vec<(String, EndpointSettings)> = old
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, endpoint)| (name, configured(endpoint, short_id)))
        .collect();
    networks.sort_by(|a, b| a.0.cmp(&b.0));
    let mut endpoints = None;
    let mut extra = Vec::new();
    for (name, endpoint) in networks {
        if name == primary {
            endpoints = Some(HashMap::from([(name, endpoint)]));
        } else {
            extra.push((name, endpoint));
        }
    }
    (endpoints, extra)
}

/// What of an endpoint was configured (aliases, static addresses, links, driver options), not
/// assigned by the engine (ids, the address it picked, the gateway).
fn configured(endpoint: EndpointSettings, short_id: &str) -> EndpointSettings {
    let aliases: Vec<String> = endpoint
        .aliases
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a != short_id)
        .collect();
    EndpointSettings {
        ipam_config: endpoint.ipam_config.filter(|ipam| {
            ipam.ipv4_address.as_ref().is_some_and(|a| !a.is_empty())
                || ipam.ipv6_address.as_ref().is_some_and(|a| !a.is_empty())
                || ipam.link_local_ips.as_ref().is_some_and(|l| !l.is_empty())
        }),
        links: endpoint.links,
        aliases: (!aliases.is_empty()).then_some(aliases),
        driver_opts: endpoint.driver_opts.filter(|o| !o.is_empty()),
        ..EndpointSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ImageInspect;

    fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
        let path = format!("{}/fixtures/jobs/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    const NEW: &str = "registry.lan:5000/web:2@sha256:aaaa";

    #[test]
    fn operator_settings_survive_image_defaults_do_not() {
        // Real answers of Docker 20.10 for a container on two networks (docker run -p, -e,
        // --label compose…, -v named, -v bind:ro, --restart, --memory, --user, an anonymous
        // volume from the image's VOLUME).
        let old: ContainerInspectResponse = fixture("docker-20.10-inspect-web-two-networks.json");
        let image: ImageInspect = fixture("docker-20.10-image-inspect-web.json");
        let plan = plan(&old, image.config.as_ref(), NEW).unwrap();
        assert_eq!(plan.name, "web");
        let body = &plan.body;
        assert_eq!(body.image.as_deref(), Some(NEW));
        // The operator's env (and an override of an image default) stays; the image's PATH goes.
        assert_eq!(
            body.env.as_deref().unwrap(),
            ["EXTRA=1".to_owned(), "APP_MODE=dev".to_owned()]
        );
        // Compose labels stay, the image's labels are the new image's business.
        let labels = body.labels.as_ref().unwrap();
        assert_eq!(labels.get("com.docker.compose.project").unwrap(), "homelab");
        assert_eq!(labels.get("com.docker.compose.service").unwrap(), "web");
        assert!(
            !labels.contains_key("maintainer")
                && !labels.contains_key("org.opencontainers.image.version")
        );
        // Entrypoint, cmd, workdir, healthcheck, volumes were the image's: the new image's apply.
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.cmd, None);
        assert_eq!(body.working_dir, None);
        assert_eq!(body.healthcheck, None);
        assert_eq!(body.volumes, None);
        // The user was given on the command line (and differs from the image's none).
        assert_eq!(body.user.as_deref(), Some("0:0"));
        // The generated hostname (old short id) is not carried over.
        assert_eq!(body.hostname, None);
        // Published port kept; exposed ports only where the image did not expose them already.
        assert_eq!(
            body.exposed_ports.as_deref(),
            Some(&["8080/tcp".to_owned()][..])
        );
        let host = body.host_config.as_ref().unwrap();
        let bindings = host.port_bindings.as_ref().unwrap();
        assert_eq!(
            bindings["8080/tcp"].as_ref().unwrap()[0]
                .host_port
                .as_deref(),
            Some("18090")
        );
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        assert_eq!(
            host.restart_policy
                .as_ref()
                .unwrap()
                .name
                .as_ref()
                .map(|n| n.to_string()),
            Some("unless-stopped".into())
        );
        // Named and bind volumes as configured, the anonymous /cache volume by its name.
        let binds = host.binds.as_ref().unwrap();
        assert!(binds.contains(&"appdata:/data".to_owned()), "{binds:?}");
        assert!(
            binds.contains(&"/tmp/dx/ctx:/ctx:ro".to_owned()),
            "{binds:?}"
        );
        assert!(
            binds.contains(
                &"79953b616d66fb441641e488f1b0bc87968a13527e0a21f7984fa5a0bf91b475:/cache"
                    .to_owned()
            ),
            "{binds:?}"
        );
        // Primary network with its alias (not the old short id), the second one connected later.
        let endpoints = body
            .networking_config
            .as_ref()
            .unwrap()
            .endpoints_config
            .as_ref()
            .unwrap();
        let pubnet = &endpoints["pubnet"];
        assert_eq!(pubnet.aliases.as_deref(), Some(&["site".to_owned()][..]));
        assert_eq!(pubnet.ip_address, None);
        assert_eq!(pubnet.network_id, None);
        assert_eq!(plan.extra_networks.len(), 1);
        assert_eq!(plan.extra_networks[0].0, "testnet");
        assert_eq!(
            plan.extra_networks[0].1.aliases.as_deref(),
            Some(&["web2".to_owned()][..])
        );
    }

    #[test]
    fn a_command_given_by_the_operator_is_kept() {
        let mut old: ContainerInspectResponse =
            fixture("docker-20.10-inspect-web-two-networks.json");
        let image: ImageInspect = fixture("docker-20.10-image-inspect-web.json");
        old.config.as_mut().unwrap().cmd = Some(vec!["exec httpd -f -p 9000".into()]);
        let plan = plan(&old, image.config.as_ref(), NEW).unwrap();
        assert_eq!(
            plan.body.cmd.as_deref(),
            Some(&["exec httpd -f -p 9000".to_owned()][..])
        );
        // Entrypoint still the image's: the new image may change it.
        assert_eq!(plan.body.entrypoint, None);
        // Without the old image (deleted), everything configured is kept as it is.
        let plan = super::plan(&old, None, NEW).unwrap();
        assert!(plan.body.entrypoint.is_some() && plan.body.working_dir.is_some());
    }

    #[test]
    fn other_engines_answers_plan_too() {
        // Watchtower's captured inspect of a running portainer (Docker ~18.09).
        let path = format!(
            "{}/../collect/fixtures/containers/docker-api/container-inspect-running-portainer.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let old: ContainerInspectResponse =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let plan = plan(&old, None, NEW).unwrap();
        assert_eq!(plan.body.image.as_deref(), Some(NEW));
        assert!(plan.body.host_config.is_some());
        let mode = old.host_config.as_ref().unwrap().network_mode.clone();
        if mode.as_deref() == Some("host") {
            assert!(plan.body.networking_config.is_none());
        }
        // A container sharing another's network namespace keeps no hostname and no endpoints.
        let path = format!(
            "{}/../collect/fixtures/containers/docker-api/container-inspect-network-mode-container.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let shared: ContainerInspectResponse =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let plan = super::plan(&shared, None, NEW).unwrap();
        assert!(plan.body.networking_config.is_none());
        assert!(plan.extra_networks.is_empty());
        assert_eq!(plan.body.hostname, None);
    }

    #[test]
    fn podman_ulimit_names_are_written_as_both_engines_accept() {
        let mut old: ContainerInspectResponse =
            fixture("docker-20.10-inspect-web-two-networks.json");
        old.host_config.as_mut().unwrap().ulimits = Some(vec![bollard::models::ResourcesUlimits {
            name: Some("RLIMIT_NOFILE".into()),
            soft: Some(1024),
            hard: Some(1024),
        }]);
        let plan = plan(&old, None, NEW).unwrap();
        let ulimits = plan.body.host_config.unwrap().ulimits.unwrap();
        assert_eq!(ulimits[0].name.as_deref(), Some("nofile"));
    }

    #[test]
    fn missing_parts_are_errors_not_panics() {
        let empty = ContainerInspectResponse::default();
        assert_eq!(plan(&empty, None, NEW), Err(PlanError::Missing("name")));
        let named = ContainerInspectResponse {
            name: Some("/x".into()),
            ..Default::default()
        };
        assert_eq!(plan(&named, None, NEW), Err(PlanError::Missing("Config")));
    }
}
