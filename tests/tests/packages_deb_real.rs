//! The Debian packages, installed for real on this machine (root, CI): built with the real
//! `cargo deb` from the binaries this test run built, checked with the real `lintian`,
//! installed with `dpkg -i`, their files, owners and modes checked, their units checked with
//! `systemd-analyze verify`, the installed controller started as its system user and the
//! installed agent enrolled to it and seen over the API; then upgraded to a rebuilt package
//! with a higher version (state, configuration and a local conffile edit kept), removed
//! (state kept) and purged (state gone, and said so).
//!
//! It changes the machine (packages, a system user, `/var/lib/unity-*`), so it refuses to run
//! where either package or state directory already exists, and purges what it installed
//! even when it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use unity_e2e::engines::{free_port, present};
use unity_e2e::process::{Process, run_to_end};

const AGENT_BIN: &str = env!("CARGO_BIN_EXE_e2e-agent");
const CONTROLLER_BIN: &str = env!("CARGO_BIN_EXE_e2e-controller");
const PACKAGES: [&str; 2] = ["unity-agent", "unity-controller"];

/// Output of a command that must succeed.
fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
        .unwrap_or(false)
}

/// Purges whatever this test installed, also when it panics.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "unity-agent", "unity-controller"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Builds both packages at `version` from this run's binaries into `out`.
fn build_debs(cargo_deb: &str, scratch: &Path, version: &str) -> Vec<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // cargo-deb takes binaries from the profile's directory under CARGO_TARGET_DIR: stage
    // this run's (the e2e bins are the real command lines, `unity_*::cli::main`).
    let target = scratch.join("target");
    for (profile, from, name) in [
        ("release-agent", AGENT_BIN, "unity-agent"),
        ("release", CONTROLLER_BIN, "unity-controller"),
    ] {
        std::fs::create_dir_all(target.join(profile)).unwrap();
        std::fs::copy(from, target.join(profile).join(name)).unwrap();
    }
    let out = scratch.join(format!("debs-{version}"));
    std::fs::create_dir_all(&out).unwrap();
    PACKAGES
        .iter()
        .map(|package| {
            let result = Command::new(cargo_deb)
                // --strip: the release profiles strip, this run's debug build does not.
                .args(["deb", "--no-build", "--strip", "--locked", "-p", package])
                .arg("--deb-version")
                .arg(version)
                .arg("--output")
                .arg(&out)
                .current_dir(workspace)
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .unwrap();
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&result.stdout),
                String::from_utf8_lossy(&result.stderr)
            );
            assert!(result.status.success(), "cargo deb -p {package}:\n{log}");
            let deb = out.join(format!("{package}_{version}_amd64.deb"));
            assert!(deb.is_file(), "no {}:\n{log}", deb.display());
            deb
        })
        .collect()
}

fn mode_owner(path: &str) -> (u32, String, String) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let name = |id: u32, db: &str| {
        sh("getent", &[db, &id.to_string()])
            .split(':')
            .next()
            .unwrap()
            .to_owned()
    };
    (
        meta.permissions().mode() & 0o7777,
        name(meta.uid(), "passwd"),
        name(meta.gid(), "group"),
    )
}

fn assert_mode(path: &str, mode: u32, owner: &str, group: &str) {
    assert_eq!(
        mode_owner(path),
        (mode, owner.to_owned(), group.to_owned()),
        "{path}: (mode, owner, group)"
    );
}

/// The installed controller, started as its system user on loopback ports.
struct Controller {
    process: Process,
    api: String,
    quic: String,
}

impl Controller {
    async fn start(scratch: &Path, run: usize) -> Self {
        let quic = format!("127.0.0.1:{}", free_port());
        let api = format!("127.0.0.1:{}", free_port());
        let process = Process::spawn(
            "installed controller",
            "/usr/bin/setpriv",
            &[
                "--reuid=unity-controller",
                "--regid=unity-controller",
                "--init-groups",
                "/usr/bin/unity-controller",
                "serve",
            ],
            &[
                ("UNITY_QUIC_LISTEN", quic.clone()),
                ("UNITY_API_LISTEN", api.clone()),
                ("HOME", "/var/lib/unity-controller".into()),
            ],
            &scratch.join(format!("controller-{run}.log")),
        );
        let controller = Self { process, api, quic };
        for _ in 0..600 {
            if unity_e2e::http_client()
                .get(format!("http://{}/readyz", controller.api))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return controller;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the installed controller never became ready:\n{}",
            controller.process.output()
        );
    }

