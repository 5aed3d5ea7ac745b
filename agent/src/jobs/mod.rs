//! Signed jobs on the agent: verify, journal, run, report.
//!
//! * [`verify`] — the checks (pure): signature over the received bytes, tenant, host, time
//!   window, allow-list, parameters.
//! * [`journal`] — one fsynced file per job, written before any side effect: replay
//!   protection, crash recovery, results kept until acknowledged.
//! * [`keys`] — the trusted job-signing keys and their rotation by signed statement.
//! * [`ping`], [`container_update`], [`package_upgrade`], [`agent_update`] — the kinds.
//!
//! The session loop (`run`) hands every [`Push`] to [`JobHost::handle_push`] and answers with
//! what it returns; accepted jobs run in tasks of their own, one at a time per target (a
//! container is never touched by two jobs at once), and their events and results come back
//! to the loop through the [`Outgoing`] channel, to be sent as reports.

pub mod agent_update;
pub mod container_update;
pub mod journal;
pub mod keys;
pub mod package_upgrade;
pub mod ping;
pub mod verify;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use unity_collect::containers::ContainerConfig;
use unity_pki::agent_key::AgentKey;
use unity_protocol::latest::{
    JobEnd, JobEvent, JobEventKind, JobKind, JobOutcome, JobReceipt, JobRefusalReason, JobSpec,
    Push, PushReply, SignedJob,
};
use uuid::Uuid;

use crate::error_chain;
use crate::state::AgentState;
use journal::{Entry, Journal, JournalError, Status, StoredReceipt};
use keys::TrustedKeys;
use verify::{Expectations, Refusal};

/// The longest validity window a job may carry (the controller allows 7 days).
const MAX_LIFETIME: Duration = Duration::from_secs(8 * 24 * 3600);

/// How this host runs jobs (from `[jobs]` in agent.toml, and the container settings).
#[derive(Debug, Clone)]
pub struct JobOptions {
    pub allow: Vec<String>,
    pub clock_skew: Duration,
    pub allow_repository_change: bool,
    /// Longest an image pull may take.
    pub pull_timeout: Duration,
    /// Engine endpoints and registry credentials for `container_update`.
    pub containers: ContainerConfig,
    /// apt, the reboot command and the boot id for `package_upgrade`.
    pub packages: package_upgrade::PackageJobOptions,
    /// The config file this agent was started with, for a new release's self-test.
    pub config_path: Option<PathBuf>,
}

impl Default for JobOptions {
    fn default() -> Self {
        let section = crate::config::JobsSection::default();
        Self {
            allow: section.allow,
            clock_skew: Duration::from_secs(u64::from(section.clock_skew_secs)),
            allow_repository_change: section.allow_repository_change,
            pull_timeout: Duration::from_secs(u64::from(section.pull_timeout_secs)),
            containers: ContainerConfig::default(),
            packages: package_upgrade::PackageJobOptions::default(),
            config_path: None,
        }
    }
}

/// What job tasks hand back to the session loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Event(JobEvent),
    /// Job `job_id` ended; its signed result (also in the journal until acknowledged).
    Result {
        job_id: Uuid,
        receipt: JobReceipt,
    },
    /// A job changed what runs on the host: the inventory should be read again now, so the
    /// controller does not act on the state from before the change.
    InventoryChanged,
    /// Everything sent before this is in the spool once it is signalled (before the process
    /// is replaced by a new agent).
    Flush(Flushed),
}

/// The signal of [`Outgoing::Flush`].
#[derive(Debug, Clone, Default)]
pub struct Flushed(Arc<tokio::sync::Notify>);

impl Flushed {
    pub fn signal(&self) {
        self.0.notify_one();
    }
}

impl PartialEq for Flushed {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Flushed {}

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Keys(#[from] keys::KeysError),
    #[error("the host key cannot sign receipts")]
    Key(#[from] unity_pki::agent_key::AgentKeyError),
}

/// How a job ended, as its kind reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub end: JobEnd,
    pub refusal: Option<JobRefusalReason>,
    pub summary: String,
    pub detail: serde_json::Value,
}

impl Ending {
    pub fn new(end: JobEnd, summary: impl Into<String>, detail: serde_json::Value) -> Self {
        Self {
            end,
            refusal: None,
            summary: summary.into(),
            detail,
        }
    }

