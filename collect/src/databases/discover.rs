//! Merging the evidence into one record per instance, then probing and versioning.
//! The rules are written down in `docs/databases.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use super::identify::{data_dir, parse_version_output, recognise_image};
use super::model::{
    CollectorStatus, ContainerHint, ContainerRef, DatabaseInstance, DatabaseInventory,
    DatabaseKind, DiscoveryOptions, ListenAddr, ProbeResult, ProcessInfo, Source, VersionSource,
};
use super::probe::probe;
use super::procnet::cgroup_mentions;
use super::scan::{DbProcess, ScanMemory, Snapshot, scan_with};
use crate::runner::CommandRunner;

/// A record being assembled.
#[derive(Debug, Clone)]
struct Draft {
    kind: DatabaseKind,
    listen: BTreeSet<ListenAddr>,
    process: Option<DbProcess>,
    containers: Vec<ContainerRef>,
    sources: BTreeSet<Source>,
    image_tag: Option<String>,
}

impl Draft {
    fn new(kind: DatabaseKind, source: Source) -> Self {
        Self {
            kind,
            listen: BTreeSet::new(),
            process: None,
            containers: Vec::new(),
            sources: BTreeSet::from([source]),
            image_tag: None,
        }
    }
}

/// True when a published host address and a listening address are the same endpoint
/// (equal, or either side listens on every address of its family… or of both).
fn same_endpoint(published: (IpAddr, u16), listen: &ListenAddr) -> bool {
    let ListenAddr::Tcp { ip, port } = listen else {
        return false;
    };
    *port == published.1
        && (*ip == published.0 || ip.is_unspecified() || published.0.is_unspecified())
}

/// Builds the records from a procfs snapshot and the container hints; no I/O.
fn merge(snap: &Snapshot, hints: &[ContainerHint], well_known: bool) -> Vec<Draft> {
    let mut drafts: Vec<Draft> = Vec::new();
    let mut owned: BTreeSet<u64> = BTreeSet::new();
    for p in &snap.processes {
        let listen: BTreeSet<ListenAddr> = p
            .socket_inodes
            .iter()
            .flatten()
            .filter_map(|i| snap.sockets.get(i).map(|a| (*i, a)))
            .map(|(i, a)| {
                owned.insert(i);
                a.clone()
            })
            .collect();
        // Workers and forks (PostgreSQL backends, …) hold no listener and descend from a
        // process of the same kind: they are part of that instance, not one of their own.
        let parent_same_kind = p.ppid.is_some_and(|pp| {
            snap.processes
                .iter()
                .any(|q| q.pid == pp && q.kind == p.kind)
        });
        if listen.is_empty() && parent_same_kind {
            continue;
        }
        let mut d = Draft::new(p.kind, Source::Process);
        if !listen.is_empty() {
            d.sources.insert(Source::ListeningSocket);
        }
        d.listen = listen;
        d.process = Some(p.clone());
        drafts.push(d);
    }

    // Listening TCP sockets nobody recognised claimed yet: (addr, inode).
    let mut unclaimed: Vec<ListenAddr> = snap
        .sockets
        .iter()
        .filter(|(i, a)| !owned.contains(i) && matches!(a, ListenAddr::Tcp { .. }))
        .map(|(_, a)| a.clone())
        .collect();

    for hint in hints {
        let image = recognise_image(&hint.image);
        let cref = ContainerRef {
            container_id: hint.container_id.clone(),
            name: hint.name.clone(),
            image: hint.image.clone(),
        };
        let matches = |d: &Draft| {
            d.process
                .as_ref()
                .is_some_and(|p| cgroup_mentions(&p.cgroup, &hint.container_id))
                || hint
                    .published
                    .iter()
                    .any(|pb| d.listen.iter().any(|l| same_endpoint(*pb, l)))
        };
        let mut merged = false;
        for d in drafts.iter_mut().filter(|d| matches(d)) {
            if image.as_ref().is_some_and(|(k, _)| *k != d.kind) {
                continue;
            }
            merged = true;
            if !d.containers.contains(&cref) {
                d.containers.push(cref.clone());
            }
            if let Some((_, tag)) = &image {
                d.sources.insert(Source::ContainerImage);
                if d.image_tag.is_none() {
                    d.image_tag.clone_from(tag);
                }
            }
            for pb in &hint.published {
                d.listen.insert(ListenAddr::Tcp {
                    ip: pb.0,
                    port: pb.1,
                });
            }
        }
        let Some((kind, tag)) = image else {
            continue;
        };
        // The host side of a published port is usually held by docker-proxy / rootlessport:
        // those sockets belong to this container.
        unclaimed.retain(|l| !hint.published.iter().any(|pb| same_endpoint(*pb, l)));
        if merged {
            continue;
        }
        let mut d = Draft::new(kind, Source::ContainerImage);
        d.containers.push(cref);
        d.image_tag = tag;
        for pb in &hint.published {
            d.listen.insert(ListenAddr::Tcp {
                ip: pb.0,
                port: pb.1,
            });
        }
        drafts.push(d);
    }

    if well_known {
        let mut by_port: BTreeMap<(DatabaseKind, u16), Draft> = BTreeMap::new();
        for addr in unclaimed {
            let ListenAddr::Tcp { port, .. } = addr else {
                continue;
            };
            let Some(kind) = DatabaseKind::ALL
                .into_iter()
                .find(|k| k.default_port() == port)
            else {
                continue;
            };
            by_port
                .entry((kind, port))
                .or_insert_with(|| Draft::new(kind, Source::WellKnownPort))
                .listen
                .insert(addr);
        }
        drafts.extend(by_port.into_values());
    }
    drafts
}

