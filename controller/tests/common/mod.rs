//! Shared set-up for the controller's integration tests: a real throwaway PostgreSQL and
//! tenants with hosts inserted through the same store functions enrollment uses.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use time::OffsetDateTime;
use unity_controller::store::{NewHost, Store, Tenant, hosts};
use unity_controller::testing::ThrowawayPostgres;
use uuid::Uuid;

pub async fn database() -> (ThrowawayPostgres, Store) {
    let pg = ThrowawayPostgres::start().await.expect("start PostgreSQL");
    let store = pg.fresh_store().await.expect("create a database");
    (pg, store)
}

/// The real router over `store`, with a job-signing key in a temporary directory (kept
/// alive by the returned guard).
pub fn app(store: Store) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let job_keys = unity_controller::jobs::JobKeys::new(dir.path());
    job_keys.load_or_create().unwrap();
    let sealer =
        std::sync::Arc::new(unity_controller::notify::Sealer::load_or_create(dir.path()).unwrap());
    (
        unity_controller::api::router(unity_controller::api::ApiState {
            dispatcher: unity_controller::jobs::Dispatcher::new(store.clone()),
            enrollment: unity_controller::api::EnrollmentInfo {
                quic_port: 7443,
                ca_fingerprint: unity_controller::app::load_ca(dir.path())
                    .unwrap()
                    .fingerprint(),
            },
            store,
            job_keys,
            sealer,
            console: unity_controller::console::ConsoleOptions::default(),
            login_throttle: Default::default(),
        }),
        dir,
    )
}

/// Inserts a host for `tenant` through a tenant-scoped transaction.
pub async fn add_host(store: &Store, tenant: &Tenant, hostname: &str) -> Uuid {
    let id = Uuid::new_v4();
    let mut tx = store.tenant_tx(tenant.id).await.unwrap();
    hosts::insert_host(
        &mut tx,
        &NewHost {
            id,
            tenant_id: tenant.id,
            hostname: hostname.into(),
            agent_version: "test".into(),
            cert_serial: "01".into(),
            cert_not_after: OffsetDateTime::now_utc() + time::Duration::days(30),
            cert_issuer: unity_controller::issuer::IssuerKind::BuiltIn,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// GET `path` through the real router; returns the status and the JSON body (null if none).
pub async fn get(
    app: &axum::Router,
    path: &str,
    token: Option<&str>,
) -> (axum::http::StatusCode, serde_json::Value) {
    request(app, "GET", path, token, None).await
}

/// `method path` with an optional JSON body through the real router.
pub async fn request(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (axum::http::StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            axum::body::Body::from(json.to_string())
        }
        None => axum::body::Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    // Not JSON (the metrics routes' text, an empty 204): the text as a JSON string.
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
    });
    (status, json)
}

/// `GET path` and the `rel="next"` target of its `Link` header, if any.
pub async fn get_page(
    app: &axum::Router,
    path: &str,
    token: &str,
) -> (axum::http::StatusCode, serde_json::Value, Option<String>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let next = response
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_owned())
        .map(|link| {
            let target = link
                .strip_prefix('<')
                .and_then(|rest| rest.strip_suffix(">; rel=\"next\""))
                .unwrap_or_else(|| panic!("Link header `{link}` is not one rel=next target"));
            target.to_owned()
        });
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap(), next)
}

/// Every row of a list route, walked `limit` rows at a time along its `Link` headers.
pub async fn get_every_page(
    app: &axum::Router,
    path: &str,
    token: &str,
    limit: usize,
) -> Vec<serde_json::Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut next = Some(format!("{path}{separator}limit={limit}"));
    let mut rows = Vec::new();
    while let Some(page) = next {
        let (status, body, link) = get_page(app, &page, token).await;
        assert_eq!(status, axum::http::StatusCode::OK, "{page}: {body}");
        let items = body.as_array().unwrap();
        assert!(items.len() <= limit, "{page}: {} rows", items.len());
        if link.is_some() {
            assert_eq!(items.len(), limit, "{page}: a short page with a next link");
        }
        rows.extend(items.iter().cloned());
        next = link;
    }
    rows
}

