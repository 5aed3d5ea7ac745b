//! Controller configuration: a TOML file, then environment overrides, then command-line flags.
//! Every key is documented in `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::issuer::IssuerKind;

/// Default location of the config file; read only if it exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/unity-controller/controller.toml";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// State: the embedded PostgreSQL cluster (unless `database_url`), the CA, the job key.
    pub data_dir: PathBuf,
    /// An external PostgreSQL; when set the controller manages no database of its own.
    pub database_url: Option<String>,
    /// Optional separate login for the application pool (a member of `unity_app` without
    /// BYPASSRLS); see docs/security.md.
    pub app_database_url: Option<String>,
    /// UDP address agents connect to.
    pub quic_listen: SocketAddr,
    /// Receive and send buffer of the QUIC socket, in bytes: room for a burst of
    /// reconnecting agents (capped by `net.core.rmem_max`/`wmem_max`, docs/operations.md).
    pub quic_socket_buffer_bytes: usize,
    /// An agent silent this long (not even a keep-alive) is gone: its session closes and a
    /// job waits for its reconnect. Agents ping every 15 s and advertise 45 s, and QUIC uses
    /// the smaller of both sides' values, so only a shorter value changes anything.
    pub agent_idle_timeout_secs: u32,
    /// TCP address of the HTTP API.
    pub api_listen: SocketAddr,
    /// How often agents send host facts.
    pub report_interval_secs: u32,
    /// Lifetime of host certificates.
    pub host_cert_validity_days: u32,
    /// How often automatic container updates are looked for.
    pub auto_update_interval_secs: u32,
    /// The API listener is reached through a TLS-terminating proxy: the console's session
    /// cookie is then marked `Secure` (never sent over plain HTTP).
    pub api_behind_tls_proxy: bool,
    /// Scheduled backups (`[backup]`).
    pub backup: BackupConfig,
    /// Who signs host certificates (`[pki]`, docs/pki.md).
    pub pki: PkiConfig,
}

/// `[pki]`: the built-in CA (default) or the operator's step-ca signs host certificates.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PkiConfig {
    /// `built-in` or `step-ca`: who signs new host certificates. Both CAs' hosts are
    /// accepted whenever `[pki.step_ca]` is configured (switching, either way).
    pub issuer: IssuerKind,
    pub step_ca: Option<StepCaConfig>,
}

/// `[pki.step_ca]`: how to reach step-ca and sign with its JWK provisioner.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepCaConfig {
    /// `https://ca.lan:9000`.
    pub url: String,
    /// SHA-256 of step-ca's root (`step certificate fingerprint root_ca.crt`).
    pub root_fingerprint: String,
    /// The JWK provisioner's name.
    pub provisioner: String,
    /// The provisioner's key: its `encryptedKey` from step-ca's `ca.json` (a JWE), or a plain
    /// private JWK.
    pub key_file: PathBuf,
    /// The password of an encrypted key.
    pub password_file: Option<PathBuf>,
    /// How long host certificates live; unset: the provisioner's default (24 h unless the
    /// operator changed it).
    pub certificate_lifetime_hours: Option<u32>,
}

/// `[backup]`: the controller backs itself up while it serves.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Hours between scheduled backups; 0 turns them off.
    pub interval_hours: u32,
    /// Scheduled backups kept (the oldest beyond this are deleted).
    pub keep: u32,
    /// Where backups are written (default `<data_dir>/backups`). Put it on another disk.
    pub dir: Option<PathBuf>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            interval_hours: 24,
            keep: 7,
            dir: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            database_url: None,
            app_database_url: None,
            quic_listen: SocketAddr::from(([0, 0, 0, 0], 7443)),
            quic_socket_buffer_bytes: crate::link::socket::DEFAULT_SOCKET_BUFFER_BYTES,
            agent_idle_timeout_secs: crate::link::DEFAULT_AGENT_IDLE_TIMEOUT_SECS,
            api_listen: SocketAddr::from(([127, 0, 0, 1], 7080)),
            report_interval_secs: 60,
            host_cert_validity_days: 30,
            auto_update_interval_secs: 60,
            api_behind_tls_proxy: false,
            backup: BackupConfig::default(),
            pki: PkiConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is invalid")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Env {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("{key} must be {reason}")]
    Invalid {
        key: &'static str,
        reason: &'static str,
    },
}

