//! `GET /metrics` (the controller's health, public: counts only) and `GET /api/v1/metrics`
//! (the tenant's fleet, behind its token). See `crate::metrics` and docs/metrics.md.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus::Registry;
use time::OffsetDateTime;
use unity_protocol::latest::UpdateState;
use uuid::Uuid;

use super::{ApiError, ApiState, TenantAuth};
use crate::metrics::{self, float_gauge, gauge, health_value};
use crate::store::{TenantTx, query_error};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// The controller's own health in the Prometheus text format.
#[utoipa::path(
    get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"))
)]
pub async fn controller_metrics(State(state): State<ApiState>) -> Response {
    let extra = Registry::new();
    if let Some(g) = gauge(
        &extra,
        "unity_build_info",
        "The controller's version (always 1).",
        &["version"],
    ) {
        g.with_label_values(&[crate::VERSION]).set(1);
    }
    if let Some(g) = gauge(
        &extra,
        "unity_agent_sessions",
        "Agent sessions this controller replica holds.",
        &[],
    ) {
        g.with_label_values::<&str>(&[])
            .set(i64::try_from(state.dispatcher.connected()).unwrap_or(0));
    }
    // Across tenants, counts only.
    let admin = state.store.admin();
    let jobs: Result<Vec<(String, i64)>, _> =
        sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state")
            .fetch_all(admin)
            .await;
    let outbox: Result<Vec<(String, i64)>, _> =
        sqlx::query_as("SELECT state, count(*) FROM notifications GROUP BY state ORDER BY state")
            .fetch_all(admin)
            .await;
    let up = jobs.is_ok() && outbox.is_ok();
    if let Some(g) = gauge(
        &extra,
        "unity_store_up",
        "Whether the controller's last query to its database worked (1) or not (0).",
        &[],
    ) {
        g.with_label_values::<&str>(&[]).set(i64::from(up));
    }
    if let (Ok(jobs), Some(g)) = (
        jobs,
        gauge(
            &extra,
            "unity_jobs",
            "Jobs by state, all tenants.",
            &["state"],
        ),
    ) {
        for (job_state, n) in jobs {
            g.with_label_values(&[&job_state]).set(n);
        }
    }
    if let (Ok(outbox), Some(g)) = (
        outbox,
        gauge(
            &extra,
            "unity_notifications",
            "Notifications in the outbox by state, all tenants.",
            &["state"],
        ),
    ) {
        for (n_state, n) in outbox {
            g.with_label_values(&[&n_state]).set(n);
        }
    }
    let body = match metrics::get() {
        Some(m) => metrics::render(&m.registry, &extra),
        None => metrics::render(&Registry::new(), &extra),
    };
    text(body)
}

#[derive(sqlx::FromRow)]
struct DiskRow {
    host_id: Uuid,
    id: Uuid,
    device: String,
    model: Option<String>,
    serial: Option<String>,
    health: String,
    temperature_c: Option<i32>,
}

#[derive(sqlx::FromRow)]
struct PoolRow {
    host_id: Uuid,
    name: String,
    state: String,
    health: String,
    scan_errors: Option<i64>,
    scan_function: Option<String>,
    scan_ended: Option<i64>,
}

