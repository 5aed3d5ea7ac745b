//! Credential-free database discovery: which PostgreSQL, MySQL/MariaDB, MongoDB, Redis/Valkey
//! and MinIO instances run on this host, where they listen, and what version they are.
//!
//! Evidence, merged into one [`DatabaseInstance`] per instance (rules in `docs/databases.md`):
//! - listening sockets from `<procfs>/net/{tcp,tcp6,unix}`, joined to their processes
//!   through the `socket:[inode]` links in `<procfs>/<pid>/fd`;
//! - processes recognised by executable, `comm` or `argv[0]`;
//! - [`ContainerHint`]s from the container collector (image, published ports);
//! - a read-only wire probe per instance that never sends credentials ([`probe`](mod@probe)).
//!
//! Pure parsers — procfs text ([`procnet`]), process/image recognition ([`identify`]) and
//! each engine's first exchange ([`wire`]) — are separate from the I/O ([`scan`], [`probe`](mod@probe),
//! [`discover()`]) so they can be tested over captured bytes and fuzzed; the probes and
//! `discover` need the `io` feature (tokio's network sockets).

#[cfg(feature = "io")]
mod discover;
pub mod identify;
mod model;
#[cfg(feature = "io")]
pub mod probe;
pub mod procnet;
pub mod scan;
pub mod wire;

#[cfg(feature = "io")]
pub use discover::{DiscoveryMemory, discover, discover_with};
pub use model::*;
#[cfg(feature = "io")]
pub use probe::{probe, probe_minio, probe_mongodb, probe_mysql, probe_postgres, probe_redis};

/// The default procfs root.
pub const PROC_ROOT: &str = "/proc";
