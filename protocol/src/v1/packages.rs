//! The host's operating-system packages: what updates are pending and whether the host needs a
//! reboot. Designed for any package manager (`manager` names it); apt is the first.

use serde::{Deserialize, Serialize};

use super::storage::SourceStatus;

/// One round of the package source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageReport {
    pub status: SourceStatus,
    /// `apt` (later `dnf`); empty when no package manager was found.
    pub manager: String,
    /// What an upgrade would install now, from the package lists as they are (the agent does
    /// not refresh them for a report; `lists_updated_at_ms` says how fresh they are).
    pub pending: Vec<PendingUpdate>,
    /// Packages an upgrade would hold back (their new version needs a removal or is held).
    pub held_back: Vec<String>,
    /// When the package lists were last refreshed (Unix ms), if known.
    pub lists_updated_at_ms: Option<i64>,
    /// The distribution says a reboot is needed (`/run/reboot-required` on Debian/Ubuntu).
    pub reboot_required: bool,
    /// The packages that asked for it (`/run/reboot-required.pkgs`).
    pub reboot_required_by: Vec<String>,
}

/// One package an upgrade would install or upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingUpdate {
    pub name: String,
    /// Installed version; `None` for a package the upgrade would newly install.
    pub current_version: Option<String>,
    pub new_version: String,
    pub architecture: String,
    /// Where the new version comes from, as the package manager names it
    /// (`Debian-Security:12/stable-security`).
    pub origins: Vec<String>,
    /// The new version comes from a security archive.
    pub security: bool,
}