    /// An administrative command of the installed binary, as the service user.
    fn admin(&self, args: &[&str]) -> String {
        let mut all = vec![
            "--reuid=unity-controller",
            "--regid=unity-controller",
            "--init-groups",
            "/usr/bin/unity-controller",
        ];
        all.extend_from_slice(args);
        run_to_end("/usr/bin/setpriv", &all, &[])
    }

    async fn hosts(&self, token: &str) -> serde_json::Value {
        unity_e2e::http_client()
            .get(format!("http://{}/api/v1/hosts", self.api))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_packages_install_run_upgrade_and_purge_like_real_software() {
    if !unity_agent::state::is_root() {
        assert!(
            std::env::var("CI").is_err(),
            "the package test installs packages: CI must run it as root"
        );
        eprintln!("skipped: installing packages needs root");
        return;
    }
    let Some(cargo_deb) = present(
        "cargo-deb (.ci/setup-packaging.sh installs it)",
        &["/opt/unity-ci/cargo-deb/bin/cargo-deb"],
    ) else {
        return;
    };
    let Some(lintian) = present("lintian", &["/usr/bin/lintian"]) else {
        return;
    };
    for package in PACKAGES {
        assert!(
            !installed(package),
            "{package} is installed on this machine already: not touching it"
        );
    }
    for dir in ["/var/lib/unity-agent", "/var/lib/unity-controller"] {
        assert!(
            !Path::new(dir).exists(),
            "{dir} exists on this machine: not touching it"
        );
    }
    let _cleanup = Cleanup;
    let scratch = tempfile::tempdir().unwrap();
    let scratch = scratch.path();

    // Built by the real cargo-deb, clean by the real lintian (overrides explained in
    // packaging/debian/lintian/).
    let debs = build_debs(&cargo_deb, scratch, "0.4.0-1");
    let mut lint = vec!["--fail-on", "error,warning", "--info", "--display-info"];
    let deb_paths: Vec<String> = debs.iter().map(|d| d.display().to_string()).collect();
    lint.extend(deb_paths.iter().map(String::as_str));
    println!("{}", sh(&lintian, &lint));

    // Install.
    let installed_log = sh("dpkg", &["-i", &deb_paths[1], &deb_paths[0]]);
    assert!(
        installed_log.contains("unity-agent: not enrolled yet"),
        "{installed_log}"
    );
    assert_mode("/usr/bin/unity-agent", 0o755, "root", "root");
    assert_mode("/usr/bin/unity-controller", 0o755, "root", "root");
    assert_mode("/etc/unity-agent/agent.toml", 0o600, "root", "root");
    assert_mode(
        "/etc/unity-controller/controller.toml",
        0o640,
        "root",
        "unity-controller",
    );
    assert_mode("/var/lib/unity-agent", 0o700, "root", "root");
    assert_mode(
        "/var/lib/unity-controller",
        0o700,
        "unity-controller",
        "unity-controller",
    );
    let user = sh("getent", &["passwd", "unity-controller"]);
    let fields: Vec<&str> = user.trim().split(':').collect();
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "a system user: {user}"
    );
    assert_eq!(fields[6], "/usr/sbin/nologin", "{user}");
    for (package, conffile) in [
        ("unity-agent", "/etc/unity-agent/agent.toml"),
        ("unity-controller", "/etc/unity-controller/controller.toml"),
    ] {
        let conffiles = sh("dpkg-query", &["-W", "-f=${Conffiles}", package]);
        assert!(conffiles.contains(conffile), "{package}: {conffiles}");
        for doc in [
            "copyright",
            "changelog.Debian.gz",
            "install.md",
            "operations.md",
        ] {
            let path = format!("/usr/share/doc/{package}/{doc}");
            assert!(Path::new(&path).is_file(), "{path}");
        }
    }
    // The units: where things are installed, valid for systemd, enabled.
    for unit in ["unity-agent.service", "unity-controller.service"] {
        let path = format!("/lib/systemd/system/{unit}");
        assert_mode(&path, 0o644, "root", "root");
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            if let Some(exec) = line.strip_prefix("ExecStart=") {
                let binary = exec.split_whitespace().next().unwrap();
                assert!(Path::new(binary).is_file(), "{unit}: {binary}");
            }
            if let Some(doc) = line.strip_prefix("Documentation=file://") {
                assert!(Path::new(doc).is_file(), "{unit}: {doc}");
            }
        }
        assert!(
            Path::new(&format!(
                "/etc/systemd/system/multi-user.target.wants/{unit}"
            ))
            .exists(),
            "{unit} is enabled"
        );
    }
    sh(
        "systemd-analyze",
        &[
            "verify",
            "/lib/systemd/system/unity-agent.service",
            "/lib/systemd/system/unity-controller.service",
        ],
    );

