//! Applying a [`StorageReport`]: upsert disks, pools, arrays and collector states, append
//! samples, mark missing objects absent, raise alerts on changes — all inside the caller's
//! transaction, which also advanced the report cursor, so a redelivered report changes nothing.

use std::collections::HashSet;

use time::OffsetDateTime;
use unity_protocol::latest::{DiskReport, StorageReport};
use uuid::Uuid;

use super::storage_alerts::{self, Subject};
use super::{authoritative, detail, log_alert};
use crate::store::collectors;
use crate::store::host_rows::{HostScope, strip_nul};
use crate::store::storage::alerts::{self, NewAlert, ObjectKind};
use crate::store::storage::{DetailWrite, arrays, disks, known_health, pools, prune_samples};
use crate::store::{StoreError, TenantTx, hosts};

/// Applies `report` for `scope.host_id`. Returns false if the host is revoked or unknown.
pub async fn apply(
    tx: &mut TenantTx,
    scope: HostScope,
    report: &StorageReport,
    collected_at: OffsetDateTime,
) -> Result<bool, StoreError> {
    if !hosts::touch_active(tx, scope.host_id).await? {
        return Ok(false);
    }
    let report = sanitized(report);
    let mut raised = Vec::new();
    for (source, status) in [
        ("smart", &report.smart),
        ("zfs", &report.zfs),
        ("mdraid", &report.mdraid),
    ] {
        let state = status.state.as_str();
        let previous =
            collectors::record(tx, scope, source, state, &status.detail, collected_at).await?;
        raised.extend(storage_alerts::collector_alert(
            source,
            previous.as_deref(),
            status.state,
            &status.detail,
        ));
    }
    apply_disks(tx, scope, &report, collected_at, &mut raised).await?;
    apply_pools(tx, scope, &report, collected_at, &mut raised).await?;
    apply_arrays(tx, scope, &report, collected_at, &mut raised).await?;
    for alert in &raised {
        alerts::insert(tx, scope, alert, collected_at).await?;
        log_alert(scope, alert);
    }
    let pruned = prune_samples(tx, scope.host_id).await?;
    if pruned > 0 {
        tracing::debug!(tenant_id = %scope.tenant_id, host_id = %scope.host_id, pruned,
            "deleted storage samples past retention");
    }
    Ok(true)
}

/// The stable identity of a disk (docs/alerts.md, "Identity"): WWN, else model + serial,
/// else the device path on this host.
pub fn identity_key(host_id: Uuid, disk: &DiskReport) -> String {
    fn meaningful(value: &Option<String>) -> Option<&str> {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.chars().any(|c| c != '0'))
    }
    if let Some(wwn) = meaningful(&disk.wwn) {
        let wwn = wwn.to_ascii_lowercase();
        let wwn: String = wwn
            .trim_start_matches("0x")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if wwn.chars().any(|c| c != '0') {
            return format!("wwn:{wwn}");
        }
    }
    if let Some(serial) = meaningful(&disk.serial) {
        let model = disk.model.as_deref().map(str::trim).unwrap_or("");
        return format!("serial:{model}:{serial}");
    }
    format!("device:{host_id}:{}", disk.device)
}

fn metrics_json(disk: &DiskReport) -> serde_json::Value {
    serde_json::Value::Object(
        disk.metrics
            .iter()
            .map(|m| (m.name.clone(), serde_json::Value::from(m.value)))
            .collect(),
    )
}

/// A storage object's detail for its upsert: only the hash when it matches `stored_hash`
/// (the document has not changed since it was written), else the parsed document too.
fn detail_write(
    scope: HostScope,
    what: &'static str,
    name: &str,
    raw: &str,
    stored_hash: Option<&[u8]>,
) -> DetailWrite {
    let hash = DetailWrite::digest(raw);
    if stored_hash == Some(hash.as_slice()) {
        return DetailWrite { hash, value: None };
    }
    DetailWrite {
        hash,
        value: Some(detail(scope, what, name, raw)),
    }
}

