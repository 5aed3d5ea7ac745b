//! The container collector against **real** engines and a **real** registry on this machine
//! (Debian's docker.io, podman + runc, docker-registry and busybox-static, installed by
//! `.ci/setup-containers.sh`). Each test starts its own `dockerd` / `podman system service` /
//! registry with private sockets, state directories and ports, makes real containers from a
//! locally imported busybox image (no internet), breaks some of them, collects, and stops and
//! removes everything afterwards. Outside CI a missing package skips with a message; with
//! `CI=true` it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use unity_collect::containers::{
    CollectorStatus, ContainerCollector, ContainerConfig, ContainerInventory, ContainerReport,
    ContainerState, EngineKind, HealthStatus, UnknownReason, UpdateStatus,
};

fn present(what: &str, paths: &[&str]) -> Option<String> {
    if let Some(p) = paths.iter().find(|p| Path::new(p).is_file()) {
        return Some((*p).to_owned());
    }
    assert!(
        std::env::var("CI").is_err(),
        "{what} must be installed in CI (.ci/setup-containers.sh installs it)"
    );
    eprintln!("skipped: {what} is not installed on this machine");
    None
}

fn run(program: &str, args: &[&str], env: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Lazily unmounts anything an engine left mounted under `dir`.
fn unmount_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).status();
    }
}

/// A root filesystem tarball with busybox-static and a marker file (different markers make
/// different images).
fn image_tar(dir: &Path, busybox: &str, marker: &str) -> PathBuf {
    let root = dir.join(format!("rootfs-{marker}"));
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "true", "false", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("marker"), marker).unwrap();
    let tar = dir.join(format!("{marker}.tar"));
    run(
        "tar",
        &[
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
        &[],
    );
    tar
}

fn short_tempdir() -> tempfile::TempDir {
    // Unix socket paths must stay under ~108 bytes: keep the directory short.
    tempfile::Builder::new()
        .prefix("uc-")
        .tempdir_in("/tmp")
        .unwrap()
}

struct Dockerd {
    dir: tempfile::TempDir,
    child: Child,
    socket: PathBuf,
    cli: String,
}

