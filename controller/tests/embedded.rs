//! The embedded PostgreSQL as the controller runs it: created, adopted when already running,
//! and a clear error when the server user cannot reach the data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use unity_controller::store::embedded::{EmbeddedError, EmbeddedOptions, EmbeddedPostgres};

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .is_some_and(|ids| ids.split_whitespace().nth(1) == Some("0"))
}

#[tokio::test]
async fn a_running_cluster_is_adopted_not_started_twice() {
    let dir = tempfile::Builder::new()
        .prefix("unity-emb-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path().join("pg");
    let options = EmbeddedOptions {
        unsafe_no_fsync: true,
    };
    let mut first = EmbeddedPostgres::ensure_running(&root, &options)
        .await
        .unwrap();
    assert!(first.started_here());
    let second = EmbeddedPostgres::ensure_running(&root, &options)
        .await
        .unwrap();
    assert!(
        !second.started_here(),
        "an admin command must reuse the running server"
    );
    drop(second);
    // Dropping the adopter left the server up: the owner can still stop it cleanly.
    first.stop().await.unwrap();
}

#[tokio::test]
async fn unreachable_data_directory_is_a_clear_error() {
    if !running_as_root() {
        eprintln!("skipped: only root runs PostgreSQL as another user");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("unity-emb-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = EmbeddedPostgres::ensure_running(
        &dir.path().join("data").join("pg"),
        &EmbeddedOptions::default(),
    )
    .await
    .unwrap_err();
    match &err {
        EmbeddedError::NotReachable { user, path } => {
            assert_eq!(user, "postgres");
            assert_eq!(path, dir.path());
        }
        other => panic!("expected NotReachable, got {other}"),
    }
    assert!(err.to_string().contains("chmod o+x"), "{err}");
}

/// The service with its embedded PostgreSQL, as processes: the postmaster killed with SIGKILL
/// is started again and the API recovers by itself; a controller killed with SIGKILL leaves
/// its postmaster, which the next controller adopts, owns, and stops when it is stopped.
#[test]
fn the_service_restarts_a_dead_postgres_and_leaves_no_orphan() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = tempfile::Builder::new()
        .prefix("unity-sup-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let api_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let quic_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_unity-controller"))
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env("UNITY_DATA_DIR", &data)
            .env("UNITY_API_LISTEN", format!("127.0.0.1:{api_port}"))
            .env("UNITY_QUIC_LISTEN", format!("127.0.0.1:{quic_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("controller.log")).unwrap())
            .spawn()
            .unwrap()
    };
    let health = || -> u16 {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", api_port)) else {
            return 0;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !ok() {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "timed out waiting for {what}: {}",
                std::fs::read_to_string(dir.path().join("controller.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let pid_file = data.join("postgres/pgdata/postmaster.pid");
    let postmaster = || -> Option<u32> {
        std::fs::read_to_string(&pid_file)
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    };
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();

    let mut controller = start();
    wait("the API", &|| health() == 200);
    let first = postmaster().unwrap();
    // The postmaster dies.
    Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap();
    wait("the postmaster to be gone", &|| !alive(first));
    wait("a new postmaster", &|| {
        postmaster().is_some_and(|p| p != first && alive(p))
    });
    wait("the API to recover", &|| health() == 200);

    // The controller dies: its postmaster stays, the next controller adopts and owns it.
    let second = postmaster().unwrap();
    controller.kill().unwrap();
    controller.wait().unwrap();
    assert!(
        alive(second),
        "a killed controller cannot stop its postmaster"
    );
    let mut controller = start();
    wait("the API after the restart", &|| health() == 200);
    assert_eq!(postmaster(), Some(second), "adopted, not started twice");
    Command::new("kill")
        .arg(controller.id().to_string())
        .status()
        .unwrap();
    let status = controller.wait().unwrap();
    assert!(status.success(), "clean stop: {status}");
    wait("the postmaster to stop with its controller", &|| {
        !alive(second)
    });
}

/// After an OS upgrade replaces PostgreSQL's major version, a cluster made by the old one is
/// not started with the new one (which fails obscurely) but refused with what to do.
#[tokio::test]
async fn a_cluster_whose_postgresql_version_is_gone_is_a_clear_error() {
    let dir = tempfile::Builder::new()
        .prefix("unity-emb-")
        .tempdir_in("/tmp")
        .unwrap();
    let pgdata = dir.path().join("pg/pgdata");
    std::fs::create_dir_all(&pgdata).unwrap();
    // A major version no machine has installed.
    std::fs::write(pgdata.join("PG_VERSION"), "11\n").unwrap();
    let err = EmbeddedPostgres::ensure_running(&dir.path().join("pg"), &EmbeddedOptions::default())
        .await
        .unwrap_err();
    match &err {
        EmbeddedError::WrongMajor {
            cluster, installed, ..
        } => {
            assert_eq!(cluster, "11");
            assert!(installed.contains("15"), "{installed}");
        }
        other => panic!("expected WrongMajor, got {other}"),
    }
    assert!(err.to_string().contains("Upgrading PostgreSQL"), "{err}");
}
