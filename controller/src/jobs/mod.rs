//! Signed jobs: the controller decides, signs and dispatches; the agent verifies and acts.
//!
//! * [`state`] — a job's life as a pure function of (state, input, now).
//! * [`keys`] — the job-signing key on disk and its rotation (statements agents verify).
//! * [`auto`] — automatic updates where a container's policy and its windows allow.
//! * [`create`] — a request (API or CLI) → a signed, queued job.
//! * [`dispatch`] — from the queue to the agent's session, across replicas (LISTEN/NOTIFY).
//! * [`outcome`] — acceptance, progress and signed receipts from agents → job rows.
//!
//! `docs/jobs.md` describes the envelope, what the agent checks, the states and the API.

pub mod auto;
pub mod create;
pub mod dispatch;
pub mod keys;
pub mod outcome;
pub mod state;

pub use create::{CreateJobError, CreatedJob, JobRequest, create_job};
pub use dispatch::Dispatcher;
pub use keys::JobKeys;
pub use state::JobState;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::jobs::{self as job_store, JobUpdate};
use crate::store::{StoreError, TenantTx};

/// What a cancellation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    Done,
    /// Already in a state cancellation cannot change (it may be running on the host).
    Refused {
        state: String,
        reason: &'static str,
    },
    NotFound,
}

/// Cancels job `id` unless it was sent to its host already (API and CLI alike).
pub async fn cancel(
    tx: &mut TenantTx,
    id: Uuid,
    by: &str,
    now: OffsetDateTime,
) -> Result<Cancelled, StoreError> {
    let Some(row) = job_store::lock(tx, id).await? else {
        return Ok(Cancelled::NotFound);
    };
    match state::transition(row.facts(), state::Input::Cancel, now) {
        state::Outcome::Move(state) => {
            let detail = format!("cancelled by {by}");
            job_store::update(
                tx,
                id,
                &JobUpdate::Closed {
                    state,
                    detail: &detail,
                },
            )
            .await?;
            tracing::info!(job_id = %id, by, "job cancelled");
            Ok(Cancelled::Done)
        }
        state::Outcome::Refuse(reason) => Ok(Cancelled::Refused {
            state: row.state,
            reason,
        }),
        state::Outcome::Ignore => Ok(Cancelled::Done),
    }
}
