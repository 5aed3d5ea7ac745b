//! Rollouts, pure: how many hosts each wave gets, and what to do next given where every host
//! of the current wave stands. No I/O and no clock: the runner gathers the facts (job states,
//! storage health, maintenance windows) and applies the actions.

use uuid::Uuid;

/// One wave's size as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaveSize {
    Hosts(usize),
    /// Of all the rollout's hosts, rounded up.
    Percent(u8),
    /// Waves of this many until every host had its turn (`{"each": 1}`: one host at a time);
    /// only as the last entry.
    Each(usize),
}

/// `[1, "25%", "100%"]` → sizes. The last wave always takes every host left.
pub fn parse_waves(spec: &[serde_json::Value]) -> Result<Vec<WaveSize>, String> {
    if spec.is_empty() || spec.len() > 20 {
        return Err("waves must list 1 to 20 waves".into());
    }
    spec.iter()
        .map(|w| match w {
            serde_json::Value::Number(n) => match n.as_u64() {
                Some(n @ 1..=100_000) => Ok(WaveSize::Hosts(n as usize)),
                _ => Err(format!("wave `{n}` is not a number of hosts from 1")),
            },
            serde_json::Value::String(s) => {
                let p = s
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse::<u8>().ok())
                    .filter(|p| (1..=100).contains(p));
                p.map(WaveSize::Percent)
                    .ok_or_else(|| format!("wave `{s}` is not a percentage from 1% to 100%"))
            }
            serde_json::Value::Object(o) if o.len() == 1 => {
                match o.get("each").and_then(serde_json::Value::as_u64) {
                    Some(n @ 1..=100_000) => Ok(WaveSize::Each(n as usize)),
                    _ => Err(format!("wave `{w}` is not {{\"each\": N}} with N from 1")),
                }
            }
            other => Err(format!(
                "wave `{other}` is neither a host count, a percentage nor {{\"each\": N}}"
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|waves| {
            let early_each = waves[..waves.len() - 1]
                .iter()
                .any(|w| matches!(w, WaveSize::Each(_)));
            if early_each {
                Err("{\"each\": N} can only be the last wave".into())
            } else {
                Ok(waves)
            }
        })
}

/// How many hosts each wave gets out of `total`; waves that would be empty are dropped, and
/// the last one takes the rest.
pub fn wave_sizes(waves: &[WaveSize], total: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = total;
    for (i, wave) in waves.iter().enumerate() {
        if left == 0 {
            break;
        }
        let want = match *wave {
            WaveSize::Hosts(n) => n,
            WaveSize::Percent(p) => (total * usize::from(p)).div_ceil(100),
            WaveSize::Each(n) => {
                while left > 0 {
                    let size = n.min(left);
                    sizes.push(size);
                    left -= size;
                }
                break;
            }
        };
        let size = if i + 1 == waves.len() {
            left
        } else {
            want.min(left)
        };
        if size > 0 {
            sizes.push(size);
            left -= size;
        }
    }
    if left > 0 {
        match sizes.last_mut() {
            Some(last) => *last += left,
            None => sizes.push(left),
        }
    }
    sizes
}

/// Where a host of the rollout stands (the `rollout_hosts.state` words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    Pending,
    WaitingWindow,
    Deferred,
    Dispatched,
    Succeeded,
    Failed,
    Skipped,
}

unity_protocol::word_enum!(HostState, UnknownHostState, "rollout host state", {
    Pending => "pending",
    WaitingWindow => "waiting_window",
    Deferred => "deferred",
    Dispatched => "dispatched",
    Succeeded => "succeeded",
    Failed => "failed",
    Skipped => "skipped",
});

impl HostState {
    fn is_final(self) -> bool {
        matches!(
            self,
            HostState::Deferred | HostState::Succeeded | HostState::Failed | HostState::Skipped
        )
    }
}

/// A host of the current wave, with what the runner found out about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    pub host_id: Uuid,
    pub state: HostState,
    /// The state of its job, once dispatched (`succeeded`, `failed`, `running`, …).
    pub job_state: Option<String>,
    /// Why touching it now would be unsafe (a degraded pool, a failing disk).
    pub unhealthy: Option<String>,
    /// Inside one of its maintenance windows (or it has none).
    pub in_window: bool,
}

/// What the runner does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Dispatch(Uuid),
    WaitForWindow(Uuid),
    Defer {
        host_id: Uuid,
        reason: String,
    },
    Finished {
        host_id: Uuid,
        succeeded: bool,
        job_state: String,
    },
    /// The wave ended within its budget: the next one starts.
    NextWave,
    /// The wave ended over its budget.
    Halt {
        reason: String,
        host_id: Uuid,
    },
    Complete,
}

/// Job states that end a job, and whether it did what was asked.
fn job_ended(state: &str) -> Option<bool> {
    match state {
        "succeeded" => Some(true),
        "failed" | "rolled_back" | "refused" | "expired" | "cancelled" => Some(false),
        _ => None,
    }
}

