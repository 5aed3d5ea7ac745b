//! The Unity Fleet controller.
//!
//! * [`link`] — the QUIC server agents enroll with and report to.
//! * [`ingest`] — applying reports to the store exactly once.
//! * [`jobs`] — signed jobs: create, sign, dispatch (across replicas), results.
//! * [`store`] — PostgreSQL with row-level tenant isolation; [`store::embedded`] runs the
//!   controller's own cluster when no `DATABASE_URL` is given.
//! * [`api`] — the HTTP API (axum) and its OpenAPI document.
//! * [`app`] — wiring: start everything, stop everything.
//! * [`backup`] — one archive with the database, CA, job key and config; restore.
//! * [`config`] — the TOML file and environment overrides.

pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod database;
pub mod expiry;
pub mod ingest;
pub mod issuer;
pub mod jobs;
pub mod link;
pub mod metrics;
pub mod notify;
pub mod password;
pub mod presence;
mod restore;
pub mod rollouts;
pub mod stepca;
pub mod store;
pub mod weekly;

/// This build's version, reported to agents and by `/healthz`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use unity_errors::{ErrorChain, error_chain};
pub mod testing;
