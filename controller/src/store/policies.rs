//! Container update policies set through the API, maintenance windows, and what the
//! automatic-update sweep reads. Every function takes a [`TenantTx`].

use super::page::{OldestKey, Page};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{StoreError, TenantTx, query_error};

/// Sets (or replaces) the policy override of container `name` on `host_id`.
pub async fn set_policy(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    host_id: Uuid,
    name: &str,
    policy: &str,
    by: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO container_policies (tenant_id, host_id, container_name, policy, updated_by) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (host_id, container_name) DO UPDATE SET policy = EXCLUDED.policy, \
             updated_by = EXCLUDED.updated_by, updated_at = now()",
    )
    .bind(tenant_id)
    .bind(host_id)
    .bind(name)
    .bind(policy)
    .bind(by)
    .execute(&mut **tx)
    .await
    .map_err(query_error("setting a container's update policy"))?;
    Ok(())
}

/// Removes the override (the label decides again). Returns whether there was one.
pub async fn clear_policy(
    tx: &mut TenantTx,
    host_id: Uuid,
    name: &str,
) -> Result<bool, StoreError> {
    let done =
        sqlx::query("DELETE FROM container_policies WHERE host_id = $1 AND container_name = $2")
            .bind(host_id)
            .bind(name)
            .execute(&mut **tx)
            .await
            .map_err(query_error("clearing a container's update policy"))?
            .rows_affected();
    Ok(done > 0)
}

/// Sets (`Some`) or clears (`None`) the override of the container with the controller's id
/// `container_id` — what the API and the console both do. False when the tenant has no such
/// container.
pub async fn override_container(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    container_id: Uuid,
    policy: Option<&str>,
    actor: &str,
) -> Result<bool, StoreError> {
    let Some(container) = super::inventory::containers::get(tx, container_id).await? else {
        return Ok(false);
    };
    let (host_id, name) = (container.summary.host_id, container.summary.name);
    match policy {
        Some(policy) => set_policy(tx, tenant_id, host_id, &name, policy, actor).await?,
        None => {
            clear_policy(tx, host_id, &name).await?;
        }
    }
    Ok(true)
}

/// The override of container `name` on `host_id`, with who set it.
pub async fn policy_override(
    tx: &mut TenantTx,
    host_id: Uuid,
    name: &str,
) -> Result<Option<(String, String, OffsetDateTime)>, StoreError> {
    sqlx::query_as(
        "SELECT policy, updated_by, updated_at FROM container_policies \
         WHERE host_id = $1 AND container_name = $2",
    )
    .bind(host_id)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a container's update policy"))
}

/// A maintenance window as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Window {
    pub id: Uuid,
    /// The host it applies to; null: every host of the tenant.
    pub host_id: Option<Uuid>,
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    pub days: Vec<i16>,
    /// Minutes after local midnight.
    pub start_minute: i32,
    pub duration_minutes: i32,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct NewWindow<'a> {
    pub tenant_id: Uuid,
    pub host_id: Option<Uuid>,
    pub days: &'a [i16],
    pub start_minute: i32,
    pub duration_minutes: i32,
    pub time_zone: &'a str,
    pub created_by: &'a str,
}

/// Whether PostgreSQL knows the time zone `name`.
pub async fn time_zone_exists(tx: &mut TenantTx, name: &str) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
        .bind(name)
        .fetch_one(&mut **tx)
        .await
        .map_err(query_error("checking a time zone"))
}

pub async fn insert_window(
    tx: &mut TenantTx,
    window: &NewWindow<'_>,
) -> Result<Window, StoreError> {
    sqlx::query_as::<_, Window>(
        "INSERT INTO maintenance_windows (id, tenant_id, host_id, days, start_minute, \
             duration_minutes, time_zone, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         RETURNING id, host_id, days, start_minute, duration_minutes, time_zone, created_by, created_at",
    )
    .bind(Uuid::new_v4())
    .bind(window.tenant_id)
    .bind(window.host_id)
    .bind(window.days)
    .bind(window.start_minute)
    .bind(window.duration_minutes)
    .bind(window.time_zone)
    .bind(window.created_by)
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error("creating a maintenance window"))
}

/// Oldest first.
pub async fn list_windows(
    tx: &mut TenantTx,
    page: &Page<OldestKey>,
) -> Result<Vec<Window>, StoreError> {
    let after = page.after.as_ref();
    sqlx::query_as::<_, Window>(
        "SELECT id, host_id, days, start_minute, duration_minutes, time_zone, created_by, created_at \
         FROM maintenance_windows \
         WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2)) \
         ORDER BY created_at, id LIMIT $3",
    )
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| k.1))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing maintenance windows"))
}

