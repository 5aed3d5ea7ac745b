//! Hosts and what they report. Every function here takes a [`TenantTx`], so it can only ever
//! see and change the rows of the tenant that transaction was opened for.

use serde::Serialize;
use time::OffsetDateTime;
use unity_protocol::latest::{AgentStatus, HostFacts};
use uuid::Uuid;

use super::page::{NameKey, Page};
use super::{StoreError, TenantTx, query_error};

/// A host being enrolled.
#[derive(Debug, Clone)]
pub struct NewHost {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub hostname: String,
    pub agent_version: String,
    pub cert_serial: String,
    pub cert_not_after: OffsetDateTime,
    pub cert_issuer: crate::issuer::IssuerKind,
}

/// One line of `GET /api/v1/hosts`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct HostSummary {
    pub id: Uuid,
    pub hostname: String,
    /// e.g. "Debian GNU/Linux 12"; null until the first facts report.
    pub os: Option<String>,
    pub agent_version: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Since when the host has been silent (`host_silent` open); null while it reports.
    #[serde(with = "time::serde::rfc3339::option")]
    pub silent_since: Option<OffsetDateTime>,
    /// The worst verdict of its present disks, pools and arrays (`ok`, `unknown`, `warning`,
    /// `critical`), an unhealthy container counting as `warning`; null when it has none.
    pub health: Option<String>,
    /// Alerts whose latest state for their object and kind is not `info` (still open).
    pub open_alerts: i64,
}

/// `GET /api/v1/hosts/{id}`: the summary plus the latest facts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HostDetail {
    #[serde(flatten)]
    pub summary: HostSummary,
    #[serde(with = "time::serde::rfc3339")]
    pub cert_not_after: OffsetDateTime,
    /// Who signed the host's current certificate: `built-in` or `step-ca` (docs/pki.md).
    #[schema(value_type = String, example = "built-in")]
    pub cert_issuer: crate::issuer::IssuerKind,
    #[serde(with = "time::serde::rfc3339::option")]
    pub facts_collected_at: Option<OffsetDateTime>,
    pub facts: Option<HostFacts>,
    /// The agent's last status: spool depth, oldest queued report, reports it had to drop.
    #[schema(value_type = Option<Object>)]
    pub agent_status: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub agent_status_at: Option<OffsetDateTime>,
}

/// The session-relevant state of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostStanding {
    Active,
    Revoked,
    /// Not a host of this tenant (never enrolled, or enrolled under another tenant).
    Unknown,
}

const SUMMARY_COLUMNS: &str = "id, hostname, \
    CASE WHEN facts IS NULL THEN NULL ELSE concat_ws(' ', facts->>'os_name', facts->>'os_version') END AS os, \
    agent_version, enrolled_at, last_seen_at, revoked_at, silent_since, \
    (SELECT (ARRAY['ok', 'unknown', 'warning', 'critical'])[max(rank)] FROM ( \
        SELECT CASE d.health WHEN 'critical' THEN 4 WHEN 'warning' THEN 3 WHEN 'ok' THEN 1 ELSE 2 END \
            FROM disks d WHERE d.host_id = hosts.id AND d.present \
        UNION ALL SELECT CASE p.health WHEN 'critical' THEN 4 WHEN 'warning' THEN 3 WHEN 'ok' THEN 1 ELSE 2 END \
            FROM pools p WHERE p.host_id = hosts.id AND p.present \
        UNION ALL SELECT CASE a.health WHEN 'critical' THEN 4 WHEN 'warning' THEN 3 WHEN 'ok' THEN 1 ELSE 2 END \
            FROM arrays a WHERE a.host_id = hosts.id AND a.present \
        UNION ALL SELECT CASE WHEN c.health = 'unhealthy' THEN 3 ELSE 1 END \
            FROM containers c WHERE c.host_id = hosts.id AND c.present \
    ) AS objects(rank)) AS health, \
    (SELECT count(*) FROM ( \
        SELECT DISTINCT ON (al.object_id, al.kind) al.severity FROM alerts al \
        WHERE al.host_id = hosts.id ORDER BY al.object_id, al.kind, al.raised_at DESC, al.id DESC \
    ) AS latest WHERE latest.severity <> 'info') AS open_alerts";

