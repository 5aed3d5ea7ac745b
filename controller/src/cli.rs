//! `unity-controller`: the service (`serve`) and the operator's administrative commands.

use std::path::PathBuf;
use std::time::Duration;

use crate::app::{self, ControllerOptions};
use crate::auth::Scope;
use crate::config::Config;
use crate::database::{Access, Database};
use crate::jobs::state::JobState;
use crate::jobs::{Cancelled, JobKeys, JobRequest, cancel, create_job};
use crate::store::jobs::{self as job_store, JobFilter};
use crate::store::page::Page;
use crate::store::users::Role;
use crate::store::{Store, hosts};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(name = "unity-controller", version, about = "Unity Fleet controller")]
struct Cli {
    /// Config file (default: /etc/unity-controller/controller.toml if it exists).
    #[arg(long, global = true, env = "UNITY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller: QUIC link for agents and the HTTP API.
    Serve,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API tokens.
    #[command(subcommand, name = "api-token")]
    ApiToken(ApiTokenCommand),
    /// Tokens of the controller's operator: create and list tenants over the API.
    #[command(subcommand, name = "operator-token")]
    OperatorToken(OperatorTokenCommand),
    /// Manage enrollment tokens.
    #[command(subcommand, name = "enroll-token")]
    EnrollToken(EnrollTokenCommand),
    /// Show the built-in CA.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Manage enrolled hosts.
    #[command(subcommand)]
    Host(HostCommand),
    /// Create, list, show and cancel signed jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// The job-signing key.
    #[command(subcommand, name = "job-key")]
    JobKey(JobKeyCommand),
    /// Agent releases that `agent_update` jobs install.
    #[command(subcommand, name = "agent-release")]
    AgentRelease(AgentReleaseCommand),
    /// Notification channels: where a tenant's alerts go (docs/notifications.md).
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// People who log in to the web console (docs/console.md).
    #[command(subcommand)]
    User(UserCommand),
    /// Write a backup (database, CA, job key, config) to one file; safe while serving.
    Backup {
        /// Where to write it (default: BACKUP_DIR/unity-backup-TIME.tar.gz).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Restore a backup into this (stopped, empty) controller.
    Restore {
        /// The backup file.
        archive: PathBuf,
        /// Replace the existing controller's database, CA and job key (embedded database
        /// only; an external database must be empty).
        #[arg(long)]
        force: bool,
    },
}

impl Command {
    /// Commands that only read: they still work against a schema a newer controller migrated
    /// (after a downgrade), so the operator can look and back up before deciding.
    fn is_read_only(&self) -> bool {
        matches!(
            self,
            Self::Tenant(TenantCommand::List)
                | Self::User(UserCommand::List { .. })
                | Self::OperatorToken(OperatorTokenCommand::List)
                | Self::Job(JobCommand::List { .. } | JobCommand::Show { .. })
                | Self::JobKey(JobKeyCommand::Show)
                | Self::AgentRelease(AgentReleaseCommand::List)
                | Self::Channel(ChannelCommand::List { .. })
                | Self::Backup { .. }
                | Self::Ca(CaCommand::Status)
        )
    }
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Sign and queue a job for a host; prints the job as JSON.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        host: Uuid,
        /// `ping` or `container_update`.
        #[arg(long)]
        kind: String,
        /// The kind's parameters as JSON, e.g. '{"container": "web"}'.
        #[arg(long, default_value = "{}")]
        params: String,
        /// How long the job stays valid, e.g. 30m, 1h (default 1h).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
    },
    /// List a tenant's jobs, newest first.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        host: Option<Uuid>,
        /// Only jobs in this state (queued, dispatched, running, succeeded, failed,
        /// rolled_back, refused, expired, cancelled).
        #[arg(long)]
        state: Option<String>,
    },
    /// Show one job with its events, result and receipt status, as JSON.
    Show {
        #[arg(long)]
        tenant: String,
        id: Uuid,
    },
    /// Cancel a job that was not sent to its host yet.
    Cancel {
        #[arg(long)]
        tenant: String,
        id: Uuid,
    },
}

