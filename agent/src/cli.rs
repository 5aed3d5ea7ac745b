//! `unity-agent`: enroll this host, run the agent service, or inspect what it would report.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::sync::Arc;

use crate::config::AgentConfig;
use crate::enroll::{EnrollOptions, enroll};
use crate::jobs::JobOptions;
use crate::parse;
use crate::reports::inventory::{HostInventory, InventoryCollector};
use crate::reports::storage::{StorageCollector, StorageSources};
use crate::run::{RunOptions, run};
use crate::state::{AgentState, default_state_dir};
use unity_collect::databases::DiscoveryOptions;
use unity_collect::runner::SystemRunner;
use unity_pki::Fingerprint;

#[derive(Debug, Parser)]
#[command(name = "unity-agent", version, about = "Unity Fleet agent")]
struct Cli {
    /// Where the host key, certificates and enrollment live.
    #[arg(long, global = true, env = "UNITY_AGENT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Config file (default: /etc/unity-agent/agent.toml if it exists); must be 0600 when it
    /// holds registry credentials.
    #[arg(long, global = true, env = "UNITY_AGENT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll this host with a controller using a single-use token.
    Enroll {
        /// The controller's QUIC address, HOST:PORT.
        #[arg(long)]
        controller: String,
        /// Enrollment token from `unity-controller enroll-token create`.
        #[arg(long, env = "UNITY_ENROLL_TOKEN")]
        token: String,
        /// SHA-256 fingerprint of the controller's CA (`unity-controller ca fingerprint`).
        #[arg(long)]
        ca_fingerprint: Fingerprint,
        /// Name to show for this host (default: the system hostname).
        #[arg(long)]
        hostname: Option<String>,
        /// Replace an existing enrollment.
        #[arg(long)]
        force: bool,
    },
    /// Run the agent (the systemd service's command).
    Run {
        /// Report interval override in seconds (default: what the controller asks for).
        #[arg(long, env = "UNITY_AGENT_REPORT_INTERVAL_SECS")]
        report_interval_secs: Option<u64>,
        /// How often disks (SMART), ZFS pools and md arrays are read, in seconds.
        #[arg(long, env = "UNITY_AGENT_STORAGE_INTERVAL_SECS", default_value_t = 300)]
        storage_interval_secs: u64,
        /// Do not read or report storage health.
        #[arg(long, env = "UNITY_AGENT_NO_STORAGE")]
        no_storage: bool,
        /// How often containers and databases are inventoried, in seconds.
        #[arg(
            long,
            env = "UNITY_AGENT_INVENTORY_INTERVAL_SECS",
            default_value_t = 300
        )]
        inventory_interval_secs: u64,
        /// Do not inventory containers and databases.
        #[arg(long, env = "UNITY_AGENT_NO_INVENTORY")]
        no_inventory: bool,
    },
    /// Say whether this host is enrolled, with which controller, until when its certificate
    /// is valid, and what waits in its spool and job journal. Exits 1 when not enrolled.
    Status,
    /// Check that this binary can run this host's agent — config, enrollment, key, TLS
    /// configuration, job journal — and print its version and architecture as JSON. Run by
    /// `agent_update` on a new release before it is started; exits 1 on any failure.
    SelfTest,
    /// Print this host's facts as JSON, as the agent would report them.
    Facts,
    /// Print the pending package updates and the reboot flag as JSON, as the agent would
    /// report them (an apt simulation: nothing is changed or locked).
    Packages,
    /// Print what the agent would report about storage on this host, as JSON.
    Storage,
    /// Print what the agent would report about containers and databases, as JSON.
    Inventory,
    /// Parse a saved tool output and print the normalized record (with verdict) as JSON.
    /// Exits non-zero with the parse error when the file cannot be read. Attach the output
    /// to bug reports.
    Parse {
        #[arg(value_enum)]
        format: ParseFormat,
        /// The file holding the tool's output (`-` for standard input).
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ParseFormat {
    /// `smartctl -x` (or -a, -H, -A, -i) text
    Smartctl,
    /// `smartctl -j -x` JSON
    SmartctlJson,
    /// `zpool status` text or `zpool status -j` JSON
    ZpoolStatus,
    /// `zpool list -H[p]` text or `zpool list -j` JSON
    ZpoolList,
    /// `/proc/mdstat`
    Mdstat,
    /// `mdadm --detail` text
    MdadmDetail,
}

/// The command line: parses arguments, runs the command, prints the error chain (not a
/// backtrace) and exits non-zero on failure — operators read these. `main.rs` is this call,
/// and so are the end-to-end tests' process wrappers (`tests/src/bin/`).
pub fn main() -> std::process::ExitCode {
    main_as(crate::VERSION)
}

/// [`main`] for a binary that reports `version` instead of the crate's (`crate::version`).
pub fn main_as(version: &'static str) -> std::process::ExitCode {
    crate::set_version(version);
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    use clap::{CommandFactory, FromArgMatches};
    // The version `--version` prints is the one this binary reports (`main_as`).
    let matches = Cli::command().version(crate::version()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    unity_process::init_logging("info,quinn=warn");
    // One thread is plenty for an agent that mostly sleeps, and keeps its footprint small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let state_dir = cli.state_dir.unwrap_or_else(default_state_dir);
    let config = AgentConfig::load(cli.config.as_deref())?;
    let container_config = config.container_config()?;
    let job_options = JobOptions {
        allow: config.jobs.allow.clone(),
        clock_skew: Duration::from_secs(u64::from(config.jobs.clock_skew_secs)),
        allow_repository_change: config.jobs.allow_repository_change,
        pull_timeout: Duration::from_secs(u64::from(config.jobs.pull_timeout_secs)),
        containers: container_config.clone(),
        packages: config.packages.job_options(),
        config_path: cli.config.clone(),
    };
    let spool_options = config.spool.options();
    let host_inventory = move || {
        HostInventory::new(
            container_config.clone(),
            SystemRunner,
            PathBuf::from("/proc"),
            DiscoveryOptions::default(),
        )
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Enroll {
                controller,
                token,
                ca_fingerprint,
                hostname,
                force,
            } => {
                let hostname = hostname.unwrap_or_else(|| crate::reports::host::collect().hostname);
                // The enrollment being replaced, to retire its host record afterwards.
                let previous = (force && AgentState::is_enrolled(&state_dir))
                    .then(|| AgentState::load(&state_dir).ok())
                    .flatten();
                let enrollment = enroll(&EnrollOptions {
                    controller,
                    token,
                    ca_fingerprint,
                    state_dir: state_dir.clone(),
                    hostname,
                    force,
                })
                .await?;
                println!(
                    "enrolled: tenant {} host {} (state in {})",
                    enrollment.tenant_id,
                    enrollment.host_id,
                    state_dir.display()
                );
                if state_dir == std::path::Path::new("/var/lib/unity-agent") {
                    // The packaged unit waits for this enrollment (ConditionPathExists).
                    println!(
                        "now run: systemctl restart unity-agent \
                         (starts it with this enrollment; from now on it also starts at boot)"
                    );
                }
                if let Some(previous) = previous {
                    let old = previous.enrollment.host_id;
                    match crate::enroll::retire(&previous).await {
                        Ok(()) => println!("retired the previous enrollment (host {old})"),
                        Err(error) => eprintln!(
                            "warning: could not retire the previous enrollment (host {old}): {}; \
                             revoke it on the controller with `unity-controller host revoke`",
                            crate::error_chain(&error)
                        ),
                    }
                }
                Ok(())
            }
            Command::Run {
                report_interval_secs,
                storage_interval_secs,
                no_storage,
                inventory_interval_secs,
                no_inventory,
            } => {
                let state = AgentState::load(&state_dir)?;
                let storage: Option<Arc<dyn StorageCollector>> = if no_storage {
                    None
                } else {
                    Some(Arc::new(StorageSources::system(SystemRunner)))
                };
                let inventory: Option<Arc<dyn InventoryCollector>> = if no_inventory {
                    None
                } else {
                    Some(Arc::new(host_inventory()))
                };
                let options = RunOptions {
                    report_interval: report_interval_secs.map(Duration::from_secs),
                    storage_interval: Duration::from_secs(storage_interval_secs.max(10)),
                    storage,
                    inventory_interval: Duration::from_secs(inventory_interval_secs.max(10)),
                    inventory,
                    packages: config.packages.report.then(|| config.packages.apt()),
                    packages_interval: Duration::from_secs(
                        u64::from(config.packages.interval_hours) * 3600,
                    ),
                    jobs: job_options,
                    spool: spool_options,
                    labels: config.labels(),
                    ..RunOptions::default()
                };
                run(&state, &options, unity_process::shutdown_signal())
                    .await
                    .context("running the agent")?;
                tracing::info!("agent stopped");
                Ok(())
            }
            Command::Status => status(&state_dir),
            Command::SelfTest => {
                let report = crate::jobs::agent_update::self_test::run(&state_dir)?;
                println!("{}", serde_json::to_string(&report)?);
                Ok(())
            }
            Command::Packages => {
                let report = crate::reports::packages::collect(&config.packages.apt()).await;
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(())
            }
            Command::Facts => {
                let facts = crate::reports::host::collect();
                println!("{}", serde_json::to_string_pretty(&facts)?);
                Ok(())
            }
            Command::Storage => {
                let report = StorageSources::system(SystemRunner).collect().await;
                println!("{}", serde_json::to_string_pretty(&report)?);
                Ok(())
            }
            Command::Inventory => {
                let (containers, databases) = host_inventory().collect().await;
                let both = serde_json::json!({ "containers": containers, "databases": databases });
                println!("{}", serde_json::to_string_pretty(&both)?);
                Ok(())
            }
            Command::Parse { format, file } => {
                let text = if file.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin()).context("reading standard input")?
                } else {
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?
                };
                let value = parse::parse(format.into(), &text)
                    .with_context(|| format!("parsing {}", file.display()))?;
                println!("{}", serde_json::to_string_pretty(&value)?);
                Ok(())
            }
        }
    })
}