    pub fn refused(reason: JobRefusalReason, summary: impl Into<String>) -> Self {
        Self {
            end: JobEnd::Refused,
            refusal: Some(reason),
            summary: summary.into(),
            detail: serde_json::json!({}),
        }
    }
}

/// Everything jobs need on this host; shared by the session loop and the job tasks.
#[derive(Debug)]
pub struct JobHost {
    tenant_id: Uuid,
    host_id: Uuid,
    state_dir: PathBuf,
    journal: Journal,
    keys: Mutex<TrustedKeys>,
    signer: AgentKey,
    options: JobOptions,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    targets: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Release chunks jobs ask the link loop for, and the link loop's end of it.
    fetches: mpsc::Sender<agent_update::fetch::FetchRequest>,
    fetch_requests: Mutex<Option<mpsc::Receiver<agent_update::fetch::FetchRequest>>>,
    /// Whether a session reached `Welcome` since this process started.
    welcomed: tokio::sync::watch::Sender<bool>,
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What a job acts on, so two jobs on it never run at once.
fn target_of(kind: &JobKind) -> Option<String> {
    match kind {
        JobKind::Ping(_) => None,
        JobKind::ContainerUpdate(p) => Some(format!("container:{}", p.container)),
        // One package manager per host: two upgrades would only fight over its lock.
        JobKind::PackageUpgrade(_) => Some("packages".to_owned()),
        JobKind::AgentUpdate(_) => Some("agent".to_owned()),
    }
}

impl JobHost {
    /// Opens the journal and the trusted keys of the enrolled host in `state`.
    pub fn open(
        state: &AgentState,
        options: JobOptions,
    ) -> Result<(Arc<Self>, mpsc::UnboundedReceiver<Outgoing>), JobsError> {
        let journal = Journal::open(&state.dir.join("jobs"))?;
        let keys = TrustedKeys::load(&state.dir, &state.enrollment.job_signing_keys)?;
        let signer = AgentKey::from_pem(&state.key.to_pem())?;
        let (outgoing, rx) = mpsc::unbounded_channel();
        let (fetches, fetch_requests) = mpsc::channel(4);
        let host = Arc::new(Self {
            tenant_id: state.enrollment.tenant_id,
            host_id: state.enrollment.host_id,
            state_dir: state.dir.clone(),
            journal,
            keys: Mutex::new(keys),
            signer,
            options,
            outgoing,
            targets: Mutex::new(HashMap::new()),
            fetches,
            fetch_requests: Mutex::new(Some(fetch_requests)),
            welcomed: tokio::sync::watch::channel(false).0,
        });
        Ok((host, rx))
    }

    /// The release-chunk requests of `agent_update` jobs, for the link loop to serve on its
    /// sessions (taken once).
    pub fn take_fetch_requests(&self) -> Option<mpsc::Receiver<agent_update::fetch::FetchRequest>> {
        self.fetch_requests.lock().ok()?.take()
    }

    /// A session reached `Welcome` (what a new agent on trial waits for).
    pub fn session_established(&self) {
        self.welcomed.send_replace(true);
    }

