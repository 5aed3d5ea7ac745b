//! The thin part: the engine calls a container update makes, each under a timeout, each
//! failure a sentence naming the call. Docker and Podman (its Docker-compatible API) alike.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerUpdateBody, EndpointSettings,
    ImageInspect, NetworkConnectRequest, RestartPolicy,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, LogsOptions,
    RemoveContainerOptions, RenameContainerOptions, StopContainerOptions, TagImageOptions,
};
use futures_util::StreamExt;
use unity_collect::containers::engine::{connect, describe, discover, status_of};
use unity_collect::containers::{ContainerConfig, ImageReference, RegistryCredential};

use super::gate::Observation;

/// The client-level deadline; every call is bounded by a shorter one of its own.
const CLIENT_DEADLINE: Duration = Duration::from_secs(3600);

/// One engine connection.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    pub endpoint: String,
    timeout: Duration,
}

/// A container that is not there (the engine said 404).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    Missing,
}

impl Engine {
    /// The engine (of those configured) that has container `name`, with its inspect data.
    pub async fn find(
        config: &ContainerConfig,
        name: &str,
    ) -> Result<(Self, ContainerInspectResponse), String> {
        let docker_host = std::env::var("DOCKER_HOST").ok();
        let endpoints = discover(config, docker_host.as_deref(), |p| p.exists());
        if endpoints.is_empty() {
            return Err("no container engine socket on this host".into());
        }
        let mut tried = Vec::new();
        for endpoint in endpoints {
            // bollard's own deadline must outlast the longest call (a stop waits out the
            // container's grace period, a pull its size); each call has its own below.
            let docker = match connect(&endpoint, CLIENT_DEADLINE) {
                Ok(docker) => docker,
                Err(status) => {
                    tried.push(format!("{endpoint}: {}", describe(&status)));
                    continue;
                }
            };
            let docker =
                match tokio::time::timeout(config.api_timeout, docker.negotiate_version()).await {
                    Ok(Ok(docker)) => docker,
                    Ok(Err(e)) => {
                        tried.push(format!(
                            "{endpoint}: {}",
                            describe(&status_of("version", &e))
                        ));
                        continue;
                    }
                    Err(_) => {
                        tried.push(format!("{endpoint}: no answer"));
                        continue;
                    }
                };
            let engine = Self {
                docker,
                endpoint: endpoint.clone(),
                timeout: config.api_timeout,
            };
            match engine.inspect(name).await {
                Ok(Lookup::Found(inspect)) => return Ok((engine, inspect)),
                Ok(Lookup::Missing) => tried.push(format!("{endpoint}: no such container")),
                Err(e) => tried.push(format!("{endpoint}: {e}")),
            }
        }
        Err(format!(
            "container `{name}` not found ({})",
            tried.join("; ")
        ))
    }

    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, String> {
        self.call_within(what, self.timeout, fut).await
    }

