//! The Unity Fleet agent.
//!
//! * [`config`] — the optional, root-only config file (registry credentials).
//! * [`state`] — what enrollment leaves on disk (key 0600, certificates, identity).
//! * [`enroll`] — token + CSR → certificate, pinning the controller's CA by fingerprint.
//! * [`jobs`] — signed jobs: verify, journal, run (container updates), signed receipts.
//! * [`link`] — the QUIC session with the controller: connect, Hello, reports, backoff.
//! * [`reports`] — the report bodies the agent sends: host facts (sysinfo), and storage,
//!   inventory and packages from the `unity-collect` crate's collectors.
//! * [`parse`] — `unity-agent parse`: a saved tool output → normalized JSON with verdict.
//! * [`spool`] — the disk queue every report waits in until the controller acknowledged it.
//! * [`run`] — the service loop `unity-agent run` drives.

pub mod cli;
pub mod config;
pub mod enroll;
pub mod jobs;
pub mod link;
pub mod parse;
pub mod reports;
pub mod run;
pub mod spool;
pub mod state;
pub mod testing;

/// The crate's version: what `unity-agent` reports unless its `main` names another.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

static RUNNING_VERSION: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// The version this binary reports (Hello, facts, self-test) and compares releases with:
/// [`VERSION`], unless the binary's `main` set another with [`cli::main_as`] (the e2e tests
/// build agents of other versions from these sources that way).
pub fn version() -> &'static str {
    RUNNING_VERSION.get().copied().unwrap_or(VERSION)
}

/// Sets [`version`] once, before anything reads it; later calls change nothing.
pub(crate) fn set_version(version: &'static str) {
    let _ = RUNNING_VERSION.set(version);
}

/// An error and all its sources on one line, for a log field or a CLI message.
pub use unity_collect::error_chain;