impl Dockerd {
    fn start() -> Option<Self> {
        let dockerd = present(
            "dockerd (docker.io)",
            &["/usr/sbin/dockerd", "/usr/bin/dockerd"],
        )?;
        let cli = present("docker CLI (docker.io)", &["/usr/bin/docker"])?;
        let dir = short_tempdir();
        let d = dir.path();
        let socket = d.join("d.sock");
        let child = Command::new(dockerd)
            .args(["-H", &format!("unix://{}", socket.display())])
            .args(["--data-root", d.join("data").to_str().unwrap()])
            .args(["--exec-root", d.join("x").to_str().unwrap()])
            .args(["--pidfile", d.join("d.pid").to_str().unwrap()])
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--default-ulimit", "nofile=1024:1024"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("dockerd.log")).unwrap())
            .stderr(std::fs::File::create(d.join("dockerd.err")).unwrap())
            .spawn()
            .unwrap();
        let me = Self {
            dir,
            child,
            socket,
            cli,
        };
        wait_for("dockerd", Duration::from_secs(30), || {
            me.socket.exists()
                && Command::new(&me.cli)
                    .args(["-H", &me.host(), "version"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        });
        Some(me)
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn docker(&self, args: &[&str]) -> String {
        let host = self.host();
        let mut all = vec!["-H", host.as_str()];
        all.extend_from_slice(args);
        // DOCKER_CONFIG: a private client config (no credential helpers of the machine).
        run(&self.cli, &all, &[("DOCKER_CONFIG", self.dir.path())])
    }

    fn config(&self) -> ContainerConfig {
        ContainerConfig {
            honour_docker_host: false,
            endpoints: vec![self.host()],
            api_timeout: Duration::from_secs(10),
            ..ContainerConfig::default()
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let host = self.host();
        if let Ok(out) = Command::new(&self.cli)
            .args(["-H", &host, "ps", "-aq"])
            .output()
        {
            let ids = String::from_utf8_lossy(&out.stdout).to_string();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = Command::new(&self.cli)
                    .args(["-H", &host, "rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
        terminate(&mut self.child);
        unmount_under(self.dir.path());
    }
}

fn by_name<'a>(inv: &'a ContainerInventory, name: &str) -> &'a ContainerReport {
    inv.engines[0]
        .containers
        .iter()
        .find(|c| c.container.name == name)
        .unwrap_or_else(|| panic!("no container {name} in {inv:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_engine_real_containers() {
    let Some(busybox) = present("busybox-static", &["/bin/busybox", "/usr/bin/busybox"]) else {
        return;
    };
    let Some(engine) = Dockerd::start() else {
        return;
    };
    let d = engine.dir.path();
    let tar = image_tar(d, &busybox, "one");
    engine.docker(&["import", tar.to_str().unwrap(), "unity/busybox:1"]);
    let data = d.join("appdata");
    std::fs::create_dir_all(&data).unwrap();
    let bind = format!("{}:/data:ro", data.display());
    engine.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--label",
        "com.docker.compose.project=homelab",
        "--label",
        "com.docker.compose.service=web",
        "-v",
        &bind,
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "unity/busybox:1",
        "sleep",
        "300",
    ]);
    engine.docker(&[
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "unity/busybox:1",
        "sleep",
        "300",
    ]);
    engine.docker(&[
        "run",
        "-d",
        "--name",
        "crashy",
        "--restart",
        "on-failure:2",
        "unity/busybox:1",
        "sh",
        "-c",
        "exit 3",
    ]);
    engine.docker(&[
        "run",
        "-d",
        "--name",
        "stopped",
        "unity/busybox:1",
        "sleep",
        "300",
    ]);
    // busybox sleep as PID 1 ignores SIGTERM: stop ends in SIGKILL after 1 s (exit 137).
    engine.docker(&["stop", "-t", "1", "stopped"]);
    engine.docker(&["create", "--name", "fresh", "unity/busybox:1", "true"]);
    wait_for("unhealthy + two restarts", Duration::from_secs(40), || {
        engine.docker(&["inspect", "-f", "{{.State.Health.Status}}", "sick"]) == "unhealthy"
            && engine.docker(&[
                "inspect",
                "-f",
                "{{.RestartCount}} {{.State.Status}}",
                "crashy",
            ]) == "2 exited"
    });

    let inv = ContainerCollector::new(engine.config()).collect().await;
    assert_eq!(inv.status, CollectorStatus::Ok, "{inv:#?}");
    let e = &inv.engines[0];
    assert_eq!(
        e.status,
        unity_collect::containers::EngineStatus::Ok,
        "{e:#?}"
    );
    let info = e.engine.as_ref().unwrap();
    assert_eq!(info.kind, EngineKind::Docker);
    assert!(
        info.version.is_some() && info.api_version.is_some(),
        "{info:?}"
    );
    assert!(info.storage_driver.is_some(), "{info:?}");
    assert!(!info.rootless);

    let web = by_name(&inv, "web");
    let c = &web.container;
    assert_eq!(c.state, ContainerState::Running);
    assert_eq!(c.image_reference, "unity/busybox:1");
    assert!(c.image_id.as_deref().unwrap().starts_with("sha256:"));
    assert!(
        c.repo_digests.is_empty(),
        "imported image has no repo digest"
    );
    let compose = c.compose.as_ref().unwrap();
    assert_eq!(
        (compose.project.as_str(), compose.service.as_deref()),
        ("homelab", Some("web"))
    );
    assert_eq!(c.mounts.len(), 1);
    assert_eq!(c.mounts[0].kind, "bind");
    assert_eq!(c.mounts[0].destination, "/data");
    assert_eq!(c.mounts[0].source.as_deref(), data.to_str());
    assert!(!c.mounts[0].read_write);
    assert_eq!(c.limits.memory_bytes, Some(64 * 1024 * 1024));
    assert_eq!(c.limits.nano_cpus, Some(500_000_000));
    assert_eq!(c.limits.pids, Some(50));
    assert!(c.started_at.is_some());
    assert_eq!(
        web.update,
        Some(UpdateStatus::Unknown {
            reason: UnknownReason::NoRepoDigest
        })
    );

    let sick = &by_name(&inv, "sick").container;
    assert_eq!(sick.health, HealthStatus::Unhealthy);
    assert!(sick.health_failing_streak.unwrap() >= 1);
    let crashy = by_name(&inv, "crashy");
    assert_eq!(crashy.container.state, ContainerState::Exited);
    assert_eq!(crashy.container.exit_code, Some(3));
    assert_eq!(crashy.container.restart_count, 2);
    assert_eq!(
        crashy.update, None,
        "no update check for stopped containers"
    );
    let stopped = &by_name(&inv, "stopped").container;
    assert_eq!(
        (stopped.state.clone(), stopped.exit_code),
        (ContainerState::Exited, Some(137))
    );
    assert!(stopped.finished_at.is_some());
    let fresh = &by_name(&inv, "fresh").container;
    assert_eq!(fresh.state, ContainerState::Created);
    assert_eq!(fresh.started_at, None);

    let image = e
        .images
        .iter()
        .find(|i| i.tags.contains(&"unity/busybox:1".to_owned()))
        .unwrap();
    assert!(image.repo_digests.is_empty());
    assert!(image.size_bytes.unwrap() > 0 && image.created.is_some());
}

struct Podman {
    dir: tempfile::TempDir,
    child: Child,
    socket: PathBuf,
    program: String,
}

impl Podman {
    fn start() -> Option<Self> {
        let program = present("podman", &["/usr/bin/podman"])?;
        present("runc", &["/usr/sbin/runc", "/usr/bin/runc"])?;
        let dir = short_tempdir();
        let d = dir.path();
        std::fs::write(
            d.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             netns = \"none\"\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n",
        )
        .unwrap();
        let socket = d.join("p.sock");
        let mut cmd = Command::new(&program);
        cmd.args(Self::storage_args(d))
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("podman.log")).unwrap())
            .stderr(std::fs::File::create(d.join("podman.err")).unwrap());
        let child = cmd.spawn().unwrap();
        let me = Self {
            dir,
            child,
            socket,
            program,
        };
        wait_for("podman service", Duration::from_secs(30), || {
            me.socket.exists()
        });
        Some(me)
    }

    fn storage_args(d: &Path) -> Vec<String> {
        vec![
            "--root".to_owned(),
            d.join("root").display().to_string(),
            "--runroot".to_owned(),
            d.join("run").display().to_string(),
            "--storage-driver".to_owned(),
            "vfs".to_owned(),
        ]
    }

    fn podman(&self, args: &[&str]) -> String {
        let storage = Self::storage_args(self.dir.path());
        let mut all: Vec<&str> = storage.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let conf = self.dir.path().join("containers.conf");
        run(&self.program, &all, &[("CONTAINERS_CONF", &conf)])
    }

    /// Like [`Self::podman`] but tolerating a non-zero exit (health checks that fail).
    fn podman_status(&self, args: &[&str]) -> bool {
        let storage = Self::storage_args(self.dir.path());
        Command::new(&self.program)
            .args(&storage)
            .args(args)
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman_status(&["rm", "-f", "-a", "-t", "0"]);
        terminate(&mut self.child);
        unmount_under(self.dir.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_engine_real_containers() {
    let Some(busybox) = present("busybox-static", &["/bin/busybox", "/usr/bin/busybox"]) else {
        return;
    };
    let Some(engine) = Podman::start() else {
        return;
    };
    let d = engine.dir.path();
    let tar = image_tar(d, &busybox, "pod");
    engine.podman(&["import", tar.to_str().unwrap(), "localhost/unity/busybox:1"]);
    let data = d.join("appdata");
    std::fs::create_dir_all(&data).unwrap();
    let bind = format!("{}:/data", data.display());
    engine.podman(&[
        "run",
        "-d",
        "--name",
        "db",
        "--label",
        "com.docker.compose.project=homelab",
        "--label",
        "com.docker.compose.service=db",
        "-v",
        &bind,
        "--pids-limit",
        "64",
        "localhost/unity/busybox:1",
        "sleep",
        "300",
    ]);
    engine.podman(&[
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "false",
        "--health-interval",
        "1h",
        "--health-retries",
        "1",
        "localhost/unity/busybox:1",
        "sleep",
        "300",
    ]);
    // No systemd here to run health-check timers: run the check by hand, as the timer would.
    assert!(!engine.podman_status(&["healthcheck", "run", "sick"]));
    engine.podman(&[
        "run",
        "-d",
        "--name",
        "failed",
        "localhost/unity/busybox:1",
        "sh",
        "-c",
        "exit 4",
    ]);
    engine.podman(&[
        "run",
        "-d",
        "--name",
        "stopped",
        "localhost/unity/busybox:1",
        "sleep",
        "300",
    ]);
    engine.podman(&["stop", "-t", "0", "stopped"]);
    wait_for("failed container to exit", Duration::from_secs(20), || {
        engine.podman(&["inspect", "-f", "{{.State.Status}}", "failed"]) == "exited"
    });

    let inv = ContainerCollector::new(ContainerConfig {
        honour_docker_host: false,
        endpoints: vec![engine.socket.display().to_string()],
        api_timeout: Duration::from_secs(10),
        ..ContainerConfig::default()
    })
    .collect()
    .await;
    assert_eq!(inv.status, CollectorStatus::Ok, "{inv:#?}");
    let e = &inv.engines[0];
    assert_eq!(
        e.status,
        unity_collect::containers::EngineStatus::Ok,
        "{e:#?}"
    );
    let info = e.engine.as_ref().unwrap();
    assert_eq!(info.kind, EngineKind::Podman);
    assert!(!info.rootless, "rootful service as root");
    assert_eq!(info.storage_driver.as_deref(), Some("vfs"));
    assert!(info.version.is_some());

    let db = by_name(&inv, "db");
    assert_eq!(db.container.state, ContainerState::Running);
    assert_eq!(
        db.container.compose.as_ref().unwrap().service.as_deref(),
        Some("db")
    );
    let mount = db
        .container
        .mounts
        .iter()
        .find(|m| m.destination == "/data")
        .unwrap();
    assert_eq!(
        (mount.kind.as_str(), mount.source.as_deref()),
        ("bind", data.to_str())
    );
    assert_eq!(db.container.limits.pids, Some(64));
    // localhost/… images built or imported by podman: no registry to ask.
    assert!(
        matches!(db.update, Some(UpdateStatus::Unknown { .. })),
        "{:?}",
        db.update
    );
    assert_eq!(
        by_name(&inv, "sick").container.health,
        HealthStatus::Unhealthy
    );
    let failed = &by_name(&inv, "failed").container;
    assert_eq!(
        (failed.state.clone(), failed.exit_code),
        (ContainerState::Exited, Some(4))
    );
    assert_eq!(
        by_name(&inv, "stopped").container.state,
        ContainerState::Exited
    );
    assert!(
        e.images
            .iter()
            .any(|i| i.tags.iter().any(|t| t == "localhost/unity/busybox:1")),
        "{:?}",
        e.images
    );
}

struct Registry {
    child: Child,
    addr: String,
}

impl Registry {
    fn start(dir: &Path) -> Option<Self> {
        let program = present("docker-registry", &["/usr/bin/docker-registry"])?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {addr}\n",
                dir.join("registry").display()
            ),
        )
        .unwrap();
        let child = Command::new(program)
            .args(["serve", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("registry.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("registry.err")).unwrap())
            .spawn()
            .unwrap();
        wait_for("registry", Duration::from_secs(20), || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        Some(Self { child, addr })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_detection_against_a_real_registry() {
    let Some(busybox) = present("busybox-static", &["/bin/busybox", "/usr/bin/busybox"]) else {
        return;
    };
    let Some(engine) = Dockerd::start() else {
        return;
    };
    let d = engine.dir.path();
    let Some(registry) = Registry::start(d) else {
        return;
    };
    let reference = format!("{}/unity/app:stable", registry.addr);
    let repo = format!("{}/unity/app", registry.addr);
    // v1: push (loopback registries are insecure registries by default), run two containers.
    let tar = image_tar(d, &busybox, "v1");
    engine.docker(&["import", tar.to_str().unwrap(), &reference]);
    engine.docker(&["push", &reference]);
    let v1_digest = engine.docker(&["inspect", "-f", "{{index .RepoDigests 0}}", &reference]);
    let v1_digest = v1_digest.rsplit_once('@').unwrap().1.to_owned();
    engine.docker(&["run", "-d", "--name", "app", &reference, "sleep", "300"]);
    engine.docker(&["run", "-d", "--name", "app2", &reference, "sleep", "300"]);
    let pinned = format!("{repo}@{v1_digest}");
    engine.docker(&["run", "-d", "--name", "pinned", &pinned, "sleep", "300"]);

    let mut collector = ContainerCollector::new(engine.config());
    let inv = collector.collect().await;
    assert_eq!(
        by_name(&inv, "app").update,
        Some(UpdateStatus::UpToDate),
        "{inv:#?}"
    );
    assert_eq!(by_name(&inv, "app2").update, Some(UpdateStatus::UpToDate));
    assert_eq!(
        by_name(&inv, "pinned").update,
        Some(UpdateStatus::Pinned {
            digest: v1_digest.clone()
        })
    );
    assert!(
        by_name(&inv, "app")
            .container
            .repo_digests
            .contains(&format!("{repo}@{v1_digest}"))
    );

    // v2: a different image pushed to the same tag. The running containers keep v1.
    let tar = image_tar(d, &busybox, "v2");
    engine.docker(&["import", tar.to_str().unwrap(), &reference]);
    engine.docker(&["push", &reference]);
    let v2_digest = engine.docker(&["inspect", "-f", "{{index .RepoDigests 0}}", &reference]);
    let v2_digest = v2_digest.rsplit_once('@').unwrap().1.to_owned();
    assert_ne!(v1_digest, v2_digest);

    // The same collector reuses its answer for the tag (recheck_after: 6 h)…
    let cached = collector.collect().await;
    assert_eq!(by_name(&cached, "app").update, Some(UpdateStatus::UpToDate));
    // …a fresh one asks again and sees the tag moved.
    let inv = unity_collect::containers::collect(&engine.config()).await;
    let expected = Some(UpdateStatus::UpdateAvailable {
        new_digest: v2_digest.clone(),
    });
    assert_eq!(by_name(&inv, "app").update, expected, "{inv:#?}");
    assert_eq!(by_name(&inv, "app2").update, expected);
    // A tag that does not exist on the registry.
    engine.docker(&["tag", &reference, &format!("{repo}:never-pushed")]);
    engine.docker(&[
        "run",
        "-d",
        "--name",
        "orphan",
        &format!("{repo}:never-pushed"),
        "sleep",
        "300",
    ]);
    let inv = unity_collect::containers::collect(&engine.config()).await;
    assert_eq!(
        by_name(&inv, "orphan").update,
        Some(UpdateStatus::Unknown {
            reason: UnknownReason::NotFound {
                registry: registry.addr.clone()
            }
        })
    );
    // Once the registry is gone: unreachable, precisely.
    drop(registry);
    let inv = unity_collect::containers::collect(&engine.config()).await;
    assert!(
        matches!(
            by_name(&inv, "app").update,
            Some(UpdateStatus::Unknown {
                reason: UnknownReason::RegistryUnreachable { .. }
            })
        ),
        "{:?}",
        by_name(&inv, "app").update
    );
}
