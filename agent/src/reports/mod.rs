//! The report bodies the agent sends, one module per body: host facts (from sysinfo) and the
//! storage, inventory and package reports built from `unity-collect`'s collectors. The
//! parsers and tool runners live in that crate so they can be tested and fuzzed without any
//! of the agent's network stack.

pub mod host;
pub mod inventory;
pub mod packages;
pub mod storage;