    pub fn options(&self) -> &JobOptions {
        &self.options
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    fn trusted_keys(&self) -> Vec<[u8; 32]> {
        self.keys
            .lock()
            .map(|k| k.public_keys())
            .unwrap_or_default()
    }

    /// The version of the key statement this host applied last (0: enrollment's keys).
    pub fn keys_version(&self) -> u64 {
        self.keys.lock().map(|k| k.version).unwrap_or(0)
    }

    /// Answers one push from the controller. Never panics, never drops: every job gets an
    /// accept or a signed refusal.
    pub fn handle_push(self: &Arc<Self>, push: Push) -> PushReply {
        match push {
            Push::Job(job) => self.receive_job(&job),
            Push::JobKeys(chain) => self.apply_key_statements(&chain),
        }
    }

    fn apply_key_statements(
        &self,
        chain: &[unity_protocol::latest::SignedKeyStatement],
    ) -> PushReply {
        let Ok(mut keys) = self.keys.lock() else {
            return PushReply::JobKeysRefused {
                detail: "agent key store is unavailable".into(),
            };
        };
        let mut updated = keys.clone();
        match updated.apply(chain) {
            Ok(keys::Applied::Unchanged { version }) => PushReply::JobKeysApplied { version },
            Ok(keys::Applied::Changed { version }) => match updated.save(&self.state_dir) {
                Ok(()) => {
                    *keys = updated;
                    tracing::info!(version, "job-signing keys rotated by a signed statement");
                    PushReply::JobKeysApplied { version }
                }
                Err(error) => {
                    tracing::error!(error = %error_chain(&error), "could not save rotated job keys");
                    PushReply::JobKeysRefused {
                        detail: format!("could not save the keys: {}", error_chain(&error)),
                    }
                }
            },
            Err(detail) => {
                tracing::error!(%detail, "job-key statement refused");
                PushReply::JobKeysRefused { detail }
            }
        }
    }

    fn expectations<'a>(&'a self, trusted: &'a [[u8; 32]]) -> Expectations<'a> {
        Expectations {
            tenant_id: self.tenant_id,
            host_id: self.host_id,
            trusted_keys: trusted,
            allowed_kinds: &self.options.allow,
            clock_skew_ms: ms(self.options.clock_skew),
            max_lifetime_ms: ms(MAX_LIFETIME),
        }
    }

    fn receive_job(self: &Arc<Self>, job: &SignedJob) -> PushReply {
        let now = now_ms();
        let trusted = self.trusted_keys();
        let expect = self.expectations(&trusted);
        let spec = match verify::open(job, &expect) {
            Ok(spec) => spec,
            Err(refusal) => {
                // Unverified bytes: the id they claim is only a label for the log and receipt.
                let claimed = unity_protocol::decode_payload::<JobSpec>(&job.spec)
                    .map(|s| s.job_id)
                    .unwrap_or(Uuid::nil());
                return self.refuse(job, claimed, &refusal, now, false);
            }
        };
        if let Err(refusal) = verify::check_target(&spec, &expect) {
            return self.refuse(job, spec.job_id, &refusal, now, false);
        }
        if self.journal.contains(spec.job_id) {
            return self.redelivered(job, &spec, now);
        }
        if let Err(refusal) = verify::check_runnable(&spec, &expect, now) {
            return self.refuse(job, spec.job_id, &refusal, now, true);
        }
        let entry = Entry::new(job, spec.job_id, spec.kind.name(), now, spec.expires_at_ms);
        match self.journal.create(&entry) {
            Ok(()) => {}
            Err(JournalError::AlreadyExists(_)) => return self.redelivered(job, &spec, now),
            Err(error) => {
                tracing::error!(job_id = %spec.job_id, error = %error_chain(&error),
                    "could not journal a job; refusing it rather than running it unrecorded");
                let refusal = Refusal::new(
                    JobRefusalReason::Internal,
                    format!(
                        "the agent could not journal the job: {}",
                        error_chain(&error)
                    ),
                );
                return self.refuse(job, spec.job_id, &refusal, now, false);
            }
        }
        tracing::info!(job_id = %spec.job_id, kind = spec.kind.name(),
            requested_by = %spec.requested_by, "job accepted");
        tokio::spawn(run_job(self.clone(), entry, spec));
        PushReply::JobAccepted {
            job_id: job_id_of(job),
            already_known: false,
        }
    }

    /// A job id already in the journal: the same bytes again are a redelivery (answered
    /// without running anything twice); other bytes with a known id are a replay.
    fn redelivered(self: &Arc<Self>, job: &SignedJob, spec: &JobSpec, now: i64) -> PushReply {
        let entry = match self.journal.load(spec.job_id) {
            Ok(Some(entry)) => entry,
            Ok(None) | Err(_) => {
                let refusal = Refusal::new(
                    JobRefusalReason::Replay,
                    format!(
                        "job {} was seen before (journal entry damaged); not run",
                        spec.job_id
                    ),
                );
                return self.refuse(job, spec.job_id, &refusal, now, false);
            }
        };
        let same_bytes = entry.spec_sha256 == job.spec_sha256();
        if same_bytes
            && entry.status == Status::Refused
            && let Some(receipt) = &entry.receipt
        {
            return PushReply::JobRefused(receipt.into());
        }
        if same_bytes && !(entry.is_finished() && entry.receipt_acked) {
            if let (true, Some(receipt)) = (entry.is_finished(), &entry.receipt) {
                // The controller has not stored our result yet: send it (again).
                let _ = self.outgoing.send(Outgoing::Result {
                    job_id: spec.job_id,
                    receipt: receipt.into(),
                });
            }
            return PushReply::JobAccepted {
                job_id: spec.job_id,
                already_known: true,
            };
        }
        tracing::warn!(job_id = %spec.job_id, same_bytes, "replayed job refused");
        let refusal = Refusal::new(
            JobRefusalReason::Replay,
            format!(
                "job {} was received before (at {} unix ms) and {}; it is never run twice",
                spec.job_id,
                entry.received_at_ms,
                if entry.is_finished() {
                    "has ended"
                } else {
                    "is in progress"
                }
            ),
        );
        self.refuse(job, spec.job_id, &refusal, now, false)
    }

    /// A signed refusal; journaled (so a replay gets the same answer) when `journal`.
    fn refuse(
        &self,
        job: &SignedJob,
        job_id: Uuid,
        refusal: &Refusal,
        now: i64,
        journal: bool,
    ) -> PushReply {
        tracing::warn!(%job_id, reason = refusal.reason.as_str(), detail = %refusal.detail,
            "job refused");
        let outcome = JobOutcome {
            job_id,
            spec_sha256: job.spec_sha256(),
            tenant_id: self.tenant_id,
            host_id: self.host_id,
            end: JobEnd::Refused,
            refusal: Some(refusal.reason),
            summary: refusal.detail.clone(),
            detail_json: "{}".into(),
            started_at_ms: None,
            finished_at_ms: now,
        };
        let receipt = match self.sign(&outcome) {
            Ok(receipt) => receipt,
            Err(error) => {
                tracing::error!(error = %error_chain(&error), "could not sign a refusal");
                JobReceipt {
                    outcome: postcard::to_allocvec(&outcome).unwrap_or_default(),
                    signature: Vec::new(),
                }
            }
        };
        if journal {
            let mut entry = Entry::new(job, job_id, "refused", now, now);
            if let Ok(spec) = unity_protocol::decode_payload::<JobSpec>(&job.spec) {
                entry.kind = spec.kind.name().to_owned();
                entry.expires_at_ms = spec.expires_at_ms;
            }
            entry.status = Status::Refused;
            entry.receipt = Some(StoredReceipt {
                outcome: receipt.outcome.clone(),
                signature: receipt.signature.clone(),
            });
            // The refusal travels on the delivery's stream; the journal only has to answer
            // a replay the same way.
            entry.receipt_acked = true;
            if let Err(error) = self.journal.create(&entry) {
                tracing::warn!(%job_id, error = %error_chain(&error), "could not journal a refusal");
            }
        }
        PushReply::JobRefused(receipt)
    }

    fn sign(&self, outcome: &JobOutcome) -> Result<JobReceipt, JobsError> {
        let bytes = postcard::to_allocvec(outcome).unwrap_or_default();
        let signature = self.signer.sign_receipt(&bytes)?;
        Ok(JobReceipt {
            outcome: bytes,
            signature,
        })
    }

    /// Results the controller has not acknowledged yet, oldest first.
    pub fn unacked_results(&self) -> Vec<(Uuid, JobReceipt)> {
        let mut entries: Vec<Entry> = self
            .journal
            .all()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.status == Status::Finished && !e.receipt_acked)
            .collect();
        entries.sort_by_key(|e| e.received_at_ms);
        entries
            .into_iter()
            .filter_map(|e| Some((e.job_id, (e.receipt.as_ref()?).into())))
            .collect()
    }

