//! An agent older than its controller: told once per version (`agent_outdated`, warning),
//! and once more when the host runs a current agent again (info). Agents update themselves
//! with `agent_update` (docs/jobs.md).

use time::OffsetDateTime;
use unity_protocol::latest::jobs::parse_version;

use crate::store::host_rows::HostScope;
use crate::store::storage::alerts::{self, NewAlert, ObjectKind, Severity};
use crate::store::{StoreError, TenantTx, hosts};

/// Whether `agent` is older than `controller` (an unparseable version is not judged).
pub fn outdated(agent: &str, controller: &str) -> bool {
    match (parse_version(agent), parse_version(controller)) {
        (Some(agent), Some(controller)) => agent < controller,
        _ => false,
    }
}

/// What to raise for a host that reports `agent`, given the version it was last alerted for.
pub fn decide(
    agent: &str,
    controller: &str,
    alerted: Option<&str>,
) -> Option<(NewAlert, Option<String>)> {
    let behind = outdated(agent, controller);
    match (behind, alerted) {
        (true, Some(previous)) if previous == agent => None,
        (true, previous) => Some((
            NewAlert {
                object_kind: ObjectKind::Host,
                object_id: None,
                object_name: String::new(),
                kind: "agent_outdated",
                previous: previous.map(str::to_owned),
                current: agent.to_owned(),
                severity: Severity::Warning,
                message: format!(
                    "the agent runs {agent}, older than the controller ({controller}); update it \
                     with an agent_update job or rollout"
                ),
            },
            Some(agent.to_owned()),
        )),
        (false, Some(previous)) => Some((
            NewAlert {
                object_kind: ObjectKind::Host,
                object_id: None,
                object_name: String::new(),
                kind: "agent_outdated",
                previous: Some(previous.to_owned()),
                current: agent.to_owned(),
                severity: Severity::Info,
                message: format!("the agent runs {agent}, current with the controller"),
            },
            None,
        )),
        (false, None) => None,
    }
}

/// Checks a host's reported version after its facts were stored; `alerted` is the version it
/// was last alerted as outdated for (`hosts::StoredFacts`).
pub async fn apply(
    tx: &mut TenantTx,
    scope: HostScope,
    hostname: &str,
    agent: &str,
    alerted: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let Some((mut alert, mark)) = decide(agent, crate::VERSION, alerted) else {
        return Ok(());
    };
    alert.object_id = Some(scope.host_id);
    alert.object_name = hostname.to_owned();
    tracing::info!(tenant_id = %scope.tenant_id, host_id = %scope.host_id, agent,
        controller = crate::VERSION, severity = alert.severity.as_str(), "agent version alert");
    alerts::insert(tx, scope, &alert, now).await?;
    hosts::set_outdated_version(tx, scope.host_id, mark.as_deref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outdated_agent_is_told_once_per_version_and_its_update_once() {
        let (alert, mark) = decide("0.2.0", "0.3.0", None).unwrap();
        assert_eq!(
            (alert.severity, mark.as_deref()),
            (Severity::Warning, Some("0.2.0"))
        );
        assert!(decide("0.2.0", "0.3.0", Some("0.2.0")).is_none());
        // Updated, but still behind: a new version, a new alert.
        let (alert, mark) = decide("0.2.5", "0.3.0", Some("0.2.0")).unwrap();
        assert_eq!(
            (alert.severity, mark.as_deref()),
            (Severity::Warning, Some("0.2.5"))
        );
        // Current (or newer): the recovery, once.
        let (alert, mark) = decide("0.3.0", "0.3.0", Some("0.2.5")).unwrap();
        assert_eq!((alert.severity, mark), (Severity::Info, None));
        assert!(decide("0.3.1", "0.3.0", None).is_none());
        assert!(decide("garbage", "0.3.0", None).is_none());
        assert!(decide("0.3.0-rc.1", "0.3.0", None).is_some());
    }
}