/// Records an enrolled host and the certificate it was issued.
pub async fn insert_host(tx: &mut TenantTx, host: &NewHost) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hosts (id, tenant_id, hostname, agent_version, cert_serial, cert_not_after, \
                            cert_issuer) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(host.id)
    .bind(host.tenant_id)
    .bind(&host.hostname)
    .bind(&host.agent_version)
    .bind(&host.cert_serial)
    .bind(host.cert_not_after)
    .bind(host.cert_issuer.as_str())
    .execute(&mut **tx)
    .await
    .map_err(query_error("recording an enrolled host"))?;
    super::certificates::record_issued(
        tx,
        host.tenant_id,
        host.id,
        &host.cert_serial,
        host.cert_issuer,
        host.cert_not_after,
    )
    .await
}

/// Looks the host up and, when active, records that it was seen now.
pub async fn check_in(
    tx: &mut TenantTx,
    host_id: Uuid,
    agent_version: &str,
) -> Result<HostStanding, StoreError> {
    let revoked: Option<Option<OffsetDateTime>> = sqlx::query_scalar(
        "UPDATE hosts SET last_seen_at = now(), \
             agent_version = CASE WHEN revoked_at IS NULL THEN $2 ELSE agent_version END \
         WHERE id = $1 RETURNING revoked_at",
    )
    .bind(host_id)
    .bind(agent_version)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("checking in a host"))?;
    Ok(match revoked {
        None => HostStanding::Unknown,
        Some(Some(_)) => HostStanding::Revoked,
        Some(None) => HostStanding::Active,
    })
}

/// Advances the report cursor of `(host, stream)` to `seq`. Returns false when `seq` was
/// already applied (a redelivery), in which case the caller must not apply the report again.
pub async fn advance_cursor(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    host_id: Uuid,
    stream_id: Uuid,
    seq: u64,
) -> Result<bool, StoreError> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    let advanced = sqlx::query(
        "INSERT INTO report_cursors (tenant_id, host_id, stream_id, last_seq) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (host_id, stream_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now() \
         WHERE report_cursors.last_seq < EXCLUDED.last_seq",
    )
    .bind(tenant_id)
    .bind(host_id)
    .bind(stream_id)
    .bind(seq)
    .execute(&mut **tx)
    .await
    .map_err(query_error("advancing a report cursor"))?
    .rows_affected();
    Ok(advanced == 1)
}

/// One report's place in its stream, for [`advance_cursors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorStep {
    pub host_id: Uuid,
    pub stream_id: Uuid,
    pub seq: u64,
}

/// [`advance_cursor`] for many reports in one statement; returns, in input order, whether each
/// was fresh. No two steps may name the same `(host, stream)` (PostgreSQL refuses to change a
/// row twice in one statement): callers split such reports into separate calls.
pub async fn advance_cursors(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    steps: &[CursorStep],
) -> Result<Vec<bool>, StoreError> {
    let hosts: Vec<Uuid> = steps.iter().map(|s| s.host_id).collect();
    let streams: Vec<Uuid> = steps.iter().map(|s| s.stream_id).collect();
    let seqs: Vec<i64> = steps
        .iter()
        .map(|s| i64::try_from(s.seq).unwrap_or(i64::MAX))
        .collect();
    let advanced: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "INSERT INTO report_cursors (tenant_id, host_id, stream_id, last_seq) \
         SELECT $1, h, s, q FROM unnest($2::uuid[], $3::uuid[], $4::bigint[]) AS t(h, s, q) \
         ON CONFLICT (host_id, stream_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now() \
         WHERE report_cursors.last_seq < EXCLUDED.last_seq \
         RETURNING host_id, stream_id",
    )
    .bind(tenant_id)
    .bind(&hosts)
    .bind(&streams)
    .bind(&seqs)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("advancing report cursors"))?;
    let advanced: std::collections::HashSet<(Uuid, Uuid)> = advanced.into_iter().collect();
    Ok(steps
        .iter()
        .map(|s| advanced.contains(&(s.host_id, s.stream_id)))
        .collect())
}