fn unix(t: OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

async fn fleet(tx: &mut TenantTx, registry: &Registry) -> Result<(), crate::store::StoreError> {
    let host_labels = ["host_id", "hostname"];
    let hosts: Vec<(Uuid, String, Option<OffsetDateTime>, Option<OffsetDateTime>)> =
        sqlx::query_as(
            "SELECT id, hostname, last_seen_at, silent_since FROM hosts \
             WHERE revoked_at IS NULL ORDER BY hostname, id",
        )
        .fetch_all(&mut **tx)
        .await
        .map_err(query_error("reading hosts for metrics"))?;
    let names: std::collections::HashMap<Uuid, String> = hosts
        .iter()
        .map(|(id, name, _, _)| (*id, name.clone()))
        .collect();
    let name = |id: &Uuid| names.get(id).cloned().unwrap_or_default();
    if let (Some(seen), Some(silent)) = (
        float_gauge(
            registry,
            "unity_host_last_seen_timestamp_seconds",
            "When the host last reported (Unix time).",
            &host_labels,
        ),
        gauge(
            registry,
            "unity_host_silent",
            "1 while the host has stopped reporting (the host_silent alert is open).",
            &host_labels,
        ),
    ) {
        for (id, hostname, last_seen, silent_since) in &hosts {
            let id = id.to_string();
            if let Some(at) = last_seen {
                seen.with_label_values(&[&id, hostname]).set(unix(*at));
            }
            silent
                .with_label_values(&[&id, hostname])
                .set(i64::from(silent_since.is_some()));
        }
    }

    let disks: Vec<DiskRow> = sqlx::query_as(
        "SELECT d.host_id, d.id, d.device, d.model, d.serial, d.health, d.temperature_c \
             FROM disks d JOIN hosts h ON h.id = d.host_id \
             WHERE d.present AND h.revoked_at IS NULL ORDER BY d.host_id, d.device",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("reading disks for metrics"))?;
    let disk_labels = [
        "host_id", "hostname", "disk_id", "device", "model", "serial",
    ];
    if let (Some(health), Some(temperature)) = (
        gauge(
            registry,
            "unity_disk_health",
            "Disk health verdict: 0 ok, 1 unknown, 2 warning, 3 critical.",
            &disk_labels,
        ),
        gauge(
            registry,
            "unity_disk_temperature_celsius",
            "Disk temperature at the last read.",
            &disk_labels,
        ),
    ) {
        for DiskRow {
            host_id: host,
            id,
            device,
            model,
            serial,
            health: h,
            temperature_c: temp,
        } in &disks
        {
            let labels = [
                host.to_string(),
                name(host),
                id.to_string(),
                device.clone(),
                model.clone().unwrap_or_default(),
                serial.clone().unwrap_or_default(),
            ];
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            health.with_label_values(&labels).set(health_value(h));
            if let Some(t) = temp {
                temperature.with_label_values(&labels).set(i64::from(*t));
            }
        }
    }

    let pools: Vec<PoolRow> = sqlx::query_as(
        "SELECT p.host_id, p.name, p.state, p.health, p.scan_errors, \
                    p.detail #>> '{scan,function}' AS scan_function, \
                    (p.detail #>> '{scan,ended,UnixSeconds}')::bigint AS scan_ended \
             FROM pools p JOIN hosts h ON h.id = p.host_id \
             WHERE p.present AND h.revoked_at IS NULL ORDER BY p.host_id, p.name",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("reading pools for metrics"))?;
    if let (Some(health), Some(online), Some(scan_end), Some(errors)) = (
        gauge(
            registry,
            "unity_pool_health",
            "ZFS pool health verdict: 0 ok, 1 unknown, 2 warning, 3 critical.",
            &["host_id", "hostname", "pool"],
        ),
        gauge(
            registry,
            "unity_pool_online",
            "1 when the pool's state is ONLINE.",
            &["host_id", "hostname", "pool", "state"],
        ),
        float_gauge(
            registry,
            "unity_pool_last_scan_end_timestamp_seconds",
            "When the pool's last scrub or resilver ended (Unix time); its age is time() minus this.",
            &["host_id", "hostname", "pool", "function"],
        ),
        gauge(
            registry,
            "unity_pool_scan_errors",
            "Errors the pool's last completed scan found.",
            &["host_id", "hostname", "pool"],
        ),
    ) {
        for PoolRow {
            host_id: host,
            name: pool,
            state: pool_state,
            health: h,
            scan_errors,
            scan_function: function,
            scan_ended: ended,
        } in &pools
        {
            let (host_id, hostname) = (host.to_string(), name(host));
            health
                .with_label_values(&[&host_id, &hostname, pool])
                .set(health_value(h));
            online
                .with_label_values(&[&host_id, &hostname, pool, pool_state])
                .set(i64::from(pool_state == "ONLINE"));
            if let Some(ended) = ended {
                scan_end
                    .with_label_values(&[
                        &host_id,
                        &hostname,
                        pool,
                        &function.clone().unwrap_or_default().to_lowercase(),
                    ])
                    .set(*ended as f64);
            }
            if let Some(n) = scan_errors {
                errors
                    .with_label_values(&[&host_id, &hostname, pool])
                    .set(*n);
            }
        }
    }

    let arrays: Vec<(Uuid, String, String, bool)> = sqlx::query_as(
        "SELECT a.host_id, a.name, a.health, a.degraded FROM arrays a \
         JOIN hosts h ON h.id = a.host_id \
         WHERE a.present AND h.revoked_at IS NULL ORDER BY a.host_id, a.name",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("reading arrays for metrics"))?;
    if let (Some(health), Some(degraded)) = (
        gauge(
            registry,
            "unity_array_health",
            "md RAID array health verdict: 0 ok, 1 unknown, 2 warning, 3 critical.",
            &["host_id", "hostname", "array"],
        ),
        gauge(
            registry,
            "unity_array_degraded",
            "1 while the array is degraded.",
            &["host_id", "hostname", "array"],
        ),
    ) {
        for (host, array, h, d) in &arrays {
            let (host_id, hostname) = (host.to_string(), name(host));
            health
                .with_label_values(&[&host_id, &hostname, array])
                .set(health_value(h));
            degraded
                .with_label_values(&[&host_id, &hostname, array])
                .set(i64::from(*d));
        }
    }

    let containers: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT c.host_id, c.name, c.update_state FROM containers c \
         JOIN hosts h ON h.id = c.host_id \
         WHERE c.present AND h.revoked_at IS NULL ORDER BY c.host_id, c.name",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("reading containers for metrics"))?;
    if let Some(update) = gauge(
        registry,
        "unity_container_update_available",
        "1 when a newer image is known for the container's tag.",
        &["host_id", "hostname", "container"],
    ) {
        for (host, container, update_state) in &containers {
            update
                .with_label_values(&[&host.to_string(), &name(host), container])
                .set(i64::from(
                    update_state.parse() == Ok(UpdateState::UpdateAvailable),
                ));
        }
    }

    let packages: Vec<(Uuid, i32, i32, bool)> = sqlx::query_as(
        "SELECT p.host_id, p.pending_count, p.security_count, p.reboot_required \
         FROM host_packages p JOIN hosts h ON h.id = p.host_id \
         WHERE h.revoked_at IS NULL ORDER BY p.host_id",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("reading packages for metrics"))?;
    if let (Some(pending), Some(security), Some(reboot)) = (
        gauge(
            registry,
            "unity_host_pending_updates",
            "Package updates pending on the host.",
            &host_labels,
        ),
        gauge(
            registry,
            "unity_host_security_updates",
            "Of those, security updates.",
            &host_labels,
        ),
        gauge(
            registry,
            "unity_host_reboot_required",
            "1 when the host needs a reboot.",
            &host_labels,
        ),
    ) {
        for (host, p, s, r) in &packages {
            let labels = [host.to_string(), name(host)];
            let labels = [labels[0].as_str(), labels[1].as_str()];
            pending.with_label_values(&labels).set(i64::from(*p));
            security.with_label_values(&labels).set(i64::from(*s));
            reboot.with_label_values(&labels).set(i64::from(*r));
        }
    }
    Ok(())
}

/// The tenant's fleet in the Prometheus text format: per host and device gauges.
#[utoipa::path(
    get, path = "/api/v1/metrics", tag = "metrics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, description = "Missing or invalid token", body = super::ErrorBody),
    )
)]
pub async fn fleet_metrics(
    State(state): State<ApiState>,
    auth: TenantAuth,
) -> Result<Response, ApiError> {
    let registry = Registry::new();
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    fleet(&mut tx, &registry).await?;
    drop(tx);
    Ok(text(metrics::render(&registry, &Registry::new())))
}
