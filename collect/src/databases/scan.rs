//! The procfs reading: listening sockets and the database processes, under any procfs root
//! (`/proc` on a host; a directory of captured files in tests).
//!
//! Most processes on a host are not databases, and stay what they are between rounds. A
//! [`ScanMemory`] keeps what each process was recognised as, keyed by its pid, start time and
//! command name (all three from one read of `/proc/<pid>/stat`): an unchanged process costs
//! that one read instead of four (`comm`, `cmdline`, the `exe` link, `stat`). A recycled pid
//! has another start time and an `exec` changes the command name, so either is read afresh.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::identify::{ProcessView, recognise_process};
use super::model::{DatabaseKind, ListenAddr};
use super::procnet::{
    ListeningSocket, ProcStat, parse_cmdline, parse_proc_net_tcp, parse_proc_net_unix,
    parse_socket_link, parse_stat,
};

/// A recognised database process.
#[derive(Debug, Clone)]
pub struct DbProcess {
    pub pid: u32,
    pub ppid: Option<u32>,
    /// Clock ticks after boot when it started (`None` when its stat was unreadable): with the
    /// pid, what identifies this process and not a later one with a recycled pid.
    pub start_ticks: Option<u64>,
    pub kind: DatabaseKind,
    pub view: ProcessView,
    pub cwd: Option<String>,
    pub cgroup: String,
    /// Inodes of the sockets among its fds; `None` when its fd table could not be read.
    pub socket_inodes: Option<Vec<u64>>,
    /// True when the process shares the reader's mount namespace (both `ns/mnt` links read
    /// and equal).
    pub same_mount_ns: bool,
}

/// What one pass over procfs found.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Listening sockets by inode.
    pub sockets: BTreeMap<u64, ListenAddr>,
    pub processes: Vec<DbProcess>,
    /// Problems worth reporting (one line each, already aggregated).
    pub problems: Vec<String>,
}

/// Why procfs could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot list {path}")]
pub struct ScanError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// What [`scan_with`] learnt about each process in the last round.
#[derive(Debug, Default)]
pub struct ScanMemory {
    processes: HashMap<u32, Remembered>,
}

#[derive(Debug)]
struct Remembered {
    start_ticks: u64,
    comm: String,
    /// `None`: not a database.
    recognised: Option<(DatabaseKind, ProcessView)>,
}

fn read_link(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Reads sockets and database processes under `root`, remembering nothing.
pub fn scan(root: &Path) -> Result<Snapshot, ScanError> {
    scan_with(root, &mut ScanMemory::default())
}

/// Reads sockets and database processes under `root`; processes `memory` already knows (same
/// pid, start time and command name) are not read again. `memory` is left holding this
/// round's processes only.
pub fn scan_with(root: &Path, memory: &mut ScanMemory) -> Result<Snapshot, ScanError> {
    let entries = std::fs::read_dir(root).map_err(|source| ScanError {
        path: root.to_owned(),
        source,
    })?;
    let mut snap = Snapshot::default();
    for (file, required) in [("tcp", true), ("tcp6", false), ("unix", true)] {
        let path = root.join("net").join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let parsed = if file == "unix" {
                    parse_proc_net_unix(&text)
                } else {
                    parse_proc_net_tcp(&text)
                };
                add_sockets(&mut snap, parsed.sockets);
                if let Some(first) = parsed.errors.first() {
                    snap.problems.push(format!(
                        "{}: {} unreadable line(s), first: {first}",
                        path.display(),
                        parsed.errors.len()
                    ));
                }
            }
            // No IPv6 in this kernel: no tcp6 file.
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => snap
                .problems
                .push(format!("cannot read {}: {e}", path.display())),
        }
    }
    let own_mnt = read_link(&root.join("self/ns/mnt"));
    let mut fd_denied = 0usize;
    let mut seen: HashMap<u32, Remembered> = HashMap::with_capacity(memory.processes.len());
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let dir = entry.path();
        // Processes vanish between listing and reading: every read is optional.
        let stat = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s));
        let known = stat.as_ref().and_then(|stat| {
            memory
                .processes
                .remove(&pid)
                .filter(|r| r.start_ticks == stat.start_ticks && r.comm == stat.comm)
        });
        let recognised = match known {
            Some(r) => {
                let recognised = r.recognised.clone();
                seen.insert(pid, r);
                recognised
            }
            None => {
                let (recognised, settled) = recognise(&dir, stat.as_ref());
                if let (Some(stat), true) = (&stat, settled) {
                    seen.insert(
                        pid,
                        Remembered {
                            start_ticks: stat.start_ticks,
                            comm: stat.comm.clone(),
                            recognised: recognised.clone(),
                        },
                    );
                }
                recognised
            }
        };
        let Some((kind, view)) = recognised else {
            continue;
        };
        let socket_inodes = match std::fs::read_dir(dir.join("fd")) {
            Ok(fds) => Some(
                fds.flatten()
                    .filter_map(|fd| read_link(&fd.path()))
                    .filter_map(|t| parse_socket_link(&t))
                    .collect(),
            ),
            Err(e) => {
                tracing::debug!(pid, error = %crate::ErrorChain(&e), "cannot read fd table");
                fd_denied += 1;
                None
            }
        };
        let mnt = read_link(&dir.join("ns/mnt"));
        snap.processes.push(DbProcess {
            pid,
            ppid: stat.as_ref().map(|s| s.ppid),
            start_ticks: stat.as_ref().map(|s| s.start_ticks),
            kind,
            view,
            cwd: read_link(&dir.join("cwd")),
            cgroup: std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default(),
            socket_inodes,
            same_mount_ns: own_mnt.is_some() && mnt == own_mnt,
        });
    }
    memory.processes = seen;
    if fd_denied > 0 {
        snap.problems.push(format!(
            "the fd table of {fd_denied} database process(es) could not be read \
             (not root?): their listening addresses are unknown"
        ));
    }
    snap.processes.sort_by_key(|p| p.pid);
    Ok(snap)
}

/// What the process in `dir` is, read from its command line and executable, and whether
/// that answer may be remembered: not when its command line could not be read (it was
/// exiting, or is still being set up), as the next round may see it whole.
fn recognise(dir: &Path, stat: Option<&ProcStat>) -> (Option<(DatabaseKind, ProcessView)>, bool) {
    let comm = match stat {
        Some(stat) => stat.comm.clone(),
        None => std::fs::read_to_string(dir.join("comm"))
            .map(|c| c.trim_end_matches('\n').to_owned())
            .unwrap_or_default(),
    };
    let (argv, settled) = match std::fs::read(dir.join("cmdline")) {
        Ok(bytes) => (parse_cmdline(&bytes), true),
        Err(_) => (Vec::new(), false),
    };
    let view = ProcessView {
        comm,
        exe: read_link(&dir.join("exe")),
        argv,
    };
    (recognise_process(&view).map(|kind| (kind, view)), settled)
}

fn add_sockets(snap: &mut Snapshot, sockets: Vec<ListeningSocket>) {
    for s in sockets {
        snap.sockets.insert(s.inode, s.addr);
    }
}
