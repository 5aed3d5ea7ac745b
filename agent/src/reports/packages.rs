//! The package source as a report: what `unity_collect::packages` read, on the wire.

use unity_collect::packages::run::{self, PackageConfig, PackageState};
use unity_collect::runner::SystemRunner;
use unity_protocol::latest::{PackageReport, PendingUpdate, SourceState, SourceStatus};

/// One round: the simulation (no lock, no change) and the reboot flag.
pub async fn collect(config: &PackageConfig) -> PackageReport {
    to_report(run::collect(&SystemRunner, config).await)
}

pub fn to_report(state: PackageState) -> PackageReport {
    let status = |state, detail: String| SourceStatus { state, detail };
    match state {
        PackageState::Read {
            simulation,
            lists_updated_at_ms,
            reboot,
        } => PackageReport {
            status: status(SourceState::Ok, String::new()),
            manager: "apt".into(),
            pending: simulation
                .installs
                .into_iter()
                .map(|p| PendingUpdate {
                    name: p.name,
                    current_version: p.current,
                    new_version: p.new,
                    architecture: p.architecture,
                    origins: p.origins,
                    security: p.security,
                })
                .collect(),
            held_back: simulation.held_back,
            lists_updated_at_ms,
            reboot_required: reboot.required,
            reboot_required_by: reboot.by,
        },
        PackageState::NotPresent { detail } => PackageReport {
            status: status(SourceState::NotPresent, detail),
            ..empty()
        },
        PackageState::Failed { detail } => PackageReport {
            status: status(SourceState::Failed, detail),
            manager: "apt".into(),
            ..empty()
        },
    }
}

fn empty() -> PackageReport {
    PackageReport {
        status: SourceStatus {
            state: SourceState::Ok,
            detail: String::new(),
        },
        manager: String::new(),
        pending: Vec::new(),
        held_back: Vec::new(),
        lists_updated_at_ms: None,
        reboot_required: false,
        reboot_required_by: Vec::new(),
    }
}
