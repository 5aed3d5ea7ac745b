//! Container inventory and update detection, for Docker and Podman engines.
//!
//! Pure parts, tested over real API responses and fuzzed: [`map`] (bollard's API types and
//! raw engine JSON → [`model`]), [`reference`](mod@reference) (image references), [`auth`]
//! (`WWW-Authenticate`), [`update`] (what to check, how answers compare, cache and pacing).
//! Thin parts: [`engine`] (discovery + bollard calls, each under a timeout) and [`registry`]
//! (one `HEAD` per tag over the OCI distribution API, with the anonymous token flow).
//! The thin parts and the collector that drives them need the `io` feature (the network
//! stack); the pure parts build without it, so the parsers and their fuzz targets do too.
//! `docs/containers.md` describes the discovery order, what is collected and the exchange
//! with registries.

pub mod auth;
#[cfg(feature = "io")]
mod collector;
pub mod config;
#[cfg(feature = "io")]
pub mod engine;
pub mod map;
pub mod model;
pub mod policy;
pub mod reference;
#[cfg(feature = "io")]
pub mod registry;
pub mod update;

pub use config::{ContainerConfig, RegistryCredential, UpdateCheckConfig};
pub use model::*;
pub use policy::{UpdateCandidate, UpdatePolicy};
pub use reference::{ImageReference, ReferenceError};

#[cfg(feature = "io")]
pub use collector::{ContainerCollector, collect};
