//! What an operator asks of a running rollout — pause, resume, abort — as one transition
//! rule both the API and the console apply, so the two can never disagree about what a
//! halted rollout's "resume" means.

use uuid::Uuid;

use crate::store::rollouts;
use crate::store::{StoreError, TenantTx};

/// What the operator asks of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// No new jobs start; running ones finish.
    Pause,
    /// A paused rollout runs again; a halted one accepts its failed wave and goes on.
    Resume,
    /// Hosts not yet started are skipped; jobs already dispatched finish.
    Abort,
}

impl Control {
    pub fn verb(self) -> &'static str {
        match self {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Abort => "abort",
        }
    }

    /// What a button says.
    pub fn label(self) -> &'static str {
        match self {
            Control::Pause => "Pause",
            Control::Resume => "Resume",
            Control::Abort => "Abort",
        }
    }

    /// From a path segment (`/rollouts/{id}/pause`).
    pub fn from_verb(verb: &str) -> Option<Self> {
        match verb {
            "pause" => Some(Control::Pause),
            "resume" => Some(Control::Resume),
            "abort" => Some(Control::Abort),
            _ => None,
        }
    }

    /// Whether it applies to a rollout in `state` (what the console offers as buttons).
    pub fn applies_to(self, state: &str) -> bool {
        matches!(
            (self, state),
            (Control::Pause, "running")
                | (Control::Resume, "paused" | "halted")
                | (Control::Abort, "running" | "paused" | "halted")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no such rollout")]
    NotFound,
    #[error("the rollout is {state}; {verb} does not apply")]
    DoesNotApply { state: String, verb: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies `control` to rollout `id` (locked for the transaction), recording `by` in the
/// reason. The caller commits.
pub async fn apply(
    tx: &mut TenantTx,
    id: Uuid,
    control: Control,
    by: &str,
) -> Result<(), ControlError> {
    let rollout = rollouts::lock(tx, id)
        .await?
        .ok_or(ControlError::NotFound)?;
    let wave = rollout.current_wave;
    if !control.applies_to(&rollout.state) {
        return Err(ControlError::DoesNotApply {
            state: rollout.state,
            verb: control.verb(),
        });
    }
    match (control, rollout.state.as_str()) {
        (Control::Pause, _) => {
            rollouts::set_state(tx, id, "paused", wave, Some(&format!("paused by {by}"))).await?;
        }
        // Resuming a halted rollout accepts the failed wave: the next one starts.
        (Control::Resume, "halted") => {
            let waves = rollouts::wave_count(tx, id).await?;
            if wave + 1 < waves {
                rollouts::set_state(tx, id, "running", wave + 1, None).await?;
            } else {
                rollouts::set_state(
                    tx,
                    id,
                    "completed",
                    wave,
                    Some(&format!("last wave's failures accepted by {by}")),
                )
                .await?;
            }
        }
        (Control::Resume, _) => rollouts::set_state(tx, id, "running", wave, None).await?,
        (Control::Abort, _) => {
            let reason = format!("aborted by {by}");
            rollouts::skip_waiting(tx, id, &reason).await?;
            rollouts::set_state(tx, id, "aborted", wave, Some(&reason)).await?;
        }
    }
    tracing::info!(rollout_id = %id, ?control, by, "rollout control");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_control_applies_only_where_it_means_something() {
        for state in ["running", "paused", "halted", "aborted", "completed"] {
            let offered: Vec<_> = [Control::Pause, Control::Resume, Control::Abort]
                .into_iter()
                .filter(|c| c.applies_to(state))
                .map(Control::verb)
                .collect();
            let expected: &[&str] = match state {
                "running" => &["pause", "abort"],
                "paused" | "halted" => &["resume", "abort"],
                _ => &[],
            };
            assert_eq!(offered, expected, "{state}");
        }
        for c in [Control::Pause, Control::Resume, Control::Abort] {
            assert_eq!(Control::from_verb(c.verb()), Some(c));
        }
        assert_eq!(Control::from_verb("delete"), None);
    }
}
