//! What the container collector may talk to, and how often.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The Docker socket every Docker install creates.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Rootful Podman's API socket (`podman.socket`).
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// Container collection settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Try the engine named by `DOCKER_HOST` first (`unix://`, `tcp://` or `http://`).
    pub honour_docker_host: bool,
    /// Engine endpoints to try, in order: `unix:///path`, a bare `/path`, `tcp://host:port`.
    /// A unix socket that does not exist is skipped silently (that engine is not installed).
    pub endpoints: Vec<String>,
    /// Longest any one engine API call may take.
    pub api_timeout: Duration,
    pub updates: UpdateCheckConfig,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        Self {
            honour_docker_host: true,
            endpoints: vec![
                format!("unix://{DOCKER_SOCKET}"),
                format!("unix://{PODMAN_SOCKET}"),
            ],
            api_timeout: Duration::from_secs(10),
            updates: UpdateCheckConfig::default(),
        }
    }
}

/// Registry update-check settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateCheckConfig {
    pub enabled: bool,
    /// How long a registry answer for one reference (`repo:tag`) is reused before asking again.
    pub recheck_after: Duration,
    /// How long a failed check is reused before asking again (shorter: failures pass).
    pub recheck_failed_after: Duration,
    /// Minimum time between two requests to the same registry.
    pub min_registry_interval: Duration,
    /// At most this many registry checks per collection; the rest wait for the next round.
    pub max_checks_per_round: usize,
    /// Timeout for one HTTP request (connect included).
    pub request_timeout: Duration,
    /// How long to leave a registry alone after a 429 without `Retry-After`.
    pub rate_limited_backoff: Duration,
    /// Registries (`host[:port]`) spoken to over plain HTTP. Loopback registries always are,
    /// as the Docker engine treats them as insecure registries by default.
    pub plain_http_registries: Vec<String>,
    /// Credentials by registry (`docker.io`, `ghcr.io`, `registry.example:5000`). Loaded by
    /// the agent from its root-only config file; never logged.
    pub credentials: BTreeMap<String, RegistryCredential>,
}

impl Default for UpdateCheckConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            recheck_after: Duration::from_secs(6 * 3600),
            recheck_failed_after: Duration::from_secs(15 * 60),
            min_registry_interval: Duration::from_secs(1),
            max_checks_per_round: 20,
            request_timeout: Duration::from_secs(15),
            rate_limited_backoff: Duration::from_secs(3600),
            plain_http_registries: Vec::new(),
            credentials: BTreeMap::new(),
        }
    }
}

/// How to authenticate to one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryCredential {
    /// Sent to the token service (Bearer flow) or the registry (Basic challenge).
    Basic { username: String, password: String },
    /// A ready bearer token (e.g. a personal access token accepted as bearer).
    Token { token: String },
}

impl fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::Token { .. } => f
                .debug_struct("Token")
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let mut c = UpdateCheckConfig::default();
        c.credentials.insert(
            "ghcr.io".to_owned(),
            RegistryCredential::Basic {
                username: "me".to_owned(),
                password: "hunter2-secret".to_owned(),
            },
        );
        c.credentials.insert(
            "docker.io".to_owned(),
            RegistryCredential::Token {
                token: "tok-secret".to_owned(),
            },
        );
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("tok-secret"), "{shown}");
        assert!(shown.contains("me") && shown.contains("<redacted>"));
    }
}
