//! What the Unity agent knows how to read from a host, as pure parsers plus thin runners.
//!
//! Every source follows the same shape (see `docs/architecture.md`): a `parse` module that
//! turns the exact text or JSON a tool printed into a typed record — no I/O, so it can be
//! tested over real captured outputs and fuzzed — and a `run` module that invokes the tool
//! through [`runner::CommandRunner`], so tests can feed fixture output through the very same
//! seam the real tool uses.
//!
//! This crate knows nothing about the network: the agent maps these records onto
//! `unity-protocol` messages.

pub mod containers;
pub mod databases;
pub mod mdraid;
pub mod packages;
pub mod runner;
pub mod smart;
pub mod source_status;
pub mod verdict;
pub mod zfs;

pub use unity_errors::{ErrorChain, error_chain};
