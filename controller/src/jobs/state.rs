//! A job's life on the controller, as a pure function of (state, input, now).
//!
//! ```text
//!  queued ──dispatch──► dispatched ──started──► running ──finished──► succeeded | failed
//!    │  │                  │   │                  │                   | rolled_back
//!    │  └─expire─► expired ◄┘   └──refused──► refused                 (from dispatched too)
//!    └─cancel──► cancelled
//! ```
//! Every change to a job row goes through [`transition`]; the store only locks the row and
//! writes what this returns, so the rules live (and are tested) in one place. Terminal states
//! never change, with one exception: a signed result from the host beats `expired`, because
//! `expired` only ever meant "we heard nothing", and the receipt is evidence of what happened.

use std::time::Duration;

use time::OffsetDateTime;
use unity_protocol::latest::JobEnd;

/// How long after its expiry a dispatched job that the agent never acknowledged is given up
/// on. The agent refuses an expired job itself, so this only matters for a host that never
/// comes back; the margin covers the agent's allowed clock skew.
pub const UNACKNOWLEDGED_GRACE: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Dispatched,
    Running,
    Succeeded,
    Failed,
    RolledBack,
    Refused,
    Expired,
    Cancelled,
}

unity_protocol::word_enum!(JobState, UnknownJobState, "job state", {
    Queued => "queued",
    Dispatched => "dispatched",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    RolledBack => "rolled_back",
    Refused => "refused",
    Expired => "expired",
    Cancelled => "cancelled",
});

impl JobState {
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            JobState::Queued | JobState::Dispatched | JobState::Running
        )
    }

    /// The state a host-reported end maps to.
    pub fn from_end(end: JobEnd) -> Self {
        match end {
            JobEnd::Succeeded => JobState::Succeeded,
            JobEnd::Failed => JobState::Failed,
            JobEnd::RolledBack => JobState::RolledBack,
            JobEnd::Refused => JobState::Refused,
        }
    }
}

/// What the row knows that the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFacts {
    pub state: JobState,
    pub not_before: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The agent confirmed it journaled the job.
    pub accepted: bool,
}

/// Something that happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A controller is about to send it to the connected agent.
    Dispatch,
    /// The same, again: the previous delivery got no answer.
    Redeliver,
    /// The agent verified and journaled it.
    Accepted,
    /// The agent began to act.
    Started,
    /// The host's signed result.
    Finished(JobEnd),
    /// The agent refused it (a signed receipt says why).
    Refused,
    /// An operator cancelled it.
    Cancel,
    /// Time passed: expire what can no longer run.
    Sweep,
}

/// What to do with the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Write this state (it may equal the current one, e.g. `Accepted` keeps `dispatched`).
    Move(JobState),
    /// Nothing to change: a duplicate or late message, or a sweep with nothing due.
    Ignore,
    /// Not allowed from here; the caller reports it (an API 409, a log line).
    Refuse(&'static str),
}