/// The next actions for a running rollout whose current wave is `hosts` (its index
/// `wave`, of `waves`).
pub fn decide(
    hosts: &[HostView],
    wave: usize,
    waves: usize,
    failure_budget: usize,
    force: bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut states: Vec<(Uuid, HostState)> = Vec::with_capacity(hosts.len());
    for host in hosts {
        let state = match host.state {
            HostState::Dispatched => match host.job_state.as_deref().and_then(job_ended) {
                Some(succeeded) => {
                    actions.push(Action::Finished {
                        host_id: host.host_id,
                        succeeded,
                        job_state: host.job_state.clone().unwrap_or_default(),
                    });
                    if succeeded {
                        HostState::Succeeded
                    } else {
                        HostState::Failed
                    }
                }
                None => HostState::Dispatched,
            },
            HostState::Pending | HostState::WaitingWindow => {
                if let (Some(reason), false) = (&host.unhealthy, force) {
                    actions.push(Action::Defer {
                        host_id: host.host_id,
                        reason: reason.clone(),
                    });
                    HostState::Deferred
                } else if !host.in_window && !force {
                    if host.state != HostState::WaitingWindow {
                        actions.push(Action::WaitForWindow(host.host_id));
                    }
                    HostState::WaitingWindow
                } else {
                    actions.push(Action::Dispatch(host.host_id));
                    HostState::Dispatched
                }
            }
            other => other,
        };
        states.push((host.host_id, state));
    }
    if states.iter().all(|(_, s)| s.is_final()) {
        let failed: Vec<Uuid> = states
            .iter()
            .filter(|(_, s)| *s == HostState::Failed)
            .map(|(id, _)| *id)
            .collect();
        if failed.len() > failure_budget {
            actions.push(Action::Halt {
                reason: format!(
                    "wave {} had {} failed host(s), over its budget of {failure_budget}",
                    wave + 1,
                    failed.len()
                ),
                host_id: *failed.last().unwrap_or(&Uuid::nil()),
            });
        } else if wave + 1 < waves {
            actions.push(Action::NextWave);
        } else {
            actions.push(Action::Complete);
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn waves_are_sized_and_the_last_takes_the_rest() {
        let w = parse_waves(&[json!(1), json!("25%"), json!("100%")]).unwrap();
        assert_eq!(wave_sizes(&w, 10), [1, 3, 6]);
        assert_eq!(wave_sizes(&w, 1), [1]);
        assert_eq!(wave_sizes(&w, 2), [1, 1]);
        assert_eq!(wave_sizes(&w, 0), Vec::<usize>::new());
        let one = parse_waves(&[json!(1)]).unwrap();
        assert_eq!(wave_sizes(&one, 5), [5], "a single wave is everything");
        let halves = parse_waves(&[json!("50%"), json!("50%")]).unwrap();
        assert_eq!(wave_sizes(&halves, 5), [3, 2]);
        assert_eq!(
            wave_sizes(&parse_waves(&[json!(1), json!(1)]).unwrap(), 1000),
            [1, 999]
        );
        for bad in [
            json!(0),
            json!("0%"),
            json!("101%"),
            json!("half"),
            json!(null),
            json!(-1),
        ] {
            assert!(parse_waves(std::slice::from_ref(&bad)).is_err(), "{bad}");
        }
        assert!(parse_waves(&[]).is_err());
        let each = parse_waves(&[json!(1), json!({ "each": 2 })]).unwrap();
        assert_eq!(wave_sizes(&each, 6), [1, 2, 2, 1]);
        assert_eq!(
            wave_sizes(&parse_waves(&[json!({ "each": 1 })]).unwrap(), 3),
            [1, 1, 1]
        );
        assert!(
            parse_waves(&[json!({ "each": 1 }), json!(1)]).is_err(),
            "each only last"
        );
        assert!(parse_waves(&[json!({ "each": 0 })]).is_err());
    }

    fn host(n: u128, state: HostState, job: Option<&str>) -> HostView {
        HostView {
            host_id: Uuid::from_u128(n),
            state,
            job_state: job.map(str::to_owned),
            unhealthy: None,
            in_window: true,
        }
    }

    #[test]
    fn pending_hosts_are_dispatched_unless_unhealthy_or_outside_their_window() {
        let mut sick = host(2, HostState::Pending, None);
        sick.unhealthy = Some("pool tank is degraded".into());
        let mut closed = host(3, HostState::Pending, None);
        closed.in_window = false;
        let hosts = [
            host(1, HostState::Pending, None),
            sick.clone(),
            closed.clone(),
        ];
        let actions = decide(&hosts, 0, 2, 0, false);
        assert_eq!(
            actions,
            [
                Action::Dispatch(Uuid::from_u128(1)),
                Action::Defer {
                    host_id: Uuid::from_u128(2),
                    reason: "pool tank is degraded".into()
                },
                Action::WaitForWindow(Uuid::from_u128(3)),
            ]
        );
        // Forced: everyone goes now.
        let forced = decide(&hosts, 0, 2, 0, true);
        assert!(
            forced.iter().all(|a| matches!(a, Action::Dispatch(_))),
            "{forced:?}"
        );
    }

    #[test]
    fn a_wave_ends_when_every_host_is_final_and_the_budget_decides() {
        let done = [
            host(1, HostState::Dispatched, Some("succeeded")),
            host(2, HostState::Deferred, None),
        ];
        let actions = decide(&done, 0, 3, 0, false);
        assert_eq!(actions.last(), Some(&Action::NextWave));
        let last = decide(&done, 2, 3, 0, false);
        assert_eq!(last.last(), Some(&Action::Complete));
        let failing = [
            host(1, HostState::Dispatched, Some("succeeded")),
            host(2, HostState::Dispatched, Some("rolled_back")),
        ];
        let halted = decide(&failing, 0, 3, 0, false);
        assert!(
            matches!(halted.last(), Some(Action::Halt { host_id, .. }) if *host_id == Uuid::from_u128(2)),
            "{halted:?}"
        );
        let within = decide(&failing, 0, 3, 1, false);
        assert_eq!(
            within.last(),
            Some(&Action::NextWave),
            "one failure fits a budget of one"
        );
        let running = [host(1, HostState::Dispatched, Some("running"))];
        assert!(
            decide(&running, 0, 3, 0, false).is_empty(),
            "nothing to do while a job runs"
        );
    }
}