/// Probe order: IPv4 TCP, IPv6 TCP, then unix sockets (for servers that listen on no TCP).
fn probe_candidates(listen: &BTreeSet<ListenAddr>) -> Vec<ListenAddr> {
    let rank = |a: &ListenAddr| match a {
        ListenAddr::Tcp {
            ip: IpAddr::V4(ip), ..
        } if ip.is_loopback() || ip.is_unspecified() => 0,
        ListenAddr::Tcp {
            ip: IpAddr::V4(_), ..
        } => 1,
        ListenAddr::Tcp {
            ip: IpAddr::V6(ip), ..
        } if ip.is_loopback() || ip.is_unspecified() => 2,
        ListenAddr::Tcp { .. } => 3,
        ListenAddr::Unix { path } if path.starts_with('@') => 9,
        ListenAddr::Unix { .. } => 4,
    };
    let mut v: Vec<ListenAddr> = listen.iter().filter(|a| rank(a) < 9).cloned().collect();
    v.sort_by_key(|a| rank(a));
    v.truncate(3);
    v
}

/// Probes the first candidates until one gives an answer (anything but refused / timeout).
async fn probe_draft(
    kind: DatabaseKind,
    candidates: Vec<ListenAddr>,
    options: DiscoveryOptions,
) -> Option<ProbeResult> {
    let mut last = None;
    for addr in candidates {
        let r = probe(kind, &addr, options.probe_timeout).await;
        let decisive = !matches!(
            r.outcome,
            super::model::ProbeOutcome::Refused | super::model::ProbeOutcome::Timeout { .. }
        );
        last = Some(r);
        if decisive {
            break;
        }
    }
    last
}

/// Executables we are willing to run for `--version`: the process shares our mount
/// namespace (a container's binary is never run on the host) and the file is owned by root
/// and not writable by group or others (we may be root; a user's binary must not run as us).
fn safe_to_run(procfs_root: &Path, p: &DbProcess) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !p.same_mount_ns {
        return None;
    }
    let exe = p.view.exe.as_deref()?;
    if exe.ends_with(" (deleted)") {
        return None;
    }
    let meta = std::fs::metadata(exe).ok()?;
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 || !meta.is_file() {
        return None;
    }
    // Run the process's own executable through the magic link (what is running, even if the
    // path was replaced by an upgrade since); Redis also prints its server version when not
    // started under its `redis-check-rdb` name.
    let link = procfs_root.join(p.pid.to_string()).join("exe");
    Some(link.to_string_lossy().into_owned())
}

/// What discovery keeps between rounds, so that a host where nothing changed costs little:
/// what each process was recognised as ([`ScanMemory`]), each database process's
/// `--version` answer (for the life of that process), and each listener's probe answer when
/// it proved the protocol (until the listener changes or [`DiscoveryOptions::probe_refresh`]
/// passes). Failed probes are never kept: a database that stops answering is seen at once.
/// Hold one per host and pass it to every round of [`discover_with`].
#[derive(Debug, Default)]
pub struct DiscoveryMemory {
    scan: ScanMemory,
    versions: HashMap<(u32, u64), Option<String>>,
    probes: HashMap<ProbeKey, (Instant, ProbeResult)>,
}

