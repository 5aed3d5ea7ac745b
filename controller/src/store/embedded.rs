//! A PostgreSQL cluster owned and run by the controller (the embedded default), and the same
//! machinery for throwaway clusters in tests.
//!
//! The cluster is created with the machine's own `initdb` and run with `pg_ctl`, listening on a
//! unix socket only (in a directory private to the cluster), with `trust` authentication —
//! nothing outside this machine can reach it, and only users who can enter the directory can
//! reach it on this machine. PostgreSQL refuses to run as root, so when the controller runs as
//! root the cluster is owned by and run as an unprivileged user (`postgres` by default,
//! `UNITY_PG_USER` to change it).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sqlx::postgres::PgConnectOptions;
use tokio::process::Command;

/// Superuser created by `initdb`; the controller connects as this role and runs its
/// tenant-scoped work as the non-bypassing `unity_app` role.
const SUPERUSER: &str = "unity";
/// Port number only names the socket file (`.s.PGSQL.<port>`); no TCP listener is opened.
const SOCKET_PORT: u16 = 5432;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL binaries not found (looked in $UNITY_PG_BIN_DIR, `pg_config --bindir`, \
         /usr/lib/postgresql/*/bin and PATH); install PostgreSQL or set DATABASE_URL"
    )]
    BinariesNotFound,
    #[error(
        "pg_dump and pg_restore not found (looked in $UNITY_PG_BIN_DIR, `pg_config --bindir`, \
         /usr/lib/postgresql/*/bin and PATH): backups of the external database need them; \
         install the PostgreSQL client (Debian: postgresql-client-15)"
    )]
    ClientNotFound,
    #[error("could not prepare {path}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` could not be started")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed (exit {code:?}): {output}")]
    Failed {
        command: String,
        code: Option<i32>,
        output: String,
    },
    #[error(
        "PostgreSQL runs as `{user}`, which cannot enter {path}: put the data directory where \
         `{user}` can reach it (e.g. under /var/lib) or make {path} traversable (chmod o+x)"
    )]
    NotReachable { user: String, path: PathBuf },
    #[error(
        "the embedded cluster {data_dir} was made by PostgreSQL {cluster}, whose server \
         programs are not installed (installed: {installed}); install PostgreSQL {cluster} \
         again, or move the cluster to the installed version (docs/operations.md, \
         \"Upgrading PostgreSQL\")"
    )]
    WrongMajor {
        cluster: String,
        data_dir: PathBuf,
        installed: String,
    },
    #[error("socket directory {path} is {len} bytes long; unix sockets allow at most 100")]
    SocketPathTooLong { path: PathBuf, len: usize },
}

/// Options for a cluster.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// Turn off fsync: only for throwaway test clusters, never for real data.
    pub unsafe_no_fsync: bool,
}

/// How to run PostgreSQL client programs against one database: the embedded cluster's (as its
/// server user) or an external one's (`DATABASE_URL`, with this machine's newest client).
#[derive(Debug, Clone)]
pub struct PgClient {
    bin_dir: PathBuf,
    run_as: Option<String>,
    connect: Vec<std::ffi::OsString>,
}

impl PgClient {
    /// Clients for the database at `url`, from this machine's PostgreSQL installation.
    pub async fn external(url: &str) -> Result<Self, EmbeddedError> {
        // Only the client programs backups and restores run: a controller image or host with
        // the PostgreSQL client package alone (no server) is enough.
        let bin_dir = find_dir_with(has_client_tools)
            .await
            .ok_or(EmbeddedError::ClientNotFound)?;
        Ok(Self {
            bin_dir,
            run_as: None,
            connect: vec!["-d".into(), url.into()],
        })
    }

    /// `program` with the connection arguments; the caller adds its own.
    pub fn command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        command.current_dir("/");
        command.args(&self.connect);
        command
    }
}

/// A running (or adopted) PostgreSQL cluster under `root`.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    run_as: Option<String>,
    /// Whether this handle started the server (and so should stop it).
    started_here: bool,
    /// How the server is started (again, after a crash).
    options: EmbeddedOptions,
}