async fn apply_disks(
    tx: &mut TenantTx,
    scope: HostScope,
    report: &StorageReport,
    collected_at: OffsetDateTime,
    raised: &mut Vec<NewAlert>,
) -> Result<(), StoreError> {
    let mut seen = Vec::with_capacity(report.disks.len());
    let mut keys = HashSet::new();
    for disk in &report.disks {
        let key = identity_key(scope.host_id, disk);
        if !keys.insert(key.clone()) {
            // The same disk through two paths (multipath, a RAID controller): keep the first.
            tracing::debug!(tenant_id = %scope.tenant_id, host_id = %scope.host_id,
                device = %disk.device, identity = %key, "disk listed twice in one report");
            continue;
        }
        let previous = disks::lock(tx, &key).await?;
        if let Some(owner) = &previous
            && owner.host_id != scope.host_id
            && owner.present
        {
            // Still reported by its own host: a second host's word does not move it (a
            // confused or compromised host must not turn another host's failing disk "ok").
            if owner.contested_by != Some(scope.host_id) {
                disks::mark_contested(tx, owner.id, scope.host_id).await?;
                raised.push(storage_alerts::disk_claimed(owner, disk, scope.host_id));
            }
            tracing::warn!(tenant_id = %scope.tenant_id, host_id = %scope.host_id,
                owner = %owner.host_id, device = %disk.device, identity = %key,
                "disk reported by two hosts at once; kept with its own host");
            continue;
        }
        let detail = detail_write(
            scope,
            "disk",
            &disk.device,
            &disk.detail_json,
            previous.as_ref().and_then(|p| p.detail_hash.as_deref()),
        );
        let id = disks::upsert(
            tx,
            scope,
            disks::DiskWrite {
                new_id: previous.as_ref().map_or_else(Uuid::new_v4, |p| p.id),
                identity_key: &key,
                report: disk,
                known_health: known_health(
                    disk.health,
                    previous
                        .as_ref()
                        .and_then(disks::DiskPrevious::known_health),
                ),
                detail: &detail,
                collected_at,
            },
        )
        .await?;
        disks::insert_sample(tx, scope, id, disk, &metrics_json(disk), collected_at).await?;
        let subject = Subject {
            kind: ObjectKind::Disk,
            id,
            name: storage_alerts::disk_name(disk),
        };
        raised.extend(storage_alerts::disk_alerts(
            &subject,
            previous.as_ref(),
            disk,
            scope.host_id,
        ));
        seen.push(id);
    }
    if authoritative(&report.smart) {
        for gone in disks::mark_absent(tx, scope.host_id, &seen).await? {
            raised.push(storage_alerts::vanished(ObjectKind::Disk, &gone));
        }
    }
    Ok(())
}

async fn apply_pools(
    tx: &mut TenantTx,
    scope: HostScope,
    report: &StorageReport,
    collected_at: OffsetDateTime,
    raised: &mut Vec<NewAlert>,
) -> Result<(), StoreError> {
    let mut seen = Vec::with_capacity(report.pools.len());
    let mut names = HashSet::new();
    for pool in &report.pools {
        if !names.insert(pool.name.as_str()) {
            continue;
        }
        let previous = pools::lock(tx, scope.host_id, &pool.name).await?;
        let detail = detail_write(
            scope,
            "pool",
            &pool.name,
            &pool.detail_json,
            previous.as_ref().and_then(|p| p.detail_hash.as_deref()),
        );
        let id = pools::upsert(
            tx,
            scope,
            pools::PoolWrite {
                new_id: previous.as_ref().map_or_else(Uuid::new_v4, |p| p.id),
                report: pool,
                known_health: known_health(
                    pool.health,
                    previous
                        .as_ref()
                        .and_then(pools::PoolPrevious::known_health),
                ),
                detail: &detail,
                collected_at,
            },
        )
        .await?;
        pools::insert_sample(tx, scope, id, pool, collected_at).await?;
        let subject = Subject {
            kind: ObjectKind::Pool,
            id,
            name: pool.name.clone(),
        };
        raised.extend(storage_alerts::pool_alerts(
            &subject,
            previous.as_ref(),
            pool,
        ));
        seen.push(id);
    }
    if authoritative(&report.zfs) {
        for gone in pools::mark_absent(tx, scope.host_id, &seen).await? {
            raised.push(storage_alerts::vanished(ObjectKind::Pool, &gone));
        }
    }
    Ok(())
}