/// A listener as a probe saw it: the same addresses, held by the same sockets of the same
/// process. Any change (restart, new port, another owner) means probing again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ProbeKey {
    kind: DatabaseKind,
    candidates: Vec<ListenAddr>,
    owner: Option<(u32, Option<u64>)>,
    inodes: Vec<u64>,
}

impl ProbeKey {
    fn new(snap: &Snapshot, draft: &Draft, candidates: &[ListenAddr]) -> Self {
        Self {
            kind: draft.kind,
            candidates: candidates.to_vec(),
            owner: draft.process.as_ref().map(|p| (p.pid, p.start_ticks)),
            inodes: snap
                .sockets
                .iter()
                .filter(|(_, addr)| draft.listen.contains(addr))
                .map(|(inode, _)| *inode)
                .collect(),
        }
    }
}

/// Finds the database instances on this host, remembering nothing between calls. See the
/// module docs of [`super`].
pub async fn discover(
    procfs_root: &Path,
    hints: &[ContainerHint],
    runner: &impl CommandRunner,
    options: &DiscoveryOptions,
) -> DatabaseInventory {
    let mut memory = DiscoveryMemory::default();
    discover_with(
        procfs_root,
        hints,
        runner,
        options,
        &mut memory,
        Instant::now(),
    )
    .await
}

/// [`discover`] for a round of a series: what `memory` holds from earlier rounds is reused
/// where it still describes the host, and `memory` is left describing this round. `now`
/// dates the probe answers kept.
pub async fn discover_with(
    procfs_root: &Path,
    hints: &[ContainerHint],
    runner: &impl CommandRunner,
    options: &DiscoveryOptions,
    memory: &mut DiscoveryMemory,
    now: Instant,
) -> DatabaseInventory {
    let snap = match scan_with(procfs_root, &mut memory.scan) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %crate::ErrorChain(&e), "procfs unreadable; database discovery skipped");
            return DatabaseInventory {
                instances: Vec::new(),
                status: CollectorStatus::ProcUnreadable {
                    path: e.path.display().to_string(),
                    error: e.source.to_string(),
                },
            };
        }
    };
    let drafts = merge(
        &snap,
        hints,
        options.probe && options.probe_well_known_ports,
    );

    // Probe every instance concurrently (each probe is bounded by the timeout), but for
    // listeners whose last answer proved the protocol and is fresh enough.
    let mut probes = tokio::task::JoinSet::new();
    let mut results: BTreeMap<usize, ProbeResult> = BTreeMap::new();
    let mut keys: BTreeMap<usize, ProbeKey> = BTreeMap::new();
    let mut kept_probes = HashMap::new();
    if options.probe {
        for (i, d) in drafts.iter().enumerate() {
            let candidates = probe_candidates(&d.listen);
            if candidates.is_empty() {
                continue;
            }
            let key = ProbeKey::new(&snap, d, &candidates);
            if let Some((at, result)) = memory.probes.remove(&key)
                && now.saturating_duration_since(at) < options.probe_refresh
            {
                results.insert(i, result.clone());
                kept_probes.insert(key, (at, result));
                continue;
            }
            keys.insert(i, key);
            let (kind, options) = (d.kind, options.clone());
            probes.spawn(async move { (i, probe_draft(kind, candidates, options).await) });
        }
    }
    let mut problems = snap.problems.clone();
    while let Some(joined) = probes.join_next().await {
        match joined {
            Ok((i, Some(r))) => {
                if r.outcome.speaks_protocol()
                    && let Some(key) = keys.remove(&i)
                {
                    kept_probes.insert(key, (now, r.clone()));
                }
                results.insert(i, r);
            }
            Ok((_, None)) => {}
            Err(e) => problems.push(format!("a probe task failed: {e}")),
        }
    }
    memory.probes = kept_probes;

    let mut instances = Vec::new();
    let mut versions = HashMap::new();
    for (i, d) in drafts.into_iter().enumerate() {
        let probe = results.remove(&i);
        let proven = probe.as_ref().is_some_and(|p| p.outcome.speaks_protocol());
        if d.sources.contains(&Source::WellKnownPort) && d.sources.len() == 1 && !proven {
            continue;
        }
        let asked = Asked {
            before: &mut memory.versions,
            now: &mut versions,
        };
        instances.push(finish(procfs_root, d, probe, runner, options, asked).await);
    }
    memory.versions = versions;
    instances.sort_by(|a, b| {
        (a.kind, a.listen.first(), a.process.as_ref().map(|p| p.pid)).cmp(&(
            b.kind,
            b.listen.first(),
            b.process.as_ref().map(|p| p.pid),
        ))
    });
    let status = if problems.is_empty() {
        CollectorStatus::Ok
    } else {
        CollectorStatus::Partial { problems }
    };
    DatabaseInventory { instances, status }
}

