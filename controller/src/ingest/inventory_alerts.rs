//! When a container or database report raises an alert: pure comparisons of an object's
//! stored state with its new state, **once per change** like the storage rules
//! (`ingest::storage_alerts`). Written out in `docs/alerts.md`, "Containers and databases".

use unity_protocol::latest::{ContainerInfo, DatabaseInfo, RunState, UpdateState};

use super::storage_alerts::Subject;
use crate::store::inventory::containers::ContainerPrevious;
use crate::store::inventory::databases::DatabasePrevious;
use crate::store::storage::alerts::{NewAlert, Severity};

/// How a container is named in alerts: `name (image)`.
pub fn container_name(container: &ContainerInfo) -> String {
    let name = container.name.trim_start_matches('/');
    let name = if name.is_empty() {
        container.id.get(..12).unwrap_or(&container.id)
    } else {
        name
    };
    format!("{name} ({})", container.image)
}

/// The health verdict to remember: `healthy` or `unhealthy`; `starting` and "no health check"
/// are no verdict and keep the previous one, so a container restarting through `starting`
/// back to `unhealthy` does not alert again.
pub fn known_health<'a>(new: Option<&'a str>, previous_known: Option<&'a str>) -> Option<&'a str> {
    match new {
        Some(verdict @ ("healthy" | "unhealthy")) => Some(verdict),
        _ => previous_known,
    }
}

/// What `update_notified` becomes: the digest (`""` if the agent gave none) of an available
/// update once it has been announced; cleared when the container is up to date, unchanged
/// while the registry cannot be asked (`unknown`, `not_checked`).
pub fn update_notified(container: &ContainerInfo, previous: Option<&str>) -> Option<String> {
    match container.update.state {
        UpdateState::UpdateAvailable => {
            Some(container.update.new_digest.clone().unwrap_or_default())
        }
        UpdateState::UpToDate => None,
        UpdateState::Unknown | UpdateState::NotChecked => previous.map(str::to_owned),
    }
}

fn exit_text(code: Option<i64>) -> String {
    code.map_or_else(|| "unknown exit code".into(), |c| format!("exit code {c}"))
}

pub fn container_alerts(
    subject: &Subject,
    previous: Option<&ContainerPrevious>,
    container: &ContainerInfo,
) -> Vec<NewAlert> {
    let mut out = Vec::new();
    let run_state = container.run_state();
    let state = run_state.as_str();
    let previous_state = previous.map(|p| p.state.as_str());
    let previous_run_state = previous_state.map(RunState::from_word);
    // Stopping: anything not down → exited/dead. A clean exit (code 0) is usually on purpose.
    let stopped = match &previous_run_state {
        None => match run_state {
            RunState::Dead => true,
            RunState::Exited => container.exit_code.is_some_and(|c| c != 0),
            _ => false,
        },
        Some(p) => !p.is_down() && run_state.is_down(),
    };
    if stopped {
        let severity = if run_state == RunState::Exited && container.exit_code == Some(0) {
            Severity::Info
        } else {
            Severity::Warning
        };
        let message = match previous_state {
            None => format!(
                "container {} first seen {state} ({})",
                subject.name,
                exit_text(container.exit_code)
            ),
            Some(p) => format!(
                "container {} {p} → {state} ({})",
                subject.name,
                exit_text(container.exit_code)
            ),
        };
        out.push(subject.alert(
            "container_state",
            previous_state.map(str::to_owned),
            state.to_owned(),
            severity,
            message,
        ));
    } else if let Some(p) = previous_state
        && previous_run_state.as_ref().is_some_and(RunState::is_down)
        && run_state == RunState::Running
    {
        out.push(subject.alert(
            "container_state",
            Some(p.to_owned()),
            state.to_owned(),
            Severity::Info,
            format!("container {} is running again", subject.name),
        ));
    }

    let previous_known = previous.and_then(|p| p.known_health.as_deref());
    let known = known_health(container.health.as_deref(), previous_known);
    if known != previous_known {
        match known {
            Some("unhealthy") => out.push(subject.alert(
                "container_health",
                previous_known.map(str::to_owned),
                "unhealthy".into(),
                Severity::Warning,
                format!("container {} health check reports unhealthy", subject.name),
            )),
            Some("healthy") if previous_known == Some("unhealthy") => out.push(subject.alert(
                "container_health",
                Some("unhealthy".into()),
                "healthy".into(),
                Severity::Info,
                format!("container {} is healthy again", subject.name),
            )),
            _ => {}
        }
    }

    let previous_notified = previous.and_then(|p| p.update_notified.as_deref());
    if container.update.state == UpdateState::UpdateAvailable {
        let digest = container.update.new_digest.as_deref().unwrap_or("");
        if previous_notified != Some(digest) {
            let newer = if digest.is_empty() {
                String::new()
            } else {
                format!(" ({digest})")
            };
            out.push(subject.alert(
                "container_update",
                previous.map(|p| p.update_state.clone()),
                UpdateState::UpdateAvailable.as_str().into(),
                Severity::Info,
                format!(
                    "container {}: a newer image{newer} is available for {}",
                    subject.name, container.image
                ),
            ));
        }
    }
    out
}