/// The rules. `now` is the controller's clock.
pub fn transition(job: JobFacts, input: Input, now: OffsetDateTime) -> Outcome {
    use JobState as S;
    let expired = now >= job.expires_at;
    match (job.state, input) {
        (S::Queued, Input::Dispatch) if expired => Outcome::Move(S::Expired),
        (S::Queued, Input::Dispatch) if now < job.not_before => {
            Outcome::Refuse("the job is not valid yet")
        }
        (S::Queued, Input::Dispatch) => Outcome::Move(S::Dispatched),
        (S::Dispatched, Input::Redeliver) if !job.accepted => Outcome::Move(S::Dispatched),
        (S::Dispatched | S::Running, Input::Redeliver) => Outcome::Ignore,
        (S::Dispatched, Input::Accepted) => Outcome::Move(S::Dispatched),
        (S::Dispatched, Input::Started) => Outcome::Move(S::Running),
        (S::Dispatched | S::Running, Input::Finished(end)) => Outcome::Move(S::from_end(end)),
        // A late receipt for a job we gave up on: the host's word wins.
        (S::Expired, Input::Finished(end)) => Outcome::Move(S::from_end(end)),
        (S::Dispatched, Input::Refused) => Outcome::Move(S::Refused),
        (S::Queued, Input::Cancel) => Outcome::Move(S::Cancelled),
        (S::Dispatched | S::Running, Input::Cancel) => Outcome::Refuse(
            "the job was already sent to the host and may be running; it can no longer be cancelled",
        ),
        (S::Queued, Input::Sweep) if expired => Outcome::Move(S::Expired),
        (S::Dispatched, Input::Sweep)
            if !job.accepted && now >= job.expires_at + UNACKNOWLEDGED_GRACE =>
        {
            Outcome::Move(S::Expired)
        }
        (state, Input::Cancel) if state.is_terminal() => Outcome::Refuse("the job already ended"),
        // Duplicates, late messages and answers to deliveries this row never made (a queued
        // row answered by an agent means someone rewrote the row): nothing to change.
        _ => Outcome::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);

    fn job(state: JobState) -> JobFacts {
        JobFacts {
            state,
            not_before: T0,
            expires_at: T0 + time::Duration::HOUR,
            accepted: false,
        }
    }

    #[test]
    fn the_happy_path() {
        let now = T0 + time::Duration::SECOND;
        let mut facts = job(JobState::Queued);
        for (input, expected) in [
            (Input::Dispatch, JobState::Dispatched),
            (Input::Accepted, JobState::Dispatched),
            (Input::Started, JobState::Running),
            (Input::Finished(JobEnd::Succeeded), JobState::Succeeded),
        ] {
            assert_eq!(transition(facts, input, now), Outcome::Move(expected));
            facts.state = expected;
        }
    }

    #[test]
    fn every_end_maps_to_its_state_from_dispatched_and_running() {
        for from in [JobState::Dispatched, JobState::Running] {
            for (end, state) in [
                (JobEnd::Succeeded, JobState::Succeeded),
                (JobEnd::Failed, JobState::Failed),
                (JobEnd::RolledBack, JobState::RolledBack),
                (JobEnd::Refused, JobState::Refused),
            ] {
                assert_eq!(
                    transition(job(from), Input::Finished(end), T0),
                    Outcome::Move(state)
                );
            }
        }
    }

    #[test]
    fn terminal_states_never_change_except_expired_by_a_receipt() {
        for state in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for input in [
                Input::Dispatch,
                Input::Redeliver,
                Input::Accepted,
                Input::Started,
                Input::Refused,
                Input::Sweep,
            ] {
                assert_eq!(
                    transition(job(state), input, T0 + time::Duration::DAY),
                    Outcome::Ignore,
                    "{state} {input:?}"
                );
            }
            let finished = transition(job(state), Input::Finished(JobEnd::Failed), T0);
            if state == JobState::Expired {
                assert_eq!(finished, Outcome::Move(JobState::Failed));
            } else {
                assert_eq!(finished, Outcome::Ignore, "{state}");
            }
            assert!(matches!(
                transition(job(state), Input::Cancel, T0),
                Outcome::Refuse(_)
            ));
        }
    }

    #[test]
    fn cancel_only_before_dispatch() {
        assert_eq!(
            transition(job(JobState::Queued), Input::Cancel, T0),
            Outcome::Move(JobState::Cancelled)
        );
        for state in [JobState::Dispatched, JobState::Running] {
            assert!(matches!(
                transition(job(state), Input::Cancel, T0),
                Outcome::Refuse(_)
            ));
        }
    }

    #[test]
    fn expiry_of_queued_and_unacknowledged_jobs() {
        let late = T0 + time::Duration::HOUR;
        assert_eq!(
            transition(job(JobState::Queued), Input::Sweep, late),
            Outcome::Move(JobState::Expired)
        );
        assert_eq!(
            transition(
                job(JobState::Queued),
                Input::Sweep,
                late - time::Duration::SECOND
            ),
            Outcome::Ignore
        );
        assert_eq!(
            transition(job(JobState::Queued), Input::Dispatch, late),
            Outcome::Move(JobState::Expired)
        );
        // Dispatched but never acknowledged: only after the grace.
        assert_eq!(
            transition(job(JobState::Dispatched), Input::Sweep, late),
            Outcome::Ignore
        );
        let given_up = late + time::Duration::try_from(UNACKNOWLEDGED_GRACE).unwrap();
        assert_eq!(
            transition(job(JobState::Dispatched), Input::Sweep, given_up),
            Outcome::Move(JobState::Expired)
        );
        // Acknowledged jobs belong to the agent: it will report, whatever the clock says.
        let accepted = JobFacts {
            accepted: true,
            ..job(JobState::Dispatched)
        };
        assert_eq!(
            transition(accepted, Input::Sweep, given_up),
            Outcome::Ignore
        );
        assert_eq!(
            transition(job(JobState::Running), Input::Sweep, given_up),
            Outcome::Ignore
        );
    }

    #[test]
    fn not_yet_valid_jobs_wait_and_redelivery_only_while_unacknowledged() {
        let early = JobFacts {
            not_before: T0 + time::Duration::MINUTE,
            ..job(JobState::Queued)
        };
        assert!(matches!(
            transition(early, Input::Dispatch, T0),
            Outcome::Refuse(_)
        ));
        assert_eq!(
            transition(job(JobState::Dispatched), Input::Redeliver, T0),
            Outcome::Move(JobState::Dispatched)
        );
        let accepted = JobFacts {
            accepted: true,
            ..job(JobState::Dispatched)
        };
        assert_eq!(transition(accepted, Input::Redeliver, T0), Outcome::Ignore);
    }

    #[test]
    fn states_parse_back_from_their_names() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        assert!("done".parse::<JobState>().is_err());
    }
}
