//! The pages that show the fleet: each reads the store functions the API routes read, in a
//! transaction confined to the user's tenant by row-level security — the same path, so the
//! console can show nothing the user's API token could not.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::layout::{self, Section, ago, health};
use super::session::{ConsoleUser, CsrfForm, Refusal};
use super::store::{commit, tenant_tx, unavailable};
use crate::api::ApiState;
use crate::store::inventory::containers::{self, ContainerFilter};
use crate::store::page::Page;
use crate::store::storage::alerts::{self, AlertFilter};
use crate::store::storage::{ListFilter, arrays, disks, pools};
use crate::store::{hosts, jobs as job_store};

/// Rows one page of a list shows.
const PAGE_ROWS: i64 = 500;

fn bytes(n: Option<i64>) -> String {
    match n {
        None => "—".into(),
        Some(n) => {
            let n = n as f64;
            let (value, unit) = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")]
                .into_iter()
                .find(|(scale, _)| n >= *scale)
                .map(|(scale, unit)| (n / scale, unit))
                .unwrap_or((n, "B"));
            format!("{value:.1} {unit}")
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetQuery {
    /// `key=value`: only hosts with that label.
    label: Option<String>,
}

/// Every host: health roll-up, open alerts, last seen, agent; silent hosts stand out.
pub async fn fleet(
    State(state): State<ApiState>,
    who: ConsoleUser,
    Query(q): Query<FleetQuery>,
) -> Result<Response, Refusal> {
    let mut tx = tenant_tx(&state, &who).await?;
    let label = q.label.as_deref().map(str::trim).filter(|l| !l.is_empty());
    let wanted = label.map(|l| {
        let (key, value) = l.split_once('=').unwrap_or((l, ""));
        (key.trim(), value.trim())
    });
    let mut list = hosts::list_hosts_labelled(&mut tx, wanted, &Page::first(PAGE_ROWS))
        .await
        .map_err(unavailable)?;
    let more = list.len() > PAGE_ROWS as usize;
    list.truncate(PAGE_ROWS as usize);
    let now = OffsetDateTime::now_utc();
    let silent = list.iter().filter(|h| h.silent_since.is_some()).count();
    let body = html! {
        h1 { "Fleet" }
        p.muted {
            (list.len()) @if list.len() == 1 { " host" } @else { " hosts" }
            @if silent > 0 { ", " strong.warning { (silent) " silent" } }
            @if more { " (the first " (PAGE_ROWS) ")" }
        }
        form method="get" action="/" {
            label { "Filter by label (key=value)"
                input name="label" value=(label.unwrap_or("")) placeholder="role=nas";
            }
            button type="submit" { "Filter" }
        }
        div.scroll {
            table {
                thead { tr {
                    th scope="col" { "Host" } th scope="col" { "Health" }
                    th scope="col" { "Open alerts" } th scope="col" { "Last seen" }
                    th.wide scope="col" { "Agent" } th.wide scope="col" { "OS" }
                } }
                tbody {
                    @for h in &list {
                        tr class=[h.silent_since.map(|_| "silent")] {
                            td {
                                a href={"/hosts/" (h.id)} { (h.hostname) }
                                @if let Some(since) = h.silent_since {
                                    br; span.warning { "silent since " (ago(Some(since), now)) }
                                }
                                @if h.revoked_at.is_some() { br; span.muted { "revoked" } }
                            }
                            td { (health(h.health.as_deref())) }
                            td { @if h.open_alerts > 0 { a href={"/alerts?host=" (h.id)} { (h.open_alerts) } } @else { "0" } }
                            td { (ago(h.last_seen_at, now)) }
                            td.wide { (h.agent_version.as_deref().unwrap_or("—")) }
                            td.wide { (h.os.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
        @if list.is_empty() {
            p.notice { "No hosts yet. An admin adds one with "
                code { "unity-controller enroll-token create" } " and the command it prints." }
        }
    };
    Ok(layout::page(&who, Section::Fleet, "Fleet", body))
}

fn reasons(list: &[String]) -> Markup {
    html! {
        @if list.is_empty() { span.muted { "—" } }
        @else { ul.plain { @for r in list { li { (r) } } } }
    }
}

/// One host: facts, storage, containers, recent jobs.
pub async fn host(
    State(state): State<ApiState>,
    who: ConsoleUser,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let not_found = || Ok(layout::not_found("host"));
    let Ok(id) = Uuid::try_parse(&id) else {
        return not_found();
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let Some(detail) = hosts::get_host(&mut tx, id).await.map_err(unavailable)? else {
        return not_found();
    };
    let filter = ListFilter {
        host_id: Some(id),
        health: None,
    };
    let all = Page::first(PAGE_ROWS);
    let disk_list = disks::list(&mut tx, filter, &all)
        .await
        .map_err(unavailable)?;
    let pool_list = pools::list(&mut tx, filter, &all)
        .await
        .map_err(unavailable)?;
    let array_list = arrays::list(&mut tx, filter, &all)
        .await
        .map_err(unavailable)?;
    let container_list = containers::list(
        &mut tx,
        &ContainerFilter {
            host_id: Some(id),
            ..ContainerFilter::default()
        },
        &all,
    )
    .await
    .map_err(unavailable)?;
    let recent_jobs = job_store::list(
        &mut tx,
        &job_store::JobFilter {
            host_id: Some(id),
            ..job_store::JobFilter::default()
        },
        &Page::first(10),
    )
    .await
    .map_err(unavailable)?;
    let now = OffsetDateTime::now_utc();
    let h = &detail.summary;
    let body = html! {
        h1 { (h.hostname) " " (health(h.health.as_deref())) }
        @if let Some(since) = h.silent_since {
            p.notice.warning role="status" { "Silent: no report since " (ago(Some(since), now)) "." }
        }
        section.panel aria-labelledby="facts" {
            h2 #facts { "Facts" }
            dl.facts {
                dt { "Last seen" } dd { (ago(h.last_seen_at, now)) }
                dt { "Agent" } dd { (h.agent_version.as_deref().unwrap_or("—")) }
                dt { "Certificate ends" } dd { (layout::until(detail.cert_not_after, now)) }
                dt { "Certificate from" } dd { (detail.cert_issuer.as_str()) }
                @if let Some(f) = &detail.facts {
                    dt { "OS" } dd { (f.os_name) " " (f.os_version) }
                    dt { "Kernel" } dd { (f.kernel_version) " (" (f.architecture) ")" }
                    dt { "CPU" } dd { (f.cpu_model) ", " (f.cpu_logical_cores) " threads" }
                    dt { "Memory" } dd { (bytes(i64::try_from(f.memory_available_bytes).ok())) " free of " (bytes(i64::try_from(f.memory_total_bytes).ok())) }
                    dt { "Booted" } dd { (ago(Some(now - time::Duration::seconds(i64::try_from(f.uptime_secs).unwrap_or(0))), now)) }
                } @else {
                    dt { "Facts" } dd.muted { "not reported yet" }
                }
            }
        }
        h2 { "Disks" }
        @if disk_list.is_empty() { p.muted { "No disks reported." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Device" } th scope="col" { "Verdict" } th scope="col" { "Why" }
                    th.wide scope="col" { "Model" } th.wide scope="col" { "Serial" } th scope="col" { "°C" } th.wide scope="col" { "Size" } } }
                tbody { @for d in &disk_list {
                    tr {
                        td { a href={"/disks/" (d.id)} { (d.device) } @if !d.present { br; span.muted { "absent" } } }
                        td { (health(Some(&d.health))) }
                        td { (reasons(&d.reasons)) }
                        td.wide { (d.model.as_deref().unwrap_or("—")) }
                        td.wide { (d.serial.as_deref().unwrap_or("—")) }
                        td { (d.temperature_c.map(|t| t.to_string()).unwrap_or_else(|| "—".into())) }
                        td.wide { (bytes(d.capacity_bytes)) }
                    }
                } }
            } }
        }
        h2 { "ZFS pools" }
        @if pool_list.is_empty() { p.muted { "No pools reported." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Pool" } th scope="col" { "State" } th scope="col" { "Verdict" } th scope="col" { "Why" } th scope="col" { "Scan" } th.wide scope="col" { "Used" } } }
                tbody { @for p in &pool_list {
                    tr {
                        td { a href={"/pools/" (p.id)} { (p.name) } }
                        td { (p.state) }
                        td { (health(Some(&p.health))) }
                        td { (reasons(&p.reasons)) }
                        td { @if let Some(f) = &p.scan_function { (f) " " (p.scan_state.as_deref().unwrap_or("")) @if let Some(pc) = p.scan_progress_percent { " " (format!("{pc:.1} %")) } } @else { span.muted { "—" } } }
                        td.wide { (p.capacity_percent.map(|c| format!("{c} %")).unwrap_or_else(|| "—".into())) }
                    }
                } }
            } }
        }
        h2 { "md arrays" }
        @if array_list.is_empty() { p.muted { "No arrays reported." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Array" } th scope="col" { "Level" } th scope="col" { "State" } th scope="col" { "Verdict" } th scope="col" { "Why" } th scope="col" { "Members" } th scope="col" { "Sync" } } }
                tbody { @for a in &array_list {
                    tr {
                        td { (a.name) }
                        td { (a.level) }
                        td { (a.state) }
                        td { (health(Some(&a.health))) }
                        td { (reasons(&a.reasons)) }
                        td { (a.active_disks.map(|n| n.to_string()).unwrap_or_else(|| "?".into())) " / " (a.raid_disks.map(|n| n.to_string()).unwrap_or_else(|| "?".into())) }
                        td { @if let Some(action) = &a.sync_action { (action) @if let Some(pc) = a.sync_progress_percent { " " (format!("{pc:.1} %")) } } @else { span.muted { "—" } } }
                    }
                } }
            } }
        }
        h2 { "Containers" }
        @if container_list.is_empty() { p.muted { "No containers reported." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "State" } th.wide scope="col" { "Image" } th scope="col" { "Update" } } }
                tbody { @for c in &container_list {
                    tr {
                        td { (c.name) @if !c.present { br; span.muted { "gone" } } }
                        td { (c.state) @if let Some(h) = &c.health { " (" (h) ")" } }
                        td.wide { code { (c.image) } }
                        td { (c.update_state.replace('_', " ")) }
                    }
                } }
            } }
        }
        h2 { "Recent jobs" }
        @if recent_jobs.is_empty() { p.muted { "No jobs yet." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Kind" } th scope="col" { "State" } th scope="col" { "Created" } th.wide scope="col" { "By" } } }
                tbody { @for j in &recent_jobs {
                    tr { td { (j.kind) } td { (j.state) } td { (ago(Some(j.created_at), now)) } td.wide { (j.requested_by) } }
                } }
            } }
        }
    };
    Ok(layout::page(&who, Section::Fleet, &h.hostname, body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    host: Option<String>,
}

/// Recent alerts, newest first, each linking to its host.
pub async fn alerts(
    State(state): State<ApiState>,
    who: ConsoleUser,
    Query(q): Query<AlertsQuery>,
) -> Result<Response, Refusal> {
    let host_id = q.host.as_deref().and_then(|h| Uuid::try_parse(h).ok());
    let mut tx = tenant_tx(&state, &who).await?;
    let list = alerts::list(
        &mut tx,
        AlertFilter {
            host_id,
            since: None,
        },
        &Page::first(PAGE_ROWS),
    )
    .await
    .map_err(unavailable)?;
    let names: BTreeMap<Uuid, String> = hosts::names(&mut tx).await.map_err(unavailable)?;
    let now = OffsetDateTime::now_utc();
    let may_ack = who.user.role.scope() >= crate::auth::Scope::Operate;
    let body = html! {
        h1 { "Alerts" }
        @if host_id.is_some() { p { a href="/alerts" { "All hosts" } } }
        @if list.is_empty() { p.muted { "No alerts." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Severity" } th scope="col" { "Host" } th scope="col" { "What" } th scope="col" { "Acknowledged" } } }
                tbody { @for a in list.iter().take(PAGE_ROWS as usize) {
                    tr {
                        td { (ago(Some(a.raised_at), now)) }
                        td { (layout::severity(&a.severity)) }
                        td { a href={"/hosts/" (a.host_id)} { (names.get(&a.host_id).map(String::as_str).unwrap_or("?")) } }
                        td { (a.message) }
                        td {
                            @if let (Some(at), Some(by)) = (a.acknowledged_at, &a.acknowledged_by) {
                                (ago(Some(at), now)) " by " (by)
                            } @else if may_ack && a.severity != "info" {
                                form method="post" action={"/alerts/" (a.id) "/acknowledge"} {
                                    input type="hidden" name="csrf" value=(who.user.csrf_token);
                                    button type="submit" { "Acknowledge" }
                                }
                            }
                        }
                    }
                } }
            } }
        }
    };
    Ok(layout::page(&who, Section::Alerts, "Alerts", body))
}

/// The series a disk page charts, when its samples carry them: (metric, title, unit).
const CHARTED: &[(&str, &str, &str)] = &[
    ("ata.5.", "Reallocated sectors", "sectors"),
    ("ata.197.", "Pending sectors", "sectors"),
    ("ata.198.", "Offline uncorrectable", "sectors"),
    ("nvme.percentage_used", "Endurance used", "%"),
    ("nvme.media_errors", "Media errors", "errors"),
    ("nvme.available_spare_percent", "Available spare", "%"),
    ("scsi.grown_defects", "Grown defects", "defects"),
    ("scsi.percentage_used_endurance", "Endurance used", "%"),
];

/// One disk: verdict and reasons, identity, its SMART numbers, and history charts over the
/// retained samples.
pub async fn disk(
    State(state): State<ApiState>,
    who: ConsoleUser,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let not_found = || Ok(layout::not_found("disk"));
    let Ok(id) = Uuid::try_parse(&id) else {
        return not_found();
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let Some(detail) = disks::get(&mut tx, id, 1000).await.map_err(unavailable)? else {
        return not_found();
    };
    let d = &detail.summary;
    let temperature: Vec<(OffsetDateTime, i64)> = detail
        .history
        .iter()
        .filter_map(|s| s.temperature_c.map(|t| (s.collected_at, i64::from(t))))
        .collect();
    let latest = detail.history.iter().max_by_key(|s| s.collected_at);
    let metric_names: Vec<String> = latest
        .and_then(|s| s.metrics.0.as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default();
    let series = |prefix: &str| -> Option<(String, Vec<(OffsetDateTime, i64)>)> {
        let name = metric_names.iter().find(|n| n.starts_with(prefix))?.clone();
        let points = detail
            .history
            .iter()
            .filter_map(|s| {
                s.metrics
                    .0
                    .get(&name)?
                    .as_i64()
                    .map(|v| (s.collected_at, v))
            })
            .collect();
        Some((name, points))
    };
    let body = html! {
        p { a href={"/hosts/" (d.host_id)} { "← host" } }
        h1 { (d.device) " " (health(Some(&d.health))) }
        section.panel {
            h2 { "Why" }
            (reasons(&d.reasons))
            dl.facts {
                dt { "Model" } dd { (d.model.as_deref().unwrap_or("—")) }
                dt { "Serial" } dd { (d.serial.as_deref().unwrap_or("—")) }
                dt { "Firmware" } dd { (d.firmware.as_deref().unwrap_or("—")) }
                dt { "Protocol" } dd { (d.protocol) " (" (detail.device_type) ")" }
                dt { "Size" } dd { (bytes(d.capacity_bytes)) }
                dt { "Power-on hours" } dd { (d.power_on_hours.map(|h| h.to_string()).unwrap_or_else(|| "—".into())) }
                dt { "Read" } dd { (d.read_status) @if !detail.read_detail.is_empty() { " — " (detail.read_detail) } }
            }
        }
        h2 { "History (" (detail.history.len()) " samples)" }
        (super::charts::line_chart("Temperature", "°C", &temperature))
        @for (prefix, title, unit) in CHARTED {
            @if let Some((name, points)) = series(prefix) {
                (super::charts::line_chart(&format!("{title} ({name})"), unit, &points))
            }
        }
        h2 { "SMART numbers (latest sample)" }
        @if metric_names.is_empty() { p.muted { "None reported." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Attribute" } th scope="col" { "Raw value" } } }
                tbody { @if let Some(latest) = latest { @for name in &metric_names {
                    tr { td { code { (name) } } td { (latest.metrics.0.get(name).map(|v| v.to_string()).unwrap_or_default()) } }
                } } }
            } }
        }
    };
    Ok(layout::page(&who, Section::Fleet, &d.device, body))
}

/// Acknowledges an alert (operator): no more reminders for it.
pub async fn acknowledge(
    State(state): State<ApiState>,
    who: ConsoleUser,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Refusal> {
    let axum::Form(form) = form.map_err(super::session::bad_form)?;
    who.admit(&headers, &form.csrf, crate::auth::Scope::Operate)?;
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(layout::not_found("alert"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let acked = alerts::acknowledge(&mut tx, id, &who.actor())
        .await
        .map_err(unavailable)?;
    if acked.is_none() {
        return Ok(layout::not_found("alert"));
    }
    commit(tx, "acknowledging an alert").await?;
    Ok(axum::response::Redirect::to("/alerts").into_response())
}

/// One pool: state, verdict and reasons, ZFS's own status and action text, the vdev tree
/// with each device's state and error counts, the last scan, and capacity history.
pub async fn pool(
    State(state): State<ApiState>,
    who: ConsoleUser,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let Ok(id) = Uuid::try_parse(&id) else {
        return Ok(layout::not_found("pool"));
    };
    let mut tx = tenant_tx(&state, &who).await?;
    let Some(detail) = pools::get(&mut tx, id, 1000).await.map_err(unavailable)? else {
        return Ok(layout::not_found("pool"));
    };
    let p = &detail.summary;
    let status = detail.detail.get("status");
    let text = |key: &str| {
        status
            .and_then(|s| s.get(key))
            .and_then(serde_json::Value::as_str)
    };
    let capacity: Vec<(OffsetDateTime, i64)> = detail
        .history
        .iter()
        .filter_map(|s| s.capacity_percent.map(|c| (s.collected_at, i64::from(c))))
        .collect();
    let body = html! {
        p { a href={"/hosts/" (p.host_id)} { "← host" } }
        h1 { (p.name) " " (health(Some(&p.health))) }
        section.panel {
            h2 { "Why" }
            (reasons(&p.reasons))
            dl.facts {
                dt { "State" } dd { (p.state) }
                @if let Some(s) = text("status") { dt { "ZFS says" } dd { (s) } }
                @if let Some(a) = text("action") { dt { "Action" } dd { (a) } }
                dt { "Last scan" } dd {
                    @if let Some(f) = &p.scan_function {
                        (f) " " (p.scan_state.as_deref().unwrap_or(""))
                        @if let Some(pc) = p.scan_progress_percent { " " (format!("{pc:.1} %")) }
                        @if let Some(e) = p.scan_errors { ", " (e) " errors" }
                    } @else { span.muted { "none recorded" } }
                }
                dt { "Data errors" } dd { (p.data_errors.map(|e| e.to_string()).unwrap_or_else(|| "—".into())) }
                dt { "Used" } dd { (bytes(p.allocated_bytes)) " of " (bytes(p.size_bytes)) }
            }
        }
        h2 { "Devices" }
        (super::vdevs::tree(status))
        h2 { "History (" (detail.history.len()) " samples)" }
        (super::charts::line_chart("Capacity used", "%", &capacity))
    };
    Ok(layout::page(&who, Section::Fleet, &p.name, body))
}