#[derive(Debug, Subcommand)]
enum JobKeyCommand {
    /// Replace the job-signing key; agents learn the new key from a statement signed by the
    /// old one. Queued jobs signed by the old key are cancelled.
    Rotate,
    /// Print the current job-signing key's id and public key.
    Show,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user to a tenant. The password is read from the first line of stdin with
    /// `--password-stdin`; otherwise a random one is made and printed once.
    Create {
        #[arg(long)]
        tenant: String,
        /// `viewer` (reads), `operator` (also updates, jobs, rollouts) or `admin`.
        #[arg(long, default_value = "viewer")]
        role: Role,
        #[arg(long)]
        password_stdin: bool,
        /// Unique on the controller: lower-case letters, digits, `.`, `_`, `@`, `+`, `-`.
        name: String,
    },
    /// List a tenant's users.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Disable a user: refused at login, every session ended.
    Disable {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Enable a disabled user again.
    Enable {
        #[arg(long)]
        tenant: String,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ChannelCommand {
    /// Add a channel; prints it as JSON (with a webhook's HMAC secret, shown only now).
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// `https://…`, `ntfy://host/topic`, `gotify://host/TOKEN`, `smtp://…`,
        /// `discord://TOKEN@ID`, `slack://T/B/X`, `telegram://TOKEN@telegram?chats=ID`.
        url: String,
        /// `info`, `warning` (default) or `critical`.
        #[arg(long)]
        min_severity: Option<String>,
        /// Only this alert kind (repeat for several; default all).
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Quiet hours, `HH:MM-HH:MM` in `--timezone`.
        #[arg(long)]
        quiet: Option<String>,
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Remind of an alert still open after this long (e.g. 12h).
        #[arg(long, value_parser = humantime::parse_duration)]
        remind_after: Option<Duration>,
    },
    /// List a tenant's channels.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Send a test message through a channel.
    Test {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Remove a channel and its notifications.
    Remove {
        #[arg(long)]
        tenant: String,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum AgentReleaseCommand {
    /// Store an agent binary as a release: its SHA-256, size, version and architecture (read
    /// from its ELF header). Prints the release as JSON.
    Add {
        /// The `unity-agent` binary.
        file: PathBuf,
        /// Its version, as `unity-agent --version` prints it (the agent checks that the
        /// binary's self-test reports exactly this before it runs it).
        #[arg(long)]
        version: String,
    },
    /// List the stored releases.
    List,
    /// Remove a release (jobs already signed for it fail to fetch it).
    Remove {
        #[arg(long)]
        version: String,
        /// e.g. x86_64, aarch64.
        #[arg(long)]
        architecture: String,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant (lower-case letters, digits, '-', '_').
    Create { name: String },
    /// List tenants.
    List,
}

#[derive(Debug, Subcommand)]
enum OperatorTokenCommand {
    /// Create an operator token (for `GET`/`POST /api/v1/tenants`); printed once, stored only
    /// as a hash.
    Create { name: String },
    /// List operator tokens (never the tokens themselves).
    List,
    /// Revoke an operator token by name: refused from then on.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
enum ApiTokenCommand {
    /// Create an API token for a tenant; printed once, stored only as a hash.
    Create {
        #[arg(long)]
        tenant: String,
        /// A label for the token, e.g. who or what uses it.
        #[arg(long, default_value = "cli")]
        name: String,
        /// `read` (default), `operate` (also create and cancel jobs) or `admin`.
        #[arg(long, default_value = "read")]
        scope: Scope,
    },
}

#[derive(Debug, Subcommand)]
enum EnrollTokenCommand {
    /// Create a single-use enrollment token for a tenant.
    Create {
        #[arg(long)]
        tenant: String,
        /// How long the token stays valid (e.g. 30m, 1h, 2d).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Print only the token (for scripts).
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Print the SHA-256 fingerprint agents pin with --ca-fingerprint.
    Fingerprint,
    /// Who issues host certificates, which roots are trusted, and how many active hosts
    /// hold a certificate from each CA (when may an old issuer go? docs/pki.md).
    Status,
    /// Create the CA, the job-signing key and the notification key in the data directory
    /// (kept if they exist) and exit: the files several replicas share (a Kubernetes Secret,
    /// docs/install.md). Needs no database.
    CreateKeys,
}

#[derive(Debug, Subcommand)]
enum HostCommand {
    /// Revoke a host: its sessions are refused from now on.
    Revoke {
        #[arg(long)]
        tenant: String,
        host_id: Uuid,
    },
    /// Replace the operator's labels of a host (`role=nas site=garage`; none clears them);
    /// prints the labels in effect. The host's own labels stay for other keys.
    Label {
        #[arg(long)]
        tenant: String,
        host_id: Uuid,
        /// `key=value` pairs.
        labels: Vec<String>,
    },
}

/// The command line: parses arguments, runs the command, prints the error chain (not a
/// backtrace) and exits non-zero on failure — operators read these. `main.rs` is this call,
/// and so are the end-to-end tests' process wrappers (`tests/src/bin/`).
pub fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    // The service logs its life at info; one-shot admin commands only what went wrong.
    unity_process::init_logging(if matches!(cli.command, Command::Serve) {
        "info,sqlx=warn,quinn=warn"
    } else {
        "warn"
    });
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    // The file the configuration came from, for backups.
    let config_file = cli.config.clone().or_else(|| {
        let default = PathBuf::from(crate::config::DEFAULT_CONFIG_PATH);
        default.exists().then_some(default)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli.command, config, config_file))
}

async fn run(command: Command, config: Config, config_file: Option<PathBuf>) -> Result<()> {
    if let Command::Ca(CaCommand::Fingerprint) = command {
        let ca = app::load_ca(&config.data_dir).context("loading the CA")?;
        println!("{}", ca.fingerprint());
        return Ok(());
    }
    if let Command::Ca(CaCommand::CreateKeys) = command {
        let dir = &config.data_dir;
        let ca = app::load_ca(dir).context("creating the CA")?;
        JobKeys::new(dir)
            .load_or_create()
            .context("creating the job-signing key")?;
        crate::notify::Sealer::load_or_create(dir).context("creating the notification key")?;
        println!("CA fingerprint (what agents pin): {}", ca.fingerprint());
        println!("files, to share between replicas (e.g. one Kubernetes Secret):");
        for file in [
            "ca/ca.key.pem",
            "ca/ca.cert.pem",
            "job-signing.pk8",
            crate::notify::secret::KEY_FILE,
        ] {
            println!("  {}", dir.join(file).display());
        }
        return Ok(());
    }
    if let Command::Restore { archive, force } = &command {
        return crate::restore::run(&config, config_file.as_deref(), archive, *force).await;
    }
    let access = if command.is_read_only() {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    let mut database = Database::open(&config, config_file.as_deref(), access)
        .await
        .context("opening the database")?;
    let result = match command {
        Command::Serve => serve(&config, config_file, &mut database).await,
        Command::Backup { output } => backup(&config, config_file, &database, output).await,
        other => admin(other, &config, &database.store).await,
    };
    database.close().await;
    result
}

/// `unity-controller ca status`.
async fn ca_status(config: &Config, store: &Store) -> Result<()> {
    let ca = app::load_ca(&config.data_dir).context("loading the CA")?;
    let not_after = unity_pki::rotation::Validity::of_der(ca.certificate_der())
        .map(|v| v.not_after.to_string())
        .unwrap_or_else(|e| format!("unreadable: {e}"));
    let issuer = config.pki.issuer.as_str();
    println!("issues new host certificates: {issuer}");
    println!(
        "built-in CA:  {} (until {not_after}), trusted",
        ca.fingerprint()
    );
    match &config.pki.step_ca {
        Some(step_ca) => println!(
            "step-ca:      {} root {}, trusted{}",
            step_ca.url,
            step_ca.root_fingerprint,
            if app::step_ca_root_cache(&config.data_dir).exists() {
                " (root kept from the bootstrap)"
            } else {
                " (not bootstrapped yet: the controller fetches the root at start)"
            }
        ),
        None => println!("step-ca:      not configured (its hosts are not trusted)"),
    }
    println!();
    println!("active hosts by the CA of their current certificate:");
    let mut any = false;
    for tenant in store.list_tenants(&crate::store::page::Page::all()).await? {
        let mut tx = store.tenant_tx(tenant.id).await?;
        let counts = crate::store::certificates::issuer_counts(&mut tx).await?;
        tx.commit().await.context("reading certificate counts")?;
        for (issuer, count) in counts {
            any = true;
            println!("  {:<24} {issuer:<9} {count}", tenant.name);
        }
    }
    if !any {
        println!("  (no active hosts)");
    }
    Ok(())
}

async fn backup(
    config: &Config,
    config_file: Option<PathBuf>,
    database: &Database,
    output: Option<PathBuf>,
) -> Result<()> {
    let path = output.unwrap_or_else(|| {
        config.backup_dir().join(crate::backup::file_name(
            "unity-backup",
            OffsetDateTime::now_utc(),
        ))
    });
    let schema = database.store.schema_version().await?;
    let manifest = crate::backup::create(
        &database.client,
        schema,
        &config.data_dir,
        config_file.as_deref(),
        &path,
    )
    .await
    .with_context(|| format!("writing the backup to {}", path.display()))?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("{}", path.display());
    eprintln!(
        "backup written: schema {}, {} files, {size} bytes; it holds the CA and job-signing keys — keep it private and off this disk",
        manifest.schema_version,
        manifest.files.len()
    );
    Ok(())
}

async fn serve(
    config: &Config,
    config_file: Option<PathBuf>,
    database: &mut Database,
) -> Result<()> {
    let store = database.store.clone();
    let backups = (config.backup.interval_hours > 0).then(|| {
        let schedule = crate::backup::schedule::Schedule {
            interval: Duration::from_secs(u64::from(config.backup.interval_hours) * 3600),
            keep: config.backup.keep as usize,
            dir: config.backup_dir(),
            data_dir: config.data_dir.clone(),
            config_file,
        };
        tracing::info!(dir = %schedule.dir.display(), every_hours = config.backup.interval_hours,
            keep = schedule.keep, "scheduled backups on");
        tokio::spawn(crate::backup::schedule::run(
            schedule,
            database.client.clone(),
            store.clone(),
        ))
    });
    let running = app::start(
        ControllerOptions {
            quic_listen: config.quic_listen,
            quic_socket_buffer_bytes: config.quic_socket_buffer_bytes,
            agent_idle_timeout: config.agent_idle_timeout(),
            api_listen: config.api_listen,
            state_dir: config.data_dir.clone(),
            report_interval: config.report_interval(),
            host_cert_validity: config.host_cert_validity(),
            auto_update_interval: config.auto_update_interval(),
            frame_deadline: crate::link::FRAME_DEADLINE,
            http_limits: crate::api::serve::HttpLimits::default(),
            admission: crate::link::admission::AdmissionLimits::default(),
            ingest: crate::ingest::IngestSettings::default(),
            silent_after: crate::presence::default_silent_after(config.report_interval()),
            notify: crate::notify::NotifySettings::default(),
            console: crate::console::ConsoleOptions {
                secure_cookies: config.api_behind_tls_proxy,
                behind_proxy: config.api_behind_tls_proxy,
            },
            pki: config.pki.clone(),
        },
        store,
    )
    .await
    .context("starting the controller")?;
    let supervised = async {
        match database.embedded.as_mut() {
            Some(pg) => {
                // The service owns its cluster: stopped on exit even if it was adopted.
                pg.take_ownership();
                supervise(pg).await
            }
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        () = unity_process::shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
        error = supervised => Err(error),
    };
    if let Some(backups) = backups {
        backups.abort();
    }
    running.shutdown().await;
    outcome
}

/// How often the embedded PostgreSQL is checked.
const SUPERVISE_EVERY: Duration = Duration::from_secs(2);
/// More restarts than this within [`RESTART_WINDOW`] and the controller gives up (exits
/// non-zero, so systemd restarts the whole service and the operator sees it).
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(300);

/// Watches the embedded PostgreSQL and starts it again when it dies; returns (an error) only
/// when it cannot be kept running.
async fn supervise(pg: &mut crate::store::embedded::EmbeddedPostgres) -> anyhow::Error {
    let mut restarts: Vec<std::time::Instant> = Vec::new();
    loop {
        tokio::time::sleep(SUPERVISE_EVERY).await;
        match pg.is_running().await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), "could not check the embedded PostgreSQL");
                continue;
            }
        }
        restarts.retain(|at| at.elapsed() < RESTART_WINDOW);
        if restarts.len() >= MAX_RESTARTS {
            return anyhow::anyhow!(
                "the embedded PostgreSQL stopped {} times in {} s; giving up (see {})",
                restarts.len() + 1,
                RESTART_WINDOW.as_secs(),
                pg.log_path().display()
            );
        }
        restarts.push(std::time::Instant::now());
        tracing::error!(log = %pg.log_path().display(),
            "the embedded PostgreSQL is not running; starting it again");
        match pg.restart_if_stopped().await {
            Ok(_) => tracing::info!(
                "embedded PostgreSQL running again; connections recover by themselves"
            ),
            Err(error) => tracing::error!(error = %crate::error_chain(&error),
                "could not restart the embedded PostgreSQL; trying again"),
        }
    }
}

async fn admin(command: Command, config: &Config, store: &Store) -> Result<()> {
    match command {
        Command::Tenant(TenantCommand::Create { name }) => {
            let tenant = store.create_tenant(&name).await?;
            println!("{}", tenant.id);
        }
        Command::Tenant(TenantCommand::List) => {
            for tenant in store.list_tenants(&Page::all()).await? {
                println!("{}\t{}", tenant.id, tenant.name);
            }
        }
        Command::ApiToken(ApiTokenCommand::Create {
            tenant,
            name,
            scope,
        }) => {
            let tenant = store.tenant_by_name(&tenant).await?;
            println!(
                "{}",
                store
                    .create_scoped_api_token(tenant.id, &name, scope)
                    .await?
            );
        }
        Command::OperatorToken(OperatorTokenCommand::Create { name }) => {
            println!("{}", store.create_operator_token(&name).await?);
        }
        Command::OperatorToken(OperatorTokenCommand::List) => {
            print_json(&store.list_operator_tokens().await?)?;
        }
        Command::OperatorToken(OperatorTokenCommand::Revoke { name }) => {
            if !store.revoke_operator_token(&name).await? {
                anyhow::bail!("no live operator token named `{name}`");
            }
            println!("operator token `{name}` revoked");
        }
        Command::Job(command) => job_command(command, config, store).await?,
        Command::AgentRelease(command) => release_command(command, store).await?,
        Command::Channel(command) => channel_command(command, config, store).await?,
        Command::User(command) => user_command(command, store).await?,
        Command::JobKey(JobKeyCommand::Rotate) => {
            let keys = JobKeys::new(&config.data_dir);
            let rotation = keys
                .rotate(store, OffsetDateTime::now_utc())
                .await
                .context("rotating the job-signing key")?;
            println!(
                "job-signing key rotated: statement {} names key {} (was {}); {} queued job(s) cancelled",
                rotation.version,
                hex::encode(rotation.new_key_id),
                hex::encode(rotation.old_key_id),
                rotation.cancelled_jobs
            );
            println!("connected agents receive the statement now; others when they reconnect");
        }
        Command::JobKey(JobKeyCommand::Show) => {
            let key = JobKeys::new(&config.data_dir)
                .current()
                .context("reading the job-signing key")?;
            println!("key id:     {}", hex::encode(key.key_id()));
            println!("public key: {}", hex::encode(key.public_key()));
        }
        Command::EnrollToken(EnrollTokenCommand::Create { tenant, ttl, quiet }) => {
            let tenant = store.tenant_by_name(&tenant).await?;
            let (token, expires_at) = store.create_enrollment_token(tenant.id, ttl).await?;
            if quiet {
                println!("{token}");
            } else {
                let fingerprint = app::load_ca(&config.data_dir)?.fingerprint();
                println!("token:       {token}");
                println!("expires at:  {expires_at}");
                println!("fingerprint: {fingerprint}");
                println!();
                // The address agents use: the listen address when it names one, else this
                // machine's name (check that hosts resolve it).
                let host = if config.quic_listen.ip().is_unspecified() {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .map(|h| h.trim().to_owned())
                        .ok()
                        .filter(|h| !h.is_empty())
                        .unwrap_or_else(|| "<this-controller>".into())
                } else {
                    config.quic_listen.ip().to_string()
                };
                println!("On the host, run:");
                println!(
                    "  unity-agent enroll --controller {host}:{} --token {token} --ca-fingerprint {fingerprint}",
                    config.quic_listen.port()
                );
            }
        }
        Command::Host(HostCommand::Revoke { tenant, host_id }) => {
            let tenant = store.tenant_by_name(&tenant).await?;
            let mut tx = store.tenant_tx(tenant.id).await?;
            let revoked = hosts::revoke_host(&mut tx, host_id).await?;
            tx.commit().await.context("committing the revocation")?;
            if !revoked {
                bail!(
                    "host {host_id} is not an active host of tenant {}",
                    tenant.name
                );
            }
            println!("revoked {host_id}");
        }
        Command::Host(HostCommand::Label {
            tenant,
            host_id,
            labels,
        }) => {
            let tenant = store.tenant_by_name(&tenant).await?;
            let mut wanted = std::collections::BTreeMap::new();
            for pair in &labels {
                let Some((key, value)) = pair.split_once('=') else {
                    bail!("`{pair}` is not key=value");
                };
                wanted.insert(key.to_owned(), value.to_owned());
            }
            unity_protocol::latest::HostLabels {
                labels: wanted.clone(),
            }
            .validate()
            .map_err(|e| anyhow::anyhow!(e))?;
            let mut tx = store.tenant_tx(tenant.id).await?;
            if hosts::get_host(&mut tx, host_id).await?.is_none() {
                bail!("host {host_id} is not a host of tenant {}", tenant.name);
            }
            crate::store::rollouts::set_labels(&mut tx, tenant.id, host_id, &wanted).await?;
            let effective = crate::store::rollouts::labels(&mut tx, host_id).await?;
            tx.commit().await.context("committing the labels")?;
            for (key, value) in effective {
                println!("{key}={value}");
            }
        }
        // `run` handles these before opening the database for administration.
        Command::Ca(CaCommand::Status) => ca_status(config, store).await?,
        Command::Serve
        | Command::Ca(CaCommand::Fingerprint | CaCommand::CreateKeys)
        | Command::Backup { .. }
        | Command::Restore { .. } => {
            bail!("not an administrative command")
        }
    }
    Ok(())
}

async fn channel_command(command: ChannelCommand, config: &Config, store: &Store) -> Result<()> {
    use crate::store::notify as channels;
    let find = |tenant: String, name: String| async move {
        let tenant = store.tenant_by_name(&tenant).await?;
        let mut tx = store.tenant_tx(tenant.id).await?;
        let Some(channel) = channels::channel_by_name(&mut tx, &name).await? else {
            bail!("tenant {} has no channel `{name}`", tenant.name);
        };
        Ok::<_, anyhow::Error>((tenant, tx, channel))
    };
    match command {
        ChannelCommand::Add {
            tenant,
            name,
            url,
            min_severity,
            kinds,
            quiet,
            timezone,
            remind_after,
        } => {
            let tenant = store.tenant_by_name(&tenant).await?;
            let quiet_hours = match quiet {
                Some(span) => {
                    let Some((start, end)) = span.split_once('-') else {
                        bail!("--quiet is HH:MM-HH:MM");
                    };
                    Some(channels::QuietHours {
                        start: start.to_owned(),
                        end: end.to_owned(),
                        timezone,
                        allow_critical: true,
                    })
                }
                None => None,
            };
            let request = crate::notify::create::ChannelRequest {
                name,
                url,
                min_severity,
                kinds,
                send_recoveries: None,
                quiet_hours,
                remind_after_secs: remind_after
                    .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX)),
            };
            let sealer = crate::notify::Sealer::load_or_create(&config.data_dir)
                .context("loading the notification key")?;
            let mut tx = store.tenant_tx(tenant.id).await?;
            let created =
                crate::notify::create::create_channel(&mut tx, &sealer, tenant.id, &request)
                    .await?;
            tx.commit().await.context("committing the channel")?;
            print_json(&created)?;
        }
        ChannelCommand::List { tenant } => {
            let tenant = store.tenant_by_name(&tenant).await?;
            let mut tx = store.tenant_tx(tenant.id).await?;
            print_json(&channels::list_channels(&mut tx, &Page::all()).await?)?;
        }
        ChannelCommand::Test { tenant, name } => {
            let (tenant, mut tx, channel) = find(tenant, name).await?;
            let id = channels::insert_test(&mut tx, tenant.id, channel.id).await?;
            tx.commit().await.context("committing the test message")?;
            println!(
                "test message {id} queued for `{}`; a running controller sends it now",
                channel.name
            );
        }
        ChannelCommand::Remove { tenant, name } => {
            let (_, mut tx, channel) = find(tenant, name).await?;
            channels::delete_channel(&mut tx, channel.id).await?;
            tx.commit().await.context("committing the removal")?;
            println!("removed `{}`", channel.name);
        }
    }
    Ok(())
}

async fn release_command(command: AgentReleaseCommand, store: &Store) -> Result<()> {
    use crate::store::releases;
    match command {
        AgentReleaseCommand::Add { file, version } => {
            if unity_protocol::latest::jobs::parse_version(&version).is_none() {
                bail!("version `{version}` is not major.minor.patch[-pre]");
            }
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let max = unity_protocol::latest::AgentUpdateParams::MAX_SIZE;
            if bytes.is_empty() || bytes.len() as u64 > max {
                bail!(
                    "{} is {} bytes; a release is 1 byte to {max} bytes",
                    file.display(),
                    bytes.len()
                );
            }
            let architecture = releases::elf_architecture(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let release = releases::add(store, &version, architecture, &bytes).await?;
            print_json(&release)?;
        }
        AgentReleaseCommand::List => {
            print_json(&releases::list(store.admin(), &Page::all()).await?)?
        }
        AgentReleaseCommand::Remove {
            version,
            architecture,
        } => {
            if !releases::remove(store, &version, &architecture).await? {
                bail!("no release {version} for {architecture}");
            }
            println!("removed {version} for {architecture}");
        }
    }
    Ok(())
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn job_command(command: JobCommand, config: &Config, store: &Store) -> Result<()> {
    match command {
        JobCommand::Create {
            tenant,
            host,
            kind,
            params,
            expires_in,
        } => {
            let tenant = store.tenant_by_name(&tenant).await?;
            let params: serde_json::Value =
                serde_json::from_str(&params).context("--params is not JSON")?;
            let request = JobRequest {
                host_id: host,
                kind,
                params,
                expires_in_secs: expires_in.map(|d| d.as_secs()),
                not_before: None,
            };
            let who = std::env::var("SUDO_USER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "unknown".into());
            let mut tx = store.tenant_tx(tenant.id).await?;
            let created = create_job(
                &mut tx,
                &JobKeys::new(&config.data_dir),
                tenant.id,
                &request,
                &format!("cli:{who}"),
                OffsetDateTime::now_utc(),
            )
            .await
            .context("creating the job")?;
            let detail = job_store::get(&mut tx, created.id).await?;
            tx.commit().await.context("committing the job")?;
            print_json(&detail)?;
        }
        JobCommand::List {
            tenant,
            host,
            state,
        } => {
            let tenant = store.tenant_by_name(&tenant).await?;
            let state = state
                .map(|s| s.parse::<JobState>())
                .transpose()
                .context("--state")?;
            let mut tx = store.tenant_tx(tenant.id).await?;
            let jobs = job_store::list(
                &mut tx,
                &JobFilter {
                    host_id: host,
                    state,
                    kind: None,
                },
                &Page::first(1000),
            )
            .await?;
            for job in jobs {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    job.id,
                    job.created_at,
                    job.host_id,
                    job.kind,
                    job.state,
                    job.result_summary.as_deref().unwrap_or(&job.detail)
                );
            }
        }
        JobCommand::Show { tenant, id } => {
            let tenant = store.tenant_by_name(&tenant).await?;
            let mut tx = store.tenant_tx(tenant.id).await?;
            match job_store::get(&mut tx, id).await? {
                Some(job) => print_json(&job)?,
                None => bail!("no job {id} in tenant {}", tenant.name),
            }
        }
        JobCommand::Cancel { tenant, id } => {
            let tenant = store.tenant_by_name(&tenant).await?;
            let mut tx = store.tenant_tx(tenant.id).await?;
            match cancel(&mut tx, id, "the command line", OffsetDateTime::now_utc()).await? {
                Cancelled::Done => {
                    tx.commit().await.context("committing the cancellation")?;
                    println!("cancelled {id}");
                }
                Cancelled::Refused { state, reason } => bail!("job is `{state}`: {reason}"),
                Cancelled::NotFound => bail!("no job {id} in tenant {}", tenant.name),
            }
        }
    }
    Ok(())
}

async fn user_command(command: UserCommand, store: &Store) -> Result<()> {
    use crate::store::users;
    match command {
        UserCommand::Create {
            tenant,
            role,
            password_stdin,
            name,
        } => {
            let tenant = store.tenant_by_name(&tenant).await?;
            let (password, made) = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the password from stdin")?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                // 160 random bits, base32: typed once, changed at the first login.
                (crate::auth::generate_token("")?, true)
            };
            let mut tx = store.tenant_tx(tenant.id).await?;
            let user = users::create_user(&mut tx, tenant.id, &name, role, &password).await?;
            tx.commit().await.context("committing the user")?;
            println!(
                "user {} ({}) added to tenant {}",
                user.name, user.role, tenant.name
            );
            if made {
                println!("password (shown once; change it after logging in): {password}");
            }
        }
        UserCommand::List { tenant } => {
            let tenant = store.tenant_by_name(&tenant).await?;
            let mut tx = store.tenant_tx(tenant.id).await?;
            print_json(&users::list_users(&mut tx, &Page::all()).await?)?;
        }
        UserCommand::Disable { tenant, name } => {
            set_user_disabled(store, &tenant, &name, true).await?
        }
        UserCommand::Enable { tenant, name } => {
            set_user_disabled(store, &tenant, &name, false).await?
        }
    }
    Ok(())
}

async fn set_user_disabled(store: &Store, tenant: &str, name: &str, disabled: bool) -> Result<()> {
    use crate::store::users;
    let tenant = store.tenant_by_name(tenant).await?;
    let mut tx = store.tenant_tx(tenant.id).await?;
    let Some(user) = users::user_by_name(&mut tx, name).await? else {
        bail!("tenant {} has no user `{name}`", tenant.name);
    };
    users::set_disabled(&mut tx, user.id, disabled).await?;
    tx.commit().await.context("committing the change")?;
    println!(
        "user {name} {}",
        if disabled {
            "disabled; its sessions ended"
        } else {
            "enabled"
        }
    );
    Ok(())
}
