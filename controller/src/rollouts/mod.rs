//! Rollouts: one job kind over many hosts in waves, each wave starting only when the one
//! before ended within its failure budget (what Mender's phased deployments do), never
//! touching a host whose storage is degraded unless forced, and respecting maintenance
//! windows like automatic updates do.
//!
//! * [`plan`] — pure: wave sizes and the next actions for a wave.
//! * [`control`] — pause, resume, abort: one rule for the API and the console.
//! * [`create`] — a request (API) into a rollout with its hosts fixed and placed in waves.
//! * [`step`] — the runner: every [`TICK`] (and on every replica at once — rollouts are
//!   locked `FOR UPDATE SKIP LOCKED`, so each is stepped by one), gathers the facts for
//!   `plan::decide` and applies its actions, creating jobs through the one job path.

pub mod control;
pub mod create;
pub mod plan;

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error_chain;
use crate::jobs::create::JobRequest;
use crate::jobs::{JobKeys, create_job};
use crate::store::host_rows::HostScope;
use crate::store::rollouts::{self, Rollout};
use crate::store::storage::alerts::{self, NewAlert, ObjectKind, Severity};
use crate::store::{Store, StoreError, TenantTx, policies};
use plan::{Action, HostState, HostView};

/// How often running rollouts are stepped: jobs take seconds to minutes, so a wave ending is
/// noticed within this.
pub const TICK: Duration = Duration::from_secs(2);

pub async fn run_forever(store: Store, keys: JobKeys, tick: Duration) {
    loop {
        tokio::time::sleep(tick).await;
        if let Err(error) = step_all(&store, &keys, OffsetDateTime::now_utc()).await {
            tracing::warn!(error = %error_chain(&error), "stepping rollouts failed; the next tick retries");
        }
    }
}

/// Starts the rollouts of schedules whose window opened, then steps every running rollout
/// of every tenant once.
pub async fn step_all(
    store: &Store,
    keys: &JobKeys,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for tenant_id in policies::tenant_ids(store).await? {
        let mut tx = store.tenant_tx(tenant_id).await?;
        start_due_schedules(&mut tx, tenant_id, now).await?;
        for rollout in rollouts::lock_running(&mut tx).await? {
            step(&mut tx, keys, tenant_id, &rollout, now).await?;
        }
        tx.commit()
            .await
            .map_err(crate::store::query_error("committing rollout steps"))?;
    }
    Ok(())
}

/// One rollout per opening of each schedule's window; what came of it is kept on the
/// schedule (the rollout's id, or why none could be made — e.g. no host matches today).
async fn start_due_schedules(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for (schedule, closes) in rollouts::due_schedules(tx, now).await? {
        let request = create::RolloutRequest {
            kind: schedule.kind.clone(),
            params: schedule.params.0.clone(),
            hosts: serde_json::from_value(schedule.selector.0.clone()).unwrap_or_default(),
            waves: schedule.waves.0.as_array().cloned(),
            failure_budget: u32::try_from(schedule.failure_budget).ok(),
            force: schedule.force,
            job_expires_in_secs: u64::try_from(schedule.job_lifetime_secs).ok(),
        };
        sqlx::query("SAVEPOINT rollout_schedule")
            .execute(&mut **tx)
            .await
            .map_err(crate::store::query_error("starting a scheduled rollout"))?;
        let origin = create::Origin {
            schedule_id: Some(schedule.id),
            deadline: Some(closes),
        };
        let by = format!("schedule:{}", schedule.id);
        let result = match create::create_rollout(tx, tenant_id, &request, &by, origin).await {
            Ok(rollout) => {
                sqlx::query("RELEASE SAVEPOINT rollout_schedule")
                    .execute(&mut **tx)
                    .await
                    .map_err(crate::store::query_error("keeping a scheduled rollout"))?;
                tracing::info!(schedule_id = %schedule.id, rollout_id = %rollout.id, name = %schedule.name,
                    "scheduled rollout started");
                format!("started rollout {}", rollout.id)
            }
            Err(error) => {
                sqlx::query("ROLLBACK TO SAVEPOINT rollout_schedule")
                    .execute(&mut **tx)
                    .await
                    .map_err(crate::store::query_error("undoing a scheduled rollout"))?;
                tracing::warn!(schedule_id = %schedule.id, name = %schedule.name,
                    error = %error_chain(&error), "scheduled rollout not started");
                format!("not started: {}", error_chain(&error))
            }
        };
        rollouts::schedule_started(tx, schedule.id, now, &result).await?;
    }
    Ok(())
}

