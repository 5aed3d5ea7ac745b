//! `container_update`: recreate a container on a new image with the same configuration,
//! prove the new one healthy, and put the old one back if it does not.
//!
//! ```text
//! check (exists, runs the expected image, running, same repository) ─► pull (agent's creds)
//!   ─► old: restart policy "no", stop, rename to <name>-unity-old-<job>   [checkpoint]
//!   ─► new: create (recreate::plan), connect networks, start              [checkpoint]
//!   ─► health gate (gate::Gate)
//!        pass ─► remove old                                   ─► succeeded
//!        fail ─► remove new, rename old back, restore policy,
//!                start old, gate old                          ─► rolled_back (or failed, loudly)
//! ```
//! Every step with a side effect is journaled first, so an agent killed at any point finds,
//! on its next start, what to undo (`recover`): before the gate passed it rolls back; after,
//! it finishes the clean-up.

pub mod engine;
pub mod gate;
pub mod recreate;

use std::time::{Duration, Instant};

use bollard::models::{ContainerInspectResponse, RestartPolicy, RestartPolicyNameEnum};
use serde::{Deserialize, Serialize};
use unity_collect::containers::ImageReference;
use unity_collect::databases::identify::recognise_image;
use unity_collect::databases::{ListenAddr, ProbeOutcome};
use unity_protocol::latest::{ContainerUpdateParams, JobEnd, JobEventKind, JobRefusalReason};

use super::{Ending, JobContext};
use engine::{Engine, Lookup};
use gate::{Facts, Gate, Probe, Verdict};

/// How often the gate looks at the container.
const POLL: Duration = Duration::from_millis(500);
/// Grace for stopping a container that failed its gate (it is removed anyway).
const FAILED_STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of the failing container's output kept as evidence.
const LOG_LINES: usize = 20;

/// What recovery needs to know, journaled before each step with a side effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    endpoint: String,
    name: String,
    old_id: String,
    old_image_id: String,
    backup_name: String,
    /// The old container's restart policy, restored on rollback.
    restart_policy: Option<String>,
    restart_retries: Option<i64>,
    new_id: Option<String>,
    new_image_id: String,
    /// The local tag moved to the new image (so the container keeps following its tag);
    /// moved back on rollback.
    retagged: Option<String>,
}

/// Phases, in order; the journal holds the last one begun.
const PHASE_REPLACING: &str = "replacing_old";
const PHASE_STARTING: &str = "starting_new";
const PHASE_GATE: &str = "health_gate";
const PHASE_CLEANUP: &str = "removing_old";

