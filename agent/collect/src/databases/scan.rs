//! The procfs reading: listening sockets and the database processes, under any procfs root
//! (`/proc` on a host; a directory of captured files in tests).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::identify::{ProcessView, recognise_process};
use super::model::{DatabaseKind, ListenAddr};
use super::procnet::{
    ListeningSocket, parse_cmdline, parse_proc_net_tcp, parse_proc_net_unix, parse_socket_link,
    parse_stat_ppid,
};

/// A recognised database process.
#[derive(Debug, Clone)]
pub struct DbProcess {
    pub pid: u32,
    pub ppid: Option<u32>,
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

fn read_link(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Reads sockets and database processes under `root`.
pub fn scan(root: &Path) -> Result<Snapshot, ScanError> {
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
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let dir = entry.path();
        // Processes vanish between listing and reading: every read is optional.
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let argv = std::fs::read(dir.join("cmdline"))
            .map(|b| parse_cmdline(&b))
            .unwrap_or_default();
        let exe = read_link(&dir.join("exe"));
        let view = ProcessView {
            comm: comm.trim_end_matches('\n').to_owned(),
            exe,
            argv,
        };
        let Some(kind) = recognise_process(&view) else {
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
            ppid: std::fs::read_to_string(dir.join("stat"))
                .ok()
                .and_then(|s| parse_stat_ppid(&s)),
            kind,
            view,
            cwd: read_link(&dir.join("cwd")),
            cgroup: std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default(),
            socket_inodes,
            same_mount_ns: own_mnt.is_some() && mnt == own_mnt,
        });
    }
    if fd_denied > 0 {
        snap.problems.push(format!(
            "the fd table of {fd_denied} database process(es) could not be read \
             (not root?): their listening addresses are unknown"
        ));
    }
    snap.processes.sort_by_key(|p| p.pid);
    Ok(snap)
}

fn add_sockets(snap: &mut Snapshot, sockets: Vec<ListeningSocket>) {
    for s in sockets {
        snap.sockets.insert(s.inode, s.addr);
    }
}
