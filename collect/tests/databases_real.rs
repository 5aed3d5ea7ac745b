//! Database discovery against **real servers** started here on loopback, each on a random
//! port in its own temp directory: Debian's redis-server, mariadbd and PostgreSQL (installed
//! by `.ci/setup-databases.sh` and `.ci/run`), plus Python's `http.server` as a real
//! non-database. Outside CI a missing server skips with a message; in CI (`CI=true`) it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use unity_collect::databases::{
    self, DataDirSource, DatabaseKind, DiscoveryOptions, ListenAddr, ProbeDetails, ProbeOutcome,
    Source, VersionSource, identify,
};
use unity_collect::runner::SystemRunner;

const TIMEOUT: Duration = Duration::from_secs(2);

fn find_tool(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        dirs.extend(entries.flatten().map(|e| e.path().join("bin")));
    }
    let found = dirs
        .into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "{program} must be installed in CI (.ci/setup-databases.sh / .ci/run install it)"
        );
        eprintln!("skipped: {program} is not installed on this machine");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temp dir everyone can traverse (servers run as their own users when we are root).
fn shared_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("unity-db-")
        .tempdir()
        .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(dir.path())
        .status()
        .unwrap();
    dir
}

fn chown(path: &Path, user: &str) {
    if is_root() {
        let ok = Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

fn tool_version(kind: DatabaseKind, program: &Path) -> String {
    let out = Command::new(program).arg("--version").output().unwrap();
    identify::parse_version_output(kind, &String::from_utf8_lossy(&out.stdout)).unwrap()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Redis {
    child: Killed,
    port: u16,
    dir: tempfile::TempDir,
}

fn start_redis(extra: &[&str]) -> Option<Redis> {
    let server = find_tool("redis-server")?;
    let dir = shared_tempdir();
    let port = free_port();
    let log = dir.path().join("log");
    let child = Command::new(&server)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir.path())
        .arg("--unixsocket")
        .arg(dir.path().join("redis.sock"))
        .args(["--daemonize", "no", "--logfile"])
        .arg(&log)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    wait_for_port(port, "redis-server", &log);
    Some(Redis { child, port, dir })
}

struct MariaDb {
    child: Killed,
    port: u16,
    dir: tempfile::TempDir,
}

fn start_mariadb(extra: &[&str]) -> Option<MariaDb> {
    let server = find_tool("mariadbd")?;
    let install = find_tool("mariadb-install-db")?;
    let dir = shared_tempdir();
    let data = dir.path().join("data");
    let user = if is_root() { "mysql" } else { "" };
    chown(dir.path(), "mysql");
    let mut cmd = Command::new(install);
    cmd.arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=socket", "--skip-test-db"]);
    if !user.is_empty() {
        cmd.arg(format!("--user={user}"));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "mariadb-install-db: {out:?}");
    let port = free_port();
    let log = dir.path().join("log");
    let mut cmd = Command::new(server);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!(
            "--socket={}",
            dir.path().join("mysqld.sock").display()
        ))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg(format!("--log-error={}", log.display()))
        .args(["--skip-log-bin", "--innodb-buffer-pool-size=16M"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if !user.is_empty() {
        cmd.arg(format!("--user={user}"));
    }
    let child = Killed(cmd.spawn().unwrap());
    wait_for_port(port, "mariadbd", &log);
    Some(MariaDb { child, port, dir })
}

struct Postgres {
    pg_ctl: PathBuf,
    data: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

impl Postgres {
    fn pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap();
        text.lines().next().unwrap().trim().parse().unwrap()
    }
}

fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.pg_ctl)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

fn start_postgres() -> Option<Postgres> {
    let initdb = find_tool("initdb")?;
    let pg_ctl = find_tool("pg_ctl")?;
    let dir = shared_tempdir();
    chown(dir.path(), "postgres");
    let data = dir.path().join("data");
    let out = as_postgres(&initdb)
        .arg("-D")
        .arg(&data)
        .args(["--auth=trust", "--no-sync", "-U", "unity"])
        .output()
        .unwrap();
    assert!(out.status.success(), "initdb: {out:?}");
    let port = free_port();
    let opts = format!(
        "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} -c fsync=off",
        dir.path().display()
    );
    let out = as_postgres(&pg_ctl)
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.path().join("log"))
        .args(["-w", "-t", "60", "-o", &opts, "start"])
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_ctl start: {out:?}");
    Some(Postgres {
        pg_ctl,
        data,
        port,
        dir,
    })
}

fn tcp(port: u16) -> ListenAddr {
    ListenAddr::Tcp {
        ip: IpAddr::from([127, 0, 0, 1]),
        port,
    }
}

#[tokio::test]
async fn real_redis_probe_and_auth_required() {
    let Some(redis) = start_redis(&[]) else {
        return;
    };
    let version = tool_version(DatabaseKind::Redis, &find_tool("redis-server").unwrap());
    let r = databases::probe_redis(&tcp(redis.port), TIMEOUT).await;
    assert_eq!(r.outcome, ProbeOutcome::Confirmed, "{r:?}");
    let ProbeDetails::Redis {
        version: v,
        tcp_port,
        process_id,
        flavour,
        ..
    } = &r.details
    else {
        panic!("{r:?}")
    };
    assert_eq!(v.as_deref(), Some(version.as_str()));
    assert_eq!(*tcp_port, Some(redis.port));
    assert_eq!(*process_id, Some(redis.child.0.id()));
    assert_eq!(flavour, "redis");
    // The same over its unix socket.
    let sock = ListenAddr::Unix {
        path: redis.dir.path().join("redis.sock").display().to_string(),
    };
    let r = databases::probe_redis(&sock, TIMEOUT).await;
    assert_eq!(r.outcome, ProbeOutcome::Confirmed, "{r:?}");

    let Some(locked) = start_redis(&["--requirepass", "not-a-real-secret"]) else {
        return;
    };
    let r = databases::probe_redis(&tcp(locked.port), TIMEOUT).await;
    match &r.outcome {
        ProbeOutcome::AuthRequired { detail } => assert!(detail.starts_with("NOAUTH"), "{detail}"),
        other => panic!("{other:?}"),
    }
    // Other probers against Redis. MinIO's HTTP request gets an error line back. The
    // SSLRequest starts with NUL bytes, which Redis's inline parser reads as an empty
    // command and ignores, nudge included: that one can only time out — never a
    // confirmation, never a hang past the timeout.
    let r = databases::probe(DatabaseKind::MinIo, &tcp(redis.port), TIMEOUT).await;
    assert!(
        matches!(r.outcome, ProbeOutcome::WrongProtocol { .. }),
        "{r:?}"
    );
    let r = databases::probe(DatabaseKind::Postgres, &tcp(redis.port), TIMEOUT).await;
    assert!(!r.outcome.speaks_protocol(), "{r:?}");
    assert!(r.elapsed_ms < 3000, "{r:?}");
}

#[tokio::test]
async fn real_mariadb_greeting_and_refused_host() {
    let Some(db) = start_mariadb(&[]) else { return };
    let version = tool_version(DatabaseKind::MySql, &find_tool("mariadbd").unwrap());
    let r = databases::probe_mysql(&tcp(db.port), TIMEOUT).await;
    assert_eq!(r.outcome, ProbeOutcome::Confirmed, "{r:?}");
    assert_eq!(r.version(), Some(version.as_str()), "{r:?}");
    let ProbeDetails::MySql {
        protocol_version, ..
    } = r.details
    else {
        panic!()
    };
    assert_eq!(protocol_version, 10);
    let sock = ListenAddr::Unix {
        path: db.dir.path().join("mysqld.sock").display().to_string(),
    };
    assert_eq!(
        databases::probe_mysql(&sock, TIMEOUT).await.outcome,
        ProbeOutcome::Confirmed
    );
    // MariaDB greets first: every other prober sees a MySQL packet and says so.
    for kind in [
        DatabaseKind::Postgres,
        DatabaseKind::Redis,
        DatabaseKind::MongoDb,
        DatabaseKind::MinIo,
    ] {
        let r = databases::probe(kind, &tcp(db.port), TIMEOUT).await;
        assert!(
            matches!(r.outcome, ProbeOutcome::WrongProtocol { .. }),
            "{kind:?}: {r:?}"
        );
    }
    drop(db);

    // With name resolution off, 127.0.0.1 is not `localhost`: the server refuses this host
    // with error 1130 before any handshake.
    let Some(strict) = start_mariadb(&["--skip-name-resolve"]) else {
        return;
    };
    let r = databases::probe_mysql(&tcp(strict.port), TIMEOUT).await;
    match &r.outcome {
        ProbeOutcome::AuthRequired { detail } => {
            assert!(
                detail.starts_with("error 1130: Host '127.0.0.1'"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn real_postgres_sslrequest() {
    let Some(pg) = start_postgres() else { return };
    let r = databases::probe_postgres(&tcp(pg.port), TIMEOUT).await;
    assert_eq!(r.outcome, ProbeOutcome::Confirmed, "{r:?}");
    assert_eq!(
        r.details,
        ProbeDetails::Postgres {
            ssl_supported: false
        }
    );
    let sock = ListenAddr::Unix {
        path: pg
            .dir
            .path()
            .join(format!(".s.PGSQL.{}", pg.port))
            .display()
            .to_string(),
    };
    assert_eq!(
        databases::probe_postgres(&sock, TIMEOUT).await.outcome,
        ProbeOutcome::Confirmed
    );
    // Redis's PING as a startup packet: PostgreSQL hangs up.
    for kind in [
        DatabaseKind::Redis,
        DatabaseKind::MongoDb,
        DatabaseKind::MinIo,
    ] {
        let r = databases::probe(kind, &tcp(pg.port), TIMEOUT).await;
        assert!(
            matches!(r.outcome, ProbeOutcome::WrongProtocol { .. }),
            "{kind:?}: {r:?}"
        );
    }
}

/// All three servers at once, found through this machine's real `/proc` with their pids.
#[tokio::test]
async fn real_proc_discovery_finds_the_running_servers() {
    let (Some(redis), Some(db), Some(pg)) =
        (start_redis(&[]), start_mariadb(&[]), start_postgres())
    else {
        return;
    };
    let inventory = databases::discover(
        Path::new(databases::PROC_ROOT),
        &[],
        &SystemRunner,
        &DiscoveryOptions::default(),
    )
    .await;
    let find = |pid: u32| {
        inventory
            .instances
            .iter()
            .find(|i| i.process.as_ref().is_some_and(|p| p.pid == pid))
            .unwrap_or_else(|| panic!("pid {pid} not found in {inventory:#?}"))
    };

    let r = find(redis.child.0.id());
    assert_eq!(r.kind, DatabaseKind::Redis);
    assert!(r.listen.contains(&tcp(redis.port)), "{r:?}");
    assert!(
        r.listen
            .iter()
            .any(|l| matches!(l, ListenAddr::Unix { path } if path.ends_with("redis.sock")))
    );
    assert_eq!(
        r.sources,
        [Source::Process, Source::ListeningSocket, Source::Probe]
    );
    assert_eq!(r.version_source, Some(VersionSource::Probe));
    assert_eq!(
        r.version.as_deref(),
        Some(tool_version(DatabaseKind::Redis, &find_tool("redis-server").unwrap()).as_str())
    );
    let dd = r.data_dir.as_ref().unwrap();
    assert_eq!(Path::new(&dd.path), redis.dir.path());

    let m = find(db.child.0.id());
    assert_eq!(m.kind, DatabaseKind::MySql);
    assert!(m.listen.contains(&tcp(db.port)), "{m:?}");
    assert_eq!(
        m.version.as_deref(),
        Some(tool_version(DatabaseKind::MySql, &find_tool("mariadbd").unwrap()).as_str())
    );
    assert_eq!(
        m.data_dir.as_ref().unwrap().source,
        DataDirSource::CommandLine
    );
    assert_eq!(m.probe.as_ref().unwrap().outcome, ProbeOutcome::Confirmed);

    let p = find(pg.pid());
    assert_eq!(p.kind, DatabaseKind::Postgres);
    assert!(p.listen.contains(&tcp(pg.port)), "{p:?}");
    assert_eq!(p.probe.as_ref().unwrap().outcome, ProbeOutcome::Confirmed);
    assert_eq!(
        p.version.as_deref(),
        Some(tool_version(DatabaseKind::Postgres, &find_tool("postgres").unwrap()).as_str())
    );
    assert_eq!(p.version_source, Some(VersionSource::Executable));
    assert_eq!(Path::new(&p.data_dir.as_ref().unwrap().path), pg.data);
    // Its workers (checkpointer, walwriter…) are part of the instance, not instances.
    let workers = inventory
        .instances
        .iter()
        .filter(|i| {
            i.kind == DatabaseKind::Postgres
                && i.data_dir
                    .as_ref()
                    .is_some_and(|d| Path::new(&d.path) == pg.data)
        })
        .count();
    assert_eq!(workers, 1, "{inventory:#?}");
}

/// Python's `http.server` is a real HTTP server: every prober must call it wrong protocol,
/// not hang and not time out.
#[tokio::test]
async fn real_http_server_is_wrong_protocol_for_every_prober() {
    let Some(python) = find_tool("python3") else {
        return;
    };
    let dir = shared_tempdir();
    let port = free_port();
    let child = Killed(
        Command::new(python)
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, "python3 -m http.server", &dir.path().join("none"));
    for kind in DatabaseKind::ALL {
        let r = databases::probe(kind, &tcp(port), TIMEOUT).await;
        assert!(
            matches!(r.outcome, ProbeOutcome::WrongProtocol { .. }),
            "{kind:?}: {r:?}"
        );
        eprintln!("{kind:?} vs http.server: {:?}", r.outcome);
    }
    drop(child);
}

/// A round of a series keeps a fresh proof of the protocol instead of probing again, and
/// probes again once it is older than `probe_refresh`: a redis-server stopped with SIGSTOP
/// (its socket still accepts, nothing answers) is still the proven instance a minute later,
/// and is seen timing out at the first round after the refresh. Rounds are dated by the
/// test, not waited for.
#[tokio::test]
async fn a_series_of_rounds_reuses_a_fresh_probe_and_sees_a_hung_server_after_the_refresh() {
    let Some(redis) = start_redis(&[]) else {
        return;
    };
    let options = DiscoveryOptions {
        probe_timeout: TIMEOUT,
        run_version_commands: false,
        ..DiscoveryOptions::default()
    };
    let pid = redis.child.0.id();
    let mut memory = databases::DiscoveryMemory::default();
    let start = Instant::now();
    let mut round = async |at: Instant| {
        let inventory = databases::discover_with(
            Path::new(databases::PROC_ROOT),
            &[],
            &SystemRunner,
            &options,
            &mut memory,
            at,
        )
        .await;
        inventory
            .instances
            .into_iter()
            .find(|i| i.process.as_ref().is_some_and(|p| p.pid == pid))
            .unwrap_or_else(|| panic!("redis-server (pid {pid}) not found"))
    };
    let first = round(start).await;
    assert_eq!(
        first.probe.as_ref().unwrap().outcome,
        ProbeOutcome::Confirmed
    );

    let signal = |name: &str| {
        let ok = Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {name} {pid}");
    };
    signal("-STOP");
    let kept = round(start + Duration::from_secs(60)).await;
    let expired = round(start + options.probe_refresh + Duration::from_secs(1)).await;
    signal("-CONT");

    assert_eq!(kept.probe, first.probe, "a fresh proof is kept");
    assert_eq!(kept.version, first.version);
    assert!(
        matches!(
            expired.probe.as_ref().unwrap().outcome,
            ProbeOutcome::Timeout { .. }
        ),
        "{expired:?}"
    );
    // Failed probes are not kept: the next round probes again and sees it answer.
    let resumed = round(start + options.probe_refresh + Duration::from_secs(2)).await;
    assert_eq!(
        resumed.probe.as_ref().unwrap().outcome,
        ProbeOutcome::Confirmed
    );
}