/// Runs `<program> --version`: `Some(version)` when it ran (a version, or `None` for a
/// failure or output we do not recognise, which the same process will repeat), `None` when it
/// could not run or timed out (not kept: that may not happen next time).
async fn ask_version(
    runner: &impl CommandRunner,
    program: &str,
    kind: DatabaseKind,
    options: &DiscoveryOptions,
) -> Option<Option<String>> {
    match runner
        .run(program, &["--version"], options.version_command_timeout)
        .await
    {
        Ok(out) if out.exit_code == Some(0) => {
            let parsed = parse_version_output(kind, &out.stdout);
            if parsed.is_none() {
                tracing::debug!(program, stdout = %out.stdout, "unrecognised --version output");
            }
            Some(parsed)
        }
        Ok(out) => {
            tracing::debug!(program, code = ?out.exit_code, stderr = %out.stderr, "--version failed");
            Some(None)
        }
        Err(e) => {
            tracing::debug!(program, error = %crate::ErrorChain(&e), "--version could not run");
            None
        }
    }
}

/// `--version` answers by process (pid, start ticks): those of the last round, and this
/// round's (what is kept for the next).
struct Asked<'a> {
    before: &'a mut HashMap<(u32, u64), Option<String>>,
    now: &'a mut HashMap<(u32, u64), Option<String>>,
}

