//! `/api/v1/containers`, `/api/v1/images`, `/api/v1/databases`,
//! `/api/v1/hosts/{id}/inventory`.
//!
//! Query parameters arrive as text and are parsed here, so a bad value is a 400 with our JSON
//! error body naming the parameter.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use serde::Deserialize;
use unity_protocol::latest::{RunState, UpdateState};

use super::page::{Paged, page};
use super::storage::{host_filter, query};
use super::{ApiError, ApiState, ErrorBody, TenantAuth, parse_id};
use crate::store::inventory::containers::{
    self, ContainerDetail, ContainerFilter, ContainerSummary,
};
use crate::store::inventory::databases::{self, DatabaseDetail, DatabaseFilter, DatabaseSummary};
use crate::store::inventory::images::{self, ImageSummary};
use crate::store::inventory::{self, HostInventory};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ContainerQuery {
    /// Only containers of this host (uuid).
    host_id: Option<String>,
    /// Only containers in this engine state: `created`, `configured`, `initialized`,
    /// `running`, `paused`, `restarting`, `removing`, `stopping`, `stopped`, `exited`,
    /// `dead`, `unknown`.
    state: Option<String>,
    /// Only containers with this image update state: `up_to_date`, `update_available`,
    /// `unknown`, `not_checked`.
    update: Option<String>,
    /// Rows on the page (1-1000, default 100).
    limit: Option<String>,
    /// Where the page starts: the `cursor` of the previous page's `Link: rel="next"`.
    cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImageQuery {
    /// Only images of this host (uuid).
    host_id: Option<String>,
    /// Rows on the page (1-1000, default 100).
    limit: Option<String>,
    /// Where the page starts: the `cursor` of the previous page's `Link: rel="next"`.
    cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DatabaseQuery {
    /// Only databases of this host (uuid).
    host_id: Option<String>,
    /// Only databases of this kind (`postgresql`, `mysql`, `mariadb`, `mongodb`, `redis`,
    /// `valkey`, `minio`, …): 1-32 lower-case letters, digits, `-` or `_`.
    kind: Option<String>,
    /// Rows on the page (1-1000, default 100).
    limit: Option<String>,
    /// Where the page starts: the `cursor` of the previous page's `Link: rel="next"`.
    cursor: Option<String>,
}

/// `?state=`: one of the engine states with a name ([`RunState::KNOWN`]); an unnamed word is a
/// 400 rather than a filter that can only match what some future engine might send.
fn run_state_filter(raw: Option<&str>) -> Result<Option<RunState>, ApiError> {
    raw.map(|raw| {
        RunState::known(raw).ok_or_else(|| {
            let known: Vec<&str> = RunState::KNOWN.iter().map(RunState::as_str).collect();
            ApiError::BadRequest(format!("state `{raw}` is not one of {}", known.join(", ")))
        })
    })
    .transpose()
}

fn kind_filter(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    raw.map(|raw| {
        let valid = (1..=32).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(raw.to_owned())
        } else {
            Err(ApiError::BadRequest(format!(
                "kind `{raw}` is not a database kind (1-32 lower-case letters, digits, '-' or '_')"
            )))
        }
    })
    .transpose()
}

/// Containers of the caller's tenant (current state, including absent ones).
#[utoipa::path(
    get, path = "/api/v1/containers", tag = "inventory",
    security(("bearer" = [])),
    params(ContainerQuery),
    responses(
        (status = 200, description = "Containers (current state)", body = [ContainerSummary],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_containers(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<ContainerQuery>, QueryRejection>,
) -> Result<Paged<ContainerSummary>, ApiError> {
    let q = query(q)?;
    let filter = ContainerFilter {
        host_id: host_filter(q.host_id.as_deref())?,
        state: run_state_filter(q.state.as_deref())?,
        update: q
            .update
            .as_deref()
            .map(str::parse::<UpdateState>)
            .transpose()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
    };
    let page = page(q.limit.as_deref(), q.cursor.as_deref())?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = containers::list(&mut tx, &filter, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |c| {
        (c.host_id, c.name.clone(), c.id)
    }))
}

/// One container: current state and the agent's full record.
#[utoipa::path(
    get, path = "/api/v1/containers/{id}", tag = "inventory",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Container id (the controller's, not the engine's)")),
    responses(
        (status = 200, description = "The container", body = ContainerDetail),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such container in this tenant", body = ErrorBody),
    )
)]
pub async fn get_container(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<ContainerDetail>, ApiError> {
    let id = parse_id(&id, "container")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    containers::get(&mut tx, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("container"))
}

/// Container images on the caller's hosts.
#[utoipa::path(
    get, path = "/api/v1/images", tag = "inventory",
    security(("bearer" = [])),
    params(ImageQuery),
    responses(
        (status = 200, description = "Images (current state)", body = [ImageSummary],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_images(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<ImageQuery>, QueryRejection>,
) -> Result<Paged<ImageSummary>, ApiError> {
    let q = query(q)?;
    let host_id = host_filter(q.host_id.as_deref())?;
    let page = page(q.limit.as_deref(), q.cursor.as_deref())?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = images::list(&mut tx, host_id, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |i| {
        (i.host_id, i.image_id.clone(), i.id)
    }))
}

/// Databases found on the caller's hosts.
#[utoipa::path(
    get, path = "/api/v1/databases", tag = "inventory",
    security(("bearer" = [])),
    params(DatabaseQuery),
    responses(
        (status = 200, description = "Databases (current state)", body = [DatabaseSummary],
         headers(("Link" = String, description = "`<…&cursor=…>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    )
)]
pub async fn list_databases(
    State(state): State<ApiState>,
    auth: TenantAuth,
    uri: Uri,
    q: Result<Query<DatabaseQuery>, QueryRejection>,
) -> Result<Paged<DatabaseSummary>, ApiError> {
    let q = query(q)?;
    let filter = DatabaseFilter {
        host_id: host_filter(q.host_id.as_deref())?,
        kind: kind_filter(q.kind.as_deref())?,
    };
    let page = page(q.limit.as_deref(), q.cursor.as_deref())?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    let rows = databases::list(&mut tx, &filter, &page).await?;
    Ok(Paged::new(rows, &page, &uri, |d| {
        (d.host_id, d.kind.clone(), d.identity_key.clone(), d.id)
    }))
}

/// One database: current state and the agent's full record.
#[utoipa::path(
    get, path = "/api/v1/databases/{id}", tag = "inventory",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Database id")),
    responses(
        (status = 200, description = "The database", body = DatabaseDetail),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such database in this tenant", body = ErrorBody),
    )
)]
pub async fn get_database(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<DatabaseDetail>, ApiError> {
    let id = parse_id(&id, "database")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    databases::get(&mut tx, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("database"))
}

/// What runs on one host: its engine, containers by state and update status, images,
/// databases by kind, and whether the two collectors work.
#[utoipa::path(
    get, path = "/api/v1/hosts/{id}/inventory", tag = "inventory",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host's inventory summary", body = HostInventory),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such host in this tenant", body = ErrorBody),
    )
)]
pub async fn host_inventory(
    State(state): State<ApiState>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> Result<Json<HostInventory>, ApiError> {
    let id = parse_id(&id, "host")?;
    let mut tx = state.store.tenant_tx(auth.tenant_id).await?;
    inventory::host_inventory(&mut tx, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("host"))
}