    /// The controller stored job `job_id`'s result (or rejected it for good).
    pub fn result_delivered(&self, job_id: Uuid) {
        match self.journal.load(job_id) {
            Ok(Some(mut entry)) => {
                entry.receipt_acked = true;
                if let Err(error) = self.journal.save(&entry) {
                    tracing::warn!(%job_id, error = %error_chain(&error),
                        "could not record a delivered result; it will be sent again");
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%job_id, error = %error_chain(&error),
                "journal entry unreadable"),
        }
        let pruned = self.journal.prune(now_ms(), ms(self.options.clock_skew));
        if pruned > 0 {
            tracing::debug!(pruned, "pruned journal entries past expiry");
        }
    }

    /// After a start: finishes what a crash interrupted. Jobs journaled but never started run
    /// now (if still valid); jobs caught mid-way are recovered by their kind (rolled back or
    /// confirmed) and reported as interrupted. Damaged entries are reported in the log.
    pub fn recover(self: &Arc<Self>) {
        for entry in self.journal.all() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    tracing::error!(error = %error_chain(&error),
                        "damaged job journal entry set aside; its job id stays refused");
                    continue;
                }
            };
            if entry.is_finished() {
                continue;
            }
            let trusted = self.trusted_keys();
            let spec = entry
                .signed_job()
                .and_then(|job| verify::open(&job, &self.expectations(&trusted)).ok())
                // The key may have rotated since: the bytes were verified when received,
                // and they are the journal's own.
                .or_else(|| unity_protocol::decode_payload::<JobSpec>(&entry.spec).ok());
            let Some(spec) = spec else {
                tracing::error!(job_id = %entry.job_id, "journaled job does not decode");
                continue;
            };
            tracing::warn!(job_id = %entry.job_id, status = ?entry.status, phase = ?entry.phase,
                "resuming a job interrupted by an agent restart");
            tokio::spawn(run_job(self.clone(), entry, spec));
        }
    }

