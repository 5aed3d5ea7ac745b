//! Storage health in the store: disks, ZFS pools, md arrays, collector status, alerts.
//!
//! Every function takes a [`TenantTx`], so row-level security confines it to one tenant.
//! Current state is one row per object, upserted by ingest; history is one sample row per
//! object per report (`*_samples`), pruned after [`SAMPLE_RETENTION_DAYS`] by
//! [`prune_samples`]. Deciding *what changed* (and so which alerts to raise) is ingest's job;
//! these modules only read the previous row and write the new one.

pub mod alerts;
pub mod arrays;
pub mod disks;
pub mod pools;

use unity_protocol::latest::Health;
use uuid::Uuid;

use super::{StoreError, TenantTx, query_error};
use crate::store::collectors;

/// The collector sources storage reports use in `collector_status`.
pub const SOURCES: &[&str] = &["smart", "zfs", "mdraid"];

/// An object's detail document as an upsert writes it.
///
/// The agent sends the whole document every round, and most rounds it has not changed; so
/// the text's SHA-256 is compared with the one stored beside the row, and the document is
/// parsed and written only when they differ. An unchanged document stays where it is: no
/// parse, no re-serialisation, no `jsonb` conversion, and a document above PostgreSQL's
/// TOAST threshold keeps its existing TOAST value. (A smaller one lives inline in the row,
/// which the UPDATE rewrites anyway: docs/architecture.md.)
#[derive(Debug, Clone, PartialEq)]
pub struct DetailWrite {
    /// SHA-256 of the agent's `detail_json` text.
    pub hash: Vec<u8>,
    /// The parsed document, or `None` to keep the stored one (same hash).
    pub value: Option<serde_json::Value>,
}

impl DetailWrite {
    /// The SHA-256 [`DetailWrite::hash`] holds.
    pub fn digest(raw: &str) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, raw.as_bytes())
            .as_ref()
            .to_vec()
    }

    /// The value to bind for `detail`: NULL keeps the stored document (see the upserts'
    /// `coalesce`).
    fn bound(&self) -> Option<sqlx::types::Json<&serde_json::Value>> {
        self.value.as_ref().map(sqlx::types::Json)
    }
}

/// Samples older than this many days (by the controller's clock) are deleted.
pub const SAMPLE_RETENTION_DAYS: i32 = 90;

/// Sort key of the per-host object lists (disks, pools, arrays, containers, images): host,
/// then the object's name on that host, then id.
pub type ObjectKey = (Uuid, String, Uuid);

/// Filters of the list endpoints; `None` means "any".
#[derive(Debug, Clone, Copy, Default)]
pub struct ListFilter {
    pub host_id: Option<Uuid>,
    pub health: Option<Health>,
}

impl ListFilter {
    fn health_text(&self) -> Option<&'static str> {
        self.health.map(Health::as_str)
    }
}

/// Reads a health word written by [`Health::as_str`] back. The column's CHECK constraint
/// allows nothing else; anything unexpected is treated as "could not tell".
pub fn parse_health(text: &str) -> Health {
    text.parse().unwrap_or(Health::Unknown)
}

/// The health word of `known_health`: the last verdict that was not `unknown`.
pub fn known_health(new: Health, previous_known: Option<Health>) -> Option<Health> {
    match new {
        Health::Unknown => previous_known,
        known => Some(known),
    }
}

/// Deletes this host's samples older than [`SAMPLE_RETENTION_DAYS`]. Idempotent and cheap
/// (each sample table's primary key starts with the object id, so this is an index range scan
/// per object that usually finds nothing); ingest calls it on every storage report, so no
/// background task needs to step outside a tenant's scope. Returns the rows deleted.
pub async fn prune_samples(tx: &mut TenantTx, host_id: Uuid) -> Result<u64, StoreError> {
    const STATEMENTS: [&str; 3] = [
        "DELETE FROM disk_samples WHERE disk_id IN (SELECT id FROM disks WHERE host_id = $1) \
         AND collected_at < now() - make_interval(days => $2)",
        "DELETE FROM pool_samples WHERE pool_id IN (SELECT id FROM pools WHERE host_id = $1) \
         AND collected_at < now() - make_interval(days => $2)",
        "DELETE FROM array_samples WHERE array_id IN (SELECT id FROM arrays WHERE host_id = $1) \
         AND collected_at < now() - make_interval(days => $2)",
    ];
    let mut deleted = 0;
    for statement in STATEMENTS {
        deleted += sqlx::query(statement)
            .bind(host_id)
            .bind(SAMPLE_RETENTION_DAYS)
            .execute(&mut **tx)
            .await
            .map_err(query_error("pruning old storage samples"))?
            .rows_affected();
    }
    Ok(deleted)
}

/// Per-health counts of one kind of object on a host (present objects only), plus how many
/// known objects are currently absent.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, utoipa::ToSchema)]
pub struct HealthCounts {
    pub ok: i64,
    pub unknown: i64,
    pub warning: i64,
    pub critical: i64,
    /// Known objects missing from the latest successful collection.
    pub absent: i64,
}

/// `GET /api/v1/hosts/{id}/storage`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HostStorage {
    pub host_id: Uuid,
    pub disks: HealthCounts,
    pub pools: HealthCounts,
    pub arrays: HealthCounts,
    pub collectors: Vec<collectors::CollectorStatus>,
}

/// The storage summary of one host, or `None` if the host is not the tenant's.
pub async fn host_storage(
    tx: &mut TenantTx,
    host_id: Uuid,
) -> Result<Option<HostStorage>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM hosts WHERE id = $1)")
        .bind(host_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(query_error("looking up a host"))?;
    if !exists {
        return Ok(None);
    }
    const COUNTS: [&str; 3] = [
        "SELECT health, present, count(*) FROM disks WHERE host_id = $1 GROUP BY health, present",
        "SELECT health, present, count(*) FROM pools WHERE host_id = $1 GROUP BY health, present",
        "SELECT health, present, count(*) FROM arrays WHERE host_id = $1 GROUP BY health, present",
    ];
    let mut counts = [HealthCounts::default(); 3];
    for (statement, out) in COUNTS.into_iter().zip(counts.iter_mut()) {
        let rows: Vec<(String, bool, i64)> = sqlx::query_as(statement)
            .bind(host_id)
            .fetch_all(&mut **tx)
            .await
            .map_err(query_error("counting storage objects by health"))?;
        for (health, present, n) in rows {
            if !present {
                out.absent += n;
                continue;
            }
            match parse_health(&health) {
                Health::Ok => out.ok += n,
                Health::Unknown => out.unknown += n,
                Health::Warning => out.warning += n,
                Health::Critical => out.critical += n,
            }
        }
    }
    let [disks, pools, arrays] = counts;
    Ok(Some(HostStorage {
        host_id,
        disks,
        pools,
        arrays,
        collectors: collectors::list_for_host(tx, host_id, SOURCES).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keeps_the_last_known_verdict() {
        assert_eq!(
            known_health(Health::Unknown, Some(Health::Critical)),
            Some(Health::Critical)
        );
        assert_eq!(
            known_health(Health::Ok, Some(Health::Critical)),
            Some(Health::Ok)
        );
        assert_eq!(known_health(Health::Unknown, None), None);
    }
}
