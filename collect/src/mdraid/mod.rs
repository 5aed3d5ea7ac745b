//! Linux software RAID (md): `/proc/mdstat`, `mdadm --detail`, the per-array sysfs files,
//! and a health verdict per array.
//!
//! Parsers are pure functions over the text the kernel or `mdadm` printed; [`run`] is the
//! only place that reads files or starts `mdadm`. The formats handled, the health rules and
//! what could not be exercised on a real array are written down in `docs/storage-health.md`.

mod detail;
mod error;
mod health;
mod mdstat;
mod model;
pub mod run;
mod sysfs;

pub use detail::parse_detail;
pub use error::ParseError;
pub use health::{assess_array, assess_detail};
pub use mdstat::parse_mdstat;
pub use model::*;
pub use sysfs::{SysfsError, SysfsFiles, parse_sysfs, read_sysfs};
