//! Real container engines and a real registry for job tests: Debian's `dockerd`, the Podman
//! API service and `docker-registry`, each started on private sockets, state directories and
//! ports (nothing touches the machine's own engines), and test images built `FROM scratch`
//! with Debian's `busybox-static` — no image is ever pulled from the internet.
//!
//! `.ci/setup-containers.sh` installs the packages. Outside CI a missing package makes
//! [`present`] return `None` (the test skips with a message); with `CI=true` it panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first of `paths` that exists; `None` (a skip) outside CI, a failure in CI.
pub fn present(what: &str, paths: &[&str]) -> Option<String> {
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

/// Whether any of `paths` exists (for tools that measure only when they can).
pub fn present_quietly(paths: &[&str]) -> bool {
    paths.iter().any(|p| Path::new(p).is_file())
}

/// Runs a command, panicking with its output when it fails.
pub fn run(program: &str, args: &[&str], env: &[(&str, &Path)]) -> String {
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

pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
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

/// Unix socket paths must stay under ~108 bytes: keep the directory short.
pub fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("uj-")
        .tempdir_in("/tmp")
        .unwrap()
}

/// What a test image does, and the marker file that makes each build a different image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// `httpd` on 8080 with a HEALTHCHECK that passes once it is up.
    Healthy,
    /// `httpd` on 8080, HEALTHCHECK that never passes.
    NeverHealthy,
    /// Exits with code 3 after a second.
    Crashes,
    /// Its entrypoint does not exist: the engine cannot start it.
    CannotStart,
    /// `httpd` on 8080 and no HEALTHCHECK: proven by a TCP connect.
    NoHealthcheck,
    /// The machine's real `redis-server` (with its shared libraries) on 6379, no HEALTHCHECK:
    /// proven by the Redis protocol probe.
    Redis,
}

/// The shared libraries `binary` needs, as `ldd` lists them (absolute paths).
fn shared_libraries(binary: &str) -> Vec<String> {
    run("ldd", &[binary], &[])
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect()
}

/// Writes a Dockerfile context for `behaviour` under `dir/<marker>` and returns its path.
pub fn image_context(dir: &Path, busybox: &str, behaviour: Behaviour, marker: &str) -> PathBuf {
    let ctx = dir.join(format!("ctx-{marker}"));
    let root = ctx.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "sleep", "true", "false", "cat", "test", "httpd", "touch", "mkdir", "echo",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("marker"), marker).unwrap();
    std::fs::write(root.join("www/index.html"), marker).unwrap();
    if behaviour == Behaviour::Redis {
        let redis = std::fs::canonicalize("/usr/bin/redis-server").unwrap();
        let redis = redis.to_str().unwrap();
        std::fs::copy(redis, root.join("redis-server")).unwrap();
        for lib in shared_libraries(redis) {
            let target = root.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&lib, &target).unwrap();
        }
    }
    run(
        "tar",
        &[
            "-C",
            root.to_str().unwrap(),
            "-cf",
            ctx.join("rootfs.tar").to_str().unwrap(),
            ".",
        ],
        &[],
    );
    std::fs::remove_dir_all(&root).unwrap();
    let serve = r#"CMD ["/bin/sh", "-c", "echo serving $(cat /marker); touch /tmp/up; exec httpd -f -p 8080 -h /www"]"#;
    let body = match behaviour {
        Behaviour::Healthy => format!(
            "HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD [\"/bin/test\", \"-f\", \"/tmp/up\"]\n{serve}\n"
        ),
        Behaviour::NeverHealthy => format!(
            "HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD [\"/bin/sh\", \"-c\", \"echo not ready; exit 1\"]\n{serve}\n"
        ),
        Behaviour::Crashes => {
            "CMD [\"/bin/sh\", \"-c\", \"echo crashing; sleep 1; exit 3\"]\n".to_owned()
        }
        Behaviour::CannotStart => "ENTRYPOINT [\"/bin/does-not-exist\"]\n".to_owned(),
        Behaviour::NoHealthcheck => format!("{serve}\n"),
        Behaviour::Redis => "EXPOSE 6379/tcp\nCMD [\"/redis-server\", \"--port\", \"6379\", \"--save\", \"\", \"--protected-mode\", \"no\"]\n".to_owned(),
    };
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nADD rootfs.tar /\nENV APP_MODE=prod\nLABEL org.opencontainers.image.title=unity-test\nEXPOSE 8080/tcp\n{body}"),
    )
    .unwrap();
    ctx
}

#[derive(Debug)]
pub struct Dockerd {
    pub dir: tempfile::TempDir,
    child: Child,
    pub socket: PathBuf,
    cli: String,
}