/// `facts` with NUL replaced in every text (PostgreSQL text and jsonb cannot hold it; one
/// NUL in a hostname once failed every report of its host).
fn sanitized(facts: &HostFacts) -> HostFacts {
    use super::host_rows::strip_nul as clean;
    HostFacts {
        hostname: clean(&facts.hostname),
        os_name: clean(&facts.os_name),
        os_version: clean(&facts.os_version),
        kernel_version: clean(&facts.kernel_version),
        architecture: clean(&facts.architecture),
        cpu_model: clean(&facts.cpu_model),
        filesystems: facts
            .filesystems
            .iter()
            .map(|f| unity_protocol::latest::Filesystem {
                mount_point: clean(&f.mount_point),
                device: clean(&f.device),
                fs_type: clean(&f.fs_type),
                ..f.clone()
            })
            .collect(),
        boot_id: clean(&facts.boot_id),
        agent_version: clean(&facts.agent_version),
        ..facts.clone()
    }
}

/// What storing facts returns: the agent version this host was last alerted as outdated for
/// (read in the same statement, so the version check costs no query of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFacts {
    pub outdated_version: Option<String>,
}

/// Stores the latest facts of an active host; `None` if the host is revoked or unknown.
pub async fn store_facts(
    tx: &mut TenantTx,
    host_id: Uuid,
    facts: &HostFacts,
    collected_at: OffsetDateTime,
) -> Result<Option<StoredFacts>, StoreError> {
    let facts = &sanitized(facts);
    let outdated: Option<Option<String>> = sqlx::query_scalar(
        "UPDATE hosts SET facts = $2, facts_collected_at = $3, hostname = $4, \
             boot_id = $5, agent_version = $6, last_seen_at = now() \
         WHERE id = $1 AND revoked_at IS NULL \
         RETURNING outdated_version",
    )
    .bind(host_id)
    .bind(sqlx::types::Json(facts))
    .bind(collected_at)
    .bind(&facts.hostname)
    .bind(&facts.boot_id)
    .bind(&facts.agent_version)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("storing host facts"))?;
    Ok(outdated.map(|outdated_version| StoredFacts { outdated_version }))
}

/// [`store_facts`] for many hosts in one statement; returns, in input order, what was stored
/// for each (`None`: revoked or unknown). No host may appear twice.
pub async fn store_facts_many(
    tx: &mut TenantTx,
    reports: &[(Uuid, &HostFacts, OffsetDateTime)],
) -> Result<Vec<Option<StoredFacts>>, StoreError> {
    let mut ids = Vec::with_capacity(reports.len());
    let mut documents = Vec::with_capacity(reports.len());
    let mut collected = Vec::with_capacity(reports.len());
    let mut hostnames = Vec::with_capacity(reports.len());
    let mut boot_ids = Vec::with_capacity(reports.len());
    let mut versions = Vec::with_capacity(reports.len());
    for (host_id, facts, collected_at) in reports {
        let facts = sanitized(facts);
        ids.push(*host_id);
        hostnames.push(facts.hostname.clone());
        boot_ids.push(facts.boot_id.clone());
        versions.push(facts.agent_version.clone());
        collected.push(*collected_at);
        documents.push(sqlx::types::Json(facts));
    }
    let stored: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "UPDATE hosts h SET facts = t.facts, facts_collected_at = t.collected_at, \
             hostname = t.hostname, boot_id = t.boot_id, agent_version = t.agent_version, \
             last_seen_at = now() \
         FROM unnest($1::uuid[], $2::jsonb[], $3::timestamptz[], $4::text[], $5::text[], $6::text[]) \
             AS t(id, facts, collected_at, hostname, boot_id, agent_version) \
         WHERE h.id = t.id AND h.revoked_at IS NULL \
         RETURNING h.id, h.outdated_version",
    )
    .bind(&ids)
    .bind(&documents)
    .bind(&collected)
    .bind(&hostnames)
    .bind(&boot_ids)
    .bind(&versions)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("storing host facts"))?;
    let mut stored: std::collections::HashMap<Uuid, Option<String>> = stored.into_iter().collect();
    Ok(ids
        .iter()
        .map(|id| {
            stored
                .remove(id)
                .map(|outdated_version| StoredFacts { outdated_version })
        })
        .collect())
}

