//! What database discovery reports: plain serde types, mapped to wire types by the agent.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which database engine an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DatabaseKind {
    Postgres,
    /// MySQL and MariaDB speak the same protocol; the version string tells them apart.
    MySql,
    MongoDb,
    /// Redis and Valkey speak the same protocol; `INFO` tells them apart.
    Redis,
    MinIo,
}

impl DatabaseKind {
    /// The port the engine listens on unless told otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            DatabaseKind::Postgres => 5432,
            DatabaseKind::MySql => 3306,
            DatabaseKind::MongoDb => 27017,
            DatabaseKind::Redis => 6379,
            DatabaseKind::MinIo => 9000,
        }
    }

    /// Every kind, for tables and tests.
    pub const ALL: [DatabaseKind; 5] = [
        DatabaseKind::Postgres,
        DatabaseKind::MySql,
        DatabaseKind::MongoDb,
        DatabaseKind::Redis,
        DatabaseKind::MinIo,
    ];
}

/// One address an instance accepts connections on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ListenAddr {
    /// A listening TCP socket; `ip` may be unspecified (`0.0.0.0`, `::`) for "all addresses".
    Tcp { ip: IpAddr, port: u16 },
    /// A listening unix stream socket; abstract sockets are written with a leading `@`.
    Unix { path: String },
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp {
                ip: IpAddr::V6(ip),
                port,
            } => write!(f, "[{ip}]:{port}"),
            ListenAddr::Tcp { ip, port } => write!(f, "{ip}:{port}"),
            ListenAddr::Unix { path } => write!(f, "unix:{path}"),
        }
    }
}

/// Which evidence found an instance; a record lists every source that agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    /// A process whose executable, `comm` or `argv[0]` names a database server.
    Process,
    /// Listening sockets in `/proc/net/{tcp,tcp6,unix}` owned by that process (joined through
    /// the socket inodes in `/proc/<pid>/fd`).
    ListeningSocket,
    /// A container whose image names a database ([`ContainerHint`]).
    ContainerImage,
    /// A listening socket on the engine's default port with no recognised owner.
    WellKnownPort,
    /// The wire probe got an answer in the engine's own protocol.
    Probe,
}

/// Where a reported version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionSource {
    /// The server said so on the wire (MySQL greeting, Redis `INFO`, MongoDB `buildInfo`).
    Probe,
    /// `<exe> --version` of the running process's executable.
    Executable,
    /// The tag of the container image (`postgres:16.2` → `16.2`): what was asked for, not
    /// necessarily what runs.
    ImageTag,
}

/// Where a data directory was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataDirSource {
    /// An option on the command line (`-D`, `--datadir`, `--dbpath`, `minio server <dir>`).
    CommandLine,
    /// The process's working directory: PostgreSQL, MySQL/MariaDB and Redis change into their
    /// data directory at start-up.
    WorkingDirectory,
}

/// A data directory as seen by the process (inside its mount namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataDir {
    pub path: String,
    pub source: DataDirSource,
}

/// The process serving an instance. The command line is never reported: it can hold
/// passwords (`--requirepass`, connection strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    /// `/proc/<pid>/comm`.
    pub name: String,
    /// `/proc/<pid>/exe` target, when readable.
    pub exe: Option<String>,
}

/// What the container collector knows about one running container (supplied by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerHint {
    /// Image reference as the engine reports it, e.g. `docker.io/library/postgres:16.2`.
    pub image: String,
    /// Host addresses published for the container (`0.0.0.0:5432`, …).
    pub published: Vec<(IpAddr, u16)>,
    pub container_id: String,
    pub name: String,
}

/// The container an instance runs in (from a [`ContainerHint`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    pub container_id: String,
    pub name: String,
    pub image: String,
}

/// How a probe ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeOutcome {
    /// The server answered in its own protocol without asking for credentials.
    Confirmed,
    /// The server speaks the protocol but wants credentials (or refuses this client host)
    /// before it says more. `detail` is the server's own words.
    AuthRequired { detail: String },
    /// Something answered, but not in this protocol; `seen` describes the first bytes.
    WrongProtocol { seen: String },
    /// No complete answer within the timeout.
    Timeout { after_ms: u64 },
    /// The connection was refused (nothing listens there any more).
    Refused,
    /// Anything else: I/O errors, a server error reply.
    Error { detail: String },
}