impl EmbeddedPostgres {
    /// Creates the cluster under `root` if needed and starts it if it is not running. A server
    /// already running on this data directory (e.g. the controller's, while an admin command
    /// runs) is adopted and left running afterwards.
    pub async fn ensure_running(
        root: &Path,
        options: &EmbeddedOptions,
    ) -> Result<Self, EmbeddedError> {
        // An existing cluster runs only on the major version that created it.
        let cluster_major = std::fs::read_to_string(root.join("pgdata").join("PG_VERSION"))
            .ok()
            .map(|v| v.trim().to_owned());
        let bin_dir = match &cluster_major {
            Some(major) => bin_dir_for_major(major, &root.join("pgdata")).await?,
            None => find_bin_dir()
                .await
                .ok_or(EmbeddedError::BinariesNotFound)?,
        };
        let run_as = if is_root() {
            Some(std::env::var("UNITY_PG_USER").unwrap_or_else(|_| "postgres".to_owned()))
        } else {
            None
        };
        let data_dir = root.join("pgdata");
        let socket_dir = root.join("pgrun");
        let socket_len = socket_dir.as_os_str().len() + ".s.PGSQL.5432".len() + 1;
        if socket_len > 100 {
            return Err(EmbeddedError::SocketPathTooLong {
                path: socket_dir,
                len: socket_len,
            });
        }
        let mut pg = Self {
            bin_dir,
            data_dir,
            socket_dir,
            run_as,
            started_here: false,
            options: options.clone(),
        };
        pg.prepare_dirs(root).await?;
        pg.check_reachable().await?;
        if !pg.data_dir.join("PG_VERSION").exists() {
            pg.initdb().await?;
        }
        if !pg.is_running().await? {
            pg.start(options).await?;
            pg.started_here = true;
        }
        Ok(pg)
    }

