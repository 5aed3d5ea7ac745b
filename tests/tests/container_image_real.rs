//! The controller's OCI image (`packaging/container/build.sh`), built with the real podman
//! from this run's binary, run under podman as its non-root user with a read-only root
//! filesystem and no capabilities against an external PostgreSQL (`DATABASE_URL`), a real
//! agent enrolled from outside the container, its host read over the API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use unity_agent::enroll::{EnrollOptions, enroll};
use unity_agent::state::AgentState;
use unity_controller::testing::ThrowawayPostgres;
use unity_e2e::engines::{Podman, free_port};
use unity_e2e::{AgentTask, fast_options};

const CONTROLLER_BIN: &str = env!("CARGO_BIN_EXE_e2e-controller");
const IMAGE: &str = "localhost/unity-controller:test";

/// Lets the container's user reach the PostgreSQL socket: every directory above it must be
/// traversable (the socket itself is 0777, PostgreSQL's default).
fn open_path_to(dir: &Path) {
    for ancestor in dir.ancestors() {
        if ancestor == Path::new("/") || ancestor == Path::new("/tmp") {
            break;
        }
        let mode = std::fs::metadata(ancestor).unwrap().permissions().mode();
        std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(mode | 0o011)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_image_runs_non_root_read_only_against_external_postgresql() {
    let Some(podman) = Podman::start(None) else {
        return;
    };
    let pg = ThrowawayPostgres::start().await.unwrap();
    let (_store, database_url) = pg.fresh_database().await.unwrap();
    let socket_dir = database_url
        .split("host=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap()
        .to_owned();
    open_path_to(Path::new(&socket_dir));

    // Built by the script users run, with this run's binary.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let storage = format!(
        "podman --root {0}/root --runroot {0}/run --storage-driver vfs",
        podman.dir.path().display()
    );
    let built = std::process::Command::new(workspace.join("packaging/container/build.sh"))
        .args([CONTROLLER_BIN, IMAGE])
        .env("PODMAN", &storage)
        .env("CONTAINERS_CONF", podman.dir.path().join("containers.conf"))
        .env(
            "CONTAINERS_REGISTRIES_CONF",
            podman.dir.path().join("registries.conf"),
        )
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "build.sh:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let config: serde_json::Value = serde_json::from_str(&podman.podman(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        IMAGE,
    ]))
    .unwrap();
    assert_eq!(config["User"], "10001:10001", "{config}");
    assert_eq!(
        config["Entrypoint"][0], "/usr/bin/unity-controller",
        "{config}"
    );
    assert!(config["ExposedPorts"]["7443/udp"].is_object(), "{config}");

    // Run it the way the Helm chart does: non-root, read-only, no capabilities.
    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(data.path(), Some(10001), Some(10001)).unwrap();
    let quic = format!("127.0.0.1:{}", free_port());
    let api = format!("127.0.0.1:{}", free_port());
    let volume = |from: &str, to: &str| format!("{from}:{to}");
    podman.podman(&[
        "run",
        "--detach",
        "--name",
        "controller",
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
        "--volume",
        &volume(data.path().to_str().unwrap(), "/var/lib/unity-controller"),
        "--volume",
        &volume(&socket_dir, &socket_dir),
        "--env",
        &format!("DATABASE_URL={database_url}"),
        "--env",
        &format!("UNITY_QUIC_LISTEN={quic}"),
        "--env",
        &format!("UNITY_API_LISTEN={api}"),
        IMAGE,
    ]);
    let logs = || {
        podman
            .podman(&["logs", "controller"])
            .chars()
            .rev()
            .take(4000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    };
    let http = unity_e2e::http_client();
    let mut ready = false;
    for _ in 0..300 {
        if http
            .get(format!("http://{api}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "the containerised controller never became ready:\n{}",
        logs()
    );
    let user = podman.podman(&[
        "exec",
        "controller",
        "/usr/bin/unity-controller",
        "--version",
    ]);
    assert!(user.contains("unity-controller"), "{user}");

    // Administration inside the container; an agent from outside.
    let admin = |args: &[&str]| {
        let mut all = vec!["exec", "controller", "/usr/bin/unity-controller"];
        all.extend_from_slice(args);
        podman.podman(&all).trim().to_owned()
    };
    admin(&["tenant", "create", "homelab"]);
    let token = admin(&["enroll-token", "create", "--tenant", "homelab", "--quiet"]);
    let reader = admin(&["api-token", "create", "--tenant", "homelab"]);
    let fingerprint: unity_pki::Fingerprint = admin(&["ca", "fingerprint"]).parse().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let state_dir = agent_dir.path().join("agent");
    let enrollment = enroll(&EnrollOptions {
        controller: quic.clone(),
        token,
        ca_fingerprint: fingerprint,
        state_dir: state_dir.clone(),
        hostname: "outside".into(),
        force: false,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    let agent = AgentTask::spawn(AgentState::load(&state_dir).unwrap(), fast_options());
    let mut host = serde_json::Value::Null;
    for _ in 0..300 {
        host = http
            .get(format!("http://{api}/api/v1/hosts/{}", enrollment.host_id))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(serde_json::Value::Null);
        if host["facts"].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        host["id"],
        enrollment.host_id.to_string().as_str(),
        "{host}\n{}",
        logs()
    );
    assert!(host["facts"]["kernel_version"].is_string(), "{host}");
    agent.stop().await;
    // A backup of the external database from inside the image (its pg_dump).
    admin(&[
        "backup",
        "--output",
        "/var/lib/unity-controller/backup.tar.gz",
    ]);
    let backup = std::fs::metadata(data.path().join("backup.tar.gz")).unwrap();
    assert!(backup.len() > 1000, "{backup:?}");
    // The process runs as the image's user.
    let top = podman.podman(&["top", "controller", "user", "comm"]);
    assert!(top.contains("10001") || top.contains("unity"), "{top}");
    podman.podman(&["stop", "--time", "20", "controller"]);
    podman.podman(&["rm", "controller"]);
}