/// `/var/lib/unity-controller` for root (the packaged service), a per-user directory otherwise.
fn default_data_dir() -> PathBuf {
    if crate::store::embedded::is_root() {
        return PathBuf::from("/var/lib/unity-controller");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("unity-controller")
}

impl Config {
    /// Reads `path` (or the default path if it exists), then applies the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_PATH))?
            }
            None => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Environment overrides; `lookup` is the environment (a closure so tests need no globals).
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name,
                reason: e.to_string(),
                value,
            })
        }
        if let Some(v) = lookup("UNITY_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = lookup("DATABASE_URL").filter(|v| !v.is_empty()) {
            self.database_url = Some(v);
        }
        if let Some(v) = lookup("UNITY_APP_DATABASE_URL").filter(|v| !v.is_empty()) {
            self.app_database_url = Some(v);
        }
        if let Some(v) = lookup("UNITY_QUIC_LISTEN") {
            self.quic_listen = parse("UNITY_QUIC_LISTEN", v)?;
        }
        if let Some(v) = lookup("UNITY_QUIC_SOCKET_BUFFER_BYTES") {
            self.quic_socket_buffer_bytes = parse("UNITY_QUIC_SOCKET_BUFFER_BYTES", v)?;
        }
        if let Some(v) = lookup("UNITY_AGENT_IDLE_TIMEOUT_SECS") {
            self.agent_idle_timeout_secs = parse("UNITY_AGENT_IDLE_TIMEOUT_SECS", v)?;
        }
        if let Some(v) = lookup("UNITY_API_LISTEN") {
            self.api_listen = parse("UNITY_API_LISTEN", v)?;
        }
        if let Some(v) = lookup("UNITY_REPORT_INTERVAL_SECS") {
            self.report_interval_secs = parse("UNITY_REPORT_INTERVAL_SECS", v)?;
        }
        if let Some(v) = lookup("UNITY_HOST_CERT_VALIDITY_DAYS") {
            self.host_cert_validity_days = parse("UNITY_HOST_CERT_VALIDITY_DAYS", v)?;
        }
        if let Some(v) = lookup("UNITY_AUTO_UPDATE_INTERVAL_SECS") {
            self.auto_update_interval_secs = parse("UNITY_AUTO_UPDATE_INTERVAL_SECS", v)?;
        }
        if let Some(v) = lookup("UNITY_API_BEHIND_TLS_PROXY") {
            self.api_behind_tls_proxy = parse("UNITY_API_BEHIND_TLS_PROXY", v)?;
        }
        if let Some(v) = lookup("UNITY_BACKUP_INTERVAL_HOURS") {
            self.backup.interval_hours = parse("UNITY_BACKUP_INTERVAL_HOURS", v)?;
        }
        if let Some(v) = lookup("UNITY_BACKUP_DIR").filter(|v| !v.is_empty()) {
            self.backup.dir = Some(PathBuf::from(v));
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=86_400).contains(&self.report_interval_secs) {
            return Err(ConfigError::Invalid {
                key: "report_interval_secs",
                reason: "between 1 and 86400",
            });
        }
        if !(64 * 1024..=1 << 30).contains(&self.quic_socket_buffer_bytes) {
            return Err(ConfigError::Invalid {
                key: "quic_socket_buffer_bytes",
                reason: "between 65536 (64 KiB) and 1073741824 (1 GiB)",
            });
        }
        if !(2..=600).contains(&self.agent_idle_timeout_secs) {
            return Err(ConfigError::Invalid {
                key: "agent_idle_timeout_secs",
                reason: "between 2 and 600",
            });
        }
        if !(1..=365).contains(&self.host_cert_validity_days) {
            return Err(ConfigError::Invalid {
                key: "host_cert_validity_days",
                reason: "between 1 and 365",
            });
        }
        if !(1..=86_400).contains(&self.auto_update_interval_secs) {
            return Err(ConfigError::Invalid {
                key: "auto_update_interval_secs",
                reason: "between 1 and 86400",
            });
        }
        if self.backup.interval_hours > 24 * 365 {
            return Err(ConfigError::Invalid {
                key: "backup.interval_hours",
                reason: "at most 8760 (0 turns scheduled backups off)",
            });
        }
        if self.pki.issuer == IssuerKind::StepCa && self.pki.step_ca.is_none() {
            return Err(ConfigError::Invalid {
                key: "pki.issuer",
                reason: "`built-in` unless [pki.step_ca] says how to reach step-ca",
            });
        }
        if let Some(step_ca) = &self.pki.step_ca {
            if !step_ca.url.starts_with("https://") {
                return Err(ConfigError::Invalid {
                    key: "pki.step_ca.url",
                    reason: "an https:// URL",
                });
            }
            if step_ca
                .certificate_lifetime_hours
                .is_some_and(|h| !(1..=8760).contains(&h))
            {
                return Err(ConfigError::Invalid {
                    key: "pki.step_ca.certificate_lifetime_hours",
                    reason: "between 1 and 8760",
                });
            }
        }
        if self.backup.keep == 0 {
            return Err(ConfigError::Invalid {
                key: "backup.keep",
                reason: "at least 1",
            });
        }
        Ok(())
    }

    /// Where backups go.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("backups"))
    }

    pub fn auto_update_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.auto_update_interval_secs))
    }

    pub fn report_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.report_interval_secs))
    }

    pub fn agent_idle_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.agent_idle_timeout_secs))
    }

    pub fn host_cert_validity(&self) -> Duration {
        Duration::from_secs(u64::from(self.host_cert_validity_days) * 24 * 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_then_environment_overrides() {
        let mut config: Config = toml::from_str(
            "data_dir = \"/srv/unity\"\nquic_listen = \"0.0.0.0:9000\"\nreport_interval_secs = 10\n",
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/srv/unity"));
        assert_eq!(config.api_listen, Config::default().api_listen);
        config
            .apply_env(|name| match name {
                "UNITY_QUIC_LISTEN" => Some("127.0.0.1:9443".into()),
                "DATABASE_URL" => Some("postgres://db/unity".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.quic_listen, "127.0.0.1:9443".parse().unwrap());
        assert_eq!(config.database_url.as_deref(), Some("postgres://db/unity"));
        assert_eq!(config.report_interval(), Duration::from_secs(10));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<Config>("data_dri = \"/x\"").is_err());
        let mut config = Config::default();
        let err = config
            .apply_env(|name| (name == "UNITY_API_LISTEN").then(|| "nonsense".into()))
            .unwrap_err();
        assert!(err.to_string().contains("UNITY_API_LISTEN"), "{err}");
        config.report_interval_secs = 0;
        assert!(config.validate().is_err());
    }

    #[test]
    fn the_agent_idle_timeout_is_45_s_unless_shortened_and_never_below_2_s() {
        let mut config = Config::default();
        assert_eq!(config.agent_idle_timeout(), Duration::from_secs(45));
        config
            .apply_env(|name| (name == "UNITY_AGENT_IDLE_TIMEOUT_SECS").then(|| "5".into()))
            .unwrap();
        assert_eq!(config.agent_idle_timeout(), Duration::from_secs(5));
        config.validate().unwrap();
        config.agent_idle_timeout_secs = 1;
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("agent_idle_timeout_secs"), "{err}");
    }

    #[test]
    fn step_ca_needs_its_section_and_an_https_url() {
        let config: Config = toml::from_str("[pki]\nissuer = \"step-ca\"\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("pki.issuer")
        );
        let config: Config = toml::from_str(
            "[pki]\nissuer = \"step-ca\"\n[pki.step_ca]\nurl = \"https://ca.lan:9000\"\n\
             root_fingerprint = \"ab\"\nprovisioner = \"unity\"\nkey_file = \"/k\"\n",
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.pki.issuer, IssuerKind::StepCa);
        let mut plain = config.clone();
        plain.pki.step_ca.as_mut().unwrap().url = "http://ca.lan".into();
        assert!(plain.validate().is_err());
        assert!(toml::from_str::<Config>("[pki]\nissuer = \"acme\"\n").is_err());
    }
}
