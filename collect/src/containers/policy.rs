//! Update policies and semver-aware tag choice (what WUD's semver rules and Uptainer's
//! policies are for). Pure.
//!
//! A container's policy comes from its `unity.update` label (the controller can override it):
//! `off`, `notify` (the default: report, never act), `digest` (the same tag's new digest),
//! `patch`, `minor`, `major` (move to a newer *tag*). For the tag policies the agent lists the
//! registry's tags and picks the highest one the policy allows:
//! * the current tag must read as a version: optional `v`, one to three dot-separated numbers,
//!   an optional suffix after `-` (`1.25.3`, `v2.1`, `16.4-alpine`);
//! * a candidate must have the same shape — same `v`, same number of components, same suffix
//!   (`1.25.3-alpine` never moves to `1.26.0` or `1.26.0-bookworm`) — and no pre-release words;
//! * `patch` keeps major and minor, `minor` keeps major, `major` keeps nothing.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// The label a container's policy is read from.
pub const POLICY_LABEL: &str = "unity.update";

/// The policy vocabulary is the wire's (it travels in a container's `detail_json` and the
/// controller decides on it), so it lives in `unity-protocol`.
pub use unity_protocol::latest::{UnknownUpdatePolicy, UpdatePolicy};

/// The policy a container's labels ask for; an unreadable value is `notify` (never acts).
pub fn from_labels<'a>(mut labels: impl Iterator<Item = (&'a String, &'a String)>) -> UpdatePolicy {
    labels
        .find(|(k, _)| k.as_str() == POLICY_LABEL)
        .and_then(|(_, v)| UpdatePolicy::from_label(v).ok())
        .unwrap_or_default()
}

/// A tag read as a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionTag {
    pub v_prefix: bool,
    pub numbers: Vec<u64>,
    pub suffix: String,
}

/// Words that mark a pre-release; such tags are never candidates.
const PRE_RELEASE: &[&str] = &[
    "alpha", "beta", "rc", "dev", "pre", "preview", "nightly", "snapshot", "test",
];

impl VersionTag {
    pub fn parse(tag: &str) -> Option<Self> {
        let (v_prefix, rest) = match tag.strip_prefix('v') {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        let (version, suffix) = rest.split_once('-').unwrap_or((rest, ""));
        let numbers: Vec<u64> = version
            .split('.')
            .map(|n| {
                (!n.is_empty() && n.len() <= 12 && n.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| n.parse().ok())
                    .flatten()
            })
            .collect::<Option<_>>()?;
        if numbers.is_empty() || numbers.len() > 3 {
            return None;
        }
        Some(Self {
            v_prefix,
            numbers,
            suffix: suffix.to_owned(),
        })
    }

    fn same_shape(&self, other: &Self) -> bool {
        self.v_prefix == other.v_prefix
            && self.numbers.len() == other.numbers.len()
            && self.suffix == other.suffix
    }

    fn is_pre_release(&self) -> bool {
        let lower = self.suffix.to_ascii_lowercase();
        PRE_RELEASE.iter().any(|w| lower.contains(w))
    }
}

/// The highest tag among `tags` that `policy` allows moving `current` to, if it is newer.
pub fn best_tag(current: &str, tags: &[String], policy: UpdatePolicy) -> Option<String> {
    let keep = match policy {
        UpdatePolicy::Patch => 2,
        UpdatePolicy::Minor => 1,
        UpdatePolicy::Major => 0,
        _ => return None,
    };
    let now = VersionTag::parse(current)?;
    // `patch` on a two-part tag (`1.25`) has no patch number to move.
    if keep >= now.numbers.len() {
        return None;
    }
    tags.iter()
        .filter_map(|t| Some((t, VersionTag::parse(t)?)))
        .filter(|(_, v)| v.same_shape(&now) && !v.is_pre_release())
        .filter(|(_, v)| v.numbers[..keep] == now.numbers[..keep])
        .filter(|(_, v)| v.numbers.cmp(&now.numbers) == Ordering::Greater)
        .max_by(|(_, a), (_, b)| a.numbers.cmp(&b.numbers))
        .map(|(t, _)| t.clone())
}

/// `reference` (as written by the operator: `nginx:1.25`, `127.0.0.1:5000/app:1@sha256:…`)
/// with its tag replaced by `tag` and no digest.
pub fn with_tag(reference: &str, tag: &str) -> String {
    let name = reference.split_once('@').map_or(reference, |(n, _)| n);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let repository = match name[last_slash..].rfind(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    };
    format!("{repository}:{tag}")
}

/// A newer tag the policy allows, with the digest it points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateCandidate {
    pub tag: String,
    /// `registry/repo:tag@sha256:…` — what a job would pull.
    pub reference: String,
    pub digest: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn policies_parse_from_labels_and_default_to_notify() {
        let labels = [("unity.update".to_owned(), "Minor".to_owned())];
        assert_eq!(
            from_labels(labels.iter().map(|(k, v)| (k, v))),
            UpdatePolicy::Minor
        );
        let bad = [("unity.update".to_owned(), "yes please".to_owned())];
        assert_eq!(
            from_labels(bad.iter().map(|(k, v)| (k, v))),
            UpdatePolicy::Notify
        );
        assert_eq!(from_labels(std::iter::empty()), UpdatePolicy::Notify);
    }