pub async fn run(ctx: &mut JobContext, p: &ContainerUpdateParams) -> Ending {
    let config = ctx.options().containers.clone();
    let (engine, old) = match Engine::find(&config, &p.container).await {
        Ok(found) => found,
        Err(detail) => {
            return Ending::new(
                JobEnd::Failed,
                format!("nothing changed: {detail}"),
                serde_json::json!({ "container": p.container }),
            );
        }
    };
    if let Err(ending) = preflight(ctx, p, &old) {
        return ending;
    }
    let old_id = old.id.clone().unwrap_or_default();
    let old_image_id = old.image.clone().unwrap_or_default();
    ctx.event(
        JobEventKind::Progress,
        format!("pulling {}", p.image),
        serde_json::json!({ "engine": engine.endpoint, "container_id": old_id }),
    );
    let pull_timeout = ctx.options().pull_timeout;
    if let Err(detail) = engine.pull(&p.image, &config, pull_timeout).await {
        return Ending::new(
            JobEnd::Failed,
            format!("nothing changed: could not pull {}: {detail}", p.image),
            serde_json::json!({ "image": p.image, "error": detail }),
        );
    }
    let new_image = match engine.inspect_image(&p.image).await {
        Ok(Lookup::Found(image)) => image,
        Ok(Lookup::Missing) => {
            return Ending::new(
                JobEnd::Failed,
                format!(
                    "nothing changed: {} was pulled but the engine does not list it",
                    p.image
                ),
                serde_json::json!({}),
            );
        }
        Err(detail) => {
            return Ending::new(
                JobEnd::Failed,
                format!("nothing changed: {detail}"),
                serde_json::json!({}),
            );
        }
    };
    let new_image_id = new_image.id.clone().unwrap_or_default();
    if new_image_id == old_image_id {
        return Ending::new(
            JobEnd::Succeeded,
            format!("already runs {}: nothing to do", p.image),
            serde_json::json!({ "image_id": new_image_id, "changed": false }),
        );
    }
    let old_image = match engine.inspect_image(&old_image_id).await {
        Ok(Lookup::Found(image)) => image.config,
        _ => None,
    };
    let configured = old
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    // The new container names the tag, not the digest, so later update checks still follow
    // the tag; the tag is pointed at exactly the pulled digest first.
    let create_ref = tracking_reference(&p.image, &configured);
    if create_ref != p.image
        && let Err(detail) = engine.tag(&new_image_id, &create_ref).await
    {
        return Ending::new(
            JobEnd::Failed,
            format!("nothing changed: could not tag the pulled image as {create_ref}: {detail}"),
            serde_json::json!({}),
        );
    }
    let plan = match recreate::plan(&old, old_image.as_ref(), &create_ref) {
        Ok(plan) => plan,
        Err(e) => {
            return Ending::new(
                JobEnd::Failed,
                format!("nothing changed: cannot recreate the container: {e}"),
                serde_json::json!({}),
            );
        }
    };
    let policy = old
        .host_config
        .as_ref()
        .and_then(|h| h.restart_policy.clone());
    let mut checkpoint = Checkpoint {
        endpoint: engine.endpoint.clone(),
        name: plan.name.clone(),
        old_id: old_id.clone(),
        old_image_id: old_image_id.clone(),
        backup_name: format!(
            "{}-unity-old-{}",
            plan.name,
            &ctx.job_id().simple().to_string()[..8]
        ),
        restart_policy: policy
            .as_ref()
            .and_then(|p| p.name.as_ref())
            .map(|n| n.to_string()),
        restart_retries: policy.as_ref().and_then(|p| p.maximum_retry_count),
        new_id: None,
        new_image_id: new_image_id.clone(),
        retagged: (create_ref != p.image).then(|| create_ref.clone()),
    };
    if let Err(ending) = save(ctx, PHASE_REPLACING, &checkpoint) {
        return ending;
    }
    ctx.event(
        JobEventKind::Progress,
        format!(
            "stopping {} (kept as {})",
            plan.name, checkpoint.backup_name
        ),
        serde_json::json!({ "old_id": old_id }),
    );
    let stop_grace = Duration::from_secs(u64::from(p.stop_timeout_secs));
    if let Err(detail) = replace_old(&engine, &checkpoint, stop_grace).await {
        return finish_failed_update(ctx, &engine, p, &checkpoint, None, &detail).await;
    }
    // The new container, under the old name.
    let new_id = match engine.create(&plan.name, plan.body.clone()).await {
        Ok(id) => id,
        Err(detail) => {
            let reason = format!("could not create the new container: {detail}");
            return finish_failed_update(ctx, &engine, p, &checkpoint, None, &reason).await;
        }
    };
    checkpoint.new_id = Some(new_id.clone());
    if let Err(ending) = save(ctx, PHASE_STARTING, &checkpoint) {
        // Without a journal we cannot promise recovery: undo now.
        let _ = rollback(&engine, p, &checkpoint).await;
        return ending;
    }
    match engine.inspect(&new_id).await {
        Ok(Lookup::Found(created)) if created.image.as_deref() == Some(new_image_id.as_str()) => {}
        Ok(Lookup::Found(created)) => {
            let reason = format!(
                "the new container got image {} instead of {new_image_id} ({create_ref} moved during \
                 the update)",
                created.image.unwrap_or_default()
            );
            return finish_failed_update(ctx, &engine, p, &checkpoint, None, &reason).await;
        }
        Ok(Lookup::Missing) | Err(_) => {
            let reason = "the new container vanished right after it was created".to_owned();
            return finish_failed_update(ctx, &engine, p, &checkpoint, None, &reason).await;
        }
    }
    for (network, endpoint) in &plan.extra_networks {
        if let Err(detail) = engine
            .connect_network(&new_id, network, endpoint.clone())
            .await
        {
            let reason = format!("could not connect the new container to {network}: {detail}");
            return finish_failed_update(ctx, &engine, p, &checkpoint, None, &reason).await;
        }
    }
    if let Err(detail) = engine.start(&new_id).await {
        let reason = format!("the new container did not start: {detail}");
        return finish_failed_update(ctx, &engine, p, &checkpoint, None, &reason).await;
    }
    if let Err(ending) = save(ctx, PHASE_GATE, &checkpoint) {
        let _ = rollback(&engine, p, &checkpoint).await;
        return ending;
    }
    let started = Instant::now();
    let probe = match engine.inspect(&new_id).await {
        Ok(Lookup::Found(inspect)) => probe_for(&inspect, &p.image),
        _ => Probe::RunningOnly,
    };
    ctx.event(
        JobEventKind::Progress,
        "health gate",
        serde_json::json!({
            "new_id": new_id,
            "probe": probe,
            "health_timeout_secs": p.health_timeout_secs,
            "settle_secs": p.settle_secs,
        }),
    );
    let verdict = run_gate(&engine, &new_id, probe.clone(), p, started).await;
    match verdict {
        GateResult::Passed { proven_after } => {
            if let Err(ending) = save(ctx, PHASE_CLEANUP, &checkpoint) {
                return ending;
            }
            let removed = engine.remove(&old_id).await;
            let warning = removed.err();
            if let Some(w) = &warning {
                ctx.event(
                    JobEventKind::Warning,
                    format!("new container healthy, but the old one could not be removed: {w}"),
                    serde_json::json!({ "old_id": old_id, "backup_name": checkpoint.backup_name }),
                );
            }
            Ending::new(
                JobEnd::Succeeded,
                format!(
                    "{} now runs {} (healthy after {:.1} s, stayed up {} s)",
                    plan.name,
                    p.image,
                    proven_after.as_secs_f64(),
                    p.settle_secs
                ),
                serde_json::json!({
                    "container": plan.name,
                    "old_id": old_id,
                    "new_id": new_id,
                    "old_image_id": old_image_id,
                    "new_image_id": new_image_id,
                    "old_image": old.config.as_ref().and_then(|c| c.image.clone()),
                    "new_image": p.image,
                    "new_digest": p.image.rsplit_once('@').map(|(_, d)| d),
                    "probe": probe,
                    "proven_after_ms": u64::try_from(proven_after.as_millis()).unwrap_or(u64::MAX),
                    "old_container_removed": warning.is_none(),
                }),
            )
        }
        GateResult::Failed { reason, evidence } => {
            finish_failed_update(ctx, &engine, p, &checkpoint, Some(evidence), &reason).await
        }
    }
}

