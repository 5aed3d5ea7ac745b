//! Database discovery over recorded bytes:
//! - a procfs tree rebuilt from the **real** `/proc` text captured on the build VM while
//!   redis-server, PostgreSQL and mariadbd ran (`fixtures/databases/procfs/`, MANIFEST.tsv);
//! - MongoDB and MinIO replies **reconstructed from the protocol specs and documentation**
//!   (no such server exists in Debian), served byte-exact from loopback TCP servers;
//! - hostile servers: random bytes, silence, a closed port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use unity_collect::databases::{
    self, CollectorStatus, ContainerHint, DataDirSource, DatabaseKind, DiscoveryMemory,
    DiscoveryOptions, ListenAddr, ProbeDetails, ProbeOutcome, Source, VersionSource,
};
use unity_collect::runner::RecordedRunner;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/databases");
const TIMEOUT: Duration = Duration::from_secs(2);

fn wire(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/wire/{name}")).unwrap()
}

fn tcp(ip: &str, port: u16) -> ListenAddr {
    ListenAddr::Tcp {
        ip: ip.parse().unwrap(),
        port,
    }
}

/// Rebuilds the captured procfs: files copied, links re-created as symlinks.
fn procfs_tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let src = Path::new(FIXTURES).join("procfs");
    std::fs::create_dir_all(root.path().join("net")).unwrap();
    for f in ["tcp", "tcp6", "unix"] {
        std::fs::copy(src.join("net").join(f), root.path().join("net").join(f)).unwrap();
    }
    let mnt = "mnt:[4026531841]";
    std::fs::create_dir_all(root.path().join("self/ns")).unwrap();
    std::os::unix::fs::symlink(mnt, root.path().join("self/ns/mnt")).unwrap();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let dst = root.path().join(&name);
        std::fs::create_dir_all(dst.join("fd")).unwrap();
        std::fs::create_dir_all(dst.join("ns")).unwrap();
        std::os::unix::fs::symlink(mnt, dst.join("ns/mnt")).unwrap();
        for f in ["cmdline", "comm", "stat", "cgroup"] {
            std::fs::copy(entry.path().join(f), dst.join(f)).unwrap();
        }
        let fds = std::fs::read_to_string(entry.path().join("fd-links.txt")).unwrap();
        for line in fds.lines() {
            let (fd, target) = line.split_once(" -> ").unwrap();
            std::os::unix::fs::symlink(target, dst.join("fd").join(fd)).unwrap();
        }
        let links = std::fs::read_to_string(entry.path().join("links.txt")).unwrap();
        for line in links.lines() {
            let (link, target) = line.split_once(' ').unwrap();
            std::os::unix::fs::symlink(target, dst.join(link)).unwrap();
        }
    }
    root
}