/// Storage report fixtures, built directly from the wire types.
pub mod fixtures {
    use unity_protocol::latest::{
        ArrayReport, DiskReport, Health, Metric, PoolReport, SourceState, SourceStatus,
        StorageReport,
    };

    pub fn ok() -> SourceStatus {
        SourceStatus {
            state: SourceState::Ok,
            detail: String::new(),
        }
    }

    pub fn failed(detail: &str) -> SourceStatus {
        SourceStatus {
            state: SourceState::Failed,
            detail: detail.into(),
        }
    }

    pub fn disk(device: &str, wwn: Option<&str>, serial: &str, health: Health) -> DiskReport {
        DiskReport {
            device: device.into(),
            device_type: "sat".into(),
            protocol: "ata".into(),
            model: Some("WDC WD40EFRX".into()),
            serial: Some(serial.into()),
            wwn: wwn.map(Into::into),
            firmware: Some("82.00A82".into()),
            capacity_bytes: Some(4_000_787_030_016),
            rotation_rpm: Some(5400),
            read_status: "ok".into(),
            read_detail: String::new(),
            health,
            reasons: match health {
                Health::Critical => vec!["SMART overall-health self-assessment: FAILED".into()],
                _ => Vec::new(),
            },
            temperature_c: Some(38),
            power_on_hours: Some(41_000),
            metrics: vec![Metric {
                name: "ata.5.reallocated_sector_ct".into(),
                value: if health == Health::Ok { 0 } else { 1200 },
            }],
            detail_json: format!(
                r#"{{"device":"{device}","smart_passed":{}}}"#,
                health == Health::Ok
            ),
        }
    }