/// The stable identity of a database on its host (docs/inventory-api.md, "Identity"):
/// 1. `<kind>:tcp:<port>` — the lowest TCP port it listens on. The address is left out so
///    `127.0.0.1:5432` and `[::1]:5432` are one server whatever order the agent lists them in;
///    a published container port survives the container being recreated.
/// 2. `<kind>:unix:<path>` — the first unix socket (sorted), when it has no TCP port.
/// 3. `<kind>:dir:<data_dir>`, 4. `<kind>:container:<id>`, 5. `<kind>:process:<name>`,
///    6. `<kind>:unknown` — one per kind per host.
pub fn database_identity(db: &DatabaseInfo) -> String {
    let kind = db.kind.trim();
    let tcp_port = |addr: &str| -> Option<u16> {
        if addr.starts_with('/') || addr.starts_with('@') {
            return None;
        }
        let (_, port) = addr.rsplit_once(':')?;
        port.trim().parse::<u16>().ok()
    };
    if let Some(port) = db.listen.iter().filter_map(|a| tcp_port(a)).min() {
        return format!("{kind}:tcp:{port}");
    }
    let mut sockets: Vec<&str> = db
        .listen
        .iter()
        .map(|a| a.trim())
        .filter(|a| a.starts_with('/') || a.starts_with('@'))
        .collect();
    sockets.sort_unstable();
    if let Some(socket) = sockets.first() {
        return format!("{kind}:unix:{socket}");
    }
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    if let Some(dir) = given(&db.data_dir) {
        return format!("{kind}:dir:{dir}");
    }
    if let Some(id) = given(&db.container_id) {
        return format!("{kind}:container:{id}");
    }
    if let Some(process) = given(&db.process) {
        return format!("{kind}:process:{process}");
    }
    format!("{kind}:unknown")
}