/// The checks that need the engine: the container is the one the job was made for.
fn preflight(
    ctx: &JobContext,
    p: &ContainerUpdateParams,
    old: &ContainerInspectResponse,
) -> Result<(), Ending> {
    let image_id = old.image.clone().unwrap_or_default();
    if image_id != p.expected_image_id {
        return Err(Ending::refused(
            JobRefusalReason::TargetChanged,
            format!(
                "nothing changed: `{}` runs image {image_id}, the job was made for {}; it was \
                 changed since — look again and create a new job",
                p.container, p.expected_image_id
            ),
        ));
    }
    let state = old
        .state
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .map(|s| s.to_string())
        .unwrap_or_default();
    if state != "running" {
        return Err(Ending::refused(
            JobRefusalReason::TargetChanged,
            format!(
                "nothing changed: `{}` is {state}; only running containers are updated",
                p.container
            ),
        ));
    }
    let configured = old
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let same_repository = match (
        ImageReference::parse(&configured),
        ImageReference::parse(&p.image),
    ) {
        (Ok(a), Ok(b)) => a.repository_key() == b.repository_key(),
        _ => false,
    };
    if !same_repository && !ctx.options().allow_repository_change {
        return Err(Ending::refused(
            JobRefusalReason::InvalidParameters,
            format!(
                "nothing changed: the job would move `{}` from {configured} to another repository \
                 ({}); this host allows only new versions of a container's own image \
                 ([jobs] allow_repository_change)",
                p.container, p.image
            ),
        ));
    }
    Ok(())
}

fn save(ctx: &mut JobContext, phase: &str, checkpoint: &Checkpoint) -> Result<(), Ending> {
    let data = serde_json::to_value(checkpoint).unwrap_or_default();
    ctx.checkpoint(phase, data).map_err(|e| {
        Ending::new(
            JobEnd::Failed,
            format!(
                "stopped before {phase}: the job journal cannot be written ({}); nothing further \
                 was changed",
                crate::error_chain(&e)
            ),
            serde_json::json!({ "phase": phase }),
        )
    })
}

