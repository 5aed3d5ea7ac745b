//! ZFS pools: `zpool status` (text and `-j` JSON), `zpool list`, `zfs list`, and a health
//! verdict per pool.
//!
//! The parsers are pure functions over the exact text a tool printed, so every real output
//! we have ever seen (see `../shared/fixtures/zpool/` and `fixtures/zfs/`) is a test case and
//! a fuzz seed. [`run`] is the only place that starts `zpool`. What is supported, and which
//! thresholds the health verdict uses and why, is written down in `docs/storage-health.md`.

mod error;
mod health;
mod list;
mod model;
pub mod run;
mod status;
mod status_json;
mod units;

pub use error::ParseError;
pub use health::assess_pool;
pub use list::{parse_dataset_list, parse_list, parse_list_json};
pub use model::*;
pub use status::parse_status;
pub use status_json::parse_status_json;