    #[test]
    fn patch_minor_major_choose_within_their_bounds() {
        let all = tags(&[
            "1.25.3",
            "1.25.4",
            "1.25.10",
            "1.26.0",
            "1.26.2",
            "2.0.0",
            "2.1.0-rc1",
            "latest",
            "1.25.11-alpine",
            "1.27",
            "v1.30.0",
        ]);
        assert_eq!(
            best_tag("1.25.3", &all, UpdatePolicy::Patch).as_deref(),
            Some("1.25.10")
        );
        assert_eq!(
            best_tag("1.25.3", &all, UpdatePolicy::Minor).as_deref(),
            Some("1.26.2")
        );
        assert_eq!(
            best_tag("1.25.3", &all, UpdatePolicy::Major).as_deref(),
            Some("2.0.0")
        );
        assert_eq!(
            best_tag("2.0.0", &all, UpdatePolicy::Major),
            None,
            "rc is never a candidate"
        );
        assert_eq!(best_tag("latest", &all, UpdatePolicy::Major), None);
        assert_eq!(best_tag("1.25.3", &all, UpdatePolicy::Digest), None);
    }

    #[test]
    fn suffixes_prefixes_and_component_counts_must_match() {
        let all = tags(&[
            "16.4-alpine",
            "16.6-alpine",
            "17.0-alpine",
            "16.8",
            "16.9-bookworm",
        ]);
        assert_eq!(
            best_tag("16.4-alpine", &all, UpdatePolicy::Minor).as_deref(),
            Some("16.6-alpine")
        );
        assert_eq!(
            best_tag("16.4-alpine", &all, UpdatePolicy::Major).as_deref(),
            Some("17.0-alpine")
        );
        assert_eq!(
            best_tag("16.4-alpine", &all, UpdatePolicy::Patch),
            None,
            "no patch part"
        );
        let v = tags(&["v2.1.0", "v2.2.0", "2.9.0"]);
        assert_eq!(
            best_tag("v2.1.0", &v, UpdatePolicy::Minor).as_deref(),
            Some("v2.2.0")
        );
    }

    #[test]
    fn tags_are_replaced_in_the_operators_spelling() {
        assert_eq!(with_tag("nginx:1.25", "1.26"), "nginx:1.26");
        assert_eq!(
            with_tag("127.0.0.1:5000/app:1@sha256:abc", "2"),
            "127.0.0.1:5000/app:2"
        );
        assert_eq!(with_tag("127.0.0.1:5000/app", "2"), "127.0.0.1:5000/app:2");
    }

    #[test]
    fn odd_tags_are_not_versions() {
        for tag in [
            "",
            "v",
            "1..2",
            "1.2.3.4",
            "x1.2",
            "1.2a",
            "99999999999999999999",
        ] {
            assert_eq!(VersionTag::parse(tag), None, "{tag}");
        }
        assert_eq!(
            VersionTag::parse("v1.2-x").unwrap(),
            VersionTag {
                v_prefix: true,
                numbers: vec![1, 2],
                suffix: "x".into()
            }
        );
    }
}