pub async fn get_window(tx: &mut TenantTx, id: Uuid) -> Result<Option<Window>, StoreError> {
    sqlx::query_as::<_, Window>(
        "SELECT id, host_id, days, start_minute, duration_minutes, time_zone, created_by, created_at \
         FROM maintenance_windows WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a maintenance window"))
}

pub async fn delete_window(tx: &mut TenantTx, id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM maintenance_windows WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(query_error("deleting a maintenance window"))?
        .rows_affected();
    Ok(done > 0)
}

/// Whether automatic updates may start on `host_id` at `at`: inside one of its (or its
/// tenant's) windows, or at any time when there are none.
pub async fn may_update_at(
    tx: &mut TenantTx,
    host_id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM maintenance_windows WHERE host_id = $1 OR host_id IS NULL) \
             OR EXISTS (SELECT 1 FROM maintenance_windows \
                        WHERE (host_id = $1 OR host_id IS NULL) \
                          AND unity_in_window(days, start_minute, duration_minutes, time_zone, $2))",
    )
    .bind(host_id)
    .bind(at)
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error("checking maintenance windows"))
}

/// A present container's update policy: its label, the override, by whom.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub container_id: Uuid,
    pub host_id: Uuid,
    pub hostname: String,
    pub name: String,
    pub label_policy: Option<String>,
    pub override_policy: Option<String>,
    pub override_by: Option<String>,
}

/// Every present container of the tenant with its policy sources, by host and name (at most
/// `limit`).
pub async fn list_policies(tx: &mut TenantTx, limit: i64) -> Result<Vec<PolicyRow>, StoreError> {
    sqlx::query_as::<_, PolicyRow>(
        "SELECT c.id AS container_id, c.host_id, h.hostname, c.name, \
             c.detail->>'policy' AS label_policy, p.policy AS override_policy, \
             p.updated_by AS override_by \
         FROM containers c JOIN hosts h ON h.id = c.host_id AND h.revoked_at IS NULL \
         LEFT JOIN container_policies p ON p.host_id = c.host_id AND p.container_name = c.name \
         WHERE c.present ORDER BY h.hostname, c.name, c.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing update policies"))
}

/// A running container with something newer known, as the sweep sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UpdateCandidateRow {
    pub host_id: Uuid,
    pub name: String,
    pub image: String,
    pub update_state: String,
    pub update_new_digest: Option<String>,
    /// From the container's `unity.update` label, as the agent read it.
    pub label_policy: Option<String>,
    pub override_policy: Option<String>,
    /// For tag-following policies: `registry/repo:tag@sha256:…` the agent found.
    pub candidate_reference: Option<String>,
}

pub async fn update_candidates(tx: &mut TenantTx) -> Result<Vec<UpdateCandidateRow>, StoreError> {
    sqlx::query_as::<_, UpdateCandidateRow>(
        "SELECT c.host_id, c.name, c.image, c.update_state, c.update_new_digest, \
             c.detail->>'policy' AS label_policy, p.policy AS override_policy, \
             c.detail->'candidate'->>'reference' AS candidate_reference \
         FROM containers c JOIN hosts h ON h.id = c.host_id AND h.revoked_at IS NULL \
         LEFT JOIN container_policies p ON p.host_id = c.host_id AND p.container_name = c.name \
         WHERE c.present AND c.state = 'running' \
             AND ((c.update_state = 'update_available' AND c.update_new_digest IS NOT NULL) \
                  OR c.detail->'candidate'->>'reference' IS NOT NULL) \
         ORDER BY c.host_id, c.name",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("finding containers with updates"))
}

/// Whether a job already took (or is taking) container `name` of `host_id` to `image`:
/// anything but an expired or cancelled one. A target that failed once is not tried again
/// by the sweep — an operator can still ask for it.
pub async fn attempted(
    tx: &mut TenantTx,
    host_id: Uuid,
    name: &str,
    image: &str,
) -> Result<bool, StoreError> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE host_id = $1 AND target = $2 \
             AND params->>'image' = $3 AND state NOT IN ('expired', 'cancelled'))",
    )
    .bind(host_id)
    .bind(format!("container:{name}"))
    .bind(image)
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error("looking for earlier update jobs"))
}

/// Tenants for the sweep (a SECURITY DEFINER list of ids).
pub async fn tenant_ids(store: &super::Store) -> Result<Vec<Uuid>, StoreError> {
    sqlx::query_scalar("SELECT unity_tenant_ids()")
        .fetch_all(store.app())
        .await
        .map_err(query_error("listing tenants for the update sweep"))
}