impl ProbeOutcome {
    /// True when the answer proved the engine's protocol.
    pub fn speaks_protocol(&self) -> bool {
        matches!(
            self,
            ProbeOutcome::Confirmed | ProbeOutcome::AuthRequired { .. }
        )
    }
}

/// What one engine's probe learned beyond the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeDetails {
    None,
    Postgres {
        /// `S`: the server offers TLS; `N`: it does not.
        ssl_supported: bool,
    },
    MySql {
        protocol_version: u8,
        server_version: String,
        connection_id: u32,
        capability_flags: u32,
        auth_plugin: Option<String>,
        /// Error code of an error packet sent instead of a greeting (1129 blocked, 1130 host
        /// not allowed, 1040 too many connections).
        error_code: Option<u16>,
    },
    Redis {
        /// `redis` or `valkey`.
        flavour: String,
        version: Option<String>,
        mode: Option<String>,
        os: Option<String>,
        tcp_port: Option<u16>,
        process_id: Option<u32>,
        executable: Option<String>,
        config_file: Option<String>,
    },
    MongoDb {
        min_wire_version: Option<i32>,
        max_wire_version: Option<i32>,
        is_writable_primary: Option<bool>,
        /// From `buildInfo`, when the server allowed it without authentication.
        version: Option<String>,
    },
    MinIo {
        status: u16,
        server_header: Option<String>,
    },
}

/// One probe of one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub kind: DatabaseKind,
    /// The address the probe connected to (an unspecified listen address is probed on
    /// loopback).
    pub address: ListenAddr,
    pub outcome: ProbeOutcome,
    pub details: ProbeDetails,
    pub elapsed_ms: u64,
}

impl ProbeResult {
    /// The version the server told, if it did.
    pub fn version(&self) -> Option<&str> {
        match &self.details {
            ProbeDetails::MySql { server_version, .. } if !server_version.is_empty() => {
                Some(server_version)
            }
            ProbeDetails::Redis { version, .. } | ProbeDetails::MongoDb { version, .. } => {
                version.as_deref()
            }
            _ => None,
        }
    }
}

/// One database instance on this host, merged from every source that saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseInstance {
    pub kind: DatabaseKind,
    pub version: Option<String>,
    pub version_source: Option<VersionSource>,
    /// Sorted, without duplicates.
    pub listen: Vec<ListenAddr>,
    pub process: Option<ProcessInfo>,
    pub data_dir: Option<DataDir>,
    pub containers: Vec<ContainerRef>,
    /// Sorted, without duplicates.
    pub sources: Vec<Source>,
    /// `None` when probing was switched off or there was no address to probe.
    pub probe: Option<ProbeResult>,
}

/// How the discovery as a whole went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CollectorStatus {
    Ok,
    /// Discovery ran, but some evidence could not be read (e.g. other users' `/proc/<pid>/fd`
    /// without root): what is reported may be incomplete. One line per problem kind.
    Partial {
        problems: Vec<String>,
    },
    /// The procfs root could not be read at all.
    ProcUnreadable {
        path: String,
        error: String,
    },
}

/// Everything one discovery learned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseInventory {
    pub instances: Vec<DatabaseInstance>,
    pub status: CollectorStatus,
}

/// Knobs for [`discover`](fn@super::discover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryOptions {
    /// Probe each instance over the wire (read-only, no credentials).
    pub probe: bool,
    /// Whole-exchange limit for one probe.
    pub probe_timeout: Duration,
    /// Probe listening sockets on default ports whose owner is not recognised (e.g. a
    /// published container port held by `docker-proxy`); kept only when the probe proves the
    /// protocol.
    pub probe_well_known_ports: bool,
    /// Limit for `<exe> --version`.
    pub version_command_timeout: Duration,
    /// Ask the executable for its version when the wire did not tell.
    pub run_version_commands: bool,
    /// How long a probe answer that proved the protocol is reused for an unchanged listener
    /// ([`discover_with`](crate::databases::discover_with)); a changed listener is probed at once.
    pub probe_refresh: Duration,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        Self {
            probe: true,
            probe_timeout: Duration::from_secs(2),
            probe_well_known_ports: true,
            version_command_timeout: Duration::from_secs(5),
            run_version_commands: true,
            probe_refresh: Duration::from_secs(3600),
        }
    }
}
