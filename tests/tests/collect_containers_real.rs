//! The container collector (`unity-collect`) against **real** engines and a **real** registry
//! on this machine, with the engines of `unity_e2e::engines`
//! (Debian's docker.io, podman + runc, docker-registry and busybox-static, installed by
//! `.ci/setup-containers.sh`). Each test starts its own `dockerd` / `podman system service` /
//! registry with private sockets, state directories and ports, makes real containers from a
//! locally imported busybox image (no internet), breaks some of them, collects, and stops and
//! removes everything afterwards. Outside CI a missing package skips with a message; with
//! `CI=true` it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use unity_collect::containers::{
    CollectorStatus, ContainerCollector, ContainerConfig, ContainerInventory, ContainerReport,
    ContainerState, EngineKind, HealthStatus, UnknownReason, UpdateStatus,
};
use unity_e2e::engines::{Dockerd, Podman, Registry, present, run, wait_for};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_engine_real_containers() {
    let Some(busybox) = present("busybox-static", &["/bin/busybox", "/usr/bin/busybox"]) else {
        return;
    };
    let Some(engine) = Podman::start(None) else {
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
