//! `agent_update`: the agent replaces its own binary with a release the controller stores,
//! and a bad release never strands the host.
//!
//! Steps (`run`), each failure a precise result with nothing replaced:
//! 1. the release must be newer (or the job allows a downgrade), for this machine, and the
//!    installed binary's directory writable;
//! 2. fetch it over the session ([`fetch`]) into the state directory, checked against the
//!    signed size and SHA-256;
//! 3. run its `self-test` against this host's state: it must pass and report the signed
//!    version and architecture;
//! 4. wait for other running jobs, journal the trial ([`trial::STARTING`]) and `exec` the
//!    release in place of this process.
//!
//! The release then judges the trial when it recovers the job (`recover`, [`trial`]): on
//! its first `Welcome` it replaces the installed binary ([`install::promote`], keeping the
//! old one as `.previous`) and the job succeeds; if it cannot, the old binary runs again and
//! the job ends `rolled_back`.

pub mod fetch;
pub mod install;
pub mod self_test;
pub mod trial;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use unity_protocol::latest::{AgentUpdateParams, JobEnd, JobEventKind};

use super::journal::{Entry, Journal};
use super::{Ending, JobContext, now_ms};
use crate::error_chain;
use trial::{Trial, Verdict};

/// The installed binary, once a trial told this process where it is (a release on trial
/// runs from the state directory, so its own path is not the one to replace next time).
static INSTALLED: OnceLock<PathBuf> = OnceLock::new();

/// The binary systemd starts: this process's own, unless it is a promoted trial release.
fn installed_binary() -> std::io::Result<PathBuf> {
    match INSTALLED.get() {
        Some(path) => Ok(path.clone()),
        None => std::env::current_exe(),
    }
}

/// How long the self-test may take.
const SELF_TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for other running jobs before the restart (it would interrupt them).
const OTHER_JOBS_WAIT: Duration = Duration::from_secs(30 * 60);

fn failed(summary: impl Into<String>, detail: serde_json::Value) -> Ending {
    Ending::new(JobEnd::Failed, summary, detail)
}

fn versions(params: &AgentUpdateParams) -> serde_json::Value {
    serde_json::json!({
        "from": crate::version(),
        "to": params.version,
        "sha256": hex::encode(params.sha256),
        "size": params.size,
    })
}

pub async fn run(ctx: &mut JobContext, params: &AgentUpdateParams) -> Ending {
    if let Err(refusal) =
        super::verify::check_agent_update(params, crate::version(), std::env::consts::ARCH)
    {
        return Ending::refused(refusal.reason, refusal.detail);
    }
    let detail = versions(params);
    if params.version == crate::version() {
        return Ending::new(
            JobEnd::Succeeded,
            format!("agent {} runs already", params.version),
            detail,
        );
    }
    let entry = match installed_binary() {
        Ok(entry) => entry,
        Err(error) => {
            return failed(
                format!("cannot find the agent's own binary: {error}"),
                detail,
            );
        }
    };
    if let Err(error) = install::check_writable(&entry) {
        return failed(
            format!(
                "{}; nothing was fetched (under systemd, install the self-update drop-in: \
                 docs/operations.md)",
                error_chain(&error)
            ),
            detail,
        );
    }
    let dir = ctx.state_dir().join("releases");
    if let Err(error) = unity_pki::files::create_private_dir(&dir) {
        return failed(error_chain(&error), detail);
    }
    let release = dir.join(format!(
        "unity-agent-{}-{}",
        params.version,
        &hex::encode(params.sha256)[..12]
    ));
    ctx.event(
        JobEventKind::Progress,
        format!(
            "fetching agent {} ({} bytes) from the controller",
            params.version, params.size
        ),
        detail.clone(),
    );
    let fetch_started = std::time::Instant::now();
    if let Err(error) = fetch::download(ctx.fetcher(), params, &release).await {
        return failed(format!("fetching: {}", error_chain(&error)), detail);
    }
    let fetch_ms = u64::try_from(fetch_started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        bytes = params.size,
        fetch_ms,
        "release fetched and verified"
    );
    let mut fetched = detail.clone();
    if let serde_json::Value::Object(map) = &mut fetched {
        map.insert("fetch_ms".into(), fetch_ms.into());
    }
    ctx.event(
        JobEventKind::Progress,
        "release fetched; size and SHA-256 match the job",
        fetched,
    );
    if let Err(summary) = self_test(&release, params, ctx).await {
        let _ = std::fs::remove_file(&release);
        return failed(format!("self-test: {summary}"), detail);
    }
    if let Err(summary) = wait_for_other_jobs(ctx).await {
        let _ = std::fs::remove_file(&release);
        return failed(summary, detail);
    }
    let trial = Trial {
        release: release.clone(),
        entry,
        version: params.version.clone(),
        previous_version: crate::version().to_owned(),
        deadline_ms: now_ms()
            .saturating_add(i64::from(params.welcome_timeout_secs).saturating_mul(1000)),
        failure: None,
    };
    ctx.event(
        JobEventKind::Progress,
        format!(
            "self-test passed; starting agent {} on trial (it must reach the controller within \
             {} s, or agent {} takes over again)",
            params.version,
            params.welcome_timeout_secs,
            crate::version()
        ),
        detail.clone(),
    );
    let data = serde_json::to_value(&trial).unwrap_or_default();
    if let Err(error) = ctx.checkpoint(trial::STARTING, data) {
        let _ = std::fs::remove_file(&release);
        return failed(
            format!(
                "not started: could not journal the trial: {}",
                error_chain(&error)
            ),
            detail,
        );
    }
    // Every event so far is in the spool before this process is replaced.
    ctx.flush().await;
    tracing::warn!(version = %params.version, release = %release.display(),
        "replacing this process with the new agent, on trial");
    let error = exec(&release);
    failed(
        format!("could not start the new agent: {error}"),
        serde_json::json!({ "release": release, "detail": detail }),
    )
}