/// Stores the agent's status report. Returns false if the host is revoked or unknown.
pub async fn store_agent_status(
    tx: &mut TenantTx,
    host_id: Uuid,
    status: &AgentStatus,
    collected_at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let value = serde_json::json!({
        "spool_reports": status.spool_reports,
        "spool_bytes": status.spool_bytes,
        "oldest_queued_ms": status.oldest_queued_ms,
        "dropped_reports": status.dropped_reports,
        "dropped_bytes": status.dropped_bytes,
        "dropped_corrupt": status.dropped_corrupt,
        "dropped_detail": super::host_rows::strip_nul(&status.dropped_detail),
    });
    let updated = sqlx::query(
        "UPDATE hosts SET agent_status = $2, agent_status_at = $3, last_seen_at = now() \
         WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(host_id)
    .bind(value)
    .bind(collected_at)
    .execute(&mut **tx)
    .await
    .map_err(query_error("storing an agent's status"))?
    .rows_affected();
    Ok(updated == 1)
}

/// A host that went quiet: no report since `last_seen_at`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SilentHost {
    pub id: Uuid,
    pub hostname: String,
    pub last_seen_at: OffsetDateTime,
}

/// Marks active hosts not seen since `cutoff` as silent and returns them — each silence once
/// (hosts already marked are skipped; the row update makes concurrent replicas agree).
pub async fn mark_newly_silent(
    tx: &mut TenantTx,
    cutoff: OffsetDateTime,
) -> Result<Vec<SilentHost>, StoreError> {
    sqlx::query_as(
        "UPDATE hosts SET silent_since = now() \
         WHERE revoked_at IS NULL AND silent_since IS NULL \
           AND last_seen_at IS NOT NULL AND last_seen_at < $1 \
         RETURNING id, hostname, last_seen_at",
    )
    .bind(cutoff)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("finding hosts that stopped reporting"))
}

/// Clears the host's silence; returns since when it was silent, and its name, if it was.
pub async fn clear_silence(
    tx: &mut TenantTx,
    host_id: Uuid,
) -> Result<Option<(OffsetDateTime, String)>, StoreError> {
    sqlx::query_as(
        "UPDATE hosts h SET silent_since = NULL \
         FROM (SELECT id, silent_since FROM hosts WHERE id = $1 FOR UPDATE) AS before \
         WHERE h.id = before.id AND before.silent_since IS NOT NULL \
         RETURNING before.silent_since, h.hostname",
    )
    .bind(host_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("clearing a host's silence"))
}

