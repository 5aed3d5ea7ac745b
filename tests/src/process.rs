//! Controller and agent **processes** (the real command lines, see `src/bin/e2e_*.rs`), for
//! tests that must kill one with SIGKILL or restart it — things a task in the test's own
//! process cannot show.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The version `e2e-agent-next` reports: newer than this build's whatever it is (its minor
/// with a 9 appended: 0.4.0 → 0.49.0), so a version bump never turns it into a downgrade.
pub const NEXT_AGENT_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION_MAJOR"),
    ".",
    env!("CARGO_PKG_VERSION_MINOR"),
    "9.0"
);
/// The version `e2e-agent-crashing` reports (newer again).
pub const CRASHING_AGENT_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION_MAJOR"),
    ".",
    env!("CARGO_PKG_VERSION_MINOR"),
    "9.1"
);

/// A command kept running the way systemd's `Restart=always` keeps a service: started again
/// (after `RestartSec`) whenever it exits, until dropped. For tests that need the service
/// manager's part on a machine without systemd — an agent whose new release crashed is
/// brought back by the restart. Each start appends to the same log.
#[derive(Debug)]
pub struct Supervised {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    starts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub log: PathBuf,
}

impl Supervised {
    pub fn spawn(program: &Path, args: &[String], env: &[(&str, String)], log: &Path) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let starts = std::sync::Arc::new(AtomicUsize::new(0));
        let (program, args, log_path) = (program.to_owned(), args.to_vec(), log.to_owned());
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let thread = {
            let (stop, starts, log_path) = (stop.clone(), starts.clone(), log_path.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let out = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log_path)
                        .unwrap();
                    let err = out.try_clone().unwrap();
                    let mut command = Command::new(&program);
                    command
                        .args(&args)
                        .stdin(Stdio::null())
                        .stdout(out)
                        .stderr(err)
                        .env("UNITY_LOG", "info,unity_agent=debug,quinn=warn");
                    for (k, v) in &env {
                        command.env(k, v);
                    }
                    let mut child = command.spawn().unwrap();
                    starts.fetch_add(1, Ordering::SeqCst);
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            let _ = Command::new("kill").arg(child.id().to_string()).status();
                            for _ in 0..50 {
                                if let Ok(Some(_)) = child.try_wait() {
                                    return;
                                }
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            let _ = child.kill();
                            let _ = child.wait();
                            return;
                        }
                        if let Ok(Some(_)) = child.try_wait() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    // RestartSec, shortened.
                    std::thread::sleep(Duration::from_millis(300));
                }
            })
        };
        Self {
            stop,
            starts,
            thread: Some(thread),
            log: log_path,
        }
    }

    /// How many times the command was started.
    pub fn starts(&self) -> usize {
        self.starts.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A child process whose output goes to a log file; killed when dropped.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Starts `program args` with `env`, logging to `log`.
    pub fn spawn(
        name: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, String)],
        log: &Path,
    ) -> Self {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env(
                "UNITY_LOG",
                "info,unity_agent=debug,unity_controller=debug,quinn=warn,sqlx=warn",
            );
        for (k, v) in env {
            command.env(k, v);
        }
        Self {
            name: name.to_owned(),
            child: command.spawn().unwrap_or_else(|e| panic!("{program}: {e}")),
            log: log.to_owned(),
        }
    }

    /// SIGKILL: no clean-up runs, exactly like a crash or the OOM killer.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (what `systemctl stop` does).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill_9();
    }

    /// The log so far (for assertion messages).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Runs a command line to completion; panics with its output when it fails.
pub fn run_to_end(program: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