/// Old container out of the way: no restarts by the engine, stopped, renamed.
async fn replace_old(engine: &Engine, c: &Checkpoint, grace: Duration) -> Result<(), String> {
    if let Err(detail) = engine
        .set_restart_policy(
            &c.old_id,
            RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            },
        )
        .await
    {
        // Podman's compatible API may not offer it; the engine could then restart the old
        // container only if the engine itself restarts during the update.
        tracing::warn!(container = %c.name, %detail, "could not pause the old container's restart policy");
    }
    engine
        .stop(&c.old_id, grace)
        .await
        .map_err(|e| format!("could not stop the old container: {e}"))?;
    engine
        .rename(&c.old_id, &c.backup_name)
        .await
        .map_err(|e| format!("could not rename the old container: {e}"))
}

/// The reference the new container is created with: the job's tag when it names one (the
/// container keeps following its tag), the container's own untagged reference (`nginx`, i.e.
/// `latest`) when the job pins that repository by digest alone, else the digest reference.
fn tracking_reference(job_image: &str, configured: &str) -> String {
    let base = job_image
        .split_once('@')
        .map_or(job_image, |(name, _)| name);
    if ImageReference::parse(base).is_ok_and(|r| r.tag.is_some()) {
        return base.to_owned();
    }
    match (
        ImageReference::parse(configured),
        ImageReference::parse(base),
    ) {
        (Ok(old), Ok(new))
            if old.digest.is_none() && old.repository_key() == new.repository_key() =>
        {
            configured.to_owned()
        }
        _ => job_image.to_owned(),
    }
}

enum GateResult {
    Passed {
        proven_after: Duration,
    },
    Failed {
        reason: String,
        evidence: serde_json::Value,
    },
}

fn probe_for(inspect: &ContainerInspectResponse, image: &str) -> Probe {
    let ports = engine::reachable_ports(inspect);
    let database = recognise_image(image).map(|(kind, _)| kind);
    // A database is probed on the published port of its default port, when there is one.
    let targets: Vec<_> = match database {
        Some(kind) if ports.iter().any(|(inner, _)| *inner == kind.default_port()) => ports
            .iter()
            .filter(|(inner, _)| *inner == kind.default_port())
            .map(|(_, addr)| *addr)
            .collect(),
        _ => ports.iter().map(|(_, addr)| *addr).collect(),
    };
    gate::choose_probe(Facts {
        has_healthcheck: engine::has_healthcheck(inspect),
        database,
        targets: &targets,
    })
}

async fn probe_once(probe: &Probe) -> Option<bool> {
    let timeout = Duration::from_secs(2);
    match probe {
        Probe::HealthCheck | Probe::RunningOnly => None,
        Probe::Tcp { targets } => {
            for target in targets {
                if let Ok(Ok(_)) =
                    tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target)).await
                {
                    return Some(true);
                }
            }
            Some(false)
        }
        Probe::Database { kind, targets, .. } => {
            for target in targets {
                let addr = ListenAddr::Tcp {
                    ip: target.ip(),
                    port: target.port(),
                };
                let result = unity_collect::databases::probe(*kind, &addr, timeout).await;
                if matches!(
                    result.outcome,
                    ProbeOutcome::Confirmed | ProbeOutcome::AuthRequired { .. }
                ) {
                    return Some(true);
                }
            }
            Some(false)
        }
    }
}

