//! Applying a [`ContainerReport`] or [`DatabaseReport`]: upsert the engine, containers,
//! images, databases and the collector state, mark missing objects absent when the source
//! worked, raise alerts on changes — all inside the caller's transaction, which also advanced
//! the report cursor, so a redelivered report changes nothing. Same rules as storage
//! (`ingest::storage`): `detail_json` stored as `jsonb` (text that is not JSON as a JSON
//! string), NUL replaced in every text, nothing deleted.

use std::collections::HashSet;

use time::OffsetDateTime;
use unity_protocol::latest::{ContainerReport, DatabaseReport, SourceStatus};
use uuid::Uuid;

use super::inventory_alerts;
use super::storage_alerts::{self, Subject};
use super::{authoritative, detail, log_alert};
use crate::store::collectors;
use crate::store::host_rows::{HostScope, strip_nul};
use crate::store::inventory::{self, containers, databases, images};
use crate::store::storage::alerts::{self, NewAlert, ObjectKind};
use crate::store::{StoreError, TenantTx, hosts};

/// Records the collector state of `source`, raising `collector_state` alerts like storage.
async fn record_source(
    tx: &mut TenantTx,
    scope: HostScope,
    source: &'static str,
    status: &SourceStatus,
    collected_at: OffsetDateTime,
    raised: &mut Vec<NewAlert>,
) -> Result<(), StoreError> {
    let state = status.state.as_str();
    let previous =
        collectors::record(tx, scope, source, state, &status.detail, collected_at).await?;
    raised.extend(storage_alerts::collector_alert(
        source,
        previous.as_deref(),
        status.state,
        &status.detail,
    ));
    Ok(())
}

async fn raise(
    tx: &mut TenantTx,
    scope: HostScope,
    raised: &[NewAlert],
    collected_at: OffsetDateTime,
) -> Result<(), StoreError> {
    for alert in raised {
        alerts::insert(tx, scope, alert, collected_at).await?;
        log_alert(scope, alert);
    }
    Ok(())
}

/// Applies a container report for `scope.host_id`. Returns false if the host is revoked or
/// unknown.
pub async fn apply_containers(
    tx: &mut TenantTx,
    scope: HostScope,
    report: &ContainerReport,
    collected_at: OffsetDateTime,
) -> Result<bool, StoreError> {
    if !hosts::touch_active(tx, scope.host_id).await? {
        return Ok(false);
    }
    let report = sanitized_containers(report);
    let mut raised = Vec::new();
    record_source(
        tx,
        scope,
        "containers",
        &report.status,
        collected_at,
        &mut raised,
    )
    .await?;
    let whole_truth = authoritative(&report.status);
    match &report.engine {
        Some(engine) => inventory::upsert_engine(tx, scope, engine, collected_at).await?,
        None if whole_truth => inventory::mark_engine_absent(tx, scope.host_id).await?,
        None => {}
    }

    let mut seen = Vec::with_capacity(report.containers.len());
    let mut ids = HashSet::new();
    for container in &report.containers {
        if !ids.insert(container.id.as_str()) {
            tracing::debug!(tenant_id = %scope.tenant_id, host_id = %scope.host_id,
                container = %container.id, "container listed twice in one report");
            continue;
        }
        let previous = containers::lock(tx, scope.host_id, &container.id).await?;
        let name = inventory_alerts::container_name(container);
        let detail = detail(scope, "container", &name, &container.detail_json);
        let known_health = inventory_alerts::known_health(
            container.health.as_deref(),
            previous.as_ref().and_then(|p| p.known_health.as_deref()),
        );
        let notified = inventory_alerts::update_notified(
            container,
            previous.as_ref().and_then(|p| p.update_notified.as_deref()),
        );
        let id = containers::upsert(
            tx,
            scope,
            containers::ContainerWrite {
                new_id: previous.as_ref().map_or_else(Uuid::new_v4, |p| p.id),
                report: container,
                known_health,
                update_notified: notified.as_deref(),
                detail: &detail,
                collected_at,
            },
        )
        .await?;
        let subject = Subject {
            kind: ObjectKind::Container,
            id,
            name,
        };
        raised.extend(inventory_alerts::container_alerts(
            &subject,
            previous.as_ref(),
            container,
        ));
        seen.push(id);
    }

    let mut seen_images = Vec::with_capacity(report.images.len());
    let mut image_ids = HashSet::new();
    for image in &report.images {
        if image_ids.insert(image.id.as_str()) {
            seen_images.push(images::upsert(tx, scope, image, collected_at).await?);
        }
    }

    if whole_truth {
        let gone = containers::mark_absent(tx, scope.host_id, &seen).await?
            + images::mark_absent(tx, scope.host_id, &seen_images).await?;
        if gone > 0 {
            tracing::debug!(tenant_id = %scope.tenant_id, host_id = %scope.host_id, gone,
                "containers or images no longer reported; marked absent");
        }
    }
    raise(tx, scope, &raised, collected_at).await?;
    Ok(true)
}