async fn finish(
    procfs_root: &Path,
    d: Draft,
    probe: Option<ProbeResult>,
    runner: &impl CommandRunner,
    options: &DiscoveryOptions,
    asked: Asked<'_>,
) -> DatabaseInstance {
    let mut sources = d.sources;
    if probe.as_ref().is_some_and(|p| p.outcome.speaks_protocol()) {
        sources.insert(Source::Probe);
    }
    let mut version = probe
        .as_ref()
        .and_then(|p| p.version())
        .map(|v| (v.to_owned(), VersionSource::Probe));
    // A process's executable answers `--version` the same way for as long as it runs (an
    // upgrade replaces the file, not the running image, and we run the running image).
    let identity = d
        .process
        .as_ref()
        .and_then(|p| p.start_ticks.map(|start| (p.pid, start)));
    if version.is_none() && options.run_version_commands {
        let answer = match identity.and_then(|id| asked.before.remove(&id)) {
            Some(known) => Some(known),
            None => match d.process.as_ref().and_then(|p| safe_to_run(procfs_root, p)) {
                Some(program) => ask_version(runner, &program, d.kind, options).await,
                None => None,
            },
        };
        if let Some(answer) = answer {
            version = answer.clone().map(|v| (v, VersionSource::Executable));
            asked.now.extend(identity.map(|id| (id, answer)));
        }
    }
    if version.is_none() {
        version = d.image_tag.clone().map(|t| (t, VersionSource::ImageTag));
    }
    let data_dir = d
        .process
        .as_ref()
        .and_then(|p| data_dir(d.kind, &p.view.argv, p.cwd.as_deref()));
    DatabaseInstance {
        kind: d.kind,
        version_source: version.as_ref().map(|v| v.1),
        version: version.map(|v| v.0),
        listen: d.listen.into_iter().collect(),
        process: d.process.map(|p| ProcessInfo {
            pid: p.pid,
            name: p.view.comm,
            exe: p.view.exe,
        }),
        data_dir,
        containers: d.containers,
        sources: sources.into_iter().collect(),
        probe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::databases::identify::ProcessView;

    fn process(pid: u32, ppid: u32, kind: DatabaseKind, inodes: &[u64], cgroup: &str) -> DbProcess {
        DbProcess {
            pid,
            ppid: Some(ppid),
            start_ticks: Some(u64::from(pid)),
            kind,
            view: ProcessView::default(),
            cwd: None,
            cgroup: cgroup.to_owned(),
            socket_inodes: Some(inodes.to_vec()),
            same_mount_ns: true,
        }
    }

    fn tcp(ip: &str, port: u16) -> ListenAddr {
        ListenAddr::Tcp {
            ip: ip.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn merge_rules() {
        let cid = "0123456789abcdef0123456789abcdef";
        let snap = Snapshot {
            sockets: BTreeMap::from([
                (1, tcp("127.0.0.1", 5432)),
                (2, tcp("0.0.0.0", 6379)),
                (3, tcp("0.0.0.0", 3306)), // docker-proxy, published for a mariadb container
                (4, tcp("0.0.0.0", 9000)), // php-fpm? only kept if a probe proves MinIO
                (5, tcp("0.0.0.0", 22)),
            ]),
            processes: vec![
                process(100, 1, DatabaseKind::Postgres, &[1], ""),
                process(101, 100, DatabaseKind::Postgres, &[], ""), // worker
                process(200, 1, DatabaseKind::Redis, &[2], ""),
                process(
                    300,
                    50,
                    DatabaseKind::MongoDb,
                    &[],
                    &format!("0::/system.slice/docker-{cid}.scope"),
                ),
            ],
            problems: vec![],
        };
        let hints = [
            ContainerHint {
                image: "mariadb:11.4".into(),
                published: vec![("0.0.0.0".parse().unwrap(), 3306)],
                container_id: "feedfeedfeedfeedfeed".into(),
                name: "db".into(),
            },
            ContainerHint {
                image: "mongo:7.0".into(),
                published: vec![("127.0.0.1".parse().unwrap(), 27017)],
                container_id: cid.into(),
                name: "mongo".into(),
            },
            ContainerHint {
                image: "redis:7".into(),
                published: vec![("0.0.0.0".parse().unwrap(), 6379)],
                container_id: "abcabcabcabcabc".into(),
                name: "cache".into(),
            },
        ];
        let drafts = merge(&snap, &hints, true);
        let kinds: Vec<_> = drafts
            .iter()
            .map(|d| (d.kind, d.sources.iter().copied().collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (
                    DatabaseKind::Postgres,
                    vec![Source::Process, Source::ListeningSocket]
                ),
                (
                    DatabaseKind::Redis,
                    vec![
                        Source::Process,
                        Source::ListeningSocket,
                        Source::ContainerImage
                    ]
                ),
                (
                    DatabaseKind::MongoDb,
                    vec![Source::Process, Source::ContainerImage]
                ),
                (DatabaseKind::MySql, vec![Source::ContainerImage]),
                (DatabaseKind::MinIo, vec![Source::WellKnownPort]),
            ]
        );
        let mongo = &drafts[2];
        assert_eq!(mongo.image_tag.as_deref(), Some("7.0"));
        assert_eq!(
            mongo.listen.iter().collect::<Vec<_>>(),
            [&tcp("127.0.0.1", 27017)]
        );
        assert_eq!(drafts[1].containers[0].name, "cache");
        // The MariaDB container's published port was not turned into a second record.
        assert_eq!(
            drafts
                .iter()
                .filter(|d| d.kind == DatabaseKind::MySql)
                .count(),
            1
        );
        // Without well-known ports the unclaimed 9000 is not a candidate.
        assert_eq!(merge(&snap, &hints, false).len(), 4);
    }

    #[test]
    fn probe_order_prefers_ipv4_then_ipv6_then_unix() {
        let listen = BTreeSet::from([
            ListenAddr::Unix {
                path: "/run/x.sock".into(),
            },
            tcp("::", 1),
            tcp("0.0.0.0", 1),
            ListenAddr::Unix {
                path: "@abstract".into(),
            },
        ]);
        assert_eq!(
            probe_candidates(&listen),
            vec![
                tcp("0.0.0.0", 1),
                tcp("::", 1),
                ListenAddr::Unix {
                    path: "/run/x.sock".into()
                }
            ]
        );
    }
}
