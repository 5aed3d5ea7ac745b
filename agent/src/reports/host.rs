//! Host facts from `sysinfo` and procfs.

use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};
use unity_protocol::latest::{Filesystem, HostFacts};

/// Filesystem types that are views of memory or of other filesystems, not storage an
/// operator can run out of on a disk.
const PSEUDO_FILESYSTEMS: &[&str] = &[
    "tmpfs",
    "devtmpfs",
    "overlay",
    "squashfs",
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "hugetlbfs",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "autofs",
    "fusectl",
    "configfs",
    "binfmt_misc",
    "nsfs",
    "ramfs",
    "efivarfs",
];

/// Collects the host's facts now. Reads procfs and sysfs only; takes a few milliseconds.
pub fn collect() -> HostFacts {
    // sysinfo reports what it could not read (an unreadable /proc file, say) as an error: the
    // fact is left out of this round with a log line, the rest is still reported.
    let system = System::new_with_specifics(
        RefreshKind::nothing()
            .with_memory(MemoryRefreshKind::everything())
            .with_cpu(CpuRefreshKind::nothing()),
    )
    .inspect_err(
        |error| tracing::warn!(%error, "could not read memory and CPU facts; reported as unknown"),
    )
    .ok();
    let disks = Disks::new_with_refreshed_list()
        .inspect_err(|error| {
            tracing::warn!(%error, "could not list filesystems; reported as none this round")
        })
        .ok();
    let mut filesystems: Vec<Filesystem> = disks
        .iter()
        .flat_map(|disks| disks.iter())
        .filter_map(|disk| {
            let fs_type = disk.file_system().to_string_lossy().into_owned();
            if PSEUDO_FILESYSTEMS.contains(&fs_type.as_str()) {
                return None;
            }
            Some(Filesystem {
                mount_point: disk.mount_point().to_string_lossy().into_owned(),
                device: disk.name().to_string_lossy().into_owned(),
                fs_type,
                total_bytes: disk.total_space(),
                available_bytes: disk.available_space(),
            })
        })
        .collect();
    filesystems.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    filesystems.dedup_by(|a, b| a.mount_point == b.mount_point);
    let cpus = system.as_ref().map_or(&[][..], System::cpus);
    HostFacts {
        hostname: System::host_name().unwrap_or_default(),
        os_name: System::name().unwrap_or_default(),
        os_version: System::os_version().unwrap_or_default(),
        kernel_version: System::kernel_version().unwrap_or_default(),
        architecture: System::cpu_arch(),
        cpu_model: cpus
            .first()
            .map(|cpu| cpu.brand().trim().to_owned())
            .unwrap_or_default(),
        cpu_logical_cores: u32::try_from(cpus.len()).unwrap_or(u32::MAX),
        cpu_physical_cores: System::physical_core_count()
            .ok()
            .and_then(|n| u32::try_from(n).ok()),
        memory_total_bytes: system.as_ref().map_or(0, System::total_memory),
        memory_available_bytes: system.as_ref().map_or(0, System::available_memory),
        swap_total_bytes: system.as_ref().map_or(0, System::total_swap),
        swap_free_bytes: system.as_ref().map_or(0, System::free_swap),
        filesystems,
        uptime_secs: System::uptime()
            .inspect_err(|error| tracing::warn!(%error, "could not read the uptime"))
            .unwrap_or(0),
        boot_id: boot_id(),
        agent_version: crate::version().to_owned(),
    }
}

/// Linux's per-boot random id; empty where the kernel does not provide one.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against this very machine: the values must be the real ones procfs reports.
    #[test]
    fn facts_of_this_host_are_real() {
        let facts = collect();
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(facts.hostname, hostname.trim());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(facts.kernel_version, kernel.trim());
        assert_eq!(facts.boot_id.len(), 36, "{}", facts.boot_id);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let total_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(facts.memory_total_bytes, total_kib * 1024);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let processors = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        assert_eq!(facts.cpu_logical_cores as usize, processors);
        assert!(
            facts.filesystems.iter().any(|fs| fs.mount_point == "/"),
            "{:?}",
            facts.filesystems
        );
        assert!(facts.uptime_secs > 0);
        assert_eq!(facts.agent_version, crate::version());
    }
}
