//! A rollout request into a rollout: hosts chosen by labels or ids (fixed now, so what it will
//! touch is known and shown before anything runs), placed in waves in hostname order.

use std::collections::BTreeMap;

use serde::Deserialize;
use uuid::Uuid;

use super::plan::{WaveSize, parse_waves, wave_sizes};
use crate::jobs::CreateJobError;
use crate::jobs::create::{DEFAULT_LIFETIME, MAX_LIFETIME, check_params};
use crate::store::rollouts::{self, NewRollout, Rollout};
use crate::store::{StoreError, TenantTx};

/// `POST /api/v1/rollouts` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// `ping`, `container_update`, `package_upgrade` or `agent_update`.
    pub kind: String,
    /// The kind's parameters, as for `POST /api/v1/jobs`; the same for every host.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub hosts: HostSelector,
    /// Wave sizes: host counts or percentages of all selected hosts; the last wave takes
    /// the rest. Default `[1, "25%", "100%"]`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub waves: Option<Vec<serde_json::Value>>,
    /// Failed hosts a wave may have with the next wave still starting (default 0).
    pub failure_budget: Option<u32>,
    /// Touch hosts with degraded storage, and ignore maintenance windows (default false).
    #[serde(default)]
    pub force: bool,
    /// Lifetime of each job, from when its wave reaches it (default 3600 s).
    pub job_expires_in_secs: Option<u64>,
}

/// Which hosts: all of `labels` must match; `host_ids` narrows to those; `all` with neither
/// takes every active host (it must be said explicitly).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSelector {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub host_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    pub all: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateRolloutError {
    #[error("invalid rollout: {0}")]
    Invalid(String),
    /// A named host is not the tenant's (or does not exist): indistinguishable on purpose.
    #[error("host not found")]
    HostNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CreateJobError> for CreateRolloutError {
    fn from(error: CreateJobError) -> Self {
        match error {
            CreateJobError::Store(e) => CreateRolloutError::Store(e),
            other => CreateRolloutError::Invalid(other.to_string()),
        }
    }
}

pub const DEFAULT_WAVES: [&str; 2] = ["25%", "100%"];

/// Where a rollout comes from: an operator (neither), or a schedule whose window closes at
/// `deadline`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin {
    pub schedule_id: Option<Uuid>,
    pub deadline: Option<time::OffsetDateTime>,
}

/// A request's parts as stored, checked once: for a rollout now, or a schedule's later ones.
#[derive(Debug, Clone)]
pub struct CheckedRequest {
    pub waves: Vec<WaveSize>,
    /// The waves as asked (the default filled in).
    pub waves_json: serde_json::Value,
    pub selector_json: serde_json::Value,
    pub failure_budget: i32,
    pub job_lifetime_secs: i32,
}

/// Checks a request as [`create_rollout`] would, without selecting hosts (for schedules).
pub fn check_request(request: &RolloutRequest) -> Result<CheckedRequest, CreateRolloutError> {
    check_params(&request.kind, &request.params)?;
    let selector = &request.hosts;
    if selector.labels.is_empty() && selector.host_ids.is_none() && !selector.all {
        return Err(CreateRolloutError::Invalid(
            "hosts must give labels, host_ids, or \"all\": true".into(),
        ));
    }
    for (key, value) in &selector.labels {
        if !rollouts::valid_label_key(key) || !rollouts::valid_label_value(value) {
            return Err(CreateRolloutError::Invalid(format!(
                "label `{key}={value}` is not a valid label"
            )));
        }
    }
    let waves_json = waves_or_default(request);
    let waves = parse_waves(&waves_json).map_err(CreateRolloutError::Invalid)?;
    Ok(CheckedRequest {
        waves,
        waves_json: serde_json::Value::Array(waves_json),
        selector_json: serde_json::json!({
            "labels": selector.labels,
            "host_ids": selector.host_ids,
            "all": selector.all,
        }),
        failure_budget: i32::try_from(request.failure_budget.unwrap_or(0)).unwrap_or(i32::MAX),
        job_lifetime_secs: i32::try_from(lifetime(request)?).unwrap_or(i32::MAX),
    })
}

/// Every host named in `host_ids` is the tenant's (404 otherwise: another tenant's host and
/// no host look the same).
pub async fn check_named_hosts(
    tx: &mut TenantTx,
    selector: &HostSelector,
) -> Result<(), CreateRolloutError> {
    let Some(ids) = &selector.host_ids else {
        return Ok(());
    };
    if ids.is_empty() || ids.len() > 100_000 {
        return Err(CreateRolloutError::Invalid(
            "host_ids must name 1 to 100000 hosts".into(),
        ));
    }
    for id in ids {
        if crate::store::hosts::get_host(tx, *id).await?.is_none() {
            return Err(CreateRolloutError::HostNotFound);
        }
    }
    Ok(())
}

/// The waves asked for, or the default `[1, "25%", "100%"]`.
pub fn waves_or_default(request: &RolloutRequest) -> Vec<serde_json::Value> {
    request.waves.clone().unwrap_or_else(|| {
        vec![
            serde_json::json!(1),
            serde_json::json!(DEFAULT_WAVES[0]),
            serde_json::json!(DEFAULT_WAVES[1]),
        ]
    })
}

fn lifetime(request: &RolloutRequest) -> Result<u64, CreateRolloutError> {
    let lifetime = request
        .job_expires_in_secs
        .unwrap_or(DEFAULT_LIFETIME.as_secs());
    if lifetime == 0 || lifetime > MAX_LIFETIME.as_secs() {
        return Err(CreateRolloutError::Invalid(format!(
            "job_expires_in_secs must be between 1 and {}",
            MAX_LIFETIME.as_secs()
        )));
    }
    Ok(lifetime)
}

pub async fn create_rollout(
    tx: &mut TenantTx,
    tenant_id: Uuid,
    request: &RolloutRequest,
    created_by: &str,
    origin: Origin,
) -> Result<Rollout, CreateRolloutError> {
    let invalid = CreateRolloutError::Invalid;
    let checked = check_request(request)?;
    let selector = &request.hosts;
    check_named_hosts(tx, selector).await?;
    let hosts = rollouts::select_hosts(tx, &selector.labels, selector.host_ids.as_deref()).await?;
    if hosts.is_empty() {
        return Err(invalid("no active host matches".into()));
    }
    let sizes = wave_sizes(&checked.waves, hosts.len());
    let mut placed = Vec::with_capacity(hosts.len());
    let mut next = hosts.into_iter();
    for (wave, size) in sizes.iter().enumerate() {
        for host in next.by_ref().take(*size) {
            placed.push((host, i32::try_from(wave).unwrap_or(i32::MAX)));
        }
    }
    let id = Uuid::new_v4();
    rollouts::insert(
        tx,
        &NewRollout {
            id,
            tenant_id,
            kind: &request.kind,
            params: &request.params,
            selector: &checked.selector_json,
            waves: &checked.waves_json,
            failure_budget: checked.failure_budget,
            force: request.force,
            job_lifetime_secs: checked.job_lifetime_secs,
            created_by,
            hosts: &placed,
            schedule_id: origin.schedule_id,
            deadline: origin.deadline,
        },
    )
    .await?;
    tracing::info!(rollout_id = %id, %tenant_id, kind = %request.kind, hosts = placed.len(),
        waves = ?sizes, created_by, "rollout created");
    rollouts::get(tx, id)
        .await?
        .ok_or_else(|| invalid("the rollout vanished while being created".into()))
}
