//! The Unity Fleet agent.
//!
//! * [`config`] — the optional, root-only config file (registry credentials).
//! * [`state`] — what enrollment leaves on disk (key 0600, certificates, identity).
//! * [`enroll`] — token + CSR → certificate, pinning the controller's CA by fingerprint.
//! * [`jobs`] — signed jobs: verify, journal, run (container updates), signed receipts.
//! * [`link`] — the QUIC session with the controller: connect, Hello, reports, backoff.
//! * [`collect`] — host facts (sysinfo); storage parsers live in the `unity-collect` crate.
//! * [`parse`] — `unity-agent parse`: a saved tool output → normalized JSON with verdict.
//! * [`spool`] — the disk queue every report waits in until the controller acknowledged it.
//! * [`run`] — the service loop `unity-agent run` drives.

pub mod cli;
pub mod collect;
pub mod config;
pub mod enroll;
pub mod jobs;
pub mod link;
pub mod parse;
pub mod run;
pub mod spool;
pub mod state;
pub mod testing;

/// This build's version, sent in Hello and in every facts report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// An error and all its sources on one line, for a log field or a CLI message.
pub use unity_collect::error_chain;
