//! `unity-agent run`: keep a session with the controller and report on an interval,
//! reconnecting with jittered exponential backoff.

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;
use time::OffsetDateTime;
use tracing::Instrument;

use unity_protocol::latest::{ReportBody, ReportReply, SourceState, SourceStatus, StorageReport};

use crate::collect;
use rustls::pki_types::CertificateDer;
use unity_pki::HostIdentity;
use unity_pki::rotation::Validity;

use crate::collect::inventory::InventoryCollector;
use crate::collect::storage::StorageCollector;
use crate::error_chain;
use crate::jobs::{JobHost, JobOptions, JobsError, Outgoing};
use crate::link::backoff::{Backoff, random_unit};
use crate::link::{self, Session, SessionError};
use crate::state::AgentState;
use unity_protocol::io::{FrameIoError, read_frame, write_frame};
use unity_protocol::latest::{JobReceipt, Push};

#[derive(Clone)]
pub struct RunOptions {
    /// Overrides the interval the controller asks for (tests, demos).
    pub report_interval: Option<Duration>,
    /// How often disks, pools and arrays are read. SMART reads never wake a sleeping disk
    /// (`-n standby`), so this can be short without costing spin-ups.
    pub storage_interval: Duration,
    /// Where storage facts come from; `None` disables storage reports.
    pub storage: Option<Arc<dyn StorageCollector>>,
    /// How often containers and databases are inventoried.
    pub inventory_interval: Duration,
    /// Where the inventory comes from; `None` disables container and database reports.
    pub inventory: Option<Arc<dyn InventoryCollector>>,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// What jobs this host runs, and how.
    pub jobs: JobOptions,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("report_interval", &self.report_interval)
            .field("storage_interval", &self.storage_interval)
            .field("storage", &self.storage.is_some())
            .field("inventory_interval", &self.inventory_interval)
            .field("inventory", &self.inventory.is_some())
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("jobs", &self.jobs.allow)
            .finish()
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            report_interval: None,
            storage_interval: Duration::from_secs(300),
            storage: None,
            inventory_interval: Duration::from_secs(300),
            inventory: None,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            jobs: JobOptions::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("could not build the TLS configuration from the stored enrollment")]
    Tls(#[from] unity_pki::tls::TlsConfigError),
    #[error("could not open the job journal or keys")]
    Jobs(#[from] JobsError),
}

/// Runs until `shutdown` resolves.
pub async fn run(
    state: &AgentState,
    options: &RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    // Fail early on a stored enrollment rustls cannot use.
    tls_config(state, &state.certificate)?;
    let span = tracing::info_span!("agent", tenant_id = %state.enrollment.tenant_id,
        host_id = %state.enrollment.host_id, controller = %state.enrollment.controller);
    let (jobs, outgoing) = JobHost::open(state, options.jobs.clone())?;
    let mut link = Link { jobs, outgoing };
    async {
        // Finish what a crash interrupted before anything new arrives.
        link.jobs.recover();
        reconnect_forever(state, options, &mut link, shutdown).await;
    }
    .instrument(span)
    .await;
    Ok(())
}

fn tls_config(
    state: &AgentState,
    certificate: &CertificateDer<'static>,
) -> Result<rustls::ClientConfig, unity_pki::tls::TlsConfigError> {
    unity_pki::tls::agent_client_config(
        &state.ca,
        vec![certificate.clone()],
        state.private_key_der(),
    )
}

/// What outlives a connection: the job host and the queue of its events and results.
struct Link {
    jobs: Arc<JobHost>,
    outgoing: tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
}

async fn reconnect_forever(
    state: &AgentState,
    options: &RunOptions,
    link: &mut Link,
    shutdown: impl Future<Output = ()>,
) {
    let mut backoff = Backoff::new(options.backoff_base, options.backoff_max);
    let mut source_log = SourceLog::default();
    // The certificate in use; replaced in place when the session renews it, so the next
    // connection presents the new one.
    let mut certificate = state.certificate.clone();
    tokio::pin!(shutdown);
    loop {
        let attempt = connect_and_report(
            state,
            options,
            link,
            &mut certificate,
            &mut backoff,
            &mut source_log,
        );
        tokio::select! {
            () = &mut shutdown => return,
            error = attempt => {
                let delay = backoff.next_delay(random_unit());
                if error.is_permanent() {
                    tracing::error!(error = %error_chain(&error), retry_in = ?delay,
                        "controller refuses this host; re-enroll it or restore its record");
                } else {
                    tracing::warn!(error = %error_chain(&error), retry_in = ?delay,
                        "lost the controller; reconnecting");
                }
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Connect(#[from] link::ConnectError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("could not build the TLS configuration")]
    Tls(#[from] unity_pki::tls::TlsConfigError),
}

impl AttemptError {
    fn is_permanent(&self) -> bool {
        matches!(self, AttemptError::Session(e) if e.is_permanent())
    }
}

/// One connection's life: connect, Hello, report immediately and then every interval.
async fn connect_and_report(
    state: &AgentState,
    options: &RunOptions,
    link: &mut Link,
    certificate: &mut CertificateDer<'static>,
    backoff: &mut Backoff,
    source_log: &mut SourceLog,
) -> AttemptError {
    let tls = match tls_config(state, certificate) {
        Ok(tls) => tls,
        Err(error) => return error.into(),
    };
    let addr = match link::resolve(&state.enrollment.controller).await {
        Ok(addr) => addr,
        Err(error) => return error.into(),
    };
    let (_endpoint, connection) = match link::connect(addr, tls).await {
        Ok(pair) => pair,
        Err(error) => return error.into(),
    };
    let mut session = match Session::open(connection, crate::VERSION).await {
        Ok(session) => session,
        Err(error) => return error.into(),
    };
    backoff.reset();
    let interval = options.report_interval.unwrap_or_else(|| {
        Duration::from_secs(u64::from(session.welcome.report_interval_secs.max(1)))
    });
    tracing::info!(%addr, ?interval, "connected to controller");
    let mut facts_ticker = tokio::time::interval(interval);
    facts_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut storage_ticker = tokio::time::interval(options.storage_interval);
    storage_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inventory_ticker = tokio::time::interval(options.inventory_interval);
    inventory_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Jobs and key statements are answered by a task of their own, so a slow report never
    // delays a job (and a slow job never delays a report). It ends with the connection.
    let _pushes = AbortOnDrop(tokio::spawn(serve_pushes(
        session.connection().clone(),
        link.jobs.clone(),
    )));
    // Results the controller has not stored yet (from before a restart or a lost session).
    for (job_id, receipt) in link.jobs.unacked_results() {
        if let Err(error) = send_job_result(&mut session, &link.jobs, job_id, receipt).await {
            return error.into();
        }
    }
    loop {
        let next = tokio::select! {
            error = session.closed() => return SessionError::Closed(error).into(),
            Some(out) = link.outgoing.recv() => Next::Job(out),
            _ = facts_ticker.tick() => {
                renew_if_due(&mut session, state, certificate).await;
                Next::Reports(vec![ReportBody::HostFacts(collect::host::collect())])
            }
            _ = storage_ticker.tick(), if options.storage.is_some() => {
                let Some(storage) = &options.storage else { continue };
                let report = storage.collect_storage().await;
                source_log.observe_storage(&report);
                Next::Reports(vec![ReportBody::Storage(report)])
            }
            _ = inventory_ticker.tick(), if options.inventory.is_some() => {
                let Some(inventory) = &options.inventory else { continue };
                let (containers, databases) = inventory.collect_inventory().await;
                source_log.observe_inventory(&containers.status, &databases.status);
                Next::Reports(vec![ReportBody::Containers(containers), ReportBody::Databases(databases)])
            }
        };
        let bodies = match next {
            Next::Job(Outgoing::Result { job_id, receipt }) => {
                if let Err(error) = send_job_result(&mut session, &link.jobs, job_id, receipt).await
                {
                    return error.into();
                }
                continue;
            }
            Next::Job(Outgoing::Event(event)) => vec![ReportBody::JobEvent(event)],
            Next::Job(Outgoing::InventoryChanged) => {
                inventory_ticker.reset_immediately();
                continue;
            }
            Next::Reports(bodies) => bodies,
        };
        for body in bodies {
            let kind = match &body {
                ReportBody::HostFacts(_) => "host facts",
                ReportBody::Storage(_) => "storage",
                ReportBody::Containers(_) => "containers",
                ReportBody::Databases(_) => "databases",
                ReportBody::JobEvent(_) => "job event",
                ReportBody::JobResult(_) => "job result",
            };
            match session.send(now_ms(), body).await {
                Ok(ReportReply::Ack { seq, duplicate }) => {
                    tracing::debug!(seq, duplicate, kind, "report acknowledged");
                }
                Ok(ReportReply::Rejected { .. }) => {}
                Err(SessionError::Rejected { seq, detail }) => {
                    // The controller will never take this report; the next one is fresh.
                    tracing::error!(seq, kind, %detail, "controller rejected a report");
                }
                Err(error) => return error.into(),
            }
        }
    }
}

/// What woke the session loop.
enum Next {
    Job(Outgoing),
    Reports(Vec<ReportBody>),
}

/// Pushes are small (a signed job, key statements).
const MAX_PUSH_FRAME: u32 = 1024 * 1024;

/// Aborts a task when dropped (the push server of a connection that ended).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accepts the streams the controller opens and answers each, until the connection ends.
async fn serve_pushes(connection: quinn::Connection, jobs: Arc<JobHost>) {
    while let Ok((send, recv)) = connection.accept_bi().await {
        answer_push(&jobs, send, recv).await;
    }
}

/// Reads one push from the controller, answers it. A broken push is logged and its stream
/// dropped; it never ends the session.
async fn answer_push(
    jobs: &Arc<JobHost>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let exchange = async {
        let push = read_frame::<_, Push>(&mut recv, MAX_PUSH_FRAME).await?;
        let reply = jobs.handle_push(push);
        write_frame(&mut send, &reply).await?;
        let _ = send.finish();
        Ok::<_, FrameIoError>(())
    };
    match tokio::time::timeout(link::REPLY_TIMEOUT, exchange).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(error = %error_chain(&error), "unreadable push from the controller");
        }
        Err(_) => tracing::warn!("push from the controller timed out"),
    }
}

/// Sends a job's signed result; the journal forgets it once the controller stored it (or
/// said it never will).
async fn send_job_result(
    session: &mut Session,
    jobs: &JobHost,
    job_id: uuid::Uuid,
    receipt: JobReceipt,
) -> Result<(), SessionError> {
    match session.send(now_ms(), ReportBody::JobResult(receipt)).await {
        Ok(_) => {
            tracing::info!(%job_id, "job result delivered");
            jobs.result_delivered(job_id);
            Ok(())
        }
        Err(SessionError::Rejected { detail, .. }) => {
            tracing::error!(%job_id, %detail, "controller refuses this job result for good");
            jobs.result_delivered(job_id);
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Renews the host certificate over the session once it is two thirds through its life.
/// Checked on every facts tick (a certificate parse: microseconds); a failure is logged and
/// retried on the next tick, with a third of the lifetime left to succeed.
async fn renew_if_due(
    session: &mut Session,
    state: &AgentState,
    certificate: &mut CertificateDer<'static>,
) {
    let validity = match Validity::of_der(certificate) {
        Ok(validity) => validity,
        Err(error) => {
            tracing::error!(%error, "the host certificate in use cannot be read");
            return;
        }
    };
    if !validity.renewal_due(OffsetDateTime::now_utc()) {
        return;
    }
    let csr = match state.key.csr_der(&state.enrollment.host_id.to_string()) {
        Ok(csr) => csr,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not build a renewal CSR");
            return;
        }
    };
    let grant = match session.renew(csr).await {
        Ok(grant) => grant,
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), not_after = %validity.not_after,
                "certificate renewal failed; retrying on the next report");
            return;
        }
    };
    let expected = HostIdentity {
        tenant_id: state.enrollment.tenant_id,
        host_id: state.enrollment.host_id,
    };
    match HostIdentity::from_certificate_der(&grant.certificate_der) {
        Ok(identity) if identity == expected => {}
        other => {
            tracing::error!(
                ?other,
                "controller sent a certificate for another identity; ignored"
            );
            return;
        }
    }
    if let Err(error) = AgentState::save_certificate(&state.dir, &grant.certificate_der) {
        tracing::error!(error = %error_chain(&error), "could not store the renewed certificate");
        return;
    }
    *certificate = CertificateDer::from(grant.certificate_der);
    let not_after = Validity::of_der(certificate).map(|v| v.not_after).ok();
    tracing::info!(?not_after, "host certificate renewed");
}

/// Logs a source's status when it changes — not every round — so a host without ZFS or
/// Docker says so once, and a smartctl that breaks says so the moment it does.
#[derive(Debug, Default)]
struct SourceLog {
    /// smart, zfs, mdraid, containers, databases.
    last: [Option<SourceStatus>; 5],
    /// Device path → last read status, so one unreadable disk is logged once, not every round.
    disks: std::collections::HashMap<String, String>,
}

impl SourceLog {
    fn observe_storage(&mut self, report: &StorageReport) {
        self.observe_sources(
            0,
            [
                ("smart", &report.smart),
                ("zfs", &report.zfs),
                ("mdraid", &report.mdraid),
            ],
        );
        for disk in &report.disks {
            let previous = self
                .disks
                .insert(disk.device.clone(), disk.read_status.clone());
            if previous.as_deref() == Some(disk.read_status.as_str()) {
                continue;
            }
            if disk.read_status == "ok" || disk.read_status == "in_standby" {
                tracing::info!(device = %disk.device, status = %disk.read_status, "disk readable");
            } else {
                tracing::warn!(device = %disk.device, status = %disk.read_status,
                    detail = %disk.read_detail, "disk could not be read");
            }
        }
    }

    fn observe_inventory(&mut self, containers: &SourceStatus, databases: &SourceStatus) {
        self.observe_sources(3, [("containers", containers), ("databases", databases)]);
    }

    fn observe_sources<const N: usize>(
        &mut self,
        offset: usize,
        sources: [(&'static str, &SourceStatus); N],
    ) {
        for ((name, status), last) in sources.into_iter().zip(self.last[offset..].iter_mut()) {
            if last.as_ref() == Some(status) {
                continue;
            }
            match status.state {
                SourceState::Ok => {
                    tracing::info!(source = name, detail = %status.detail, "source readable")
                }
                SourceState::NotPresent => {
                    tracing::info!(source = name, detail = %status.detail, "source not present on this host")
                }
                _ => tracing::warn!(source = name, state = ?status.state, detail = %status.detail,
                    "source unavailable"),
            }
            *last = Some(status.clone());
        }
    }
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