/// One step of one rollout (locked by the caller's transaction).
async fn step(
    tx: &mut TenantTx,
    keys: &JobKeys,
    tenant_id: Uuid,
    rollout: &Rollout,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    if rollout.deadline.is_some_and(|deadline| now > deadline) {
        let skipped = rollouts::skip_waiting(
            tx,
            rollout.id,
            "its schedule's window closed before its turn",
        )
        .await?;
        if skipped > 0 {
            tracing::info!(rollout_id = %rollout.id, skipped, "window closed; hosts not started are skipped");
        }
    }
    let waves = rollouts::wave_count(tx, rollout.id).await?;
    let wave = rollout.current_wave;
    let mut views = Vec::new();
    for host in rollouts::hosts(tx, rollout.id, Some(wave)).await? {
        let state = host.state.parse().unwrap_or_else(|e| {
            tracing::warn!(rollout_id = %rollout.id, host_id = %host.host_id, error = %e, "unknown host state; treating the host as failed");
            HostState::Failed
        });
        let waiting = matches!(state, HostState::Pending | HostState::WaitingWindow);
        views.push(HostView {
            host_id: host.host_id,
            state,
            job_state: host.job_state.clone(),
            unhealthy: if waiting {
                rollouts::unhealthy_reason(tx, host.host_id).await?
            } else {
                None
            },
            in_window: !waiting || policies::may_update_at(tx, host.host_id, now).await?,
        });
    }
    let actions = plan::decide(
        &views,
        usize::try_from(wave).unwrap_or(0),
        usize::try_from(waves).unwrap_or(0),
        usize::try_from(rollout.failure_budget).unwrap_or(0),
        rollout.force,
    );
    for action in actions {
        apply(tx, keys, tenant_id, rollout, wave, action, now).await?;
    }
    Ok(())
}

async fn apply(
    tx: &mut TenantTx,
    keys: &JobKeys,
    tenant_id: Uuid,
    rollout: &Rollout,
    wave: i32,
    action: Action,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let id = rollout.id;
    match action {
        Action::Dispatch(host_id) => {
            let request = JobRequest {
                host_id,
                kind: rollout.kind.clone(),
                params: rollout.params.0.clone(),
                expires_in_secs: u64::try_from(rollout.job_lifetime_secs).ok(),
                not_before: None,
            };
            // A job that cannot be made (the host's target busy, a container missing) fails
            // this host only: the savepoint keeps the rest of the step.
            sqlx::query("SAVEPOINT rollout_job")
                .execute(&mut **tx)
                .await
                .map_err(crate::store::query_error("starting a rollout job"))?;
            let by = format!("rollout:{id}");
            match create_job(tx, keys, tenant_id, &request, &by, now).await {
                Ok(job) => {
                    sqlx::query("RELEASE SAVEPOINT rollout_job")
                        .execute(&mut **tx)
                        .await
                        .map_err(crate::store::query_error("keeping a rollout job"))?;
                    tracing::info!(rollout_id = %id, %host_id, job_id = %job.id, wave, "rollout dispatched a job");
                    rollouts::set_host(tx, id, host_id, "dispatched", Some(job.id), None).await?;
                }
                Err(error) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT rollout_job")
                        .execute(&mut **tx)
                        .await
                        .map_err(crate::store::query_error("undoing a rollout job"))?;
                    let reason = format!("no job could be made: {}", error_chain(&error));
                    tracing::warn!(rollout_id = %id, %host_id, %reason, "rollout host failed");
                    rollouts::set_host(tx, id, host_id, "failed", None, Some(&reason)).await?;
                }
            }
        }
        Action::WaitForWindow(host_id) => {
            rollouts::set_host(
                tx,
                id,
                host_id,
                "waiting_window",
                None,
                Some("outside its maintenance windows"),
            )
            .await?;
        }
        Action::Defer { host_id, reason } => {
            tracing::info!(rollout_id = %id, %host_id, %reason, "rollout deferred a host");
            rollouts::set_host(tx, id, host_id, "deferred", None, Some(&reason)).await?;
        }
        Action::Finished {
            host_id,
            succeeded,
            job_state,
        } => {
            let (state, reason) = if succeeded {
                ("succeeded", None)
            } else {
                ("failed", Some(format!("the job ended {job_state}")))
            };
            rollouts::set_host(tx, id, host_id, state, None, reason.as_deref()).await?;
        }
        Action::NextWave => {
            tracing::info!(rollout_id = %id, wave = wave + 2, "rollout wave starts");
            rollouts::set_state(tx, id, "running", wave + 1, None).await?;
        }
        Action::Complete => {
            tracing::info!(rollout_id = %id, "rollout completed");
            rollouts::set_state(tx, id, "completed", wave, None).await?;
        }
        Action::Halt { reason, host_id } => {
            tracing::warn!(rollout_id = %id, %reason, "rollout halted");
            rollouts::set_state(tx, id, "halted", wave, Some(&reason)).await?;
            let alert = NewAlert {
                object_kind: ObjectKind::Rollout,
                object_id: Some(id),
                object_name: format!("{} rollout", rollout.kind),
                kind: "rollout_halted",
                previous: Some("running".into()),
                current: "halted".into(),
                severity: Severity::Critical,
                message: format!("{reason}; later waves were not started (resume or abort it)"),
            };
            alerts::insert(tx, HostScope { tenant_id, host_id }, &alert, now).await?;
        }
    }
    Ok(())
}
