//! The thin part: read `/proc/mdstat` and sysfs, ask `mdadm --detail`.
//!
//! Paths are parameters so tests (and containers with `/proc` mounted elsewhere) can point
//! them anywhere. A missing `/proc/mdstat` means the md driver is not loaded: reported as
//! [`SourceOutcome::ToolMissing`], the same "this host has none" signal as a missing
//! `zpool`. Outcomes share [`SourceOutcome`] with the ZFS collector.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::detail::parse_detail;
use super::health::assess_array;
use super::mdstat::parse_mdstat;
use super::model::{Detail, Mdstat};
use super::sysfs::read_sysfs;
use crate::runner::CommandRunner;
use crate::source_status::SourceOutcome;
use crate::verdict::Assessment;

pub const PROC_MDSTAT: &str = "/proc/mdstat";
pub const SYSFS_ROOT: &str = "/sys";
pub const MDADM: &str = "mdadm";
/// `mdadm --detail` only reads superblocks; anything slower is a hung device.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Everything one md collection learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MdReport {
    pub outcome: SourceOutcome,
    pub mdstat: Option<Mdstat>,
    pub assessments: Vec<Assessment>,
}

/// Reads and parses `mdstat_path`, reads each array's sysfs attributes under `sysfs_root`
/// (best effort: an unreadable sysfs only loses `mismatch_cnt`), and assesses every array.
pub fn collect(mdstat_path: &Path, sysfs_root: &Path) -> MdReport {
    let text = match std::fs::read_to_string(mdstat_path) {
        Ok(t) => t,
        Err(e) => {
            let program = mdstat_path.display().to_string();
            let outcome = match e.kind() {
                std::io::ErrorKind::NotFound => SourceOutcome::ToolMissing { program },
                std::io::ErrorKind::PermissionDenied => SourceOutcome::PermissionDenied {
                    program,
                    detail: e.to_string(),
                },
                _ => SourceOutcome::Failed {
                    program,
                    exit_code: None,
                    stderr: e.to_string(),
                },
            };
            return MdReport {
                outcome,
                mdstat: None,
                assessments: Vec::new(),
            };
        }
    };
    let mdstat = match parse_mdstat(&text) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(error = %crate::ErrorChain(&e), "/proc/mdstat could not be parsed; report it with the file");
            return MdReport {
                outcome: SourceOutcome::unparseable(&mdstat_path.display().to_string(), &e),
                mdstat: None,
                assessments: vec![Assessment::unknown("md", e.to_string())],
            };
        }
    };
    let assessments = mdstat
        .arrays
        .iter()
        .map(|a| {
            let sysfs = read_sysfs(sysfs_root, &a.name)
                .inspect_err(
                    |e| tracing::debug!(array = %a.name, error = %crate::ErrorChain(&e), "no sysfs attributes"),
                )
                .ok();
            assess_array(a, sysfs.as_ref())
        })
        .collect();
    MdReport {
        outcome: SourceOutcome::Ok,
        mdstat: Some(mdstat),
        assessments,
    }
}

/// `mdadm --detail <device>` (needs root).
pub async fn detail<R: CommandRunner>(runner: &R, device: &str) -> Result<Detail, SourceOutcome> {
    let out = runner.run(MDADM, &["--detail", device], TIMEOUT).await?;
    if out.exit_code != Some(0) {
        let stderr = out.stderr.trim().to_owned();
        if stderr.to_ascii_lowercase().contains("permission denied") {
            return Err(SourceOutcome::PermissionDenied {
                program: MDADM.to_owned(),
                detail: stderr,
            });
        }
        return Err(SourceOutcome::failed(MDADM, &out));
    }
    parse_detail(&out.stdout).map_err(|e| SourceOutcome::unparseable(MDADM, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{CommandOutput, RunError};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/");

    struct Fixed(Result<CommandOutput, fn() -> RunError>);

    impl CommandRunner for Fixed {
        async fn run(
            &self,
            program: &str,
            args: &[&str],
            _: Duration,
        ) -> Result<CommandOutput, RunError> {
            assert_eq!((program, args), (MDADM, &["--detail", "/dev/md127"][..]));
            self.0.clone().map_err(|f| f())
        }
    }

    #[test]
    fn missing_mdstat_means_no_md_driver() {
        let r = collect(Path::new("/nonexistent/mdstat"), Path::new("/nonexistent"));
        assert!(
            matches!(r.outcome, SourceOutcome::ToolMissing { .. }),
            "{r:?}"
        );
    }

    #[test]
    fn fixture_mdstat_is_collected_and_assessed() {
        let path = format!("{FIXTURES}mdstat/raid5-recovery-6-5-UUUUU_.txt");
        let r = collect(Path::new(&path), Path::new("/nonexistent"));
        assert_eq!(r.outcome, SourceOutcome::Ok);
        assert_eq!(r.assessments[0].subject, "md127");
        assert_eq!(r.assessments[0].health, crate::verdict::Health::Critical);
    }

    #[tokio::test]
    async fn detail_through_the_runner() {
        let stdout = std::fs::read_to_string(format!(
            "{FIXTURES}mdadm-detail/raid1-recovering-spare-rebuilding-24pct-faulty-failfast.txt"
        ))
        .unwrap();
        let ok = Fixed(Ok(CommandOutput {
            exit_code: Some(0),
            stdout,
            stderr: String::new(),
        }));
        let d = detail(&ok, "/dev/md127").await.unwrap();
        assert_eq!(d.sync.unwrap().percent, 24);

        let missing = Fixed(Err(|| RunError::NotFound {
            program: MDADM.into(),
        }));
        assert!(matches!(
            detail(&missing, "/dev/md127").await,
            Err(SourceOutcome::ToolMissing { .. })
        ));

        let denied = Fixed(Ok(CommandOutput {
            exit_code: Some(1),
            stdout: String::new(),
            stderr: "mdadm: cannot open /dev/md127: Permission denied\n".into(),
        }));
        assert!(matches!(
            detail(&denied, "/dev/md127").await,
            Err(SourceOutcome::PermissionDenied { .. })
        ));
    }
}
