//! Container images: current state per `(host, image id)`.

use crate::store::page::Page;
use crate::store::storage::ObjectKey;
use serde::Serialize;
use time::OffsetDateTime;
use unity_protocol::latest::ImageInfo;
use uuid::Uuid;

use super::ms_time;
use crate::store::host_rows::{HostScope, to_i64};
use crate::store::{StoreError, TenantTx, query_error};

/// Inserts or updates the image; returns its id.
pub async fn upsert(
    tx: &mut TenantTx,
    scope: HostScope,
    image: &ImageInfo,
    collected_at: OffsetDateTime,
) -> Result<Uuid, StoreError> {
    sqlx::query_scalar(
        "INSERT INTO container_images (id, tenant_id, host_id, image_id, tags, digests, \
             size_bytes, created_at, present, first_seen_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true, $9, $9) \
         ON CONFLICT (host_id, image_id) DO UPDATE SET \
             tags = EXCLUDED.tags, digests = EXCLUDED.digests, size_bytes = EXCLUDED.size_bytes, \
             created_at = EXCLUDED.created_at, present = true, \
             last_seen_at = EXCLUDED.last_seen_at, updated_at = now() \
         RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(scope.tenant_id)
    .bind(scope.host_id)
    .bind(&image.id)
    .bind(&image.tags)
    .bind(&image.digests)
    .bind(to_i64(image.size_bytes))
    .bind(ms_time(image.created_at_ms))
    .bind(collected_at)
    .fetch_one(&mut **tx)
    .await
    .map_err(query_error("storing a container image"))
}

/// Marks this host's present images that are not in `seen` as absent; returns how many.
pub async fn mark_absent(
    tx: &mut TenantTx,
    host_id: Uuid,
    seen: &[Uuid],
) -> Result<u64, StoreError> {
    sqlx::query(
        "UPDATE container_images SET present = false, updated_at = now() \
         WHERE host_id = $1 AND present AND NOT (id = ANY($2))",
    )
    .bind(host_id)
    .bind(seen)
    .execute(&mut **tx)
    .await
    .map(|done| done.rows_affected())
    .map_err(query_error("marking missing images absent"))
}

/// One line of `GET /api/v1/images`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ImageSummary {
    pub id: Uuid,
    pub host_id: Uuid,
    /// The engine's image id (`sha256:…`).
    pub image_id: String,
    /// `nginx:1.27`, …; empty for dangling images.
    pub tags: Vec<String>,
    /// `repo@sha256:…` the image is known as in registries.
    pub digests: Vec<String>,
    pub size_bytes: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    /// False when the image was missing from its host's latest successful collection.
    pub present: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// By host, then image id.
pub async fn list(
    tx: &mut TenantTx,
    host_id: Option<Uuid>,
    page: &Page<ObjectKey>,
) -> Result<Vec<ImageSummary>, StoreError> {
    let after = page.after.as_ref();
    sqlx::query_as::<_, ImageSummary>(
        "SELECT id, host_id, image_id, tags, digests, size_bytes, created_at, present, \
             first_seen_at, last_seen_at, updated_at FROM container_images \
         WHERE ($1::uuid IS NULL OR host_id = $1) \
           AND ($2::uuid IS NULL OR (host_id, image_id, id) > ($2, $3, $4)) \
         ORDER BY host_id, image_id, id LIMIT $5",
    )
    .bind(host_id)
    .bind(after.map(|k| k.0))
    .bind(after.map(|k| &k.1))
    .bind(after.map(|k| k.2))
    .bind(page.fetch_limit())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing container images"))
}
