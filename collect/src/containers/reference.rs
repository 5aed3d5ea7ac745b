//! Image references (`nginx`, `ghcr.io/owner/app:1.2`, `127.0.0.1:5000/x@sha256:…`) parsed
//! the way the Docker engine reads them (distribution's `reference` grammar and its
//! "familiar" defaults): no registry means Docker Hub (`docker.io`), a single Hub path
//! component gets `library/`, no tag and no digest means `latest`. Pure, no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Docker Hub as it appears in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Longest repository name (registry + path) the grammar allows.
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag the grammar allows.
pub const MAX_TAG_LEN: usize = 128;

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageReference {
    /// Registry host with optional port, e.g. `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/nginx`.
    pub repository: String,
    /// Tag, when one was given.
    pub tag: Option<String>,
    /// `algorithm:hex` digest, when the reference is pinned.
    pub digest: Option<String>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("image reference is an image id, not a registry reference")]
    ImageId,
    #[error("repository name is {len} characters long (at most {MAX_NAME_LEN})")]
    NameTooLong { len: usize },
    #[error("invalid registry host `{domain}`")]
    InvalidRegistry { domain: String },
    #[error(
        "invalid repository path component `{component}` (lowercase letters, digits and . _ - separators)"
    )]
    InvalidPathComponent { component: String },
    #[error("invalid tag `{tag}`")]
    InvalidTag { tag: String },
    #[error("invalid digest `{digest}` (expected algorithm:hex, sha256 with 64 hex digits)")]
    InvalidDigest { digest: String },
}

impl ImageReference {
    /// Parses a reference as `docker run` accepts it.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if is_image_id(input) {
            return Err(ReferenceError::ImageId);
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((n, d)) => {
                check_digest(d)?;
                (n, Some(d.to_owned()))
            }
            None => (input, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                let tag = &name_and_tag[at + 1..];
                check_tag(tag)?;
                (&name_and_tag[..at], Some(tag.to_owned()))
            }
            None => (name_and_tag, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong { len: name.len() });
        }
        let (registry, path) = split_registry(name);
        check_registry(registry)?;
        for component in path.split('/') {
            check_component(component)?;
        }
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        Ok(Self {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }

    /// The tag to check: the given one, or `latest` when neither tag nor digest was given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// The host (and port) that serves the registry API.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// `registry/repository`: the key under which repo digests are compared.
    pub fn repository_key(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether the registry is on this machine's loopback (spoken to over plain HTTP, like
    /// the Docker engine treats `127.0.0.0/8` as an insecure registry).
    pub fn is_loopback_registry(&self) -> bool {
        let host = host_of(&self.registry);
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `sha256:<64 hex>` or a bare 64-hex id.
fn is_image_id(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Docker's rule: the first component is a registry when it contains `.` or `:`, is
/// `localhost`, or has an uppercase letter.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry.find(']').map_or(registry, |i| &registry[..=i]);
    }
    registry.split_once(':').map_or(registry, |(h, _)| h)
}

fn check_registry(domain: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidRegistry {
        domain: domain.to_owned(),
    };
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or_else(bad)?;
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad());
        }
        match after {
            "" => (inner, None),
            p => (inner, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        let (host, port) = match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err(bad());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(bad());
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5)
    {
        return Err(bad());
    }
    Ok(())
}

/// `[a-z0-9]+ (separator [a-z0-9]+)*` with separators `.`, `_`, `__`, `-+`.
fn check_component(component: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidPathComponent {
        component: component.to_owned(),
    };
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(bad());
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = tag.len() <= MAX_TAG_LEN
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag {
            tag: tag.to_owned(),
        })
    }
}