#[tokio::test]
async fn captured_procfs_gives_one_record_per_server() {
    let root = procfs_tree();
    let pg_exe = format!("{}/23390/exe", root.path().display());
    let runner = RecordedRunner::new().record(
        &format!("{pg_exe} --version"),
        0,
        "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n",
        "",
    );
    let hints = [ContainerHint {
        image: "docker.io/library/mongo:7.0.5".into(),
        published: vec![("0.0.0.0".parse::<IpAddr>().unwrap(), 27017)],
        container_id: "4f3c2b1a09e8d7c6b5a4f3c2b1a09e8d7c6b5a4f3c2b1a09e8d7c6b5a4f3c2b".into(),
        name: "mongo".into(),
    }];
    let options = DiscoveryOptions {
        probe: false,
        ..DiscoveryOptions::default()
    };
    let inv = databases::discover(root.path(), &hints, &runner, &options).await;
    assert_eq!(inv.status, CollectorStatus::Ok, "{inv:#?}");
    let summary: Vec<_> = inv
        .instances
        .iter()
        .map(|i| (i.kind, i.process.as_ref().map(|p| p.pid)))
        .collect();
    // The checkpointer (23395, child of 23390 without listeners) is not an instance.
    assert_eq!(
        summary,
        [
            (DatabaseKind::Postgres, Some(23390)),
            (DatabaseKind::MySql, Some(23981)),
            (DatabaseKind::MongoDb, None),
            (DatabaseKind::Redis, Some(23347)),
        ]
    );
    let pg = &inv.instances[0];
    assert_eq!(
        pg.listen,
        [
            tcp("127.0.0.1", 35432),
            ListenAddr::Unix {
                path: "/tmp/dbcap.tx5A/pg/.s.PGSQL.35432".into()
            }
        ]
    );
    assert_eq!(pg.sources, [Source::Process, Source::ListeningSocket]);
    let dd = pg.data_dir.as_ref().unwrap();
    assert_eq!(
        (dd.path.as_str(), dd.source),
        ("/tmp/dbcap.tx5A/pg/data", DataDirSource::CommandLine)
    );
    // `--version` runs only for a root-owned executable in our mount namespace.
    if Path::new("/usr/lib/postgresql/15/bin/postgres").is_file() {
        assert_eq!(pg.version.as_deref(), Some("15.18"));
        assert_eq!(pg.version_source, Some(VersionSource::Executable));
    }
    assert_eq!(pg.probe, None);

    let my = &inv.instances[1];
    assert_eq!(
        my.listen,
        [
            tcp("127.0.0.1", 33306),
            ListenAddr::Unix {
                path: "/tmp/dbcap.tx5A/my/mysqld.sock".into()
            }
        ]
    );
    assert_eq!(
        my.data_dir.as_ref().unwrap().path,
        "/tmp/dbcap.tx5A/my/data"
    );
    assert_eq!(my.process.as_ref().unwrap().name, "mariadbd");

    let mongo = &inv.instances[2];
    assert_eq!(mongo.sources, [Source::ContainerImage]);
    assert_eq!(mongo.version.as_deref(), Some("7.0.5"));
    assert_eq!(mongo.version_source, Some(VersionSource::ImageTag));
    assert_eq!(mongo.containers[0].name, "mongo");
    assert_eq!(mongo.listen, [tcp("0.0.0.0", 27017)]);

    let redis = &inv.instances[3];
    assert_eq!(
        redis.listen,
        [
            tcp("127.0.0.1", 36379),
            tcp("::1", 36379),
            ListenAddr::Unix {
                path: "/tmp/dbcap.tx5A/redis/redis.sock".into()
            }
        ]
    );
    // Debian's redis-server runs as /usr/bin/redis-check-rdb; comm names it.
    let p = redis.process.as_ref().unwrap();
    assert_eq!(
        (p.name.as_str(), p.exe.as_deref()),
        ("redis-server", Some("/usr/bin/redis-check-rdb"))
    );
    let dd = redis.data_dir.as_ref().unwrap();
    assert_eq!(
        (dd.path.as_str(), dd.source),
        ("/tmp/dbcap.tx5A/redis", DataDirSource::WorkingDirectory)
    );
    // The recorded runner has no answer for redis: no version, not an error.
    assert_eq!(redis.version, None);
}

#[tokio::test]
async fn missing_procfs_is_a_status() {
    let inv = databases::discover(
        Path::new("/nonexistent/unity-proc"),
        &[],
        &RecordedRunner::new(),
        &DiscoveryOptions::default(),
    )
    .await;
    assert!(matches!(inv.status, CollectorStatus::ProcUnreadable { .. }));
    assert!(inv.instances.is_empty());
}

/// Serves `replies` in order: for each, reads one request (an OP_MSG by its length prefix,
/// or an HTTP head up to the blank line), checks it against `expect` when given, answers.
async fn serve(
    replies: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    http: bool,
) -> (u16, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        for (expect, reply) in replies {
            let mut req = Vec::new();
            let mut b = [0u8; 1];
            loop {
                if s.read(&mut b).await.unwrap() == 0 {
                    return seen;
                }
                req.push(b[0]);
                let done = if http {
                    req.ends_with(b"\r\n\r\n")
                } else {
                    req.len() >= 4
                        && req.len() == i32::from_le_bytes(req[..4].try_into().unwrap()) as usize
                };
                if done {
                    break;
                }
            }
            if let Some(expect) = expect {
                assert_eq!(req, expect, "request bytes differ from the spec encoding");
            }
            seen.push(req);
            s.write_all(&reply).await.unwrap();
        }
        seen
    });
    (port, task)
}