    /// Connection options for `database` over the cluster's unix socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(SOCKET_PORT)
            .username(SUPERUSER)
            .database(database)
    }

    /// A `postgres://` URL for `database` over the unix socket, for child processes.
    pub fn database_url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost/{database}?host={}&port={SOCKET_PORT}",
            self.socket_dir.display()
        )
    }

    /// Where the server writes its log; point operators here when it will not start.
    pub fn log_path(&self) -> PathBuf {
        self.socket_dir.join("postgres.log")
    }

    /// Whether this handle started the server.
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Stops the server if this handle started it.
    pub async fn stop(&mut self) -> Result<(), EmbeddedError> {
        if !self.started_here {
            return Ok(());
        }
        self.started_here = false;
        let data = self.data_dir.clone();
        self.pg_ctl([
            OsStr::new("-D"),
            data.as_os_str(),
            OsStr::new("-m"),
            OsStr::new("fast"),
            OsStr::new("-w"),
            OsStr::new("stop"),
        ])
        .await
        .map(|_| ())
    }

    /// Synchronous stop for `Drop` in tests, where no runtime may be left.
    pub fn stop_blocking(&mut self) {
        if !self.started_here {
            return;
        }
        self.started_here = false;
        let mut command = self.std_command("pg_ctl");
        command
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Err(error) = command.status() {
            tracing::warn!(%error, data_dir = %self.data_dir.display(), "could not stop PostgreSQL");
        }
    }

    async fn prepare_dirs(&self, root: &Path) -> Result<(), EmbeddedError> {
        use std::os::unix::fs::PermissionsExt;
        let prepare = |path: &Path, mode: u32| -> Result<(), EmbeddedError> {
            let wrap = |source| EmbeddedError::Prepare {
                path: path.to_owned(),
                source,
            };
            std::fs::create_dir_all(path).map_err(wrap)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(wrap)
        };
        // The unprivileged server user must be able to traverse the root and its parent (the
        // controller's data directory, often created 0700 by systemd or an installer).
        prepare(root, if self.run_as.is_some() { 0o711 } else { 0o700 })?;
        if self.run_as.is_some()
            && let Some(parent) = root.parent()
            && let Ok(meta) = std::fs::metadata(parent)
        {
            let mode = meta.permissions().mode();
            if mode & 0o001 == 0 {
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o011))
                    .map_err(|source| EmbeddedError::Prepare {
                        path: parent.to_owned(),
                        source,
                    })?;
            }
        }
        prepare(&self.data_dir, 0o700)?;
        prepare(&self.socket_dir, 0o700)?;
        if let Some(user) = &self.run_as {
            for dir in [&self.data_dir, &self.socket_dir] {
                let mut chown = Command::new("chown");
                chown.arg("-R").arg(format!("{user}:")).arg(dir);
                run(chown, "chown").await?;
            }
        }
        Ok(())
    }

    /// When the server runs as another user, every directory above the cluster must be
    /// traversable by that user; find the first one that is not and say so, instead of letting
    /// `initdb` fail with a bare "permission denied".
    async fn check_reachable(&self) -> Result<(), EmbeddedError> {
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        let can_enter = |dir: PathBuf| {
            let mut test = Command::new("runuser");
            test.args(["-u", user, "--", "test", "-x"]).arg(dir);
            test.stdout(Stdio::null()).stderr(Stdio::null());
            async move { test.status().await.is_ok_and(|s| s.success()) }
        };
        if can_enter(self.data_dir.clone()).await {
            return Ok(());
        }
        let ancestors: Vec<PathBuf> = self.data_dir.ancestors().map(Path::to_path_buf).collect();
        for dir in ancestors.into_iter().rev() {
            if !can_enter(dir.clone()).await {
                return Err(EmbeddedError::NotReachable {
                    user: user.clone(),
                    path: dir,
                });
            }
        }
        Err(EmbeddedError::NotReachable {
            user: user.clone(),
            path: self.data_dir.clone(),
        })
    }

    async fn initdb(&self) -> Result<(), EmbeddedError> {
        tracing::info!(data_dir = %self.data_dir.display(), "creating PostgreSQL cluster");
        let mut command = self.command("initdb");
        command
            .arg("-D")
            .arg(&self.data_dir)
            .args([
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .arg(format!("--username={SUPERUSER}"));
        run(command, "initdb").await.map(|_| ())
    }

    /// Starts the server again if it is not running (it crashed, the OOM killer took it, an
    /// operator killed it). Returns whether it had to.
    pub async fn restart_if_stopped(&mut self) -> Result<bool, EmbeddedError> {
        if self.is_running().await? {
            return Ok(false);
        }
        let options = self.options.clone();
        self.start(&options).await?;
        self.started_here = true;
        Ok(true)
    }

    /// From now on this handle owns the server and stops it when done — for the service,
    /// which must not leave a postmaster behind even when it adopted one (started by an
    /// admin command, or left by a controller that was killed).
    pub fn take_ownership(&mut self) {
        self.started_here = true;
    }

    /// Whether the cluster's server runs (`pg_ctl status`).
    pub async fn is_running(&self) -> Result<bool, EmbeddedError> {
        let mut command = self.command("pg_ctl");
        command.arg("-D").arg(&self.data_dir).arg("status");
        let output = command
            .output()
            .await
            .map_err(|source| EmbeddedError::Spawn {
                command: "pg_ctl status".into(),
                source,
            })?;
        // pg_ctl status: 0 running, 3 not running, 4 no accessible data directory.
        Ok(output.status.success())
    }

    async fn start(&self, options: &EmbeddedOptions) -> Result<(), EmbeddedError> {
        let mut server_options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c port={SOCKET_PORT}",
            self.socket_dir.display()
        );
        if options.unsafe_no_fsync {
            server_options
                .push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let mut command = self.command("pg_ctl");
        command
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-o"])
            .arg(server_options)
            .arg("start");
        run(command, "pg_ctl start").await.map_err(|e| match e {
            EmbeddedError::Failed {
                command,
                code,
                output,
            } => EmbeddedError::Failed {
                command,
                code,
                output: format!(
                    "{output}\nserver log: {}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                ),
            },
            other => other,
        })?;
        tracing::info!(socket_dir = %self.socket_dir.display(), "PostgreSQL started");
        Ok(())
    }

    async fn pg_ctl<I, S>(&self, args: I) -> Result<String, EmbeddedError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command("pg_ctl");
        command.args(args);
        run(command, "pg_ctl").await
    }

    /// The cluster's own client programs (`pg_dump`, `pg_restore`), connected to `database` over
    /// its socket as the superuser (and run as the server user when we are root).
    pub fn client(&self, database: &str) -> PgClient {
        PgClient {
            bin_dir: self.bin_dir.clone(),
            run_as: self.run_as.clone(),
            connect: vec![
                "-h".into(),
                self.socket_dir.clone().into(),
                "-p".into(),
                SOCKET_PORT.to_string().into(),
                "-U".into(),
                SUPERUSER.into(),
                "-d".into(),
                database.into(),
            ],
        }
    }

    /// A command for PostgreSQL program `program`, run as the server user when we are root.
    fn command(&self, program: &str) -> Command {
        Command::from(self.std_command(program))
    }

    fn std_command(&self, program: &str) -> std::process::Command {
        let path = self.bin_dir.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => std::process::Command::new(path),
        };
        // Programs run from a directory the server user can read (not root's cwd).
        command.current_dir("/");
        command.stdin(Stdio::null());
        command
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if self.started_here {
            tracing::debug!(data_dir = %self.data_dir.display(), "stopping PostgreSQL on drop");
            self.stop_blocking();
        }
    }
}

