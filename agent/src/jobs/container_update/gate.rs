//! The health gate: has the new container proven itself? Pure — the runner feeds it one
//! [`Observation`] per poll with the time since the container started, and it answers wait,
//! pass or fail.
//!
//! Proof, strongest first (chosen by [`choose_probe`]):
//! 1. the image's (or container's) `HEALTHCHECK` reports `healthy`;
//! 2. for a container recognised as a database, its credential-free protocol probe answers
//!    (`confirmed` or `auth_required`: it speaks its protocol);
//! 3. a TCP connect to a published port succeeds;
//! 4. nothing to probe: running is the only evidence.
//!
//! And in every case, after the proof, it must **stay** running for the settle period without
//! a restart (restart count and start time unchanged) — a crash loop that comes up healthy for
//! a second does not pass. Unhealthy, exited or restarting at any point fails at once; no
//! proof within the health timeout fails.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use unity_collect::databases::DatabaseKind;

/// What proves the container healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Probe {
    HealthCheck,
    Database {
        database: String,
        #[serde(skip)]
        kind: DatabaseKind,
        targets: Vec<SocketAddr>,
    },
    Tcp {
        targets: Vec<SocketAddr>,
    },
    RunningOnly,
}

/// What the runner knows about the container and its probe.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub has_healthcheck: bool,
    pub database: Option<DatabaseKind>,
    /// Where a probe can reach it from the host (published ports, or ports on host network).
    pub targets: &'a [SocketAddr],
}

/// The name a database kind goes by in evidence and logs.
pub fn database_name(kind: DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::Postgres => "postgresql",
        DatabaseKind::MySql => "mysql",
        DatabaseKind::MongoDb => "mongodb",
        DatabaseKind::Redis => "redis",
        DatabaseKind::MinIo => "minio",
    }
}

pub fn choose_probe(facts: Facts<'_>) -> Probe {
    if facts.has_healthcheck {
        return Probe::HealthCheck;
    }
    if facts.targets.is_empty() {
        return Probe::RunningOnly;
    }
    match facts.database {
        Some(kind) => Probe::Database {
            database: database_name(kind).to_owned(),
            kind,
            targets: facts.targets.to_vec(),
        },
        None => Probe::Tcp {
            targets: facts.targets.to_vec(),
        },
    }
}

/// One poll of the container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    pub running: bool,
    pub restarting: bool,
    pub restart_count: i64,
    /// The engine's `State.StartedAt`: a restart changes it even where the count does not.
    pub started_at: String,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// `starting`, `healthy`, `unhealthy`; None without a health check.
    pub health: Option<String>,
    /// The probe's verdict this poll (None when the probe is the health check or none).
    pub probe_ok: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Wait,
    Pass { proven_after: Duration },
    Fail { reason: String },
}

/// The gate for one container start.
#[derive(Debug, Clone)]
pub struct Gate {
    probe: Probe,
    health_timeout: Duration,
    settle: Duration,
    baseline: Option<(i64, String)>,
    proven_at: Option<Duration>,
}