impl Dockerd {
    pub fn start() -> Option<Self> {
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

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn docker(&self, args: &[&str]) -> String {
        let host = self.host();
        let mut all = vec!["-H", host.as_str()];
        all.extend_from_slice(args);
        // A private client config (no credential helpers of the machine); the legacy builder
        // (BuildKit is not packaged here) builds FROM scratch without a network.
        let mut cmd = Command::new(&self.cli);
        cmd.args(&all)
            .stdin(Stdio::null())
            .env("DOCKER_CONFIG", self.dir.path())
            .env("DOCKER_BUILDKIT", "0");
        let out = cmd.output().unwrap_or_else(|e| panic!("docker: {e}"));
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `docker inspect -f FORMAT TARGET`.
    pub fn inspect(&self, format: &str, target: &str) -> String {
        self.docker(&["inspect", "-f", format, target])
    }

    /// Builds `behaviour` as `tag`, pushes it, and returns its `repo@sha256:…` digest ref.
    pub fn build_and_push(
        &self,
        busybox: &str,
        behaviour: Behaviour,
        marker: &str,
        tag: &str,
    ) -> String {
        let ctx = image_context(self.dir.path(), busybox, behaviour, marker);
        self.docker(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
        self.docker(&["push", tag]);
        let digests = self.inspect("{{json .RepoDigests}}", tag);
        let digests: Vec<String> = serde_json::from_str(&digests).unwrap();
        let repo = tag.rsplit_once(':').map_or(tag, |(repo, _)| repo);
        digests
            .into_iter()
            .find(|d| d.starts_with(repo))
            .unwrap_or_else(|| panic!("no digest for {tag}"))
    }

    pub fn config(&self) -> unity_collect::containers::ContainerConfig {
        unity_collect::containers::ContainerConfig {
            honour_docker_host: false,
            endpoints: vec![self.host()],
            api_timeout: Duration::from_secs(10),
            ..unity_collect::containers::ContainerConfig::default()
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
        // Networks are host bridges: left behind, they would use up dockerd's address pools
        // for every later engine on this machine.
        let _ = Command::new(&self.cli)
            .args(["-H", &host, "network", "prune", "-f"])
            .output();
        terminate(&mut self.child);
        unmount_under(self.dir.path());
    }
}

/// Debian's `docker-registry` (distribution v2) on a loopback port.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    pub addr: String,
}

impl Registry {
    pub fn start(dir: &Path) -> Option<Self> {
        let program = present("docker-registry", &["/usr/bin/docker-registry"])?;
        let port = free_port();
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A "registry" that accepts connections and never answers: pulls from it must time out.
#[derive(Debug)]
pub struct SilentRegistry {
    pub addr: String,
    _thread: std::thread::JoinHandle<()>,
}

impl SilentRegistry {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Self {
            addr,
            _thread: thread,
        }
    }
}

/// The Podman API service (`podman system service`) with private storage, runc, cgroupfs,
/// no network namespace (none can be made here) and, when given, `registry` as an insecure
/// registry.
#[derive(Debug)]
pub struct Podman {
    pub dir: tempfile::TempDir,
    child: Child,
    pub socket: PathBuf,
    program: String,
}

impl Podman {
    pub fn start(registry: Option<&str>) -> Option<Self> {
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
        let registries = registry
            .map(|r| format!("[[registry]]\nlocation = \"{r}\"\ninsecure = true\n"))
            .unwrap_or_default();
        std::fs::write(d.join("registries.conf"), registries).unwrap();
        let socket = d.join("p.sock");
        let child = Command::new(&program)
            .args(Self::storage_args(d))
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .envs(Self::env(d))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("podman.log")).unwrap())
            .stderr(std::fs::File::create(d.join("podman.err")).unwrap())
            .spawn()
            .unwrap();
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

    fn env(d: &Path) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("CONTAINERS_CONF", d.join("containers.conf")),
            ("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf")),
        ]
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

    pub fn podman(&self, args: &[&str]) -> String {
        let storage = Self::storage_args(self.dir.path());
        let mut all: Vec<&str> = storage.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let env = Self::env(self.dir.path());
        let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        run(&self.program, &all, &env)
    }

    /// Like [`Self::podman`] but tolerating a non-zero exit (health checks that fail).
    pub fn podman_status(&self, args: &[&str]) -> bool {
        Command::new(&self.program)
            .args(Self::storage_args(self.dir.path()))
            .args(args)
            .envs(Self::env(self.dir.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn config(&self) -> unity_collect::containers::ContainerConfig {
        unity_collect::containers::ContainerConfig {
            honour_docker_host: false,
            endpoints: vec![format!("unix://{}", self.socket.display())],
            api_timeout: Duration::from_secs(20),
            ..unity_collect::containers::ContainerConfig::default()
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let storage = Self::storage_args(self.dir.path());
        let _ = Command::new(&self.program)
            .args(&storage)
            .args(["rm", "-f", "-a", "-t", "0"])
            .envs(Self::env(self.dir.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        terminate(&mut self.child);
        unmount_under(self.dir.path());
    }
}