    pub fn pool(name: &str, state: &str, health: Health) -> PoolReport {
        PoolReport {
            name: name.into(),
            state: state.into(),
            health,
            reasons: if state == "ONLINE" {
                Vec::new()
            } else {
                vec![format!("pool {name} is {state}")]
            },
            size_bytes: Some(8_000_000_000_000),
            allocated_bytes: Some(2_000_000_000_000),
            free_bytes: Some(6_000_000_000_000),
            capacity_percent: Some(25),
            fragmentation_percent: Some(3),
            scan_function: Some("scrub".into()),
            scan_state: Some("finished".into()),
            scan_progress_percent: None,
            scan_errors: Some(0),
            data_errors: Some(0),
            detail_json: format!(r#"{{"name":"{name}","vdevs":[]}}"#),
        }
    }

    pub fn array(name: &str, degraded: bool, health: Health) -> ArrayReport {
        ArrayReport {
            name: name.into(),
            level: "raid1".into(),
            state: "active".into(),
            health,
            reasons: if degraded {
                vec!["1 of 2 members missing".into()]
            } else {
                Vec::new()
            },
            raid_disks: Some(2),
            active_disks: Some(if degraded { 1 } else { 2 }),
            degraded,
            sync_action: None,
            sync_progress_percent: None,
            detail_json: format!(r#"{{"name":"{name}"}}"#),
        }
    }

    pub fn report(
        disks: Vec<DiskReport>,
        pools: Vec<PoolReport>,
        arrays: Vec<ArrayReport>,
    ) -> StorageReport {
        StorageReport {
            smart: ok(),
            disks,
            zfs: ok(),
            pools,
            mdraid: ok(),
            arrays,
        }
    }
}

/// Applies a storage report for `host` of `tenant` through the real ingest path.
pub async fn send_storage(
    store: &Store,
    tenant: &Tenant,
    host: Uuid,
    stream_id: Uuid,
    seq: u64,
    report: unity_protocol::latest::StorageReport,
) -> unity_protocol::latest::ReportReply {
    let collected_at_ms =
        i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
            + i64::try_from(seq).unwrap();
    send_storage_at(store, tenant, host, stream_id, seq, collected_at_ms, report).await
}

pub async fn send_storage_at(
    store: &Store,
    tenant: &Tenant,
    host: Uuid,
    stream_id: Uuid,
    seq: u64,
    collected_at_ms: i64,
    report: unity_protocol::latest::StorageReport,
) -> unity_protocol::latest::ReportReply {
    unity_controller::ingest::apply(
        store,
        &unity_controller::jobs::outcome::Peer {
            identity: unity_pki::HostIdentity {
                tenant_id: tenant.id,
                host_id: host,
            },
            host_key: Vec::new(),
        },
        &unity_protocol::latest::Report {
            stream_id,
            seq,
            collected_at_ms,
            body: unity_protocol::latest::ReportBody::Storage(report),
        },
    )
    .await
    .unwrap()
}

/// Applies any report body for `host` of `tenant` through the real ingest path.
pub async fn send_body(
    store: &Store,
    tenant: &Tenant,
    host: Uuid,
    stream_id: Uuid,
    seq: u64,
    body: unity_protocol::latest::ReportBody,
) -> unity_protocol::latest::ReportReply {
    let collected_at_ms =
        i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
            + i64::try_from(seq).unwrap();
    unity_controller::ingest::apply(
        store,
        &unity_controller::jobs::outcome::Peer {
            identity: unity_pki::HostIdentity {
                tenant_id: tenant.id,
                host_id: host,
            },
            host_key: Vec::new(),
        },
        &unity_protocol::latest::Report {
            stream_id,
            seq,
            collected_at_ms,
            body,
        },
    )
    .await
    .unwrap()
}

/// Container and database report fixtures, built directly from the wire types.
pub mod inventory {
    use unity_protocol::latest::{
        ContainerInfo, ContainerReport, DatabaseInfo, DatabaseReport, EngineInfo, ImageInfo,
        ImageUpdate, ReportBody, UpdateState,
    };

    use super::fixtures::ok;

    pub fn engine() -> EngineInfo {
        EngineInfo {
            kind: "docker".into(),
            version: "27.3.1".into(),
            api_version: "1.47".into(),
            storage_driver: "overlay2".into(),
            rootless: false,
            endpoint: "unix:///var/run/docker.sock".into(),
        }
    }

    pub fn container(id: &str, name: &str, state: &str) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            name: format!("/{name}"),
            image: format!("ghcr.io/example/{name}:latest"),
            image_id: format!("sha256:{id}img"),
            repo_digest: Some(format!("ghcr.io/example/{name}@sha256:old")),
            state: state.into(),
            health: None,
            exit_code: if state == "running" { None } else { Some(0) },
            restart_count: Some(0),
            created_at_ms: Some(1_700_000_000_000),
            started_at_ms: Some(1_700_000_100_000),
            ports: vec!["0.0.0.0:8080->80/tcp".into()],
            compose_project: Some("homelab".into()),
            compose_service: Some(name.into()),
            update: ImageUpdate {
                state: UpdateState::UpToDate,
                new_digest: None,
                reason: String::new(),
            },
            detail_json: format!(
                r#"{{"id":"{id}","labels":{{"com.docker.compose.service":"{name}"}}}}"#
            ),
        }
    }

    pub fn image(id: &str, tag: &str) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            tags: vec![tag.into()],
            digests: vec![format!("{tag}@sha256:old")],
            size_bytes: Some(187_000_000),
            created_at_ms: Some(1_690_000_000_000),
        }
    }

    pub fn containers(list: Vec<ContainerInfo>, images: Vec<ImageInfo>) -> ReportBody {
        ReportBody::Containers(ContainerReport {
            status: ok(),
            engine: Some(engine()),
            containers: list,
            images,
        })
    }

    pub fn database(kind: &str, listen: &str, version: &str) -> DatabaseInfo {
        DatabaseInfo {
            kind: kind.into(),
            version: Some(version.into()),
            listen: vec![listen.into()],
            pid: Some(1234),
            process: Some(kind.into()),
            container_id: None,
            data_dir: Some(format!("/var/lib/{kind}")),
            found_by: vec!["socket".into(), "process".into()],
            probe: "confirmed".into(),
            probe_detail: String::new(),
            detail_json: format!(r#"{{"kind":"{kind}"}}"#),
        }
    }

    pub fn databases(list: Vec<DatabaseInfo>) -> ReportBody {
        ReportBody::Databases(DatabaseReport {
            status: ok(),
            databases: list,
        })
    }
}
