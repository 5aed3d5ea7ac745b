//! What the agent collects itself. Storage parsers (SMART, ZFS, md RAID) live in the
//! `unity-collect` crate so they can be tested and fuzzed without any of the agent's network
//! stack.

pub mod host;
pub mod inventory;
pub mod packages;
pub mod storage;
