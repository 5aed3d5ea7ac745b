//! Automatic container updates: where a container's policy and its maintenance windows allow,
//! the controller queues the update job by itself; otherwise the `update available` alert
//! (raised by inventory ingest) is all that happens.
//!
//! A periodic sweep, idempotent and safe on every replica at once: each tenant is swept under
//! a transaction-scoped advisory lock (one replica at a time), and a job is only created for a
//! (container, image) that no earlier job took, so a target that failed or was rolled back is
//! never retried automatically. The decision itself is [`decide`], pure.

use std::time::Duration;

use time::OffsetDateTime;
use unity_protocol::latest::UpdateState;
use uuid::Uuid;

use super::create::{JobRequest, pinned};
use super::{CreateJobError, JobKeys, create_job};
use crate::error_chain;
use crate::store::policies::{self, UpdateCandidateRow};
use crate::store::{Store, StoreError};

/// How often the sweep looks (updates are found by inventory rounds, every few minutes).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The `unity.update` label's words (docs/jobs.md): the agent's and the API's vocabulary.
pub use unity_protocol::latest::{UnknownUpdatePolicy, UpdatePolicy};

/// The policy in force: the API's override, else the label, else `notify`.
pub fn effective(override_policy: Option<&str>, label_policy: Option<&str>) -> UpdatePolicy {
    override_policy
        .and_then(|p| p.parse().ok())
        .or_else(|| label_policy.and_then(|p| p.parse().ok()))
        .unwrap_or_default()
}

/// The image an automatic job would move the container to, if its policy allows one: the
/// newer tag the agent found for a tag-following policy, else the same tag's new digest.
pub fn decide(row: &UpdateCandidateRow) -> Option<String> {
    let policy = effective(row.override_policy.as_deref(), row.label_policy.as_deref());
    if !policy.acts() {
        return None;
    }
    if policy.follows_versions() && row.candidate_reference.is_some() {
        return row.candidate_reference.clone();
    }
    match (row.update_state.parse(), &row.update_new_digest) {
        (Ok(UpdateState::UpdateAvailable), Some(digest)) => Some(pinned(&row.image, digest)),
        _ => None,
    }
}

/// One sweep over every tenant; returns the jobs it queued.
pub async fn sweep(
    store: &Store,
    keys: &JobKeys,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let mut queued = 0;
    for tenant_id in policies::tenant_ids(store).await? {
        queued += sweep_tenant(store, keys, tenant_id, now).await?;
    }
    Ok(queued)
}

async fn sweep_tenant(
    store: &Store,
    keys: &JobKeys,
    tenant_id: Uuid,
    now: OffsetDateTime,
) -> Result<usize, StoreError> {
    let mut tx = store.tenant_tx(tenant_id).await?;
    // One replica per tenant at a time; the others skip it this round.
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtext('unity-auto-update'), hashtext($1))",
    )
    .bind(tenant_id.to_string())
    .fetch_one(&mut *tx)
    .await
    .map_err(crate::store::query_error("taking the update-sweep lock"))?;
    if !locked {
        return Ok(0);
    }
    let mut queued = 0;
    for row in policies::update_candidates(&mut tx).await? {
        let Some(image) = decide(&row) else { continue };
        if policies::attempted(&mut tx, row.host_id, &row.name, &image).await?
            || !policies::may_update_at(&mut tx, row.host_id, now).await?
        {
            continue;
        }
        let policy = effective(row.override_policy.as_deref(), row.label_policy.as_deref());
        let request = JobRequest {
            host_id: row.host_id,
            kind: "container_update".into(),
            params: serde_json::json!({ "container": row.name, "image": image }),
            expires_in_secs: None,
            not_before: None,
        };
        match create_job(
            &mut tx,
            keys,
            tenant_id,
            &request,
            &format!("policy:{policy}"),
            now,
        )
        .await
        {
            Ok(created) => {
                tracing::info!(job_id = %created.id, %tenant_id, host_id = %row.host_id,
                    container = %row.name, %image, %policy, "automatic update queued");
                queued += 1;
            }
            // Busy (another job on it), or no longer valid: the next sweep looks again.
            Err(CreateJobError::Conflict(reason) | CreateJobError::Invalid(reason)) => {
                tracing::debug!(container = %row.name, %reason, "automatic update not queued");
            }
            Err(CreateJobError::Store(error)) => return Err(error),
            Err(other) => {
                tracing::error!(error = %error_chain(&other), "automatic update could not be signed");
            }
        }
    }
    crate::store::commit(tx, "committing automatic updates").await?;
    Ok(queued)
}

/// Runs the sweep forever.
pub async fn sweep_forever(store: Store, keys: JobKeys, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        if let Err(error) = sweep(&store, &keys, OffsetDateTime::now_utc()).await {
            tracing::warn!(error = %error_chain(&error), "automatic-update sweep failed; next round retries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        label: Option<&str>,
        override_policy: Option<&str>,
        candidate: Option<&str>,
    ) -> UpdateCandidateRow {
        UpdateCandidateRow {
            host_id: Uuid::nil(),
            name: "web".into(),
            image: "registry.lan/app:1.2.0".into(),
            update_state: "update_available".into(),
            update_new_digest: Some("sha256:new".into()),
            label_policy: label.map(str::to_owned),
            override_policy: override_policy.map(str::to_owned),
            candidate_reference: candidate.map(str::to_owned),
        }
    }

    #[test]
    fn policies_decide_what_the_sweep_queues() {
        assert_eq!(decide(&row(None, None, None)), None, "default is notify");
        assert_eq!(decide(&row(Some("notify"), None, None)), None);
        assert_eq!(
            decide(&row(Some("digest"), None, None)).as_deref(),
            Some("registry.lan/app:1.2.0@sha256:new")
        );
        assert_eq!(
            decide(&row(
                Some("minor"),
                None,
                Some("registry.lan/app:1.3.0@sha256:c")
            ))
            .as_deref(),
            Some("registry.lan/app:1.3.0@sha256:c")
        );
        // A tag policy without a newer tag still follows its tag's digest.
        assert_eq!(
            decide(&row(Some("patch"), None, None)).as_deref(),
            Some("registry.lan/app:1.2.0@sha256:new")
        );
        // The API's override beats the label, both ways.
        assert_eq!(
            decide(&row(Some("major"), Some("off"), Some("x@sha256:c"))),
            None
        );
        assert!(decide(&row(Some("off"), Some("digest"), None)).is_some());
        // A label nobody can read is notify.
        assert_eq!(decide(&row(Some("sometimes"), None, None)), None);
        let mut up_to_date = row(Some("digest"), None, None);
        up_to_date.update_state = "up_to_date".into();
        assert_eq!(decide(&up_to_date), None);
    }
}
