//! The pure part of update detection: which containers need a registry question, how the
//! answer compares with the local repo digests, and the per-reference cache and
//! per-registry pacing (time is passed in). The HTTP exchange is in
//! [`registry`](super::registry).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::model::{UnknownReason, UpdateStatus};
use super::reference::{ImageReference, ReferenceError};

/// What to do for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckPlan {
    /// Nothing to ask: the answer is already known.
    Decided(UpdateStatus),
    /// Ask the registry for the current digest of this reference's tag.
    Query(ImageReference),
}

/// Decides whether a container's image can be checked, from the reference it was created
/// with and its image's repo digests. Never touches the network.
pub fn plan(image_reference: &str, repo_digests: &[String]) -> CheckPlan {
    let reference = match ImageReference::parse(image_reference) {
        Ok(r) => r,
        Err(ReferenceError::ImageId) => {
            return CheckPlan::Decided(UpdateStatus::Unknown {
                reason: UnknownReason::NotARegistryReference {
                    reference: image_reference.to_owned(),
                },
            });
        }
        Err(e) => {
            return CheckPlan::Decided(UpdateStatus::Unknown {
                reason: UnknownReason::InvalidReference {
                    reference: image_reference.to_owned(),
                    error: e.to_string(),
                },
            });
        }
    };
    if let Some(digest) = &reference.digest {
        return CheckPlan::Decided(UpdateStatus::Pinned {
            digest: digest.clone(),
        });
    }
    if local_digests(&reference, repo_digests).is_empty() {
        return CheckPlan::Decided(UpdateStatus::Unknown {
            reason: UnknownReason::NoRepoDigest,
        });
    }
    CheckPlan::Query(reference)
}

/// The digests in `repo_digests` (`name@sha256:…`) that belong to `reference`'s repository.
pub fn local_digests<'a>(reference: &ImageReference, repo_digests: &'a [String]) -> Vec<&'a str> {
    let key = reference.repository_key();
    repo_digests
        .iter()
        .filter_map(|rd| {
            let parsed = ImageReference::parse(rd).ok()?;
            let digest = rd.rsplit_once('@')?.1;
            (parsed.repository_key() == key).then_some(digest)
        })
        .collect()
}

/// Compares the registry's digest for the tag with the local repo digests.
pub fn compare(
    reference: &ImageReference,
    repo_digests: &[String],
    remote_digest: &str,
) -> UpdateStatus {
    let local = local_digests(reference, repo_digests);
    if local.is_empty() {
        UpdateStatus::Unknown {
            reason: UnknownReason::NoRepoDigest,
        }
    } else if local.contains(&remote_digest) {
        UpdateStatus::UpToDate
    } else {
        UpdateStatus::UpdateAvailable {
            new_digest: remote_digest.to_owned(),
        }
    }
}

/// A registry answer for one reference, remembered across containers and rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAnswer {
    pub result: Result<String, UnknownReason>,
    pub at: Instant,
}

/// The per-reference cache and per-registry pacing.
#[derive(Debug, Default)]
pub struct CheckState {
    answers: HashMap<String, CachedAnswer>,
    last_request: HashMap<String, Instant>,
    blocked_until: HashMap<String, Instant>,
}

/// What the pacing allows for a registry right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Go after waiting this long (zero: now).
    After(Duration),
    /// The registry told us to back off (429) until later.
    Blocked,
}

/// The cache key of a reference: `registry/repository:tag`.
pub fn cache_key(reference: &ImageReference) -> String {
    format!(
        "{}:{}",
        reference.repository_key(),
        reference.tag_or_latest()
    )
}

impl CheckState {
    /// A still-fresh answer for `reference`, if any.
    pub fn cached(
        &self,
        reference: &ImageReference,
        now: Instant,
        recheck_after: Duration,
        recheck_failed_after: Duration,
    ) -> Option<&CachedAnswer> {
        let answer = self.answers.get(&cache_key(reference))?;
        let ttl = if answer.result.is_ok() {
            recheck_after
        } else {
            recheck_failed_after
        };
        (now.saturating_duration_since(answer.at) < ttl).then_some(answer)
    }

    pub fn remember(
        &mut self,
        reference: &ImageReference,
        result: Result<String, UnknownReason>,
        now: Instant,
    ) {
        self.answers
            .insert(cache_key(reference), CachedAnswer { result, at: now });
    }

    /// When the next request to `registry` may go.
    pub fn pace(&self, registry: &str, now: Instant, min_interval: Duration) -> Pace {
        if self.blocked_until.get(registry).is_some_and(|t| *t > now) {
            return Pace::Blocked;
        }
        match self.last_request.get(registry) {
            Some(last) => {
                Pace::After(min_interval.saturating_sub(now.saturating_duration_since(*last)))
            }
            None => Pace::After(Duration::ZERO),
        }
    }