#[tokio::test]
async fn mongodb_hello_and_buildinfo_from_spec_reconstructed_replies() {
    let (port, server) = serve(
        vec![
            (
                Some(wire("mongodb-opmsg-hello-request.spec.bin")),
                wire("mongodb-7.0-opmsg-hello-reply.spec.bin"),
            ),
            (
                Some(wire("mongodb-opmsg-buildinfo-request.spec.bin")),
                wire("mongodb-7.0-opmsg-buildinfo-reply.spec.bin"),
            ),
        ],
        false,
    )
    .await;
    let r = databases::probe_mongodb(&tcp("0.0.0.0", port), TIMEOUT).await;
    assert_eq!(r.outcome, ProbeOutcome::Confirmed, "{r:?}");
    assert_eq!(r.address, tcp("127.0.0.1", port));
    assert_eq!(
        r.details,
        ProbeDetails::MongoDb {
            min_wire_version: Some(0),
            max_wire_version: Some(21),
            is_writable_primary: Some(true),
            version: Some("7.0.5".into()),
        }
    );
    assert_eq!(server.await.unwrap().len(), 2);

    // buildInfo refused before authentication: still MongoDB, version unknown.
    let (port, _server) = serve(
        vec![
            (None, wire("mongodb-7.0-opmsg-hello-reply.spec.bin")),
            (
                None,
                wire("mongodb-7.0-opmsg-buildinfo-unauthorized-reply.spec.bin"),
            ),
        ],
        false,
    )
    .await;
    let r = databases::probe_mongodb(&tcp("127.0.0.1", port), TIMEOUT).await;
    assert_eq!(r.outcome, ProbeOutcome::Confirmed);
    assert_eq!(r.version(), None);
}

#[tokio::test]
async fn minio_health_from_doc_reconstructed_reply_and_discovery_through_a_hint() {
    let (port, server) = serve(vec![(None, wire("minio-health-live-200.spec.http"))], true).await;
    let r = databases::probe_minio(&tcp("127.0.0.1", port), TIMEOUT).await;
    assert_eq!(r.outcome, ProbeOutcome::Confirmed, "{r:?}");
    assert_eq!(
        r.details,
        ProbeDetails::MinIo {
            status: 200,
            server_header: Some("MinIO".into())
        }
    );
    let req = String::from_utf8(server.await.unwrap().remove(0)).unwrap();
    assert!(
        req.starts_with("GET /minio/health/live HTTP/1.1\r\nHost: 127.0.0.1:"),
        "{req}"
    );
    assert!(!req.to_ascii_lowercase().contains("authorization"));

    // A container hint for a MinIO image whose published port answers: the instance is
    // confirmed by the probe and versioned by the image tag.
    let (port, _server) = serve(vec![(None, wire("minio-health-live-200.spec.http"))], true).await;
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("net")).unwrap();
    std::fs::write(empty.path().join("net/tcp"), "").unwrap();
    std::fs::write(empty.path().join("net/unix"), "").unwrap();
    let hint = ContainerHint {
        image: "quay.io/minio/minio:RELEASE.2024-01-16T16-07-38Z".into(),
        published: vec![("127.0.0.1".parse().unwrap(), port)],
        container_id: "c0ffee".into(),
        name: "s3".into(),
    };
    let inv = databases::discover(
        empty.path(),
        &[hint],
        &RecordedRunner::new(),
        &DiscoveryOptions::default(),
    )
    .await;
    assert_eq!(inv.instances.len(), 1, "{inv:#?}");
    let i = &inv.instances[0];
    assert_eq!(i.kind, DatabaseKind::MinIo);
    assert_eq!(i.sources, [Source::ContainerImage, Source::Probe]);
    assert_eq!(i.version.as_deref(), Some("RELEASE.2024-01-16T16-07-38Z"));
    assert_eq!(i.version_source, Some(VersionSource::ImageTag));
}

/// A server that writes fixed pseudo-random bytes on connect and hangs up.
async fn random_bytes_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let bytes = bytes.clone();
            tokio::spawn(async move {
                let _ = s.write_all(&bytes).await;
                let _ = s.shutdown().await;
                // Drain what the prober sends so the close is clean, not a reset.
                let mut sink = [0u8; 1024];
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    port
}

#[tokio::test]
async fn random_bytes_are_wrong_protocol_for_every_prober() {
    let port = random_bytes_server().await;
    for kind in DatabaseKind::ALL {
        let r = databases::probe(kind, &tcp("127.0.0.1", port), TIMEOUT).await;
        assert!(
            matches!(r.outcome, ProbeOutcome::WrongProtocol { .. }),
            "{kind:?}: {r:?}"
        );
    }
}

#[tokio::test]
async fn closed_port_is_refused_and_silence_is_a_timeout() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for kind in DatabaseKind::ALL {
        let r = databases::probe(kind, &tcp("127.0.0.1", port), TIMEOUT).await;
        assert_eq!(r.outcome, ProbeOutcome::Refused, "{kind:?}");
    }
    let missing = ListenAddr::Unix {
        path: PathBuf::from("/nonexistent/unity.sock")
            .display()
            .to_string(),
    };
    assert_eq!(
        databases::probe_redis(&missing, TIMEOUT).await.outcome,
        ProbeOutcome::Refused
    );

    // Accepts, reads everything (nudge included), never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = [0u8; 1024];
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    let short = Duration::from_millis(400);
    for kind in DatabaseKind::ALL {
        let r = databases::probe(kind, &tcp("127.0.0.1", port), short).await;
        assert!(
            matches!(r.outcome, ProbeOutcome::Timeout { .. }),
            "{kind:?}: {r:?}"
        );
        assert!(r.elapsed_ms < 1500, "{r:?}");
    }
}

