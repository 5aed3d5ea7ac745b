//! Sizes no real host reports: refused with the reason, so one broken or hostile agent can
//! neither store a million rows nor make ingest take minutes. The frame limit (4 MiB) bounds
//! the bytes; these bound the counts.

use unity_protocol::latest::ReportBody;

/// More filesystems, disks, pools, arrays, databases than any host has.
pub const MAX_OBJECTS: usize = 4096;
/// More containers or images than any one engine holds.
pub const MAX_CONTAINERS: usize = 16_384;

fn at_most(what: &str, count: usize, max: usize) -> Result<(), String> {
    if count > max {
        Err(format!("{count} {what} in one report (at most {max})"))
    } else {
        Ok(())
    }
}

pub fn check(body: &ReportBody) -> Result<(), String> {
    match body {
        ReportBody::HostFacts(f) => at_most("filesystems", f.filesystems.len(), MAX_OBJECTS),
        ReportBody::Storage(s) => {
            at_most("disks", s.disks.len(), MAX_OBJECTS)?;
            at_most("pools", s.pools.len(), MAX_OBJECTS)?;
            at_most("arrays", s.arrays.len(), MAX_OBJECTS)
        }
        ReportBody::Containers(c) => {
            at_most("containers", c.containers.len(), MAX_CONTAINERS)?;
            at_most("images", c.images.len(), MAX_CONTAINERS)
        }
        ReportBody::Databases(d) => at_most("databases", d.databases.len(), MAX_OBJECTS),
        ReportBody::Packages(p) => {
            at_most("pending updates", p.pending.len(), MAX_CONTAINERS)?;
            at_most("held packages", p.held_back.len(), MAX_CONTAINERS)?;
            at_most(
                "packages requiring a reboot",
                p.reboot_required_by.len(),
                MAX_CONTAINERS,
            )
        }
        ReportBody::Labels(l) => l.validate(),
        ReportBody::JobEvent(_) | ReportBody::JobResult(_) | ReportBody::AgentStatus(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unity_protocol::latest::{Filesystem, HostFacts};

    #[test]
    fn counts_beyond_any_real_host_are_refused_with_the_reason() {
        let fs = Filesystem {
            mount_point: "/".into(),
            device: "d".into(),
            fs_type: "ext4".into(),
            total_bytes: 1,
            available_bytes: 1,
        };
        let facts = |n: usize| {
            ReportBody::HostFacts(HostFacts {
                hostname: "h".into(),
                os_name: String::new(),
                os_version: String::new(),
                kernel_version: String::new(),
                architecture: String::new(),
                cpu_model: String::new(),
                cpu_logical_cores: 1,
                cpu_physical_cores: None,
                memory_total_bytes: 0,
                memory_available_bytes: 0,
                swap_total_bytes: 0,
                swap_free_bytes: 0,
                filesystems: vec![fs.clone(); n],
                uptime_secs: 0,
                boot_id: String::new(),
                agent_version: String::new(),
            })
        };
        assert_eq!(check(&facts(MAX_OBJECTS)), Ok(()));
        let err = check(&facts(MAX_OBJECTS + 1)).unwrap_err();
        assert!(err.contains("filesystems"), "{err}");
    }
}