/// `algorithm:hex`; sha256 must have exactly 64 lowercase hex digits, other algorithms at
/// least 32.
pub fn check_digest(digest: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidDigest {
        digest: digest.to_owned(),
    };
    let (algorithm, hex) = digest.split_once(':').ok_or_else(bad)?;
    let algorithm_ok = !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
    let hex_ok = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let len_ok = if algorithm == "sha256" {
        hex.len() == 64
    } else {
        hex.len() >= 32
    };
    if algorithm_ok && hex_ok && len_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const D: &str = "sha256:4dbc5f9c07028a985e14d1393e849ea07f68804c4293050d5a641b138db72daa";

    fn p(s: &str) -> ImageReference {
        ImageReference::parse(s).unwrap()
    }

    #[test]
    fn hub_defaults_registry_library_and_latest() {
        let r = p("nginx");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/nginx");
        assert_eq!(r.tag, None);
        assert_eq!(r.tag_or_latest(), "latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.to_string(), "docker.io/library/nginx");
        let r = p("containrrr/watchtower:latest");
        assert_eq!(r.repository, "containrrr/watchtower");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(
            p("docker.io/library/busybox:1.36").repository,
            "library/busybox"
        );
        assert_eq!(p("index.docker.io/nginx").registry, "docker.io");
        assert_eq!(p("docker.io/nginx").repository, "library/nginx");
    }

    #[test]
    fn registries_with_ports_and_ipv6() {
        let r = p("127.0.0.1:5000/unity/app:v2");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "unity/app");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert!(r.is_loopback_registry());
        let r = p("localhost:5000/app");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("localhost:5000", None)
        );
        assert!(r.is_loopback_registry());
        let r = p("localhost/app");
        assert_eq!(r.registry, "localhost");
        let r = p("[::1]:5000/app:1");
        assert_eq!(r.registry, "[::1]:5000");
        assert!(r.is_loopback_registry());
        let r = p("ghcr.io/gchq/cyberchef:latest");
        assert_eq!(r.api_host(), "ghcr.io");
        assert!(!r.is_loopback_registry());
        assert_eq!(r.repository_key(), "ghcr.io/gchq/cyberchef");
    }

    #[test]
    fn digests_pin_the_reference() {
        let r = p(&format!("portainer/portainer-ce@{D}"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.tag, None);
        let r = p(&format!("quay.io/x/y:1.0@{D}"));
        assert_eq!(
            (r.tag.as_deref(), r.digest.as_deref()),
            (Some("1.0"), Some(D))
        );
        assert!(matches!(
            ImageReference::parse("x@sha256:abc"),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        assert!(matches!(
            ImageReference::parse("x@nocolon"),
            Err(ReferenceError::InvalidDigest { .. })
        ));
    }

    #[test]
    fn image_ids_are_not_references() {
        assert_eq!(ImageReference::parse(D), Err(ReferenceError::ImageId));
        assert_eq!(
            ImageReference::parse(D.trim_start_matches("sha256:")),
            Err(ReferenceError::ImageId)
        );
    }

    #[test]
    fn invalid_references_say_which_part() {
        let e = |s: &str| ImageReference::parse(s).unwrap_err();
        assert_eq!(e(""), ReferenceError::Empty);
        assert_eq!(e(":tag"), ReferenceError::Empty);
        assert!(matches!(
            e("UPPER"),
            ReferenceError::InvalidPathComponent { .. }
        ));
        assert!(matches!(
            e("a//b"),
            ReferenceError::InvalidPathComponent { .. }
        ));
        assert!(matches!(
            e("a/-b"),
            ReferenceError::InvalidPathComponent { .. }
        ));
        assert!(matches!(
            e("a/b..c"),
            ReferenceError::InvalidPathComponent { .. }
        ));
        assert!(matches!(e("a:"), ReferenceError::InvalidTag { .. }));
        assert!(matches!(e("a:-x"), ReferenceError::InvalidTag { .. }));
        assert!(matches!(
            e(&format!("a:{}", "t".repeat(129))),
            ReferenceError::InvalidTag { .. }
        ));
        assert!(matches!(
            e("host:99999x/a"),
            ReferenceError::InvalidRegistry { .. }
        ));
        assert!(matches!(
            e("bad_host.io/a"),
            ReferenceError::InvalidRegistry { .. }
        ));
        assert!(matches!(
            e("[zz]:5000/a"),
            ReferenceError::InvalidRegistry { .. }
        ));
        assert!(matches!(
            e(&"a".repeat(300)),
            ReferenceError::NameTooLong { len: 300 }
        ));
        // separators that the grammar allows
        assert_eq!(p("a__b/c-d---e/f.g").repository, "a__b/c-d---e/f.g");
    }

    #[test]
    fn garbage_never_panics() {
        let samples = [
            "@",
            ":",
            "/",
            "//",
            "@@",
            "a@",
            "[",
            "[::1",
            "[]:1/a",
            "ü/ä:ö",
            "a:b:c",
            "a/b:c/d",
            "\u{0}",
            "sha256:",
            "localhost:/a",
            ".:/a",
            "a/:b",
            "x/y@sha256:",
            "🙂",
        ];
        for s in samples {
            let _ = ImageReference::parse(s);
        }
        for len in 0..64 {
            let s: String = (0..len)
                .map(|i| ['a', '/', ':', '@', '.', '['][i % 6])
                .collect();
            let _ = ImageReference::parse(&s);
        }
    }
}
