//! `package_upgrade`: operating-system upgrades with apt, optionally followed by a reboot.
//!
//! Steps, each journaled before it is taken (`JobContext::checkpoint`):
//! 1. refresh the package lists (`apt-get update`, waiting for the lock up to the job's
//!    lock timeout);
//! 2. compute the plan with a simulation and send it as a progress event — for
//!    `SecurityOnly`, the full upgrade's security part becomes an explicit package list;
//! 3. apply it non-interactively, existing configuration files kept, nothing removed, a held
//!    package never changed; a failure is classified (`failure`) into a precise result;
//! 4. with `reboot = if_required` and the distribution's reboot flag set: record the boot id,
//!    run the reboot command, and end the job only when the agent comes back on a *new* boot
//!    id (`recover`), or fail once the reboot timeout passes.

pub mod apt;
pub mod failure;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use unity_collect::packages::run::{PackageConfig, reboot_flag};
use unity_collect::packages::{Simulation, parse_simulation};
use unity_protocol::latest::{
    JobEnd, JobEventKind, PackageUpgradeParams, RebootPolicy, UpgradeScope,
};

use super::{Ending, JobContext};
use crate::error_chain;
use failure::classify;

/// How this host runs package jobs (`[packages]` in agent.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageJobOptions {
    pub apt: PackageConfig,
    /// What reboots the host (`systemctl reboot`).
    pub reboot_command: Vec<String>,
    /// Where the kernel says which boot this is; a new value after the reboot command is
    /// the proof that the host rebooted.
    pub boot_id_file: PathBuf,
}

impl Default for PackageJobOptions {
    fn default() -> Self {
        Self {
            apt: PackageConfig::default(),
            reboot_command: vec!["systemctl".into(), "reboot".into()],
            boot_id_file: "/proc/sys/kernel/random/boot_id".into(),
        }
    }
}

const APPLYING: &str = "applying";
const AWAITING_REBOOT: &str = "awaiting_reboot";
/// apt output kept in a result: the end, where the errors are.
const OUTPUT_TAIL: usize = 4096;