    // The installed binaries: the controller as its user, the agent enrolled to it.
    let mut controller = Controller::start(scratch, 1).await;
    controller.admin(&["tenant", "create", "homelab"]);
    let token = controller.admin(&["enroll-token", "create", "--tenant", "homelab", "--quiet"]);
    let reader = controller.admin(&["api-token", "create", "--tenant", "homelab"]);
    let fingerprint = controller.admin(&["ca", "fingerprint"]);
    let enrolled = run_to_end(
        "/usr/bin/unity-agent",
        &[
            "enroll",
            "--controller",
            &controller.quic,
            "--token",
            &token,
            "--ca-fingerprint",
            &fingerprint,
        ],
        &[],
    );
    assert!(
        enrolled.contains("state in /var/lib/unity-agent"),
        "{enrolled}"
    );
    let mut agent = Process::spawn(
        "installed agent",
        "/usr/bin/unity-agent",
        &[
            "run",
            "--report-interval-secs",
            "1",
            "--no-storage",
            "--no-inventory",
        ],
        &[],
        &scratch.join("agent.log"),
    );
    let mut seen = serde_json::Value::Null;
    for _ in 0..300 {
        seen = controller.hosts(&reader).await;
        if seen[0]["last_seen_at"].is_string() && seen[0]["os"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen[0]["os"].is_string(),
        "the installed agent's host never showed up: {seen}\n{}",
        agent.output()
    );
    let host_id = seen[0]["id"].as_str().unwrap().to_owned();
    agent.stop();
    controller.process.stop();

    // Upgrade to a rebuilt package with a higher version: state, configuration and a local
    // conffile edit survive.
    let edited = format!(
        "{}\n# edited on this host\n",
        std::fs::read_to_string("/etc/unity-agent/agent.toml").unwrap()
    );
    std::fs::write("/etc/unity-agent/agent.toml", &edited).unwrap();
    let newer = build_debs(&cargo_deb, scratch, "0.4.0-2");
    let newer: Vec<String> = newer.iter().map(|d| d.display().to_string()).collect();
    let upgraded = sh("dpkg", &["-i", &newer[1], &newer[0]]);
    assert!(!upgraded.contains("not enrolled yet"), "{upgraded}");
    for package in PACKAGES {
        assert_eq!(
            sh("dpkg-query", &["-W", "-f=${Version}", package]),
            "0.4.0-2"
        );
    }
    assert_eq!(
        std::fs::read_to_string("/etc/unity-agent/agent.toml").unwrap(),
        edited
    );
    assert_mode("/etc/unity-agent/agent.toml", 0o600, "root", "root");
    assert!(Path::new("/var/lib/unity-agent/enrollment.json").is_file());
    let mut controller = Controller::start(scratch, 2).await;
    let after = controller.hosts(&reader).await;
    assert_eq!(after[0]["id"], host_id.as_str(), "{after}");
    // SIGTERM, as `systemctl stop` sends: the controller stops its PostgreSQL.
    controller.process.stop();

    // Remove keeps the state; purge deletes it and says what it deletes.
    sh("dpkg", &["--remove", "unity-agent"]);
    assert!(!Path::new("/usr/bin/unity-agent").exists());
    assert!(Path::new("/var/lib/unity-agent/enrollment.json").is_file());
    let purged = sh("dpkg", &["--purge", "unity-agent", "unity-controller"]);
    assert!(
        purged.contains("removing /var/lib/unity-agent")
            && purged.contains("removing /var/lib/unity-controller"),
        "{purged}"
    );
    for gone in [
        "/var/lib/unity-agent",
        "/var/lib/unity-controller",
        "/etc/unity-agent",
        "/etc/unity-controller",
        "/usr/bin/unity-controller",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left after purge");
    }
}
