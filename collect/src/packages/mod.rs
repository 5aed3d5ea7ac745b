//! Operating-system packages: pending updates and the reboot-required flag.
//!
//! [`apt`] parses what `apt-get -s` (simulate) prints — pure, tested on real outputs and
//! fuzzed; [`run`] asks apt through the [`crate::runner::CommandRunner`] seam and reads the
//! reboot-required files. dnf can follow as a sibling of `apt` producing the same
//! [`Simulation`].

pub mod apt;
pub mod run;

pub use apt::{ParseError, Planned, Simulation, parse_simulation};