impl From<ParseFormat> for parse::Format {
    fn from(format: ParseFormat) -> Self {
        match format {
            ParseFormat::Smartctl => parse::Format::Smartctl,
            ParseFormat::SmartctlJson => parse::Format::SmartctlJson,
            ParseFormat::ZpoolStatus => parse::Format::ZpoolStatus,
            ParseFormat::ZpoolList => parse::Format::ZpoolList,
            ParseFormat::Mdstat => parse::Format::Mdstat,
            ParseFormat::MdadmDetail => parse::Format::MdadmDetail,
        }
    }
}

fn rfc3339_ms(ms: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `unity-agent status`.
fn status(state_dir: &std::path::Path) -> Result<()> {
    let state = match AgentState::load(state_dir) {
        Ok(state) => state,
        Err(error) => anyhow::bail!("not enrolled ({})", crate::error_chain(&error)),
    };
    let e = &state.enrollment;
    println!("enrolled:     tenant {} host {}", e.tenant_id, e.host_id);
    println!("controller:   {}", e.controller);
    println!("state:        {}", state.dir.display());
    match unity_pki::rotation::Validity::of_der(&state.certificate) {
        Ok(v) => {
            let now = time::OffsetDateTime::now_utc();
            let due = if v.renewal_due(now) {
                " (renewal due now)"
            } else {
                ""
            };
            let expired = if now >= v.not_after {
                " — EXPIRED: re-enroll this host"
            } else {
                ""
            };
            println!("certificate:  valid until {}{due}{expired}", v.not_after);
        }
        Err(error) => println!("certificate:  unreadable ({error})"),
    }
    let spool = crate::spool::summary(&state.dir.join("spool"));
    println!(
        "spool:        {} report(s) waiting, {} bytes{}",
        spool.reports,
        spool.bytes,
        if spool.corrupt > 0 {
            format!(", {} damaged file(s) set aside", spool.corrupt)
        } else {
            String::new()
        }
    );
    match spool.last_delivered_ms {
        Some(ms) => println!("last report:  delivered {}", rfc3339_ms(ms)),
        None => println!("last report:  none delivered yet"),
    }
    let journal = crate::jobs::journal::Journal::open(&state.dir.join("jobs"))?;
    let entries: Vec<_> = journal.all().into_iter().flatten().collect();
    let running = entries.iter().filter(|j| !j.is_finished()).count();
    let undelivered = entries
        .iter()
        .filter(|j| j.is_finished() && !j.receipt_acked)
        .count();
    println!("jobs:         {running} in progress, {undelivered} result(s) not yet delivered");
    Ok(())
}
