//! The agent's optional config file, `/etc/unity-agent/agent.toml` (or `--config`).
//!
//! It holds what must never come from the controller: registry credentials for image update
//! checks. A file that carries credentials must be readable by its owner only (0600 or 0400);
//! anything looser is refused with the exact `chmod` to run, rather than used. Every key is in
//! `docs/configuration.md`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use unity_collect::containers::{ContainerConfig, RegistryCredential};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/unity-agent/agent.toml";

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub containers: ContainersSection,
    pub jobs: JobsSection,
    pub spool: SpoolSection,
    pub packages: PackagesSection,
    pub host: HostSection,
    /// `[[registry]]` entries.
    #[serde(rename = "registry")]
    pub registries: Vec<RegistryEntry>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ContainersSection {
    /// Engine endpoints to try instead of the defaults (`unix:///path`, `tcp://host:port`).
    pub endpoints: Option<Vec<String>>,
    /// Ask registries whether running containers' tags moved (never pulls).
    pub update_checks: bool,
    /// Registries (`host:port`) spoken to over plain HTTP (loopback always is).
    pub plain_http_registries: Vec<String>,
}

impl Default for ContainersSection {
    fn default() -> Self {
        Self {
            endpoints: None,
            update_checks: true,
            plain_http_registries: Vec::new(),
        }
    }
}

/// `[host]`: what this host says about itself.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HostSection {
    /// Labels rollouts select hosts by (`role = "nas"`); an operator's label of the same key,
    /// set through the API, wins.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// `[jobs]`: what this host lets the controller do. Checked by the agent itself, so a
/// compromised controller (or its signing key) can do no more than this file allows.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct JobsSection {
    /// Job kinds this host runs: `ping`, `container_update`. Default: both.
    pub allow: Vec<String>,
    /// How far this host's clock may be from the controller's when checking a job's
    /// validity window, in seconds.
    pub clock_skew_secs: u32,
    /// Whether `container_update` may move a container to an image of another repository
    /// (not just another version of its own image).
    pub allow_repository_change: bool,
    /// Longest an image pull may take before the update gives up (nothing changed yet).
    pub pull_timeout_secs: u32,
}

/// `[spool]`: how much the agent keeps while the controller is unreachable.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolSection {
    /// Largest total size of reports waiting, in MiB.
    pub max_mib: u32,
    /// Oldest a waiting report may get, in hours.
    pub max_age_hours: u32,
}

impl Default for SpoolSection {
    fn default() -> Self {
        Self {
            max_mib: 64,
            max_age_hours: 7 * 24,
        }
    }
}

impl SpoolSection {
    pub fn options(&self) -> crate::spool::SpoolOptions {
        crate::spool::SpoolOptions {
            max_bytes: u64::from(self.max_mib) * 1024 * 1024,
            max_age: std::time::Duration::from_secs(u64::from(self.max_age_hours) * 3600),
        }
    }
}

/// `[packages]`: reporting pending updates, and how `package_upgrade` jobs run apt.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PackagesSection {
    /// Report pending updates and the reboot flag.
    pub report: bool,
    /// How often, in hours (and after every package job).
    pub interval_hours: u32,
    pub apt_get: String,
    /// An apt configuration file used instead of the system's (`APT_CONFIG`).
    pub apt_config: Option<std::path::PathBuf>,
    pub lists_dir: std::path::PathBuf,
    pub reboot_required_file: std::path::PathBuf,
    /// What a `package_upgrade` job with `reboot = if_required` runs.
    pub reboot_command: Vec<String>,
}

impl Default for PackagesSection {
    fn default() -> Self {
        let apt = unity_collect::packages::run::PackageConfig::default();
        Self {
            report: true,
            interval_hours: 6,
            apt_get: apt.apt_get,
            apt_config: None,
            lists_dir: apt.lists_dir,
            reboot_required_file: apt.reboot_required_file,
            reboot_command: vec!["systemctl".into(), "reboot".into()],
        }
    }
}

impl PackagesSection {
    pub fn apt(&self) -> unity_collect::packages::run::PackageConfig {
        unity_collect::packages::run::PackageConfig {
            apt_get: self.apt_get.clone(),
            apt_config: self.apt_config.clone(),
            lists_dir: self.lists_dir.clone(),
            reboot_required_file: self.reboot_required_file.clone(),
            ..unity_collect::packages::run::PackageConfig::default()
        }
    }

    pub fn job_options(&self) -> crate::jobs::package_upgrade::PackageJobOptions {
        crate::jobs::package_upgrade::PackageJobOptions {
            apt: self.apt(),
            reboot_command: self.reboot_command.clone(),
            ..Default::default()
        }
    }
}

/// Kind names a `[jobs] allow` list may hold.
pub const JOB_KINDS: &[&str] = &[
    "ping",
    "container_update",
    "package_upgrade",
    "agent_update",
];

impl Default for JobsSection {
    fn default() -> Self {
        Self {
            allow: vec!["ping".into(), "container_update".into()],
            clock_skew_secs: 300,
            allow_repository_change: false,
            pull_timeout_secs: 900,
        }
    }
}

/// Credentials for one registry: `username` + `password`, or `token`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    /// `docker.io`, `ghcr.io`, `registry.lan:5000`.
    pub host: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
}

impl std::fmt::Debug for RegistryEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryEntry")
            .field("host", &self.host)
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is invalid")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error(
        "{path} holds registry credentials but is readable by others (mode {mode:o}): \
         run `chmod 600 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("registry {host}: give either username and password, or token")]
    Credential { host: String },
    #[error("[jobs] allow names `{kind}`, which is not a job kind (known: {known})")]
    UnknownJobKind { kind: String, known: String },
    #[error("[jobs] clock_skew_secs must be at most 3600")]
    ClockSkew,
    #[error("[spool] max_mib and max_age_hours must be at least 1")]
    Spool,
    #[error(
        "[packages] interval_hours must be at least 1, apt_get and reboot_command must not be empty"
    )]
    Packages,
    #[error("[host] labels: {0}")]
    Labels(String),
}