/// Replaces this process with `program`, same arguments and environment; returns only on
/// failure.
fn exec(program: &Path) -> std::io::Error {
    std::process::Command::new(program)
        .args(std::env::args_os().skip(1))
        .exec()
}

/// Runs the release's `self-test` against this host's state.
async fn self_test(
    release: &Path,
    params: &AgentUpdateParams,
    ctx: &JobContext,
) -> Result<(), String> {
    let mut command = tokio::process::Command::new(release);
    command
        .arg("--state-dir")
        .arg(ctx.state_dir())
        .arg("self-test")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(config) = &ctx.options().config_path {
        command.arg("--config").arg(config);
    }
    let output = match tokio::time::timeout(SELF_TEST_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => return Err(format!("the new binary cannot run: {error}")),
        Err(_) => return Err(format!("no answer within {SELF_TEST_TIMEOUT:?}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("{} ({})", stderr.trim(), output.status));
    }
    let report: self_test::SelfTestReport = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| format!("no report in its output: {}", stdout.trim()))?;
    if report.version != params.version || report.architecture != params.architecture {
        return Err(format!(
            "the binary is agent {} for {}, the job names {} for {}",
            report.version, report.architecture, params.version, params.architecture
        ));
    }
    Ok(())
}

/// The restart interrupts whatever else runs; wait for it to end first.
async fn wait_for_other_jobs(ctx: &JobContext) -> Result<(), String> {
    let started = std::time::Instant::now();
    loop {
        let others = ctx.other_running_jobs();
        if others.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= OTHER_JOBS_WAIT {
            return Err(format!(
                "other jobs still run after {} min ({}); not restarting under them",
                OTHER_JOBS_WAIT.as_secs() / 60,
                others.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// After an agent start with the job unfinished: judge the trial.
pub async fn recover(ctx: &mut JobContext, params: &AgentUpdateParams) -> Ending {
    let exe = std::env::current_exe().unwrap_or_default();
    let detail = |trial: &Trial| {
        serde_json::json!({
            "from": trial.previous_version,
            "to": trial.version,
            "sha256": hex::encode(params.sha256),
            "installed": trial.entry,
            "previous_kept": install::previous_path(&trial.entry),
        })
    };
    match trial::judge(ctx.phase(), ctx.checkpoint_data(), crate::version(), &exe) {
        Verdict::NotStarted => failed(
            "interrupted by an agent restart before the new agent was started; nothing was \
             replaced",
            serde_json::json!({ "interrupted": true }),
        ),
        Verdict::RolledBack(trial, reason) => {
            let _ = std::fs::remove_file(&trial.release);
            Ending::new(JobEnd::RolledBack, reason, detail(&trial))
        }
        Verdict::Promoted(trial) => {
            let _ = INSTALLED.set(trial.entry.clone());
            updated(&trial, detail(&trial))
        }
        Verdict::OnTrial(trial) => on_trial(ctx, trial, detail).await,
    }
}

/// This process is the release on trial: promote it on the first `Welcome`, or give the
/// host back to the previous binary at the deadline.
async fn on_trial(
    ctx: &mut JobContext,
    trial: Trial,
    detail: impl Fn(&Trial) -> serde_json::Value,
) -> Ending {
    let _ = INSTALLED.set(trial.entry.clone());
    tracing::info!(version = %trial.version, deadline_ms = trial.deadline_ms,
        "running on trial; waiting for the controller's Welcome");
    // Whoever settles the trial first wins: the promotion here, or the watchdog thread,
    // which hands the host back even if this runtime hangs.
    let settled = Arc::new(Mutex::new(false));
    let (journal, entry) = ctx.detached();
    spawn_watchdog(
        settled.clone(),
        journal.clone(),
        entry.clone(),
        trial.clone(),
    );
    let wait = Duration::from_millis(
        u64::try_from(trial.deadline_ms.saturating_sub(now_ms())).unwrap_or(0),
    );
    let welcomed = tokio::time::timeout(wait, ctx.welcomed()).await.is_ok();
    // Claim the trial (the watchdog then stands down), unless the watchdog claimed it.
    let claimed = {
        let mut guard = settled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !std::mem::replace(&mut *guard, true)
    };
    if !claimed {
        // The watchdog is replacing this process.
        return std::future::pending().await;
    }
    if !welcomed {
        give_up(
            &journal,
            entry,
            &trial,
            format!(
                "agent {} did not reach the controller within its welcome timeout; agent {} \
                 runs again",
                trial.version, trial.previous_version
            ),
        );
    }
    if let Err(error) = install::promote(&trial.release, &trial.entry) {
        give_up(
            &journal,
            entry,
            &trial,
            format!(
                "agent {} reached the controller but could not be installed: {}",
                trial.version,
                error_chain(&error)
            ),
        );
    }
    if let Err(error) = ctx.checkpoint(
        trial::PROMOTED,
        serde_json::to_value(&trial).unwrap_or_default(),
    ) {
        tracing::warn!(error = %error_chain(&error), "could not journal the promotion");
    }
    tracing::info!(from = %trial.previous_version, to = %trial.version,
        installed = %trial.entry.display(), "agent updated");
    updated(&trial, detail(&trial))
}

/// The success of a promoted trial; the release's copy in the state directory goes (the
/// running process keeps its inode).
fn updated(trial: &Trial, detail: serde_json::Value) -> Ending {
    let _ = std::fs::remove_file(&trial.release);
    Ending::new(
        JobEnd::Succeeded,
        format!(
            "agent updated from {} to {}",
            trial.previous_version, trial.version
        ),
        detail,
    )
}

fn spawn_watchdog(settled: Arc<Mutex<bool>>, journal: Journal, entry: Entry, trial: Trial) {
    let spawned = std::thread::Builder::new()
        .name("trial-watchdog".into())
        .spawn(move || {
            let wait = trial.deadline_ms.saturating_sub(now_ms()).max(0);
            // A second past the async deadline: normally the runtime settles it first.
            std::thread::sleep(Duration::from_millis(
                u64::try_from(wait).unwrap_or(0) + 1000,
            ));
            let mut guard = settled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *guard {
                return;
            }
            *guard = true;
            give_up(
                &journal,
                entry,
                &trial,
                format!(
                    "agent {} stopped responding during its trial; agent {} runs again",
                    trial.version, trial.previous_version
                ),
            );
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the trial watchdog; relying on the runtime");
    }
}

/// Records why the trial failed and hands the process to the installed (previous) binary.
/// Never returns: if that binary cannot be started, the process exits for the service
/// manager to start it.
fn give_up(journal: &Journal, mut entry: Entry, trial: &Trial, reason: String) -> ! {
    tracing::error!(%reason, "agent trial failed; starting the previous agent again");
    let failed = Trial {
        failure: Some(reason),
        ..trial.clone()
    };
    entry.phase = Some(trial::FAILED.to_owned());
    entry.checkpoint = serde_json::to_value(&failed).unwrap_or_default();
    if let Err(error) = journal.save(&entry) {
        // The previous binary then finds the trial unfinished, which it also rolls back.
        tracing::error!(error = %error_chain(&error), "could not journal the failed trial");
    }
    let error = exec(&trial.entry);
    tracing::error!(%error, entry = %trial.entry.display(),
        "could not start the previous agent; exiting so the service manager starts it");
    std::process::exit(75);
}