/// Applies a database report for `scope.host_id`. Returns false if the host is revoked or
/// unknown.
pub async fn apply_databases(
    tx: &mut TenantTx,
    scope: HostScope,
    report: &DatabaseReport,
    collected_at: OffsetDateTime,
) -> Result<bool, StoreError> {
    if !hosts::touch_active(tx, scope.host_id).await? {
        return Ok(false);
    }
    let report = sanitized_databases(report);
    let mut raised = Vec::new();
    record_source(
        tx,
        scope,
        "databases",
        &report.status,
        collected_at,
        &mut raised,
    )
    .await?;
    let mut seen = Vec::with_capacity(report.databases.len());
    let mut keys = HashSet::new();
    for db in &report.databases {
        let key = inventory_alerts::database_identity(db);
        if !keys.insert(key.clone()) {
            tracing::debug!(tenant_id = %scope.tenant_id, host_id = %scope.host_id,
                identity = %key, "database listed twice in one report; keeping the first");
            continue;
        }
        let previous = databases::lock(tx, scope.host_id, &key).await?;
        let detail = detail(scope, "database", &key, &db.detail_json);
        let id = databases::upsert(
            tx,
            scope,
            databases::DatabaseWrite {
                new_id: previous.as_ref().map_or_else(Uuid::new_v4, |p| p.id),
                identity_key: &key,
                report: db,
                detail: &detail,
                collected_at,
            },
        )
        .await?;
        let subject = Subject {
            kind: ObjectKind::Database,
            id,
            name: key,
        };
        raised.extend(inventory_alerts::database_alerts(
            &subject,
            previous.as_ref(),
            db,
        ));
        seen.push(id);
    }
    if authoritative(&report.status) {
        for gone in databases::mark_absent(tx, scope.host_id, &seen).await? {
            raised.push(storage_alerts::vanished(ObjectKind::Database, &gone));
        }
    }
    raise(tx, scope, &raised, collected_at).await?;
    Ok(true)
}

fn s(text: &mut String) {
    if text.contains('\0') {
        *text = strip_nul(text);
    }
}

fn o(text: &mut Option<String>) {
    if let Some(t) = text {
        s(t);
    }
}

fn v(texts: &mut [String]) {
    texts.iter_mut().for_each(s);
}

/// A copy with NUL replaced in every text field (see `ingest::storage::sanitized`);
/// `detail_json` is handled when it is parsed.
fn sanitized_containers(report: &ContainerReport) -> ContainerReport {
    let mut r = report.clone();
    s(&mut r.status.detail);
    if let Some(e) = &mut r.engine {
        for t in [
            &mut e.kind,
            &mut e.version,
            &mut e.api_version,
            &mut e.storage_driver,
            &mut e.endpoint,
        ] {
            s(t);
        }
    }
    for c in &mut r.containers {
        for t in [
            &mut c.id,
            &mut c.name,
            &mut c.image,
            &mut c.image_id,
            &mut c.state,
            &mut c.update.reason,
        ] {
            s(t);
        }
        for t in [
            &mut c.repo_digest,
            &mut c.health,
            &mut c.compose_project,
            &mut c.compose_service,
            &mut c.update.new_digest,
        ] {
            o(t);
        }
        v(&mut c.ports);
    }
    for i in &mut r.images {
        s(&mut i.id);
        v(&mut i.tags);
        v(&mut i.digests);
    }
    r
}

fn sanitized_databases(report: &DatabaseReport) -> DatabaseReport {
    let mut r = report.clone();
    s(&mut r.status.detail);
    for d in &mut r.databases {
        for t in [&mut d.kind, &mut d.probe, &mut d.probe_detail] {
            s(t);
        }
        for t in [
            &mut d.version,
            &mut d.process,
            &mut d.container_id,
            &mut d.data_dir,
        ] {
            o(t);
        }
        v(&mut d.listen);
        v(&mut d.found_by);
    }
    r
}