    fn target_lock(&self, target: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut targets) = self.targets.lock() else {
            return Arc::new(tokio::sync::Mutex::new(()));
        };
        targets.entry(target.to_owned()).or_default().clone()
    }
}

fn job_id_of(job: &SignedJob) -> Uuid {
    unity_protocol::decode_payload::<JobSpec>(&job.spec)
        .map(|s| s.job_id)
        .unwrap_or(Uuid::nil())
}

/// One job's progress as its kind sees it: events and checkpoints, both journaled.
#[derive(Debug)]
pub struct JobContext {
    host: Arc<JobHost>,
    entry: Entry,
}

impl JobContext {
    pub fn job_id(&self) -> Uuid {
        self.entry.job_id
    }

    pub fn options(&self) -> &JobOptions {
        &self.host.options
    }

    pub fn state_dir(&self) -> &std::path::Path {
        &self.host.state_dir
    }

    /// Where release chunks are asked for.
    pub fn fetcher(&self) -> &mpsc::Sender<agent_update::fetch::FetchRequest> {
        &self.host.fetches
    }

    /// Resolves once a session reached `Welcome` in this process.
    pub async fn welcomed(&self) {
        let mut welcomed = self.host.welcomed.subscribe();
        let _ = welcomed.wait_for(|w| *w).await;
    }

    /// Resolves once every event sent so far is in the spool.
    pub async fn flush(&self) {
        let flushed = Flushed::default();
        if self
            .host
            .outgoing
            .send(Outgoing::Flush(flushed.clone()))
            .is_ok()
        {
            flushed.0.notified().await;
        }
    }

    /// The journal and a copy of this job's entry, for a thread that must record the job's
    /// fate without the runtime.
    pub fn detached(&self) -> (Journal, Entry) {
        (self.host.journal.clone(), self.entry.clone())
    }

    /// Other jobs acting on the host now (`kind job_id`).
    pub fn other_running_jobs(&self) -> Vec<String> {
        self.host
            .journal
            .all()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.status == Status::Running && e.job_id != self.entry.job_id)
            .map(|e| format!("{} {}", e.kind, e.job_id))
            .collect()
    }

    /// The last step begun before an interruption, and its data.
    pub fn phase(&self) -> Option<&str> {
        self.entry.phase.as_deref()
    }

    pub fn checkpoint_data(&self) -> &serde_json::Value {
        &self.entry.checkpoint
    }

    /// Records, durably, that step `phase` is about to begin with `data`. A job must not take
    /// the step if this fails.
    pub fn checkpoint(&mut self, phase: &str, data: serde_json::Value) -> Result<(), JournalError> {
        self.entry.phase = Some(phase.to_owned());
        self.entry.checkpoint = data;
        self.host.journal.save(&self.entry)
    }

    /// A progress event for the controller (numbered and journaled, so numbers never repeat).
    pub fn event(
        &mut self,
        kind: JobEventKind,
        message: impl Into<String>,
        detail: serde_json::Value,
    ) {
        let message = message.into();
        let seq = self.entry.next_event_seq;
        self.entry.next_event_seq = seq.saturating_add(1);
        if let Err(error) = self.host.journal.save(&self.entry) {
            tracing::warn!(job_id = %self.entry.job_id, error = %error_chain(&error),
                "could not journal an event number");
        }
        tracing::info!(job_id = %self.entry.job_id, seq, %message, "job progress");
        let _ = self.host.outgoing.send(Outgoing::Event(JobEvent {
            job_id: self.entry.job_id,
            seq,
            at_ms: now_ms(),
            kind,
            message,
            detail_json: detail.to_string(),
        }));
    }
}