    pub fn record_request(&mut self, registry: &str, now: Instant) {
        self.last_request.insert(registry.to_owned(), now);
    }

    /// After a 429: leave `registry` alone until `now + backoff`.
    pub fn block(&mut self, registry: &str, now: Instant, backoff: Duration) {
        self.blocked_until
            .insert(registry.to_owned(), now.checked_add(backoff).unwrap_or(now));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn digests(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn plan_decides_without_network_when_it_can() {
        assert_eq!(
            plan(&format!("nginx@{A}"), &[]),
            CheckPlan::Decided(UpdateStatus::Pinned {
                digest: A.to_owned()
            })
        );
        assert_eq!(
            plan("unity/local:dev", &[]),
            CheckPlan::Decided(UpdateStatus::Unknown {
                reason: UnknownReason::NoRepoDigest
            })
        );
        // A repo digest of another repository does not count.
        assert_eq!(
            plan("nginx:1", &digests(&[&format!("ghcr.io/x/nginx@{A}")])),
            CheckPlan::Decided(UpdateStatus::Unknown {
                reason: UnknownReason::NoRepoDigest
            })
        );
        assert!(matches!(
            plan(A, &[]),
            CheckPlan::Decided(UpdateStatus::Unknown {
                reason: UnknownReason::NotARegistryReference { .. }
            })
        ));
        assert!(matches!(
            plan("Bad Ref", &[]),
            CheckPlan::Decided(UpdateStatus::Unknown {
                reason: UnknownReason::InvalidReference { .. }
            })
        ));
        // Familiar names match their fully qualified repo digests and vice versa.
        let CheckPlan::Query(r) = plan("nginx", &digests(&[&format!("nginx@{A}")])) else {
            panic!()
        };
        assert_eq!(r.repository_key(), "docker.io/library/nginx");
        assert!(matches!(
            plan(
                "docker.io/library/nginx:latest",
                &digests(&[&format!("nginx@{A}")])
            ),
            CheckPlan::Query(_)
        ));
    }

    #[test]
    fn compare_uses_any_matching_repo_digest() {
        let r = ImageReference::parse("ghcr.io/gchq/cyberchef:latest").unwrap();
        let local = digests(&[
            &format!("ghcr.io/gchq/cyberchef@{A}"),
            &format!("ghcr.io/gchq/cyberchef@{B}"),
        ]);
        assert_eq!(compare(&r, &local, B), UpdateStatus::UpToDate);
        let c = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
        assert_eq!(
            compare(&r, &local, c),
            UpdateStatus::UpdateAvailable {
                new_digest: c.to_owned()
            }
        );
        assert_eq!(
            compare(&r, &[], c),
            UpdateStatus::Unknown {
                reason: UnknownReason::NoRepoDigest
            }
        );
    }

    #[test]
    fn cache_and_pacing() {
        let t0 = Instant::now();
        let r = ImageReference::parse("nginx").unwrap();
        let mut s = CheckState::default();
        let hour = Duration::from_secs(3600);
        let min = Duration::from_secs(60);
        assert!(s.cached(&r, t0, hour, min).is_none());
        s.remember(&r, Ok(A.to_owned()), t0);
        assert!(s.cached(&r, t0 + min, hour, min).is_some());
        assert!(s.cached(&r, t0 + hour, hour, min).is_none());
        // Same repository and tag written differently share the entry.
        let same = ImageReference::parse("docker.io/library/nginx:latest").unwrap();
        assert!(s.cached(&same, t0, hour, min).is_some());
        s.remember(
            &r,
            Err(UnknownReason::NotFound {
                registry: "docker.io".into(),
            }),
            t0,
        );
        assert!(s.cached(&r, t0 + min, hour, min).is_none());

        let gap = Duration::from_secs(2);
        assert_eq!(s.pace("docker.io", t0, gap), Pace::After(Duration::ZERO));
        s.record_request("docker.io", t0);
        assert_eq!(
            s.pace("docker.io", t0 + Duration::from_millis(500), gap),
            Pace::After(Duration::from_millis(1500))
        );
        assert_eq!(
            s.pace("docker.io", t0 + gap, gap),
            Pace::After(Duration::ZERO)
        );
        assert_eq!(s.pace("ghcr.io", t0, gap), Pace::After(Duration::ZERO));
        s.block("docker.io", t0, hour);
        assert_eq!(s.pace("docker.io", t0 + min, gap), Pace::Blocked);
        assert_eq!(
            s.pace("docker.io", t0 + hour, gap),
            Pace::After(Duration::ZERO)
        );
    }
}