/// Records that an active host reported now. Returns false if the host is revoked or unknown.
/// Also locks the host row until the transaction ends, so two reports of one host are applied
/// one after the other.
pub async fn touch_active(tx: &mut TenantTx, host_id: Uuid) -> Result<bool, StoreError> {
    let updated =
        sqlx::query("UPDATE hosts SET last_seen_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(host_id)
            .execute(&mut **tx)
            .await
            .map_err(query_error("recording a host's report"))?
            .rows_affected();
    Ok(updated == 1)
}

/// By hostname (then id: hostnames need not be unique). The roll-up columns are correlated
/// subqueries, each an index scan on `(host_id, …)`: ~10 ms for 300 hosts once the tables are
/// analyzed, like the set-based form (a page CTE joined to one aggregate per table), which
/// was tried and dropped — it planned worse on tables not yet analyzed (112 ms vs 46 ms in
/// `console-bench` right after loading). docs/performance.md.
pub async fn list_hosts(
    tx: &mut TenantTx,
    page: &Page<NameKey>,
) -> Result<Vec<HostSummary>, StoreError> {
    list_hosts_labelled(tx, None, page).await
}

/// [`list_hosts`], only hosts whose labels in effect (`host_labels`, what rollouts select
/// by) hold `key = value` when a label is given — filtered in SQL, so a page is full.
pub async fn list_hosts_labelled(
    tx: &mut TenantTx,
    label: Option<(&str, &str)>,
    page: &Page<NameKey>,
) -> Result<Vec<HostSummary>, StoreError> {
    let after = page.after.as_ref();
    // Built only from constants.
    sqlx::query_as::<_, HostSummary>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM hosts \
         WHERE ($1::text IS NULL OR (hostname, id) > ($1, $2)) \
           AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM host_labels l \
                WHERE l.host_id = hosts.id AND l.key = $4 AND l.value = $5)) \
         ORDER BY hostname, id LIMIT $3"
    )))
    .bind(after.map(|k| &k.0))
    .bind(after.map(|k| k.1))
    .bind(page.fetch_limit())
    .bind(label.map(|(k, _)| k))
    .bind(label.map(|(_, v)| v))
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("listing hosts"))
}

/// Every host's name, by id: for pages that only need to name hosts.
pub async fn names(
    tx: &mut TenantTx,
) -> Result<std::collections::BTreeMap<Uuid, String>, StoreError> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, hostname FROM hosts")
        .fetch_all(&mut **tx)
        .await
        .map_err(query_error("naming hosts"))?;
    Ok(rows.into_iter().collect())
}

pub async fn get_host(tx: &mut TenantTx, host_id: Uuid) -> Result<Option<HostDetail>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        summary: HostSummary,
        cert_not_after: OffsetDateTime,
        #[sqlx(try_from = "String")]
        cert_issuer: crate::issuer::IssuerKind,
        facts_collected_at: Option<OffsetDateTime>,
        facts: Option<sqlx::types::Json<HostFacts>>,
        agent_status: Option<serde_json::Value>,
        agent_status_at: Option<OffsetDateTime>,
    }
    // Built only from constants.
    let row = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, cert_not_after, cert_issuer, facts_collected_at, facts, \
             agent_status, agent_status_at FROM hosts WHERE id = $1"
    )))
    .bind(host_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(query_error("reading a host"))?;
    Ok(row.map(|r| HostDetail {
        summary: r.summary,
        cert_not_after: r.cert_not_after,
        cert_issuer: r.cert_issuer,
        facts_collected_at: r.facts_collected_at,
        facts: r.facts.map(|j| j.0),
        agent_status: r.agent_status,
        agent_status_at: r.agent_status_at,
    }))
}

/// A certificate issued by renewal.
#[derive(Debug, Clone, Copy)]
pub struct Renewed<'a> {
    /// The certificate the renewing session presented: the only one kept besides the new.
    pub from_serial: &'a str,
    pub serial: &'a str,
    pub not_after: OffsetDateTime,
    pub issuer: crate::issuer::IssuerKind,
}

/// Records a renewed certificate on an active host and retires every other certificate of
/// the host but the one the session presented. Returns false if the host is revoked or
/// unknown (the caller must then refuse the renewal).
pub async fn record_certificate(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    host_id: Uuid,
    renewed: Renewed<'_>,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE hosts SET cert_serial = $2, cert_not_after = $3, cert_issuer = $4 \
         WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(host_id)
    .bind(renewed.serial)
    .bind(renewed.not_after)
    .bind(renewed.issuer.as_str())
    .execute(&mut **tx)
    .await
    .map_err(query_error("recording a renewed certificate"))?
    .rows_affected();
    if updated != 1 {
        return Ok(false);
    }
    super::certificates::retire_others(tx, host_id, Some(renewed.from_serial)).await?;
    super::certificates::record_issued(
        tx,
        tenant_id,
        host_id,
        renewed.serial,
        renewed.issuer,
        renewed.not_after,
    )
    .await?;
    Ok(true)
}

