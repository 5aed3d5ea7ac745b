//! The container collector: engines through [`engine`], update checks
//! through [`registry`], paced by [`update`].

use std::time::Instant;

use super::model::*;
use super::registry::{self, RegistryClient};
use super::update::{CheckPlan, CheckState, Pace};
use super::{
    ContainerConfig, ImageReference, UpdateCandidate, UpdatePolicy, engine, policy, update,
};

/// One collection with fresh state (no cache from earlier rounds). The agent keeps a
/// [`ContainerCollector`] instead, so registry answers are reused across rounds.
pub async fn collect(config: &ContainerConfig) -> ContainerInventory {
    ContainerCollector::new(config.clone()).collect().await
}

/// Collects container inventories round after round, remembering registry answers
/// (per reference) and request times (per registry) between rounds.
#[derive(Debug)]
pub struct ContainerCollector {
    config: ContainerConfig,
    state: CheckState,
    client: Result<RegistryClient, String>,
    /// Tag lists by repository, with when they were fetched (reused like digest answers).
    tag_lists: std::collections::HashMap<String, (Instant, Vec<String>)>,
}

impl ContainerCollector {
    pub fn new(config: ContainerConfig) -> Self {
        let client = RegistryClient::new(&config.updates).map_err(|e| crate::error_chain(&e));
        Self {
            config,
            state: CheckState::default(),
            client,
            tag_lists: std::collections::HashMap::new(),
        }
    }

    /// Engines, containers, images and update status of running containers.
    pub async fn collect(&mut self) -> ContainerInventory {
        let docker_host = std::env::var("DOCKER_HOST").ok();
        let endpoints = engine::discover(&self.config, docker_host.as_deref(), |p| p.exists());
        if endpoints.is_empty() {
            tracing::debug!("no container engine socket found");
            return ContainerInventory {
                status: CollectorStatus::NoEngine,
                engines: Vec::new(),
            };
        }
        let mut engines = Vec::new();
        for endpoint in &endpoints {
            let mut inventory = engine::collect_engine(endpoint, self.config.api_timeout).await;
            self.check_updates(&mut inventory).await;
            engines.push(inventory);
        }
        let any_ok = engines.iter().any(|e| e.engine.is_some());
        ContainerInventory {
            status: if any_ok {
                CollectorStatus::Ok
            } else {
                CollectorStatus::AllEnginesFailed
            },
            engines,
        }
    }

    async fn check_updates(&mut self, inventory: &mut EngineInventory) {
        let mut asked = 0usize;
        for report in &mut inventory.containers {
            if report.container.state != ContainerState::Running {
                continue;
            }
            report.update = Some(if self.config.updates.enabled {
                self.check_one(&report.container, &mut asked).await
            } else {
                UpdateStatus::Unknown {
                    reason: UnknownReason::Disabled,
                }
            });
            if self.config.updates.enabled && report.policy.follows_versions() {
                report.candidate = self
                    .find_candidate(&report.container, report.policy, &mut asked)
                    .await;
            }
        }
    }

    /// For a `patch`/`minor`/`major` container: the newest tag its policy allows and that
    /// tag's digest. Failures (registry down, no version-like tag) are `None`: the container
    /// is simply not moved, and its digest check above still says what it can.
    async fn find_candidate(
        &mut self,
        container: &Container,
        policy: UpdatePolicy,
        asked: &mut usize,
    ) -> Option<UpdateCandidate> {
        let reference = ImageReference::parse(&container.image_reference).ok()?;
        let current = reference.tag.clone()?;
        let key = reference.repository_key();
        let now = Instant::now();
        let fresh = self
            .tag_lists
            .get(&key)
            .filter(|(at, _)| now.duration_since(*at) < self.config.updates.recheck_after)
            .map(|(_, tags)| tags.clone());
        let tags = match fresh {
            Some(tags) => tags,
            None => {
                if *asked >= self.config.updates.max_checks_per_round {
                    return None;
                }
                *asked += 1;
                let client = self.client.as_ref().ok()?;
                match client.tags(&reference).await {
                    Ok(tags) => {
                        self.tag_lists.insert(key, (now, tags.clone()));
                        tags
                    }
                    Err(reason) => {
                        tracing::debug!(reference = %reference, ?reason, "tag list failed");
                        return None;
                    }
                }
            }
        };
        let tag = policy::best_tag(&current, &tags, policy)?;
        let mut target = reference.clone();
        target.tag = Some(tag.clone());
        target.digest = None;
        let client = self.client.as_ref().ok()?;
        *asked += 1;
        let digest = client.manifest_digest(&target).await.ok()?;
        Some(UpdateCandidate {
            reference: format!(
                "{}@{digest}",
                policy::with_tag(&container.image_reference, &tag)
            ),
            tag,
            digest,
        })
    }

    async fn check_one(&mut self, container: &Container, asked: &mut usize) -> UpdateStatus {
        let cfg = &self.config.updates;
        let reference = match update::plan(&container.image_reference, &container.repo_digests) {
            CheckPlan::Decided(status) => return status,
            CheckPlan::Query(r) => r,
        };
        let now = Instant::now();
        if let Some(answer) =
            self.state
                .cached(&reference, now, cfg.recheck_after, cfg.recheck_failed_after)
        {
            return outcome(&reference, &container.repo_digests, answer.result.clone());
        }
        let registry_name = reference.registry.clone();
        if *asked >= cfg.max_checks_per_round {
            return UpdateStatus::Unknown {
                reason: UnknownReason::Deferred {
                    registry: registry_name,
                },
            };
        }
        match self
            .state
            .pace(&registry_name, now, cfg.min_registry_interval)
        {
            Pace::Blocked => {
                return UpdateStatus::Unknown {
                    reason: UnknownReason::RateLimited {
                        registry: registry_name,
                        retry_after_s: None,
                    },
                };
            }
            Pace::After(wait) if !wait.is_zero() => tokio::time::sleep(wait).await,
            Pace::After(_) => {}
        }
        *asked += 1;
        let result = match &self.client {
            Ok(client) => client.manifest_digest(&reference).await,
            Err(e) => Err(UnknownReason::RegistryUnreachable {
                registry: registry_name.clone(),
                detail: e.clone(),
            }),
        };
        let now = Instant::now();
        self.state.record_request(&registry_name, now);
        if let Err(reason) = &result {
            tracing::debug!(reference = %reference, ?reason, "update check failed");
            if let Some(backoff) = registry::backoff_for(reason, cfg.rate_limited_backoff) {
                self.state.block(&registry_name, now, backoff);
            }
        }
        self.state.remember(&reference, result.clone(), now);
        outcome(&reference, &container.repo_digests, result)
    }
}

fn outcome(
    reference: &ImageReference,
    repo_digests: &[String],
    result: registry::DigestResult,
) -> UpdateStatus {
    match result {
        Ok(remote) => update::compare(reference, repo_digests, &remote),
        Err(reason) => UpdateStatus::Unknown { reason },
    }
}
