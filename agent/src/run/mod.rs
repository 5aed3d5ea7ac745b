//! `unity-agent run`: collect on intervals into the spool, and keep a session with the
//! controller that delivers the spool in order, answers jobs and renews the certificate.
//!
//! Two loops that share the spool:
//! * [`collector`] runs whatever the link does: facts, storage and inventory on their
//!   intervals, job events from the job host — every report is written to the spool first.
//! * [`link`] connects (jittered exponential backoff, reset only once a session proved itself
//!   by an acknowledged report), delivers the spool oldest first and forgets a report only
//!   when the controller acknowledged it, sends job results from the journal, answers pushes
//!   in a task of its own, and renews the host certificate.
//!
//! So an outage costs no report: collection goes on into the spool, and the backlog arrives
//! with its original collection times when the controller is back.

mod collector;
mod link;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::jobs::{JobHost, JobOptions, JobsError};
use crate::reports::inventory::InventoryCollector;
use crate::reports::storage::StorageCollector;
use crate::spool::{Spool, SpoolError, SpoolOptions};
use crate::state::AgentState;

/// Facts interval until the controller's Welcome says otherwise.
const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(60);
/// Where the controller's last `report_interval_secs` is kept (text, seconds).
const INTERVAL_FILE: &str = "report-interval";

/// The interval remembered from the last `Welcome`, if sane (1 s to a day).
fn remembered_interval(state_dir: &std::path::Path) -> Option<Duration> {
    let text = std::fs::read_to_string(state_dir.join(INTERVAL_FILE)).ok()?;
    let secs: u64 = text.trim().parse().ok()?;
    (1..=86_400)
        .contains(&secs)
        .then(|| Duration::from_secs(secs))
}

/// Remembers the controller's interval for the next start (best effort: losing it only
/// means the default until the next `Welcome`).
pub(crate) fn remember_interval(state_dir: &std::path::Path, interval: Duration) {
    let _ = std::fs::write(
        state_dir.join(INTERVAL_FILE),
        interval.as_secs().to_string(),
    );
}

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
    /// How often pending package updates are read.
    pub packages_interval: Duration,
    /// Where apt is; `None` disables package reports.
    pub packages: Option<unity_collect::packages::run::PackageConfig>,
    pub backoff_base: Duration,
    /// Longest wait between two connection attempts: after an outage agents are back within
    /// this (spread by full jitter over its upper half), not minutes later.
    pub backoff_max: Duration,
    /// What jobs this host runs, and how.
    pub jobs: JobOptions,
    /// How much the spool may hold while the controller is away.
    pub spool: SpoolOptions,
    /// What `[host] labels` declares; reported at every connection (an empty set clears what
    /// the host declared before).
    pub labels: unity_protocol::latest::HostLabels,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("report_interval", &self.report_interval)
            .field("storage_interval", &self.storage_interval)
            .field("storage", &self.storage.is_some())
            .field("inventory_interval", &self.inventory_interval)
            .field("inventory", &self.inventory.is_some())
            .field("packages_interval", &self.packages_interval)
            .field("packages", &self.packages.is_some())
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("jobs", &self.jobs.allow)
            .field("spool", &self.spool)
            .field("labels", &self.labels.labels)
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
            packages_interval: Duration::from_secs(6 * 3600),
            packages: None,
            inventory: None,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            jobs: JobOptions::default(),
            spool: SpoolOptions::default(),
            labels: unity_protocol::latest::HostLabels {
                labels: Default::default(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("could not build the TLS configuration from the stored enrollment")]
    Tls(#[from] unity_pki::tls::TlsConfigError),
    #[error("could not open the job journal or keys")]
    Jobs(#[from] JobsError),
    #[error("could not open the spool")]
    Spool(#[from] SpoolError),
}

/// What both loops share.
#[derive(Debug)]
struct Shared {
    spool: Mutex<Spool>,
    /// Something new to send: a spooled report, a job result.
    wake: Notify,
    /// The facts interval in force (the override, or what the controller asked for).
    interval: watch::Sender<Duration>,
    /// Job results handed over by the job host (also in its journal until acknowledged).
    results: Mutex<Vec<(uuid::Uuid, unity_protocol::latest::JobReceipt)>>,
}

impl Shared {
    fn spool(&self) -> std::sync::MutexGuard<'_, Spool> {
        // A poisoned lock means a panic elsewhere, which aborts the release agent anyway.
        self.spool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pending_result(&self, job_id: uuid::Uuid, receipt: unity_protocol::latest::JobReceipt) {
        let mut results = self
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !results.iter().any(|(id, _)| *id == job_id) {
            results.push((job_id, receipt));
        }
    }

    fn take_results(&self) -> Vec<(uuid::Uuid, unity_protocol::latest::JobReceipt)> {
        std::mem::take(
            &mut *self
                .results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Runs until `shutdown` resolves.
pub async fn run(
    state: &AgentState,
    options: &RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    // Fail early on a stored enrollment rustls cannot use.
    tls_config(state, state.chain())?;
    let span = tracing::info_span!("agent", tenant_id = %state.enrollment.tenant_id,
        host_id = %state.enrollment.host_id, controller = %state.enrollment.controller);
    let (jobs, outgoing) = JobHost::open(state, options.jobs.clone())?;
    let (spool, problems) = Spool::open(&state.dir.join("spool"), options.spool)?;
    async {
        for problem in &problems {
            tracing::error!(%problem, "spool damage found at start; the rest is delivered");
        }
        let (depth, bytes) = spool.depth();
        if depth > 0 {
            tracing::info!(
                reports = depth,
                bytes,
                "spooled reports from before the restart will be delivered"
            );
        }
        // The interval the controller asked for last time, so an agent restarted while the
        // controller is away keeps reporting as often (the chaos run found it fell back to
        // the 60 s default until it reconnected).
        let remembered = remembered_interval(&state.dir);
        let (interval, _) = watch::channel(
            options
                .report_interval
                .or(remembered)
                .unwrap_or(DEFAULT_REPORT_INTERVAL),
        );
        let shared = Arc::new(Shared {
            spool: Mutex::new(spool),
            wake: Notify::new(),
            interval,
            results: Mutex::new(Vec::new()),
        });
        // Finish what a crash interrupted before anything new arrives.
        jobs.recover();
        tokio::select! {
            () = shutdown => {}
            () = collector::collect_forever(options, &shared, outgoing) => {}
            () = link::link_forever(state, options, &shared, &jobs) => {}
        }
    }
    .instrument(span)
    .await;
    Ok(())
}

fn tls_config(
    state: &AgentState,
    chain: Vec<CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, unity_pki::tls::TlsConfigError> {
    unity_pki::tls::agent_client_config(&state.ca, chain, state.private_key_der())
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod interval_tests {
    use super::*;

    #[test]
    fn the_controllers_interval_is_remembered_and_nonsense_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(remembered_interval(dir.path()), None);
        remember_interval(dir.path(), Duration::from_secs(15));
        assert_eq!(
            remembered_interval(dir.path()),
            Some(Duration::from_secs(15))
        );
        for bad in ["0", "-1", "86401", "x", ""] {
            std::fs::write(dir.path().join(INTERVAL_FILE), bad).unwrap();
            assert_eq!(remembered_interval(dir.path()), None, "{bad}");
        }
    }
}