/// Marks a host revoked; its sessions are refused from then on. Administrative.
pub async fn revoke_host(tx: &mut TenantTx, host_id: Uuid) -> Result<bool, StoreError> {
    let updated =
        sqlx::query("UPDATE hosts SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(host_id)
            .execute(&mut **tx)
            .await
            .map_err(query_error("revoking a host"))?
            .rows_affected();
    if updated == 1 {
        // Its step-ca certificates are revoked there by the issuer sweep.
        super::certificates::retire_others(tx, host_id, None).await?;
    }
    Ok(updated == 1)
}

/// Deletes a host and everything it reported (cascades). Its certificates stay retired until
/// the issuer sweep has revoked the step-ca ones there. False if there was no such host.
pub async fn delete_host(tx: &mut TenantTx, host_id: Uuid) -> Result<bool, StoreError> {
    super::certificates::retire_others(tx, host_id, None).await?;
    let deleted = sqlx::query("DELETE FROM hosts WHERE id = $1")
        .bind(host_id)
        .execute(&mut **tx)
        .await
        .map_err(query_error("deleting a host"))?
        .rows_affected();
    Ok(deleted == 1)
}

/// A host whose certificate is (or no longer is) about to lapse.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LapsingCertificate {
    pub id: Uuid,
    pub hostname: String,
    pub cert_not_after: OffsetDateTime,
}

/// The last quarter of a host's current certificate's own lifetime starts at `$1` or
/// earlier — per certificate, since step-ca's 24 h certificates and the built-in CA's 30-day
/// ones live side by side. A certificate with no issue record (hosts older than migration
/// 0021 with an unusual serial) is taken to have lived `$2` seconds.
const IN_LAST_QUARTER: &str = "cert_not_after - (cert_not_after - coalesce( \
        (SELECT c.issued_at FROM host_certificates c \
         WHERE c.host_id = hosts.id AND c.serial = hosts.cert_serial), \
        cert_not_after - make_interval(secs => $2))) / 4 <= $1";

/// Active hosts in the last quarter of their certificate's life that were not alerted for it
/// yet; marks them alerted.
pub async fn mark_lapsing_certificates(
    tx: &mut TenantTx,
    now: OffsetDateTime,
    default_lifetime: std::time::Duration,
) -> Result<Vec<LapsingCertificate>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE hosts SET cert_expiry_alerted = true \
         WHERE revoked_at IS NULL AND NOT cert_expiry_alerted AND {IN_LAST_QUARTER} \
         RETURNING id, hostname, cert_not_after"
    )))
    .bind(now)
    .bind(default_lifetime.as_secs_f64())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("finding lapsing certificates"))
}

/// Hosts alerted for a lapsing certificate that have a good one again (renewed); clears the
/// mark.
pub async fn clear_renewed_certificates(
    tx: &mut TenantTx,
    now: OffsetDateTime,
    default_lifetime: std::time::Duration,
) -> Result<Vec<LapsingCertificate>, StoreError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE hosts SET cert_expiry_alerted = false \
         WHERE cert_expiry_alerted AND (NOT ({IN_LAST_QUARTER}) OR revoked_at IS NOT NULL) \
         RETURNING id, hostname, cert_not_after"
    )))
    .bind(now)
    .bind(default_lifetime.as_secs_f64())
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("finding renewed certificates"))
}

pub async fn set_outdated_version(
    tx: &mut TenantTx,
    host_id: Uuid,
    version: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE hosts SET outdated_version = $2 WHERE id = $1")
        .bind(host_id)
        .bind(version)
        .execute(&mut **tx)
        .await
        .map_err(query_error("recording a host's outdated version"))?;
    Ok(())
}