fn tail(text: &str) -> String {
    let mut start = text.len().saturating_sub(OUTPUT_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

fn failed(summary: impl Into<String>, detail: serde_json::Value) -> Ending {
    Ending::new(JobEnd::Failed, summary, detail)
}

fn read_boot_id(options: &PackageJobOptions) -> Option<String> {
    std::fs::read_to_string(&options.boot_id_file)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn plan_json(sim: &Simulation) -> serde_json::Value {
    serde_json::json!({
        "packages": sim.installs.iter().map(|p| serde_json::json!({
            "name": p.name,
            "from": p.current,
            "to": p.new,
            "security": p.security,
        })).collect::<Vec<_>>(),
        "security": sim.installs.iter().filter(|p| p.security).count(),
        "held_back": sim.held_back,
        "removals": sim.removals,
    })
}

/// Runs one apt step; a failure becomes the job's ending.
async fn step(
    options: &PackageJobOptions,
    what: &str,
    args: &[String],
    deadline: Instant,
) -> Result<apt::Output, Ending> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let output = apt::run(&options.apt, &options.apt.apt_get, args, remaining)
        .await
        .map_err(|error| {
            failed(
                format!("{what}: {}", error_chain(&error)),
                serde_json::json!({ "step": what }),
            )
        })?;
    if output.succeeded() {
        return Ok(output);
    }
    let failure = classify(&output.stdout, &output.stderr);
    Err(failed(
        format!("{what}: {}", failure.summary()),
        serde_json::json!({
            "step": what,
            "failure": failure,
            "exit_code": output.exit_code,
            "stdout_tail": tail(&output.stdout),
            "stderr_tail": tail(&output.stderr),
        }),
    ))
}

async fn simulate(
    options: &PackageJobOptions,
    scope: &UpgradeScope,
    deadline: Instant,
) -> Result<Simulation, Ending> {
    let output = step(options, "planning", &apt::simulate_args(scope), deadline).await?;
    parse_simulation(&output.stdout).map_err(|error| {
        failed(
            format!("planning: could not read apt's simulation: {error}"),
            serde_json::json!({ "step": "planning", "stdout_tail": tail(&output.stdout) }),
        )
    })
}

/// The plan, and the scope to apply it with (`SecurityOnly` turns into its package list).
async fn plan(
    options: &PackageJobOptions,
    params: &PackageUpgradeParams,
    deadline: Instant,
) -> Result<(Simulation, UpgradeScope), Ending> {
    let sim = simulate(options, &params.scope, deadline).await?;
    if params.scope != UpgradeScope::SecurityOnly {
        return Ok((sim, params.scope.clone()));
    }
    let security: Vec<String> = sim
        .installs
        .iter()
        .filter(|p| p.security && p.current.is_some())
        .map(|p| p.name.clone())
        .collect();
    if security.is_empty() {
        return Ok((
            Simulation {
                held_back: sim.held_back,
                ..Simulation::default()
            },
            UpgradeScope::Packages(Vec::new()),
        ));
    }
    let scope = UpgradeScope::Packages(security);
    let exact = simulate(options, &scope, deadline).await?;
    Ok((exact, scope))
}

pub async fn run(ctx: &mut JobContext, params: &PackageUpgradeParams) -> Ending {
    if let Err(detail) = params.validate() {
        return failed(
            format!("invalid parameters: {detail}"),
            serde_json::json!({}),
        );
    }
    let options = ctx.options().packages.clone();
    let deadline = Instant::now() + Duration::from_secs(u64::from(params.timeout_secs));
    ctx.event(
        JobEventKind::Progress,
        "refreshing the package lists",
        serde_json::json!({}),
    );
    if let Err(ending) = step(
        &options,
        "refreshing the package lists",
        &apt::update_args(params.lock_timeout_secs),
        deadline,
    )
    .await
    {
        return ending;
    }
    let (sim, scope) = match plan(&options, params, deadline).await {
        Ok(plan) => plan,
        Err(ending) => return ending,
    };
    let plan = plan_json(&sim);
    if sim.installs.is_empty() {
        return Ending::new(
            JobEnd::Succeeded,
            "nothing to upgrade",
            serde_json::json!({ "plan": plan, "upgraded": 0 }),
        );
    }
    let security = sim.installs.iter().filter(|p| p.security).count();
    ctx.event(
        JobEventKind::Progress,
        format!(
            "plan: {} package(s), {security} from security archives",
            sim.installs.len()
        ),
        plan.clone(),
    );
    if let Err(error) = ctx.checkpoint(APPLYING, plan.clone()) {
        return failed(
            format!(
                "not applied: could not journal the step: {}",
                error_chain(&error)
            ),
            serde_json::json!({ "plan": plan }),
        );
    }
    let applied = step(
        &options,
        "upgrading",
        &apt::apply_args(&scope, params.lock_timeout_secs),
        deadline,
    )
    .await;
    if let Err(mut ending) = applied {
        if let serde_json::Value::Object(detail) = &mut ending.detail {
            detail.insert("plan".into(), plan);
        }
        return ending;
    }
    let reboot = reboot_flag(&options.apt.reboot_required_file);
    let detail = serde_json::json!({
        "plan": plan,
        "upgraded": sim.installs.len(),
        "reboot_required": reboot.required,
        "reboot_required_by": reboot.by,
    });
    let summary = format!(
        "upgraded {} package(s) ({security} security)",
        sim.installs.len()
    );
    if reboot.required && params.reboot == RebootPolicy::IfRequired {
        return reboot_host(ctx, params, &options, summary, detail).await;
    }
    let summary = if reboot.required {
        format!("{summary}; the host needs a reboot (not allowed by this job)")
    } else {
        summary
    };
    Ending::new(JobEnd::Succeeded, summary, detail)
}

/// Records the boot id, reboots, and waits for the end of this process (the job ends in
/// `recover` after the reboot) or for the timeout.
async fn reboot_host(
    ctx: &mut JobContext,
    params: &PackageUpgradeParams,
    options: &PackageJobOptions,
    summary: String,
    detail: serde_json::Value,
) -> Ending {
    let Some(boot_id) = read_boot_id(options) else {
        return failed(
            format!(
                "{summary}; not rebooted: the boot id cannot be read, so a reboot could not be confirmed"
            ),
            detail,
        );
    };
    let deadline_ms =
        super::now_ms().saturating_add(i64::from(params.reboot_timeout_secs).saturating_mul(1000));
    let checkpoint = serde_json::json!({
        "boot_id": boot_id,
        "deadline_ms": deadline_ms,
        "summary": summary,
        "detail": detail,
    });
    if let Err(error) = ctx.checkpoint(AWAITING_REBOOT, checkpoint) {
        return failed(
            format!(
                "{summary}; not rebooted: could not journal the step: {}",
                error_chain(&error)
            ),
            detail,
        );
    }
    ctx.event(JobEventKind::Progress, "rebooting the host", detail.clone());
    let Some((program, args)) = options.reboot_command.split_first() else {
        return failed(
            format!("{summary}; no reboot command is configured"),
            detail,
        );
    };
    let ran = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output();
    match tokio::time::timeout(Duration::from_secs(60), ran).await {
        Ok(Ok(out)) if out.status.success() => {}
        Ok(Ok(out)) => {
            return failed(
                format!(
                    "{summary}; the reboot command failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                detail,
            );
        }
        Ok(Err(error)) => {
            return failed(
                format!("{summary}; the reboot command could not run: {error}"),
                detail,
            );
        }
        Err(_) => return failed(format!("{summary}; the reboot command hung"), detail),
    }
    wait_for_reboot(summary, detail, deadline_ms).await
}

/// The host should go down any moment; if this process is still here at the deadline, it
/// did not.
async fn wait_for_reboot(summary: String, detail: serde_json::Value, deadline_ms: i64) -> Ending {
    let wait = deadline_ms.saturating_sub(super::now_ms()).max(0);
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
    failed(
        format!("{summary}; the host did not reboot before the reboot timeout"),
        detail,
    )
}

/// After an agent restart mid-job.
pub async fn recover(ctx: &mut JobContext, _params: &PackageUpgradeParams) -> Ending {
    let options = ctx.options().packages.clone();
    let data = ctx.checkpoint_data().clone();
    match ctx.phase() {
        Some(AWAITING_REBOOT) => {
            let before = data["boot_id"].as_str().unwrap_or_default().to_owned();
            let summary = data["summary"].as_str().unwrap_or("upgraded").to_owned();
            let mut detail = data["detail"].clone();
            let now = read_boot_id(&options);
            if let serde_json::Value::Object(d) = &mut detail {
                d.insert("boot_id_before".into(), before.clone().into());
                d.insert("boot_id_after".into(), now.clone().into());
            }
            match now {
                Some(now) if now != before => {
                    let reboot = reboot_flag(&options.apt.reboot_required_file);
                    if let serde_json::Value::Object(d) = &mut detail {
                        d.insert("reboot_required_after".into(), reboot.required.into());
                    }
                    Ending::new(JobEnd::Succeeded, format!("{summary}; rebooted"), detail)
                }
                _ => {
                    let deadline_ms = data["deadline_ms"].as_i64().unwrap_or(0);
                    wait_for_reboot(summary, detail, deadline_ms).await
                }
            }
        }
        Some(APPLYING) => failed(
            "interrupted by an agent restart while apt was upgrading; check the host with \
             `dpkg --audit` (run `dpkg --configure -a` if it lists anything)",
            serde_json::json!({ "interrupted": true, "plan": data }),
        ),
        _ => failed(
            "interrupted by an agent restart before anything was upgraded",
            serde_json::json!({ "interrupted": true }),
        ),
    }
}