async fn run_job(host: Arc<JobHost>, entry: Entry, spec: JobSpec) {
    let lock = target_of(&spec.kind).map(|t| host.target_lock(&t));
    let _guard = match &lock {
        Some(lock) => Some(lock.clone().lock_owned().await),
        None => None,
    };
    let resumed = entry.status == Status::Running;
    let mut ctx = JobContext {
        host: host.clone(),
        entry,
    };
    let ending = if resumed {
        recover(&mut ctx, &spec).await
    } else if now_ms().saturating_sub(ms(host.options.clock_skew)) >= spec.expires_at_ms {
        Ending::refused(
            JobRefusalReason::Expired,
            "expired before it could start (the agent restarted, or another job on the same \
             target ran until after its expiry)",
        )
    } else {
        ctx.entry.status = Status::Running;
        ctx.entry.started_at_ms = Some(now_ms());
        if let Err(error) = host.journal.save(&ctx.entry) {
            finish(
                &mut ctx,
                Ending::new(
                    JobEnd::Failed,
                    format!("not started: could not journal: {}", error_chain(&error)),
                    serde_json::json!({}),
                ),
            );
            return;
        }
        ctx.event(
            JobEventKind::Started,
            format!("{} started", spec.kind.name()),
            serde_json::json!({}),
        );
        execute(&mut ctx, &spec).await
    };
    finish(&mut ctx, ending);
}

async fn execute(ctx: &mut JobContext, spec: &JobSpec) -> Ending {
    match &spec.kind {
        JobKind::Ping(params) => ping::run(ctx, params),
        JobKind::ContainerUpdate(params) => container_update::run(ctx, params).await,
        JobKind::PackageUpgrade(params) => package_upgrade::run(ctx, params).await,
        JobKind::AgentUpdate(params) => agent_update::run(ctx, params).await,
    }
}

async fn recover(ctx: &mut JobContext, spec: &JobSpec) -> Ending {
    match &spec.kind {
        JobKind::Ping(_) => Ending::new(
            JobEnd::Failed,
            "interrupted by an agent restart (ping changes nothing; nothing to recover)",
            serde_json::json!({ "interrupted": true }),
        ),
        JobKind::ContainerUpdate(params) => container_update::recover(ctx, params).await,
        JobKind::PackageUpgrade(params) => package_upgrade::recover(ctx, params).await,
        JobKind::AgentUpdate(params) => agent_update::recover(ctx, params).await,
    }
}

/// Signs the ending, journals it and hands it to the session loop.
fn finish(ctx: &mut JobContext, ending: Ending) {
    let host = ctx.host.clone();
    let outcome = JobOutcome {
        job_id: ctx.entry.job_id,
        spec_sha256: ctx.entry.spec_sha256.clone().try_into().unwrap_or([0; 32]),
        tenant_id: host.tenant_id,
        host_id: host.host_id,
        end: ending.end,
        refusal: ending.refusal,
        summary: ending.summary.clone(),
        detail_json: ending.detail.to_string(),
        started_at_ms: ctx.entry.started_at_ms,
        finished_at_ms: now_ms(),
    };
    let receipt = match host.sign(&outcome) {
        Ok(receipt) => receipt,
        Err(error) => {
            tracing::error!(job_id = %ctx.entry.job_id, error = %error_chain(&error),
                "could not sign a job result");
            return;
        }
    };
    ctx.entry.status = Status::Finished;
    ctx.entry.receipt = Some(StoredReceipt {
        outcome: receipt.outcome.clone(),
        signature: receipt.signature.clone(),
    });
    if let Err(error) = host.journal.save(&ctx.entry) {
        tracing::error!(job_id = %ctx.entry.job_id, error = %error_chain(&error),
            "could not journal a job result; sending it without a copy");
    }
    match ending.end {
        JobEnd::Succeeded => {
            tracing::info!(job_id = %ctx.entry.job_id, summary = %ending.summary, "job succeeded")
        }
        JobEnd::RolledBack => {
            tracing::warn!(job_id = %ctx.entry.job_id, summary = %ending.summary, "job rolled back")
        }
        JobEnd::Failed | JobEnd::Refused => tracing::error!(job_id = %ctx.entry.job_id,
            end = ending.end.as_str(), summary = %ending.summary, "job did not succeed"),
    }
    let _ = host.outgoing.send(Outgoing::Result {
        job_id: ctx.entry.job_id,
        receipt,
    });
    if matches!(
        ctx.entry.kind.as_str(),
        "container_update" | "package_upgrade"
    ) && ending.end != JobEnd::Refused
    {
        let _ = host.outgoing.send(Outgoing::InventoryChanged);
    }
}