async fn apply_arrays(
    tx: &mut TenantTx,
    scope: HostScope,
    report: &StorageReport,
    collected_at: OffsetDateTime,
    raised: &mut Vec<NewAlert>,
) -> Result<(), StoreError> {
    let mut seen = Vec::with_capacity(report.arrays.len());
    let mut names = HashSet::new();
    for array in &report.arrays {
        if !names.insert(array.name.as_str()) {
            continue;
        }
        let previous = arrays::lock(tx, scope.host_id, &array.name).await?;
        let detail = detail_write(
            scope,
            "array",
            &array.name,
            &array.detail_json,
            previous.as_ref().and_then(|p| p.detail_hash.as_deref()),
        );
        let id = arrays::upsert(
            tx,
            scope,
            arrays::ArrayWrite {
                new_id: previous.as_ref().map_or_else(Uuid::new_v4, |p| p.id),
                report: array,
                known_health: known_health(
                    array.health,
                    previous
                        .as_ref()
                        .and_then(arrays::ArrayPrevious::known_health),
                ),
                detail: &detail,
                collected_at,
            },
        )
        .await?;
        arrays::insert_sample(tx, scope, id, array, collected_at).await?;
        let subject = Subject {
            kind: ObjectKind::Array,
            id,
            name: array.name.clone(),
        };
        raised.extend(storage_alerts::array_alerts(
            &subject,
            previous.as_ref(),
            array,
        ));
        seen.push(id);
    }
    if authoritative(&report.mdraid) {
        for gone in arrays::mark_absent(tx, scope.host_id, &seen).await? {
            raised.push(storage_alerts::vanished(ObjectKind::Array, &gone));
        }
    }
    Ok(())
}

/// A copy of the report with NUL characters replaced in every text field: PostgreSQL `text`
/// cannot store them, and one odd byte from a tool must not make the report unstorable (the
/// agent would resend it forever). `detail_json` is handled by [`detail_value`](crate::store::host_rows::detail_value).
fn sanitized(report: &StorageReport) -> StorageReport {
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
    let mut r = report.clone();
    for status in [&mut r.smart, &mut r.zfs, &mut r.mdraid] {
        s(&mut status.detail);
    }
    for d in &mut r.disks {
        for t in [
            &mut d.device,
            &mut d.device_type,
            &mut d.protocol,
            &mut d.read_status,
            &mut d.read_detail,
        ] {
            s(t);
        }
        for t in [&mut d.model, &mut d.serial, &mut d.wwn, &mut d.firmware] {
            o(t);
        }
        v(&mut d.reasons);
        d.metrics.iter_mut().for_each(|m| s(&mut m.name));
    }
    for p in &mut r.pools {
        s(&mut p.name);
        s(&mut p.state);
        v(&mut p.reasons);
        o(&mut p.scan_function);
        o(&mut p.scan_state);
    }
    for a in &mut r.arrays {
        for t in [&mut a.name, &mut a.level, &mut a.state] {
            s(t);
        }
        v(&mut a.reasons);
        o(&mut a.sync_action);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use unity_protocol::latest::Health;

    fn disk(wwn: Option<&str>, model: Option<&str>, serial: Option<&str>) -> DiskReport {
        DiskReport {
            device: "/dev/sdb".into(),
            device_type: String::new(),
            protocol: "ata".into(),
            model: model.map(Into::into),
            serial: serial.map(Into::into),
            wwn: wwn.map(Into::into),
            firmware: None,
            capacity_bytes: None,
            rotation_rpm: None,
            read_status: "ok".into(),
            read_detail: String::new(),
            health: Health::Ok,
            reasons: Vec::new(),
            temperature_c: None,
            power_on_hours: None,
            metrics: Vec::new(),
            detail_json: "{}".into(),
        }
    }

    #[test]
    fn identity_prefers_wwn_then_serial_then_device() {
        let host = Uuid::nil();
        assert_eq!(
            identity_key(host, &disk(Some("0x5000C500 A1B2"), Some("M"), Some("S"))),
            "wwn:5000c500a1b2"
        );
        assert_eq!(
            identity_key(host, &disk(Some("0000000"), Some("M"), Some(" S1 "))),
            "serial:M:S1"
        );
        assert_eq!(
            identity_key(host, &disk(None, None, Some("S1"))),
            "serial::S1"
        );
        assert_eq!(
            identity_key(host, &disk(Some(""), Some("M"), Some("  "))),
            format!("device:{host}:/dev/sdb")
        );
    }
}