impl AgentConfig {
    /// Reads `path`, or the default path if it exists, or returns the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match path {
            Some(path) => path.to_owned(),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => PathBuf::from(DEFAULT_CONFIG_PATH),
            None => return Ok(Self::default()),
        };
        let read = |source| ConfigError::Read {
            path: path.clone(),
            source,
        };
        let text = std::fs::read_to_string(&path).map_err(read)?;
        let config: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.clone(),
            source,
        })?;
        if !config.registries.is_empty() {
            let mode = std::fs::metadata(&path).map_err(read)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(ConfigError::TooOpen { path, mode });
            }
        }
        config.container_config()?;
        config.check_jobs()?;
        config.labels().validate().map_err(ConfigError::Labels)?;
        Ok(config)
    }

    fn check_jobs(&self) -> Result<(), ConfigError> {
        if let Some(kind) = self
            .jobs
            .allow
            .iter()
            .find(|k| !JOB_KINDS.contains(&k.as_str()))
        {
            return Err(ConfigError::UnknownJobKind {
                kind: kind.clone(),
                known: JOB_KINDS.join(", "),
            });
        }
        if self.jobs.clock_skew_secs > 3600 {
            return Err(ConfigError::ClockSkew);
        }
        if self.spool.max_mib == 0 || self.spool.max_age_hours == 0 {
            return Err(ConfigError::Spool);
        }
        if self.packages.interval_hours == 0
            || self.packages.reboot_command.is_empty()
            || self.packages.apt_get.is_empty()
        {
            return Err(ConfigError::Packages);
        }
        Ok(())
    }

    /// What `[host] labels` declares, as it is reported.
    pub fn labels(&self) -> unity_protocol::latest::HostLabels {
        unity_protocol::latest::HostLabels {
            labels: self.host.labels.clone(),
        }
    }

    /// The container collector's settings, credentials included.
    pub fn container_config(&self) -> Result<ContainerConfig, ConfigError> {
        let mut config = ContainerConfig::default();
        if let Some(endpoints) = &self.containers.endpoints {
            config.endpoints = endpoints.clone();
        }
        config.updates.enabled = self.containers.update_checks;
        config.updates.plain_http_registries = self.containers.plain_http_registries.clone();
        for entry in &self.registries {
            let credential = match (&entry.username, &entry.password, &entry.token) {
                (Some(username), Some(password), None) => RegistryCredential::Basic {
                    username: username.clone(),
                    password: password.clone(),
                },
                (None, None, Some(token)) => RegistryCredential::Token {
                    token: token.clone(),
                },
                _ => {
                    return Err(ConfigError::Credential {
                        host: entry.host.clone(),
                    });
                }
            };
            config
                .updates
                .credentials
                .insert(entry.host.clone(), credential);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[containers]
plain_http_registries = ["registry.lan:5000"]

[[registry]]
host = "ghcr.io"
username = "me"
password = "hunter2-secret"

[[registry]]
host = "registry.lan:5000"
token = "tok-secret"
"#;

    fn write(mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, SAMPLE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn credentials_load_from_a_private_file_and_never_print() {
        let (_dir, path) = write(0o600);
        let config = AgentConfig::load(Some(&path)).unwrap();
        let containers = config.container_config().unwrap();
        assert_eq!(containers.updates.credentials.len(), 2);
        assert_eq!(
            containers.updates.plain_http_registries,
            ["registry.lan:5000"]
        );
        let printed = format!("{config:?} {containers:?}");
        assert!(
            !printed.contains("hunter2-secret") && !printed.contains("tok-secret"),
            "{printed}"
        );
    }

    #[test]
    fn a_readable_credentials_file_is_refused_with_the_fix() {
        let (_dir, path) = write(0o644);
        let err = AgentConfig::load(Some(&path)).unwrap_err();
        assert!(
            matches!(err, ConfigError::TooOpen { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn half_given_credentials_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "[[registry]]\nhost = \"x\"\nusername = \"u\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            AgentConfig::load(Some(&path)),
            Err(ConfigError::Credential { .. })
        ));
        std::fs::write(&path, "[containers]\nupdate_check = false\n").unwrap();
        assert!(matches!(
            AgentConfig::load(Some(&path)),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn jobs_section_defaults_and_typos() {
        assert_eq!(
            AgentConfig::default().jobs.allow,
            ["ping", "container_update"]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "[jobs]\nallow = []\n").unwrap();
        assert!(
            AgentConfig::load(Some(&path))
                .unwrap()
                .jobs
                .allow
                .is_empty()
        );
        std::fs::write(&path, "[jobs]\nallow = [\"container_updates\"]\n").unwrap();
        let err = AgentConfig::load(Some(&path)).unwrap_err();
        assert!(matches!(err, ConfigError::UnknownJobKind { .. }), "{err}");
    }

    #[test]
    fn host_labels_follow_the_label_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "[host]\nlabels = { role = \"nas\", site = \"garage\" }\n",
        )
        .unwrap();
        let config = AgentConfig::load(Some(&path)).unwrap();
        assert_eq!(config.labels().labels["role"], "nas");
        std::fs::write(&path, "[host]\nlabels = { Role = \"nas\" }\n").unwrap();
        let err = AgentConfig::load(Some(&path)).unwrap_err();
        assert!(matches!(err, ConfigError::Labels(_)), "{err}");
    }
}