impl Gate {
    pub fn new(probe: Probe, health_timeout: Duration, settle: Duration) -> Self {
        Self {
            probe,
            health_timeout,
            settle,
            baseline: None,
            proven_at: None,
        }
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// `elapsed` is the time since the container was started.
    pub fn observe(&mut self, obs: &Observation, elapsed: Duration) -> Verdict {
        let (count, started) = self
            .baseline
            .get_or_insert_with(|| (obs.restart_count, obs.started_at.clone()))
            .clone();
        if obs.oom_killed {
            return fail("killed for running out of memory");
        }
        if !obs.running || obs.restarting {
            return fail(&match obs.exit_code {
                Some(code) => format!("stopped with exit code {code}"),
                None => "stopped".to_owned(),
            });
        }
        if obs.restart_count > count || obs.started_at != started {
            return fail(&format!(
                "restarted {} time(s) since it was started",
                (obs.restart_count - count).max(1)
            ));
        }
        if obs.health.as_deref() == Some("unhealthy") {
            return fail("its health check reports unhealthy");
        }
        let proven_now = match &self.probe {
            Probe::HealthCheck => obs.health.as_deref() == Some("healthy"),
            Probe::Database { .. } | Probe::Tcp { .. } => obs.probe_ok == Some(true),
            Probe::RunningOnly => true,
        };
        match self.proven_at {
            None if proven_now => {
                self.proven_at = Some(elapsed);
            }
            None if elapsed >= self.health_timeout => {
                return fail(&format!(
                    "not proven healthy within {} s ({})",
                    self.health_timeout.as_secs(),
                    self.describe_probe()
                ));
            }
            None => return Verdict::Wait,
            Some(_) => {}
        }
        let proven_at = self.proven_at.unwrap_or(elapsed);
        // During the settle period a probe that stops answering is a failure too.
        if !proven_now && !matches!(self.probe, Probe::HealthCheck) {
            return fail(&format!(
                "was reachable, then stopped answering ({})",
                self.describe_probe()
            ));
        }
        if elapsed.saturating_sub(proven_at) >= self.settle {
            Verdict::Pass {
                proven_after: proven_at,
            }
        } else {
            Verdict::Wait
        }
    }

    fn describe_probe(&self) -> String {
        match &self.probe {
            Probe::HealthCheck => "health check".to_owned(),
            Probe::Database {
                database, targets, ..
            } => format!("{database} probe on {}", list(targets)),
            Probe::Tcp { targets } => format!("TCP connect to {}", list(targets)),
            Probe::RunningOnly => "running".to_owned(),
        }
    }
}

fn list(targets: &[SocketAddr]) -> String {
    targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn fail(reason: &str) -> Verdict {
    Verdict::Fail {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn running(health: Option<&str>) -> Observation {
        Observation {
            running: true,
            restart_count: 0,
            started_at: "t0".into(),
            health: health.map(str::to_owned),
            ..Observation::default()
        }
    }

    #[test]
    fn probe_choice_prefers_the_health_check_then_the_database_then_tcp() {
        let target: SocketAddr = "127.0.0.1:5432".parse().unwrap();
        let facts = |hc, db, targets: &'static [SocketAddr]| Facts {
            has_healthcheck: hc,
            database: db,
            targets,
        };
        static ONE: [SocketAddr; 1] = [SocketAddr::new(
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            5432,
        )];
        assert_eq!(
            choose_probe(facts(true, Some(DatabaseKind::Postgres), &ONE)),
            Probe::HealthCheck
        );
        assert!(matches!(
            choose_probe(facts(false, Some(DatabaseKind::Postgres), &ONE)),
            Probe::Database { .. }
        ));
        assert_eq!(
            choose_probe(facts(false, None, &ONE)),
            Probe::Tcp {
                targets: vec![target]
            }
        );
        assert_eq!(choose_probe(facts(false, None, &[])), Probe::RunningOnly);
    }

    #[test]
    fn healthy_then_settled_passes() {
        let mut gate = Gate::new(Probe::HealthCheck, 60 * S, 5 * S);
        assert_eq!(gate.observe(&running(Some("starting")), S), Verdict::Wait);
        assert_eq!(
            gate.observe(&running(Some("healthy")), 3 * S),
            Verdict::Wait
        );
        assert_eq!(
            gate.observe(&running(Some("healthy")), 7 * S),
            Verdict::Wait
        );
        assert_eq!(
            gate.observe(&running(Some("healthy")), 8 * S),
            Verdict::Pass {
                proven_after: 3 * S
            }
        );
    }

    #[test]
    fn unhealthy_exited_restarted_or_too_slow_fail() {
        let mut gate = Gate::new(Probe::HealthCheck, 60 * S, 5 * S);
        assert!(matches!(
            gate.observe(&running(Some("unhealthy")), S),
            Verdict::Fail { .. }
        ));
        let mut gate = Gate::new(Probe::RunningOnly, 60 * S, 5 * S);
        let exited = Observation {
            running: false,
            exit_code: Some(3),
            ..running(None)
        };
        assert_eq!(
            gate.observe(&exited, S),
            Verdict::Fail {
                reason: "stopped with exit code 3".into()
            }
        );
        // A crash loop: up, then restarted by its restart policy.
        let mut gate = Gate::new(Probe::RunningOnly, 60 * S, 5 * S);
        assert_eq!(gate.observe(&running(None), S), Verdict::Wait);
        let restarted = Observation {
            restart_count: 1,
            started_at: "t1".into(),
            ..running(None)
        };
        assert!(matches!(
            gate.observe(&restarted, 2 * S),
            Verdict::Fail { .. }
        ));
        // Never healthy in time.
        let mut gate = Gate::new(Probe::HealthCheck, 10 * S, 5 * S);
        assert_eq!(
            gate.observe(&running(Some("starting")), 9 * S),
            Verdict::Wait
        );
        let Verdict::Fail { reason } = gate.observe(&running(Some("starting")), 10 * S) else {
            panic!("expected a failure");
        };
        assert!(reason.contains("within 10 s"), "{reason}");
    }

    #[test]
    fn probes_must_keep_answering_through_the_settle_period() {
        let targets = vec!["127.0.0.1:8080".parse().unwrap()];
        let mut gate = Gate::new(Probe::Tcp { targets }, 60 * S, 5 * S);
        let answering = Observation {
            probe_ok: Some(true),
            ..running(None)
        };
        let silent = Observation {
            probe_ok: Some(false),
            ..running(None)
        };
        assert_eq!(gate.observe(&silent, S), Verdict::Wait);
        assert_eq!(gate.observe(&answering, 2 * S), Verdict::Wait);
        assert!(matches!(gate.observe(&silent, 3 * S), Verdict::Fail { .. }));
    }

    #[test]
    fn out_of_memory_fails() {
        let mut gate = Gate::new(Probe::RunningOnly, 60 * S, Duration::ZERO);
        let oom = Observation {
            oom_killed: true,
            ..running(None)
        };
        assert!(matches!(gate.observe(&oom, S), Verdict::Fail { .. }));
        let mut gate = Gate::new(Probe::RunningOnly, 60 * S, Duration::ZERO);
        assert_eq!(
            gate.observe(&running(None), S),
            Verdict::Pass { proven_after: S }
        );
    }
}