async fn run(mut command: Command, name: &str) -> Result<String, EmbeddedError> {
    let output = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|source| EmbeddedError::Spawn {
            command: name.to_owned(),
            source,
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(EmbeddedError::Failed {
            command: name.to_owned(),
            code: output.status.code(),
            output: text.trim().to_owned(),
        })
    }
}

/// Whether this process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // The effective uid of a process is in /proc/self/status ("Uid: real effective ...").
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The major version in `pg_ctl --version` output ("pg_ctl (PostgreSQL) 15.8 (Debian …)"),
/// spelled as `PG_VERSION` spells it: "15" from 10 on, "9.6" before.
fn major_of_version_output(output: &str) -> Option<String> {
    let version = output.split(')').nth(1)?.split_whitespace().next()?;
    let mut parts = version.split('.');
    let first = parts.next()?;
    let first_number: u32 = first.parse().ok()?;
    if first_number >= 10 {
        Some(first.to_owned())
    } else {
        Some(format!("{first}.{}", parts.next()?))
    }
}

async fn major_of(dir: &Path) -> Option<String> {
    let output = Command::new(dir.join("pg_ctl"))
        .arg("--version")
        .output()
        .await
        .ok()?;
    major_of_version_output(&String::from_utf8_lossy(&output.stdout))
}

/// The server programs of major version `major` (an existing cluster's `PG_VERSION`): after
/// an operating-system upgrade installs a newer PostgreSQL beside the old one, the cluster
/// keeps running on its own version instead of failing on the newest.
async fn bin_dir_for_major(major: &str, data_dir: &Path) -> Result<PathBuf, EmbeddedError> {
    if std::env::var_os("UNITY_PG_BIN_DIR").is_some() {
        // The operator's choice; PostgreSQL itself refuses a mismatch, with its reason.
        return find_bin_dir().await.ok_or(EmbeddedError::BinariesNotFound);
    }
    let mut installed = Vec::new();
    for dir in bin_dir_candidates().await {
        if let Some(found) = major_of(&dir).await {
            if found == major {
                return Ok(dir);
            }
            installed.push(found);
        }
    }
    installed.dedup();
    Err(EmbeddedError::WrongMajor {
        cluster: major.to_owned(),
        data_dir: data_dir.to_owned(),
        installed: if installed.is_empty() {
            "none".to_owned()
        } else {
            installed.join(", ")
        },
    })
}

fn has_tools(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

/// What an external database needs of the PostgreSQL programs: backups and restores.
fn has_client_tools(dir: &Path) -> bool {
    dir.join("pg_dump").is_file() && dir.join("pg_restore").is_file()
}

/// Every directory holding `initdb` and `pg_ctl`, preferred first: `pg_config --bindir`,
/// Debian's per-version directories newest first, then `PATH`.
async fn bin_dir_candidates() -> Vec<PathBuf> {
    candidates_with(has_tools).await
}

/// Every directory passing `has_tools`, in the order of [`bin_dir_candidates`].
async fn candidates_with(has_tools: fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output().await {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_tools(&dir) {
            found.push(dir);
        }
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    versioned.sort();
    found.extend(versioned.into_iter().rev().map(|(_, dir)| dir));
    if let Some(path) = std::env::var_os("PATH") {
        found.extend(std::env::split_paths(&path).filter(|dir| has_tools(dir)));
    }
    found.dedup();
    found
}

/// Finds the directory holding `initdb` and `pg_ctl` (for a new cluster: the preferred one).
async fn find_bin_dir() -> Option<PathBuf> {
    find_dir_with(has_tools).await
}

/// `UNITY_PG_BIN_DIR` if it passes `has_tools`, else the preferred candidate that does.
async fn find_dir_with(has_tools: fn(&Path) -> bool) -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("UNITY_PG_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return has_tools(&dir).then_some(dir);
    }
    candidates_with(has_tools).await.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::major_of_version_output;

    #[test]
    fn major_versions_as_pg_version_spells_them() {
        assert_eq!(
            major_of_version_output("pg_ctl (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)\n")
                .as_deref(),
            Some("15")
        );
        assert_eq!(
            major_of_version_output("pg_ctl (PostgreSQL) 17.2\n").as_deref(),
            Some("17")
        );
        assert_eq!(
            major_of_version_output("pg_ctl (PostgreSQL) 9.6.24\n").as_deref(),
            Some("9.6")
        );
        assert_eq!(major_of_version_output("garbage"), None);
        assert_eq!(major_of_version_output(""), None);
    }
}