pub fn database_alerts(
    subject: &Subject,
    previous: Option<&DatabasePrevious>,
    db: &DatabaseInfo,
) -> Vec<NewAlert> {
    let mut out = Vec::new();
    let version = db
        .version
        .as_deref()
        .map_or(String::new(), |v| format!(" {v}"));
    match previous {
        None => out.push(subject.alert(
            "database_presence",
            None,
            "present".into(),
            Severity::Info,
            format!("database {}{version} appeared", subject.name),
        )),
        Some(p) if !p.present => out.push(subject.alert(
            "database_presence",
            Some("absent".into()),
            "present".into(),
            Severity::Info,
            format!("database {} is back", subject.name),
        )),
        Some(_) => {}
    }
    if let Some(p) = previous
        && let (Some(old), Some(new)) = (p.version.as_deref(), db.version.as_deref())
        && old != new
    {
        out.push(subject.alert(
            "database_version",
            Some(old.to_owned()),
            new.to_owned(),
            Severity::Info,
            format!("database {} version {old} → {new}", subject.name),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::storage::alerts::ObjectKind;
    use unity_protocol::latest::ImageUpdate;
    use uuid::Uuid;

    fn subject(kind: ObjectKind) -> Subject {
        Subject {
            kind,
            id: Uuid::nil(),
            name: "web (nginx:1.27)".into(),
        }
    }

    fn container(state: &str, exit: Option<i64>, health: Option<&str>) -> ContainerInfo {
        ContainerInfo {
            id: "abc".into(),
            name: "/web".into(),
            image: "nginx:1.27".into(),
            image_id: "sha256:1".into(),
            repo_digest: None,
            state: state.into(),
            health: health.map(Into::into),
            exit_code: exit,
            restart_count: Some(0),
            created_at_ms: None,
            started_at_ms: None,
            ports: Vec::new(),
            compose_project: None,
            compose_service: None,
            update: ImageUpdate {
                state: UpdateState::UpToDate,
                new_digest: None,
                reason: String::new(),
            },
            detail_json: "{}".into(),
        }
    }

    fn prev(state: &str, known: Option<&str>, notified: Option<&str>) -> ContainerPrevious {
        ContainerPrevious {
            id: Uuid::nil(),
            state: state.into(),
            known_health: known.map(Into::into),
            exit_code: None,
            update_state: "up_to_date".into(),
            update_notified: notified.map(Into::into),
            present: true,
        }
    }

    fn kinds(alerts: &[NewAlert]) -> Vec<(&'static str, Severity)> {
        alerts.iter().map(|a| (a.kind, a.severity)).collect()
    }

    #[test]
    fn stopping_alerts_once_and_restart_is_info() {
        let s = subject(ObjectKind::Container);
        let running = prev("running", None, None);
        let crashed = container("exited", Some(137), None);
        assert_eq!(
            kinds(&container_alerts(&s, Some(&running), &crashed)),
            [("container_state", Severity::Warning)]
        );
        let exited = prev("exited", None, None);
        assert!(container_alerts(&s, Some(&exited), &crashed).is_empty());
        assert_eq!(
            kinds(&container_alerts(
                &s,
                Some(&exited),
                &container("running", None, None)
            )),
            [("container_state", Severity::Info)]
        );
        assert_eq!(
            kinds(&container_alerts(
                &s,
                Some(&running),
                &container("exited", Some(0), None)
            )),
            [("container_state", Severity::Info)]
        );
        // First sightings: only a failure is news.
        assert!(container_alerts(&s, None, &container("exited", Some(0), None)).is_empty());
        assert!(container_alerts(&s, None, &container("running", None, None)).is_empty());
        assert_eq!(
            kinds(&container_alerts(&s, None, &crashed)),
            [("container_state", Severity::Warning)]
        );
    }

    #[test]
    fn health_alerts_on_verdict_changes_only() {
        let s = subject(ObjectKind::Container);
        let sick = container("running", None, Some("unhealthy"));
        assert_eq!(
            kinds(&container_alerts(&s, None, &sick)),
            [("container_health", Severity::Warning)]
        );
        let was_sick = prev("running", Some("unhealthy"), None);
        assert!(container_alerts(&s, Some(&was_sick), &sick).is_empty());
        let starting = container("running", None, Some("starting"));
        assert!(container_alerts(&s, Some(&was_sick), &starting).is_empty());
        let well = container("running", None, Some("healthy"));
        assert_eq!(
            kinds(&container_alerts(&s, Some(&was_sick), &well)),
            [("container_health", Severity::Info)]
        );
        assert!(container_alerts(&s, None, &well).is_empty());
        assert_eq!(
            known_health(Some("starting"), Some("unhealthy")),
            Some("unhealthy")
        );
        assert_eq!(known_health(None, Some("healthy")), Some("healthy"));
    }

    #[test]
    fn updates_alert_once_per_new_digest() {
        let s = subject(ObjectKind::Container);
        let mut c = container("running", None, None);
        c.update.state = UpdateState::UpdateAvailable;
        c.update.new_digest = Some("sha256:new".into());
        let fresh = prev("running", None, None);
        assert_eq!(
            kinds(&container_alerts(&s, Some(&fresh), &c)),
            [("container_update", Severity::Info)]
        );
        assert_eq!(update_notified(&c, None).as_deref(), Some("sha256:new"));
        let told = prev("running", None, Some("sha256:new"));
        assert!(container_alerts(&s, Some(&told), &c).is_empty());
        c.update.new_digest = Some("sha256:newer".into());
        assert_eq!(kinds(&container_alerts(&s, Some(&told), &c)).len(), 1);
        // The registry unreachable for a round does not forget the announcement.
        c.update.state = UpdateState::Unknown;
        assert_eq!(
            update_notified(&c, Some("sha256:new")).as_deref(),
            Some("sha256:new")
        );
        c.update.state = UpdateState::UpToDate;
        assert_eq!(update_notified(&c, Some("sha256:new")), None);
    }

    fn db(listen: &[&str]) -> DatabaseInfo {
        DatabaseInfo {
            kind: "postgresql".into(),
            version: Some("16.4".into()),
            listen: listen.iter().map(|s| (*s).to_owned()).collect(),
            pid: Some(42),
            process: Some("postgres".into()),
            container_id: None,
            data_dir: Some("/var/lib/postgresql/16/main".into()),
            found_by: vec!["socket".into()],
            probe: "confirmed".into(),
            probe_detail: String::new(),
            detail_json: "{}".into(),
        }
    }

    #[test]
    fn database_identity_prefers_the_lowest_tcp_port() {
        assert_eq!(
            database_identity(&db(&["[::1]:5433", "/run/x.sock", "127.0.0.1:5432"])),
            "postgresql:tcp:5432"
        );
        assert_eq!(
            database_identity(&db(&["/run/b", "/run/a"])),
            "postgresql:unix:/run/a"
        );
        assert_eq!(
            database_identity(&db(&[])),
            "postgresql:dir:/var/lib/postgresql/16/main"
        );
        let mut bare = db(&[]);
        bare.data_dir = None;
        bare.container_id = Some("c1".into());
        assert_eq!(database_identity(&bare), "postgresql:container:c1");
        bare.container_id = None;
        assert_eq!(database_identity(&bare), "postgresql:process:postgres");
        bare.process = Some("  ".into());
        assert_eq!(database_identity(&bare), "postgresql:unknown");
    }

    #[test]
    fn databases_alert_on_appearance_return_and_version() {
        let s = subject(ObjectKind::Database);
        let d = db(&["127.0.0.1:5432"]);
        assert_eq!(
            kinds(&database_alerts(&s, None, &d)),
            [("database_presence", Severity::Info)]
        );
        let mut p = DatabasePrevious {
            id: Uuid::nil(),
            version: Some("16.4".into()),
            present: true,
        };
        assert!(database_alerts(&s, Some(&p), &d).is_empty());
        p.version = Some("16.3".into());
        assert_eq!(
            kinds(&database_alerts(&s, Some(&p), &d)),
            [("database_version", Severity::Info)]
        );
        p.version = Some("16.4".into());
        p.present = false;
        assert_eq!(
            kinds(&database_alerts(&s, Some(&p), &d)),
            [("database_presence", Severity::Info)]
        );
    }
}
