//! Signed jobs: the controller decides, signs and dispatches; the agent verifies and acts.
//!
//! * [`state`] — a job's life as a pure function of (state, input, now).
//! * [`keys`] — the job-signing key on disk and its rotation (statements agents verify).
//! * [`create`] — a request (API or CLI) → a signed, queued job.
//! * [`dispatch`] — from the queue to the agent's session, across replicas (LISTEN/NOTIFY).
//! * [`outcome`] — acceptance, progress and signed receipts from agents → job rows.
//!
//! `docs/jobs.md` describes the envelope, what the agent checks, the states and the API.

pub mod create;
pub mod dispatch;
pub mod keys;
pub mod outcome;
pub mod state;

pub use create::{CreateJobError, CreatedJob, JobRequest, create_job};
pub use dispatch::Dispatcher;
pub use keys::JobKeys;
pub use state::JobState;
