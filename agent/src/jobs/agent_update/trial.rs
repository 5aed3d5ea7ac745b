//! The trial of a new release, as the journal records it, and what a starting agent makes of
//! it. Pure: the phase, its data, and what this process is are passed in.
//!
//! The installed binary (the one systemd starts, the *entry*) is replaced only once the new
//! release has proved itself by reaching `Welcome`. Until then the release runs from the
//! state directory, started by `exec` from the old agent, and every way it can fail ends with
//! the old binary running again:
//! * it crashes or is killed → systemd starts the entry, which is still the old binary;
//! * it runs but does not reach `Welcome` in time (cannot connect, refused, hung) → it
//!   records why and `exec`s the entry (a watchdog thread does it even if its runtime hangs);
//! * the host loses power meanwhile → it boots the old binary.
//!
//! The old binary, finding the trial unfinished, ends the job `rolled_back`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Phase: the release passed its checks and is being started on trial.
pub const STARTING: &str = "starting_release";
/// Phase: the release gave up its trial (the reason is in the data); the entry runs again.
pub const FAILED: &str = "release_failed";
/// Phase: the release reached `Welcome` and replaced the entry.
pub const PROMOTED: &str = "promoted";

/// What the journal holds for a trial (`STARTING`'s data, carried into the later phases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// The new binary, in the state directory.
    pub release: PathBuf,
    /// The installed binary systemd starts.
    pub entry: PathBuf,
    pub version: String,
    pub previous_version: String,
    /// Unix ms by which the release must have reached `Welcome`.
    pub deadline_ms: i64,
    /// Why the trial failed (`FAILED`).
    #[serde(default)]
    pub failure: Option<String>,
}

/// What a starting agent does about an interrupted `agent_update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This process is the release on trial: wait for `Welcome`, then promote it.
    OnTrial(Trial),
    /// The release replaced the entry: the job succeeded.
    Promoted(Trial),
    /// This is the previous agent again: the job is rolled back, for this reason.
    RolledBack(Trial, String),
    /// Interrupted before a trial began (nothing was started or replaced).
    NotStarted,
}

/// Judges the journal's `phase`/`data` from the point of view of a process running
/// `running_version` from `running_exe`.
pub fn judge(
    phase: Option<&str>,
    data: &serde_json::Value,
    running_version: &str,
    running_exe: &Path,
) -> Verdict {
    let Some(trial) = serde_json::from_value::<Trial>(data.clone()).ok() else {
        return Verdict::NotStarted;
    };
    match phase {
        Some(PROMOTED) => Verdict::Promoted(trial),
        Some(FAILED) => {
            let reason = trial
                .failure
                .clone()
                .unwrap_or_else(|| "the new agent gave up its trial".into());
            Verdict::RolledBack(trial, reason)
        }
        Some(STARTING)
            if running_version == trial.version && same_file(running_exe, &trial.release) =>
        {
            Verdict::OnTrial(trial)
        }
        Some(STARTING) => {
            let reason = format!(
                "agent {} exited before it reached the controller (it crashed, was killed, or \
                 the host restarted); agent {running_version} runs again",
                trial.version
            );
            Verdict::RolledBack(trial, reason)
        }
        _ => Verdict::NotStarted,
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    a == b || canonical(a) == canonical(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn trial() -> Trial {
        Trial {
            release: "/var/lib/unity-agent/releases/unity-agent-0.3.1".into(),
            entry: "/usr/local/bin/unity-agent".into(),
            version: "0.3.1".into(),
            previous_version: "0.3.0".into(),
            deadline_ms: 1_000,
            failure: None,
        }
    }

    fn data(t: &Trial) -> serde_json::Value {
        serde_json::to_value(t).unwrap()
    }

    #[test]
    fn the_release_itself_is_on_trial_and_anything_else_rolls_back() {
        let t = trial();
        assert_eq!(
            judge(Some(STARTING), &data(&t), "0.3.1", &t.release),
            Verdict::OnTrial(t.clone())
        );
        // The old binary, started by systemd after the release died.
        match judge(Some(STARTING), &data(&t), "0.3.0", &t.entry) {
            Verdict::RolledBack(_, reason) => assert!(reason.contains("exited"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // Same version from another path (an operator's copy) is not the trial.
        assert!(matches!(
            judge(Some(STARTING), &data(&t), "0.3.1", Path::new("/tmp/x")),
            Verdict::RolledBack(..)
        ));
    }

    #[test]
    fn failed_and_promoted_trials_end_the_job_whoever_reads_them() {
        let failed = Trial {
            failure: Some("no Welcome within 60 s".into()),
            ..trial()
        };
        assert_eq!(
            judge(Some(FAILED), &data(&failed), "0.3.0", &failed.entry),
            Verdict::RolledBack(failed.clone(), "no Welcome within 60 s".into())
        );
        let t = trial();
        assert_eq!(
            judge(Some(PROMOTED), &data(&t), "0.3.1", &t.entry),
            Verdict::Promoted(t.clone())
        );
        assert_eq!(
            judge(
                Some("downloading"),
                &serde_json::json!({}),
                "0.3.0",
                &t.entry
            ),
            Verdict::NotStarted
        );
        assert_eq!(
            judge(None, &serde_json::Value::Null, "0.3.0", &t.entry),
            Verdict::NotStarted
        );
    }
}