async fn run_gate(
    engine: &Engine,
    id: &str,
    probe: Probe,
    p: &ContainerUpdateParams,
    started: Instant,
) -> GateResult {
    let mut gate = Gate::new(
        probe,
        Duration::from_secs(u64::from(p.health_timeout_secs)),
        Duration::from_secs(u64::from(p.settle_secs)),
    );
    loop {
        let inspect = match engine.inspect(id).await {
            Ok(Lookup::Found(inspect)) => inspect,
            Ok(Lookup::Missing) => {
                return GateResult::Failed {
                    reason: "the container disappeared during its health gate".into(),
                    evidence: serde_json::json!({}),
                };
            }
            Err(detail) => {
                // The engine itself is not answering: that is no proof either way; keep
                // asking until the timeout decides.
                tracing::warn!(%detail, "engine did not answer during the health gate");
                if started.elapsed() > Duration::from_secs(u64::from(p.health_timeout_secs)) {
                    return GateResult::Failed {
                        reason: format!("the engine stopped answering: {detail}"),
                        evidence: serde_json::json!({}),
                    };
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let mut obs = engine::observation(&inspect);
        obs.probe_ok = probe_once(gate.probe()).await;
        match gate.observe(&obs, started.elapsed()) {
            Verdict::Wait => tokio::time::sleep(POLL).await,
            Verdict::Pass { proven_after } => return GateResult::Passed { proven_after },
            Verdict::Fail { reason } => {
                let logs = engine.log_tail(id, LOG_LINES).await;
                return GateResult::Failed {
                    reason,
                    evidence: serde_json::json!({
                        "probe": gate.probe(),
                        "exit_code": obs.exit_code,
                        "restart_count": obs.restart_count,
                        "oom_killed": obs.oom_killed,
                        "health": obs.health,
                        "health_log": engine::health_log(&inspect),
                        "log_tail": logs,
                        "after_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    }),
                };
            }
        }
    }
}

/// The update failed after the old container was touched: roll back and say so.
async fn finish_failed_update(
    ctx: &mut JobContext,
    engine: &Engine,
    p: &ContainerUpdateParams,
    c: &Checkpoint,
    evidence: Option<serde_json::Value>,
    reason: &str,
) -> Ending {
    ctx.event(
        JobEventKind::Warning,
        format!("update failed: {reason}; rolling back"),
        evidence.clone().unwrap_or_default(),
    );
    match rollback(engine, p, c).await {
        Ok(restored) => Ending::new(
            JobEnd::RolledBack,
            format!(
                "rolled back: {reason}; {} runs its previous image again ({restored})",
                c.name
            ),
            serde_json::json!({
                "reason": reason,
                "failed": evidence,
                "restored": restored,
                "old_id": c.old_id,
                "new_id": c.new_id,
                "new_image_id": c.new_image_id,
            }),
        ),
        Err(rollback_error) => {
            tracing::error!(container = %c.name, %reason, %rollback_error,
                "ROLLBACK FAILED: the container may be down; fix it by hand");
            Ending::new(
                JobEnd::Failed,
                format!(
                    "ROLLBACK FAILED — {} may be down: update failed ({reason}), then {rollback_error}",
                    c.name
                ),
                serde_json::json!({
                    "reason": reason,
                    "failed": evidence,
                    "rollback_error": rollback_error,
                    "old_id": c.old_id,
                    "backup_name": c.backup_name,
                    "new_id": c.new_id,
                }),
            )
        }
    }
}

/// Removes the new container, puts the old one back under its name with its restart policy,
/// starts it and checks it is healthy again. Idempotent: safe to run after a crash at any
/// point of the update. Returns how the old container proved itself.
async fn rollback(
    engine: &Engine,
    p: &ContainerUpdateParams,
    c: &Checkpoint,
) -> Result<String, String> {
    // The new container: by id if it was recorded, else whatever holds the name now and is
    // not the old one (created just before a crash).
    let mut new_ids: Vec<String> = c.new_id.iter().cloned().collect();
    if let Ok(Lookup::Found(holder)) = engine.inspect(&c.name).await
        && let Some(id) = holder.id
        && id != c.old_id
        && !new_ids.contains(&id)
    {
        new_ids.push(id);
    }
    for id in &new_ids {
        let _ = engine.stop(id, FAILED_STOP_GRACE).await;
        engine
            .remove(id)
            .await
            .map_err(|e| format!("could not remove the new container: {e}"))?;
    }
    let old = match engine.inspect(&c.old_id).await {
        Ok(Lookup::Found(old)) => old,
        Ok(Lookup::Missing) => {
            return Err(format!("the old container {} no longer exists", c.old_id));
        }
        Err(e) => return Err(format!("could not inspect the old container: {e}")),
    };
    if old.name.as_deref().map(|n| n.trim_start_matches('/')) != Some(c.name.as_str()) {
        engine
            .rename(&c.old_id, &c.name)
            .await
            .map_err(|e| format!("could not give the old container its name back: {e}"))?;
    }
    if let Some(reference) = &c.retagged
        && let Err(detail) = engine.tag(&c.old_image_id, reference).await
    {
        tracing::warn!(container = %c.name, %reference, %detail,
            "could not point the tag back at the previous image");
    }
    if let Some(name) = &c.restart_policy {
        let policy = RestartPolicy {
            name: name.parse().ok(),
            maximum_retry_count: c.restart_retries,
        };
        if let Err(detail) = engine.set_restart_policy(&c.old_id, policy).await {
            tracing::warn!(container = %c.name, %detail, "could not restore the restart policy");
        }
    }
    let running = old.state.as_ref().and_then(|s| s.running).unwrap_or(false);
    if !running {
        engine
            .start(&c.old_id)
            .await
            .map_err(|e| format!("could not start the old container: {e}"))?;
    }
    let started = Instant::now();
    let probe = match engine.inspect(&c.old_id).await {
        Ok(Lookup::Found(inspect)) => {
            let configured = inspect
                .config
                .as_ref()
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            probe_for(&inspect, &configured)
        }
        _ => Probe::RunningOnly,
    };
    match run_gate(engine, &c.old_id, probe, p, started).await {
        GateResult::Passed { proven_after } => Ok(format!(
            "healthy again after {:.1} s",
            proven_after.as_secs_f64()
        )),
        GateResult::Failed { reason, .. } => Err(format!(
            "the old container did not come back healthy: {reason}"
        )),
    }
}

/// After an agent restart in the middle of an update.
pub async fn recover(ctx: &mut JobContext, p: &ContainerUpdateParams) -> Ending {
    let phase = ctx.phase().map(str::to_owned);
    let checkpoint: Option<Checkpoint> = serde_json::from_value(ctx.checkpoint_data().clone()).ok();
    let (Some(phase), Some(c)) = (phase, checkpoint) else {
        return Ending::new(
            JobEnd::Failed,
            "interrupted by an agent restart before the container was changed; nothing to undo",
            serde_json::json!({ "interrupted": true }),
        );
    };
    let config = ctx.options().containers.clone();
    let engine = match Engine::find(&config, &c.old_id).await {
        Ok((engine, _)) => engine,
        Err(detail) => {
            // The old container is gone: the new one may be all there is.
            match Engine::find(&config, &c.name).await {
                Ok((engine, _)) => engine,
                Err(_) => {
                    return Ending::new(
                        JobEnd::Failed,
                        format!(
                            "interrupted by an agent restart during {phase}; cannot recover: {detail}"
                        ),
                        serde_json::json!({ "interrupted": true, "phase": phase }),
                    );
                }
            }
        }
    };
    if phase == PHASE_CLEANUP {
        let removed = engine.remove(&c.old_id).await;
        return Ending::new(
            JobEnd::Succeeded,
            format!(
                "{} runs {}: the new container had passed its health gate before an agent \
                 restart; clean-up finished after it",
                c.name, p.image
            ),
            serde_json::json!({
                "interrupted": true,
                "phase": phase,
                "new_id": c.new_id,
                "old_container_removed": removed.is_ok(),
            }),
        );
    }
    ctx.event(
        JobEventKind::Warning,
        format!("agent restarted during {phase}; rolling back"),
        serde_json::json!({ "phase": phase }),
    );
    match rollback(&engine, p, &c).await {
        Ok(restored) => Ending::new(
            JobEnd::Failed,
            format!(
                "interrupted by an agent restart during {phase}; rolled back: {} runs its previous \
                 image again ({restored})",
                c.name
            ),
            serde_json::json!({ "interrupted": true, "phase": phase, "restored": restored }),
        ),
        Err(error) => {
            tracing::error!(container = %c.name, %phase, %error,
                "ROLLBACK FAILED after an agent restart: the container may be down");
            Ending::new(
                JobEnd::Failed,
                format!(
                    "ROLLBACK FAILED — {} may be down: interrupted by an agent restart during \
                     {phase}, then {error}",
                    c.name
                ),
                serde_json::json!({ "interrupted": true, "phase": phase, "rollback_error": error }),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tracking_reference;

    #[test]
    fn the_new_container_follows_the_tag_it_followed_before() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            tracking_reference(
                &format!("registry.lan:5000/app:stable@{d}"),
                "registry.lan:5000/app:stable"
            ),
            "registry.lan:5000/app:stable"
        );
        // No tag in the job: the container's own `nginx` (latest) is kept.
        assert_eq!(tracking_reference(&format!("nginx@{d}"), "nginx"), "nginx");
        // A container pinned by digest stays pinned.
        assert_eq!(
            tracking_reference(
                &format!("nginx@{d}"),
                &format!("nginx@sha256:{}", "b".repeat(64))
            ),
            format!("nginx@{d}")
        );
        // Another repository (allowed by the host's config): its digest reference.
        assert_eq!(
            tracking_reference(&format!("other@{d}"), "nginx"),
            format!("other@{d}")
        );
    }
}
