//! Host facts: what the agent knows about the machine it runs on.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostFacts {
    pub hostname: String,
    /// e.g. "Debian GNU/Linux".
    pub os_name: String,
    /// e.g. "12".
    pub os_version: String,
    pub kernel_version: String,
    /// e.g. "x86_64".
    pub architecture: String,
    pub cpu_model: String,
    pub cpu_logical_cores: u32,
    pub cpu_physical_cores: Option<u32>,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
    pub filesystems: Vec<Filesystem>,
    pub uptime_secs: u64,
    /// Linux `/proc/sys/kernel/random/boot_id`; changes on every boot.
    pub boot_id: String,
    pub agent_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Filesystem {
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
}