    async fn call_within<T>(
        &self,
        what: &str,
        timeout: Duration,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(describe(&status_of(what, &e))),
            Err(_) => Err(format!(
                "{what} did not answer within {} s",
                timeout.as_secs()
            )),
        }
    }

    pub async fn inspect(&self, id: &str) -> Result<Lookup<ContainerInspectResponse>, String> {
        match tokio::time::timeout(
            self.timeout,
            self.docker
                .inspect_container(id, None::<InspectContainerOptions>),
        )
        .await
        {
            Ok(Ok(c)) => Ok(Lookup::Found(c)),
            Ok(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            })) => Ok(Lookup::Missing),
            Ok(Err(e)) => Err(describe(&status_of("container inspect", &e))),
            Err(_) => Err(format!(
                "container inspect did not answer within {} s",
                self.timeout.as_secs()
            )),
        }
    }

    pub async fn inspect_image(&self, reference: &str) -> Result<Lookup<ImageInspect>, String> {
        match tokio::time::timeout(self.timeout, self.docker.inspect_image(reference)).await {
            Ok(Ok(i)) => Ok(Lookup::Found(i)),
            Ok(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            })) => Ok(Lookup::Missing),
            Ok(Err(e)) => Err(describe(&status_of("image inspect", &e))),
            Err(_) => Err("image inspect did not answer".into()),
        }
    }

    /// Pulls `image` with the agent's own credentials for its registry (never the
    /// controller's). Returns the engine's last status line.
    pub async fn pull(
        &self,
        image: &str,
        config: &ContainerConfig,
        timeout: Duration,
    ) -> Result<String, String> {
        let credentials = ImageReference::parse(image)
            .ok()
            .and_then(|r| {
                let credential = config.updates.credentials.get(&r.registry)?;
                Some((r.registry.clone(), credential.clone()))
            })
            .map(|(registry, credential)| match credential {
                RegistryCredential::Basic { username, password } => DockerCredentials {
                    username: Some(username),
                    password: Some(password),
                    serveraddress: Some(registry),
                    ..DockerCredentials::default()
                },
                RegistryCredential::Token { token } => DockerCredentials {
                    registrytoken: Some(token),
                    serveraddress: Some(registry),
                    ..DockerCredentials::default()
                },
            });
        let options = CreateImageOptions {
            from_image: Some(image.to_owned()),
            ..CreateImageOptions::default()
        };
        let pull = async {
            let mut stream = self.docker.create_image(Some(options), None, credentials);
            let mut last = String::new();
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| describe(&status_of("image pull", &e)))?;
                if let Some(status) = info.status {
                    last = status;
                }
            }
            Ok::<_, String>(last)
        };
        tokio::time::timeout(timeout, pull)
            .await
            .map_err(|_| format!("image pull did not finish within {} s", timeout.as_secs()))?
    }

    /// Points the local reference `reference` (`repo:tag`) at `image_id`.
    pub async fn tag(&self, image_id: &str, reference: &str) -> Result<(), String> {
        let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match reference[last_slash..].rfind(':') {
            Some(i) => (
                &reference[..last_slash + i],
                &reference[last_slash + i + 1..],
            ),
            None => (reference, "latest"),
        };
        self.call(
            "image tag",
            self.docker.tag_image(
                image_id,
                Some(TagImageOptions {
                    repo: Some(repo.to_owned()),
                    tag: Some(tag.to_owned()),
                }),
            ),
        )
        .await
    }

    pub async fn set_restart_policy(&self, id: &str, policy: RestartPolicy) -> Result<(), String> {
        self.call(
            "container update",
            self.docker.update_container(
                id,
                ContainerUpdateBody {
                    restart_policy: Some(policy),
                    ..ContainerUpdateBody::default()
                },
            ),
        )
        .await
    }

    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), String> {
        let grace_secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let result = self
            .call_within(
                "container stop",
                grace + self.timeout,
                self.docker.stop_container(
                    id,
                    Some(StopContainerOptions {
                        t: Some(grace_secs),
                        signal: None,
                    }),
                ),
            )
            .await;
        match result {
            // 304: already stopped.
            Err(e) if e.contains("304") => Ok(()),
            other => other,
        }
    }

    pub async fn rename(&self, id: &str, name: &str) -> Result<(), String> {
        self.call(
            "container rename",
            self.docker.rename_container(
                id,
                RenameContainerOptions {
                    name: name.to_owned(),
                },
            ),
        )
        .await
    }

    pub async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, String> {
        let created = self
            .call(
                "container create",
                self.docker.create_container(
                    Some(CreateContainerOptions {
                        name: Some(name.to_owned()),
                        platform: String::new(),
                    }),
                    body,
                ),
            )
            .await?;
        Ok(created.id)
    }

    pub async fn connect_network(
        &self,
        id: &str,
        network: &str,
        endpoint: EndpointSettings,
    ) -> Result<(), String> {
        self.call(
            "network connect",
            self.docker.connect_network(
                network,
                NetworkConnectRequest {
                    container: id.to_owned(),
                    endpoint_config: Some(endpoint),
                },
            ),
        )
        .await
    }

    pub async fn start(&self, id: &str) -> Result<(), String> {
        self.call("container start", self.docker.start_container(id, None))
            .await
    }

    /// Removes a container; its volumes stay (they hold the data the update must keep).
    pub async fn remove(&self, id: &str) -> Result<(), String> {
        let result = self
            .call(
                "container remove",
                self.docker.remove_container(
                    id,
                    Some(RemoveContainerOptions {
                        v: false,
                        force: true,
                        link: false,
                    }),
                ),
            )
            .await;
        match result {
            Err(e) if e.contains(" 404") => Ok(()),
            other => other,
        }
    }

    /// The last lines the container wrote (stdout and stderr), for failure evidence.
    pub async fn log_tail(&self, id: &str, lines: usize) -> Vec<String> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..LogsOptions::default()
        };
        let read = async {
            let mut out = Vec::new();
            let mut stream = self.docker.logs(id, Some(options));
            while let Some(Ok(chunk)) = stream.next().await {
                let text = String::from_utf8_lossy(&chunk.into_bytes()).into_owned();
                out.extend(text.lines().map(|l| truncate(l, 300)));
            }
            out
        };
        let mut out = tokio::time::timeout(self.timeout, read)
            .await
            .unwrap_or_default();
        let excess = out.len().saturating_sub(lines);
        out.drain(..excess);
        out
    }
}

pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The gate's view of an inspect answer.
pub fn observation(inspect: &ContainerInspectResponse) -> Observation {
    let state = inspect.state.clone().unwrap_or_default();
    Observation {
        running: state.running.unwrap_or(false),
        restarting: state.restarting.unwrap_or(false),
        restart_count: inspect.restart_count.unwrap_or(0),
        started_at: state.started_at.clone().unwrap_or_default(),
        exit_code: state.exit_code,
        oom_killed: state.oom_killed.unwrap_or(false),
        health: state
            .health
            .as_ref()
            .and_then(|h| h.status.as_ref())
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none"),
        probe_ok: None,
    }
}

/// Whether the container runs a health check (its own or its image's).
pub fn has_healthcheck(inspect: &ContainerInspectResponse) -> bool {
    inspect
        .config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .and_then(|t| t.first())
        .is_some_and(|first| first != "NONE")
}

/// The last health-check runs (exit code and output), for evidence.
pub fn health_log(inspect: &ContainerInspectResponse) -> Vec<serde_json::Value> {
    inspect
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.log.as_ref())
        .map(|log| {
            log.iter()
                .rev()
                .take(3)
                .rev()
                .map(|entry| {
                    serde_json::json!({
                        "exit_code": entry.exit_code,
                        "output": truncate(entry.output.as_deref().unwrap_or_default().trim(), 500),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where the container can be reached from the host: its published TCP ports (an unspecified
/// host address is reached on loopback), or on host networking the ports it exposes.
pub fn reachable_ports(inspect: &ContainerInspectResponse) -> Vec<(u16, SocketAddr)> {
    let host_network = inspect
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.as_deref())
        == Some("host");
    let mut out = Vec::new();
    if host_network {
        for port in inspect
            .config
            .as_ref()
            .and_then(|c| c.exposed_ports.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(p) = tcp_port(port) {
                out.push((p, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)));
            }
        }
        return out;
    }
    let ports = inspect
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref());
    for (container_port, bindings) in ports.into_iter().flatten() {
        let Some(inner) = tcp_port(container_port) else {
            continue;
        };
        for binding in bindings.iter().flatten() {
            let Some(port) = binding.host_port.as_deref().and_then(|p| p.parse().ok()) else {
                continue;
            };
            let ip = match binding.host_ip.as_deref().unwrap_or_default() {
                "" | "0.0.0.0" => IpAddr::V4(Ipv4Addr::LOCALHOST),
                "::" => IpAddr::V6(Ipv6Addr::LOCALHOST),
                other => match other.parse() {
                    Ok(ip) => ip,
                    Err(_) => continue,
                },
            };
            out.push((inner, SocketAddr::new(ip, port)));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn tcp_port(spec: &str) -> Option<u16> {
    let (port, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    (proto == "tcp").then(|| port.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_of_a_real_answer() {
        let path = format!(
            "{}/fixtures/jobs/docker-20.10-inspect-web-two-networks.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let inspect: ContainerInspectResponse =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(
            reachable_ports(&inspect),
            vec![(8080, "127.0.0.1:18090".parse().unwrap())]
        );
        assert!(has_healthcheck(&inspect));
        let obs = observation(&inspect);
        assert!(obs.running && !obs.restarting);
        assert_eq!(obs.restart_count, 0);
        assert!(truncate("ééé", 3).ends_with('…'));
    }
}