/// Rounds of a series: an unchanged process is not read again (its edited command line is not
/// seen) and its `--version` is not asked again (a runner that knows nothing still yields the
/// version); a recycled pid (another start time) or an `exec` (another command name) is read
/// afresh; a process that went away is forgotten.
#[tokio::test]
async fn later_rounds_reuse_what_earlier_rounds_read_until_the_process_changes() {
    let root = procfs_tree();
    let pg_exe = format!("{}/23390/exe", root.path().display());
    let asks_once = RecordedRunner::new().record(
        &format!("{pg_exe} --version"),
        0,
        "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n",
        "",
    );
    let knows_nothing = RecordedRunner::new();
    let options = DiscoveryOptions {
        probe: false,
        ..DiscoveryOptions::default()
    };
    let runs_version = Path::new("/usr/lib/postgresql/15/bin/postgres").is_file();
    let kinds = |inv: &databases::DatabaseInventory| -> Vec<(DatabaseKind, Option<u32>)> {
        inv.instances
            .iter()
            .map(|i| (i.kind, i.process.as_ref().map(|p| p.pid)))
            .collect()
    };
    let pg_version = |inv: &databases::DatabaseInventory| {
        inv.instances
            .iter()
            .find(|i| i.kind == DatabaseKind::Postgres)
            .and_then(|i| i.version.clone())
    };
    let mut memory = DiscoveryMemory::default();
    let now = Instant::now();
    let first =
        databases::discover_with(root.path(), &[], &asks_once, &options, &mut memory, now).await;
    let found = [
        (DatabaseKind::Postgres, Some(23390)),
        (DatabaseKind::MySql, Some(23981)),
        (DatabaseKind::Redis, Some(23347)),
    ];
    assert_eq!(kinds(&first), found);

    // Redis's command line now names something else, its stat is unchanged: not re-read.
    let redis = root.path().join("23347");
    std::fs::write(redis.join("cmdline"), b"bash\0").unwrap();
    std::fs::remove_file(redis.join("exe")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/bash", redis.join("exe")).unwrap();
    let second =
        databases::discover_with(root.path(), &[], &knows_nothing, &options, &mut memory, now)
            .await;
    assert_eq!(kinds(&second), found);
    if runs_version {
        assert_eq!(pg_version(&first).as_deref(), Some("15.18"));
        assert_eq!(pg_version(&second).as_deref(), Some("15.18"));
    }

    // The pid recycled for a shell (same pid, later start time, other name): read afresh, and
    // it is no database. PostgreSQL restarted under the same pid: its version is asked again
    // (this runner cannot answer, so there is none).
    let stat = std::fs::read_to_string(redis.join("stat")).unwrap();
    let stat = stat
        .replace("(redis-server)", "(bash)")
        .replace(" 321687 ", " 999999 ");
    std::fs::write(redis.join("stat"), stat).unwrap();
    let pg = root.path().join("23390");
    let stat = std::fs::read_to_string(pg.join("stat")).unwrap();
    std::fs::write(pg.join("stat"), stat.replace(" 321771 ", " 999998 ")).unwrap();
    let third =
        databases::discover_with(root.path(), &[], &knows_nothing, &options, &mut memory, now)
            .await;
    assert_eq!(
        kinds(&third),
        [
            (DatabaseKind::Postgres, Some(23390)),
            (DatabaseKind::MySql, Some(23981)),
        ]
    );
    assert_eq!(pg_version(&third), None);

    // MariaDB went away: forgotten, so a later process under its pid is read afresh.
    std::fs::remove_dir_all(root.path().join("23981")).unwrap();
    let fourth =
        databases::discover_with(root.path(), &[], &knows_nothing, &options, &mut memory, now)
            .await;
    assert_eq!(kinds(&fourth), [(DatabaseKind::Postgres, Some(23390))]);
}
