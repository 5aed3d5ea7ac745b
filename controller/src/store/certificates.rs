//! The certificates issued to hosts (`host_certificates`, migration 0021): which one a host
//! may present, and which ones still have to be revoked at step-ca.
//!
//! The rule (docs/pki.md, "Renewal retires the predecessor"): a session presenting
//! certificate X retires every certificate of its host issued before X; a renewal from X
//! retires every certificate of the host but X before the new one is recorded. So once a host
//! has connected with its new certificate nothing older opens a session, and an unsaved
//! certificate (the agent crashed before writing it) can never be used.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{StoreError, TenantTx, query_error};
use crate::issuer::IssuerKind;

/// What a session's certificate is to its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// Issued to this host and not retired: the session may proceed.
    Current,
    /// Issued to this host, then replaced (or its host revoked).
    Retired { retired_at: OffsetDateTime },
    /// Not a certificate this controller issued to this host.
    Unknown,
}

/// Records a certificate just issued to `host_id`.
pub async fn record_issued(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    host_id: Uuid,
    serial: &str,
    issuer: IssuerKind,
    not_after: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO host_certificates (tenant_id, host_id, serial, issuer, not_after) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant_id)
    .bind(host_id)
    .bind(serial)
    .bind(issuer.as_str())
    .bind(not_after)
    .execute(&mut **tx)
    .await
    .map_err(query_error("recording an issued host certificate"))?;
    Ok(())
}

/// Checks the certificate a session presents and, when it is current, retires every older
/// one of the host (the host has proven it holds this one).
pub async fn present(
    tx: &mut TenantTx,
    host_id: Uuid,
    serial: &str,
) -> Result<Presented, StoreError> {
    let row: Option<(OffsetDateTime, Option<OffsetDateTime>)> = sqlx::query_as(
        "UPDATE host_certificates \
         SET first_seen_at = coalesce(first_seen_at, now()) \
         WHERE host_id = $1 AND serial = $2 \
         RETURNING issued_at, retired_at",
    )
    .bind(host_id)
    .bind(serial)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("checking a presented host certificate"))?;
    let Some((issued_at, retired_at)) = row else {
        return Ok(Presented::Unknown);
    };
    if let Some(retired_at) = retired_at {
        return Ok(Presented::Retired { retired_at });
    }
    sqlx::query(
        "UPDATE host_certificates SET retired_at = now() \
         WHERE host_id = $1 AND retired_at IS NULL AND issued_at < $2",
    )
    .bind(host_id)
    .bind(issued_at)
    .execute(&mut **tx)
    .await
    .map_err(query_error("retiring superseded host certificates"))?;
    Ok(Presented::Current)
}

/// Retires every certificate of `host_id` except `keep` (a renewal from `keep`), or all of
/// them (`None`: the host is revoked or deleted).
pub async fn retire_others(
    tx: &mut TenantTx,
    host_id: Uuid,
    keep: Option<&str>,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE host_certificates SET retired_at = now() \
         WHERE host_id = $1 AND retired_at IS NULL AND serial IS DISTINCT FROM $2",
    )
    .bind(host_id)
    .bind(keep)
    .execute(&mut **tx)
    .await
    .map_err(query_error("retiring host certificates"))?
    .rows_affected())
}

/// A retired step-ca certificate that step-ca has not been told about yet.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ToRevoke {
    pub host_id: Uuid,
    pub serial: String,
}

/// Retired, unexpired step-ca certificates not yet revoked there (at most `limit`), locked for
/// this transaction: another replica's sweep skips them rather than revoking them twice.
pub async fn to_revoke_at_issuer(
    tx: &mut TenantTx,
    limit: i64,
) -> Result<Vec<ToRevoke>, StoreError> {
    sqlx::query_as(
        "SELECT host_id, serial FROM host_certificates \
         WHERE retired_at IS NOT NULL AND issuer = 'step-ca' AND issuer_revoked_at IS NULL \
           AND not_after > now() \
         ORDER BY retired_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing certificates to revoke at step-ca"))
}

pub async fn mark_revoked_at_issuer(
    tx: &mut TenantTx,
    host_id: Uuid,
    serial: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE host_certificates SET issuer_revoked_at = now() \
         WHERE host_id = $1 AND serial = $2",
    )
    .bind(host_id)
    .bind(serial)
    .execute(&mut **tx)
    .await
    .map_err(query_error("recording a revocation at step-ca"))?;
    Ok(())
}

/// Forgets the certificates of deleted hosts that need nothing more: revoked at step-ca,
/// expired, or from the built-in CA (whose refusal is the controller's own).
pub async fn forget_settled(tx: &mut TenantTx) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM host_certificates c \
         WHERE NOT EXISTS (SELECT 1 FROM hosts h WHERE h.id = c.host_id) \
           AND (c.issuer = 'built-in' OR c.issuer_revoked_at IS NOT NULL OR c.not_after <= now())",
    )
    .execute(&mut **tx)
    .await
    .map_err(query_error(
        "forgetting settled certificates of deleted hosts",
    ))?
    .rows_affected())
}

/// How many active hosts' current certificates each issuer signed (`unity-controller pki
/// status`: when may the old root go?).
pub async fn issuer_counts(tx: &mut TenantTx) -> Result<Vec<(String, i64)>, StoreError> {
    sqlx::query_as(
        "SELECT cert_issuer, count(*) FROM hosts WHERE revoked_at IS NULL \
         GROUP BY cert_issuer ORDER BY cert_issuer",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("counting hosts per certificate issuer"))
}
