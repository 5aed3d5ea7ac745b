//! `apt-get -s` (simulate) output: what an upgrade or install would do.
//!
//! The lines apt prints for a simulation are machine-oriented and not translated:
//!
//! ```text
//! Inst NAME [CURRENT] (NEW ORIGIN[, ORIGIN…] [ARCH]) [extra…]
//! Inst NAME (NEW ORIGIN [ARCH])          ← a newly installed package
//! Conf NAME (NEW ORIGIN [ARCH])
//! Remv NAME [CURRENT]
//! ```
//!
//! The "kept back" list is human text (`The following packages have been kept back:`) and is
//! read in the C locale the runner asks for. Anything else (progress, notes) is ignored; an
//! `Inst` line that does not have this shape is an error naming the line, never a guess.

use serde::{Deserialize, Serialize};

/// What the simulation would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Simulation {
    /// Installs and upgrades, in apt's order.
    pub installs: Vec<Planned>,
    /// Packages that would be removed.
    pub removals: Vec<String>,
    /// Packages the upgrade keeps at their version (held, or needing a removal).
    pub held_back: Vec<String>,
}

/// One package the simulation would install or upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub name: String,
    pub current: Option<String>,
    pub new: String,
    pub architecture: String,
    pub origins: Vec<String>,
    pub security: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: `{text}`")]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
    /// The offending line, cut to 200 characters.
    pub text: String,
}

/// Parses a whole simulation's output.
pub fn parse_simulation(output: &str) -> Result<Simulation, ParseError> {
    let mut sim = Simulation::default();
    let mut in_kept_back = false;
    for (index, line) in output.lines().enumerate() {
        let error = |reason| ParseError {
            line: index + 1,
            reason,
            text: line.chars().take(200).collect(),
        };
        if in_kept_back {
            if let Some(names) = line.strip_prefix(' ') {
                sim.held_back
                    .extend(names.split_whitespace().map(str::to_owned));
                continue;
            }
            in_kept_back = false;
        }
        if line.starts_with("The following packages have been kept back") {
            in_kept_back = true;
        } else if line == "Inst" || line.starts_with("Inst ") {
            let rest = line.get(5..).unwrap_or("");
            sim.installs
                .push(parse_inst(rest).ok_or_else(|| error("not an Inst line"))?);
        } else if let Some(rest) = line.strip_prefix("Remv ") {
            let name = rest
                .split_whitespace()
                .next()
                .ok_or_else(|| error("Remv without a package"))?;
            sim.removals.push(name.to_owned());
        }
    }
    Ok(sim)
}

/// `NAME [CURRENT] (NEW ORIGINS [ARCH]) …` after `Inst `.
fn parse_inst(rest: &str) -> Option<Planned> {
    let (name, rest) = rest.split_once(' ')?;
    let rest = rest.trim_start();
    let (current, rest) = match rest.strip_prefix('[') {
        Some(after) => {
            let (current, after) = after.split_once(']')?;
            (Some(current.to_owned()), after.trim_start())
        }
        None => (None, rest),
    };
    let inner = rest.strip_prefix('(')?;
    // The candidate part ends at the first `)`: versions and origins never contain one.
    let (inner, _) = inner.split_once(')')?;
    let (new, inner) = inner.split_once(' ')?;
    let open = inner.rfind('[')?;
    let architecture = inner[open + 1..].strip_suffix(']')?.to_owned();
    let origins: Vec<String> = inner[..open]
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    if name.is_empty() || new.is_empty() || architecture.is_empty() {
        return None;
    }
    let security = origins.iter().any(|o| is_security_origin(o));
    Some(Planned {
        name: name.to_owned(),
        current,
        new: new.to_owned(),
        architecture,
        origins,
        security,
    })
}

/// `Label:Version/Archive` with a security archive: `Debian-Security:12/stable-security`,
/// `Ubuntu:22.04/jammy-security`. Judged by the archive (and Debian's label), never by a
/// package name.
pub fn is_security_origin(origin: &str) -> bool {
    let (label, archive) = match origin.split_once('/') {
        Some((label, archive)) => (label, archive),
        None => (origin, ""),
    };
    archive.ends_with("-security")
        || archive == "security"
        || label
            .split(':')
            .next()
            .is_some_and(|l| l.ends_with("-Security"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn inst_lines_of_every_shape() {
        let sim = parse_simulation(
            "Inst libgnutls30 [3.7.9-2+deb12u6] (3.7.9-2+deb12u7 Debian-Security:12/oldstable-security [amd64])\n\
             Inst perl [5.36.0-7+deb12u2] (5.36.0-7+deb12u3 Debian:12.14/oldstable [amd64]) []\n\
             Inst libruby3.0 (3.0.2-7ubuntu2.4 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64]) []\n\
             Conf perl (5.36.0-7+deb12u3 Debian:12.14/oldstable [amd64])\n\
             Remv oldthing [1.0]\n",
        )
        .unwrap();
        assert_eq!(sim.installs.len(), 3);
        let gnutls = &sim.installs[0];
        assert_eq!(gnutls.current.as_deref(), Some("3.7.9-2+deb12u6"));
        assert_eq!(gnutls.new, "3.7.9-2+deb12u7");
        assert_eq!(gnutls.architecture, "amd64");
        assert!(gnutls.security);
        assert!(!sim.installs[1].security);
        let ruby = &sim.installs[2];
        assert_eq!(ruby.current, None);
        assert_eq!(ruby.origins.len(), 2);
        assert!(ruby.security);
        assert_eq!(sim.removals, ["oldthing"]);
    }

    #[test]
    fn kept_back_names_are_collected_across_lines() {
        let sim = parse_simulation(
            "Calculating upgrade...\nThe following packages have been kept back:\n  a b\n  c\n0 upgraded, 0 newly installed, 0 to remove and 3 not upgraded.\n",
        )
        .unwrap();
        assert_eq!(sim.held_back, ["a", "b", "c"]);
    }

    #[test]
    fn a_security_word_in_a_name_is_not_a_security_update() {
        assert!(!is_security_origin("Ubuntu:22.04/jammy-updates"));
        assert!(is_security_origin("Ubuntu:22.04/jammy-security"));
        let sim =
            parse_simulation("Inst libsecurity1 [1.0] (1.1 Ubuntu:22.04/jammy-updates [amd64])\n")
                .unwrap();
        assert!(!sim.installs[0].security);
    }

    #[test]
    fn malformed_inst_lines_are_errors_naming_the_line() {
        for bad in [
            "Inst",
            "Inst x",
            "Inst x [1.0",
            "Inst x [1.0] 2.0",
            "Inst x (2.0 origin amd64)",
            "Inst x (2.0)",
            "Inst  (2.0 o [amd64])",
        ] {
            let err = parse_simulation(&format!("Reading...\n{bad}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{bad}");
        }
    }
}
