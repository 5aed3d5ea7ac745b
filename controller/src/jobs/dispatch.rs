//! Getting queued jobs to the agents that must run them, from whichever replica holds the
//! agent's session.
//!
//! * Each connected agent has a dispatch task here ([`Dispatcher::attach`]). It delivers the
//!   host's due jobs when its session starts and whenever it is woken, and stops with the
//!   session. It never polls by itself: every [`SWEEP_INTERVAL`] one sweep per replica asks
//!   PostgreSQL which of its hosts have jobs to (re)deliver and wakes just those — one
//!   query per replica instead of one transaction per session (with 10 000 idle sessions,
//!   1 000 transactions a second and most of an idle controller's CPU; docs/performance.md).
//! * Waking comes from PostgreSQL: a trigger NOTIFYs `unity_jobs` with the host id whenever a
//!   job is queued, by any replica or any database writer. Every replica LISTENs and wakes the
//!   task of the host if it holds its session. When the listening connection was lost (and
//!   notifications with it), every task is woken.
//! * A delivery first moves the row `queued → dispatched` in its own committed transaction
//!   (`FOR UPDATE SKIP LOCKED`, so two replicas never both claim it), then sends the signed
//!   bytes on a new stream and applies the agent's answer. A delivery that got no answer is
//!   sent again — the agent recognises the job id and answers without running it twice.
//! * Key statements (rotations) are pushed to every agent when its session starts and when
//!   `unity_job_keys` says a rotation was recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sqlx::postgres::PgListener;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tracing::Instrument;
use unity_protocol::io::{read_frame, write_frame};
use unity_protocol::latest::{Push, PushReply, SignedJob, SignedKeyStatement};
use uuid::Uuid;

use super::keys::statement_chain;
use super::outcome::{self, Applied, Peer};
use super::state::{Input, JobState, Outcome, transition};
use crate::error_chain;
use crate::store::jobs::{self as job_store, JobRow, JobUpdate};
use crate::store::{Store, StoreError};

/// How often the replica looks for connected hosts with due jobs that no notification
/// announced (jobs whose not-before arrived, deliveries that got no answer).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// A delivery without an answer is sent again after this long.
pub const REDELIVER_AFTER: Duration = Duration::from_secs(30);
/// How long the agent may take to answer a delivery (verify + journal fsync).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// Answers are small: an accept, or a receipt.
const MAX_ANSWER_FRAME: u32 = 64 * 1024;
/// How often queued jobs past expiry are expired (for hosts that are not connected).
const EXPIRY_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct SessionEntry {
    generation: u64,
    connection: quinn::Connection,
    wake: Arc<Notify>,
    keys_changed: Arc<std::sync::atomic::AtomicBool>,
}

/// Sessions of this replica and what they need to deliver jobs.
#[derive(Debug)]
pub struct Dispatcher {
    store: Store,
    sessions: Mutex<HashMap<Uuid, SessionEntry>>,
    generation: AtomicU64,
    /// The job-key statement chain, refreshed on start and on `unity_job_keys`.
    key_chain: RwLock<Vec<SignedKeyStatement>>,
}

/// Removes the session's entry when the session ends (unless a newer session replaced it).
#[derive(Debug)]
pub struct Attached {
    dispatcher: Arc<Dispatcher>,
    host_id: Uuid,
    generation: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(mut sessions) = self.dispatcher.sessions.lock()
            && sessions
                .get(&self.host_id)
                .is_some_and(|e| e.generation == self.generation)
        {
            sessions.remove(&self.host_id);
        }
    }
}

impl Dispatcher {
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            sessions: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            key_chain: RwLock::new(Vec::new()),
        })
    }

    /// Starts the listener and the expiry sweep; they run until the returned tasks are
    /// aborted.
    pub fn start(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().listen()),
            tokio::spawn(self.clone().expire_forever()),
            tokio::spawn(self.clone().sweep_forever()),
        ]
    }

    /// How many agent sessions this replica dispatches to.
    pub fn connected(&self) -> usize {
        self.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Registers a live session and starts its dispatch task. Keep the returned guard for
    /// the session's lifetime.
    pub fn attach(self: &Arc<Self>, connection: quinn::Connection, peer: Peer) -> Attached {
        let host_id = peer.identity.host_id;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        let keys_changed = Arc::new(std::sync::atomic::AtomicBool::new(true));
        if let Ok(mut sessions) = self.sessions.lock() {
            let previous = sessions.insert(
                host_id,
                SessionEntry {
                    generation,
                    connection: connection.clone(),
                    wake: wake.clone(),
                    keys_changed: keys_changed.clone(),
                },
            );
            // One live session per host: a new one (the agent reconnected, or something else
            // holds its certificate) replaces the old, which would otherwise linger until its
            // idle timeout, holding memory and getting jobs.
            if let Some(old) = previous {
                tracing::warn!(%host_id, "a new session of this host replaces its previous one");
                old.connection.close(
                    unity_protocol::latest::close_code::SESSION_REPLACED.into(),
                    b"replaced by a newer session of this host",
                );
            }
        }
        let task = tokio::spawn(
            self.clone()
                .session_task(connection, peer, wake, keys_changed)
                .in_current_span(),
        );
        Attached {
            dispatcher: self.clone(),
            host_id,
            generation,
            task,
        }
    }

    fn wake(&self, host_id: Uuid) {
        if let Ok(sessions) = self.sessions.lock()
            && let Some(entry) = sessions.get(&host_id)
        {
            entry.wake.notify_one();
        }
    }

    fn wake_all(&self, keys_changed: bool) {
        if let Ok(sessions) = self.sessions.lock() {
            for entry in sessions.values() {
                if keys_changed {
                    entry.keys_changed.store(true, Ordering::Relaxed);
                }
                entry.wake.notify_one();
            }
        }
    }

    async fn refresh_key_chain(&self) {
        match statement_chain(&self.store).await {
            Ok(chain) => {
                if let Ok(mut cached) = self.key_chain.write() {
                    *cached = chain;
                }
            }
            Err(error) => tracing::error!(error = %error_chain(&error),
                "could not read the job-key statements; agents keep the keys they have"),
        }
    }

    /// LISTENs for queued jobs and key rotations, reconnecting after a lost connection.
    async fn listen(self: Arc<Self>) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.listen_once().await {
                Ok(()) => {}
                Err(error) => tracing::warn!(error = %error_chain(&error), retry_in = ?delay,
                    "job notifications unavailable; sweeping every session meanwhile"),
            }
            // Whatever was notified while not listening is found by a full sweep.
            self.refresh_key_chain().await;
            self.wake_all(true);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    async fn listen_once(&self) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(self.store.app()).await?;
        listener
            .listen_all(["unity_jobs", "unity_job_keys"])
            .await?;
        self.refresh_key_chain().await;
        self.wake_all(true);
        loop {
            // `None`: the connection was lost (notifications too); sqlx reconnects on the
            // next call, and the caller sweeps.
            let Some(notification) = listener.try_recv().await? else {
                return Ok(());
            };
            match notification.channel() {
                "unity_jobs" => match notification.payload().parse::<Uuid>() {
                    Ok(host_id) => self.wake(host_id),
                    Err(_) => tracing::warn!(
                        payload = notification.payload(),
                        "job notification without a host id"
                    ),
                },
                "unity_job_keys" => {
                    self.refresh_key_chain().await;
                    self.wake_all(true);
                }
                _ => {}
            }
        }
    }

    /// Every [`SWEEP_INTERVAL`], wakes the dispatch tasks of this replica's hosts that have
    /// jobs to deliver or redeliver.
    async fn sweep_forever(self: Arc<Self>) {
        loop {
            tokio::time::sleep(SWEEP_INTERVAL).await;
            let hosts: Vec<Uuid> = match self.sessions.lock() {
                Ok(sessions) => sessions.keys().copied().collect(),
                Err(_) => continue,
            };
            if hosts.is_empty() {
                continue;
            }
            let redeliver_before = OffsetDateTime::now_utc() - REDELIVER_AFTER;
            match job_store::hosts_with_undelivered_jobs(&self.store, &hosts, redeliver_before)
                .await
            {
                Ok(due) => {
                    for host_id in due {
                        self.wake(host_id);
                    }
                }
                // The next sweep asks again; until the database answers no delivery could
                // be claimed anyway.
                Err(error) => tracing::warn!(error = %error_chain(&error), sessions = hosts.len(),
                    "could not look for undelivered jobs; trying again next sweep"),
            }
        }
    }

    async fn expire_forever(self: Arc<Self>) {
        loop {
            if let Err(error) = expire_due(&self.store, OffsetDateTime::now_utc()).await {
                tracing::warn!(error = %error_chain(&error), "could not expire due jobs");
            }
            tokio::time::sleep(EXPIRY_INTERVAL).await;
        }
    }

    async fn session_task(
        self: Arc<Self>,
        connection: quinn::Connection,
        peer: Peer,
        wake: Arc<Notify>,
        keys_changed: Arc<std::sync::atomic::AtomicBool>,
    ) {
        // The first round after a (re)connect resends every unanswered delivery at once.
        let mut redeliver_before = OffsetDateTime::now_utc();
        loop {
            if keys_changed.swap(false, Ordering::Relaxed) {
                let chain = self.key_chain.read().map(|c| c.clone()).unwrap_or_default();
                if !chain.is_empty() {
                    push_keys(&connection, chain).await;
                }
            }
            if let Err(error) = deliver_due(&self.store, &connection, &peer, redeliver_before).await
            {
                tracing::warn!(error = %error_chain(&error), "job delivery failed; retrying");
            }
            tokio::select! {
                _ = connection.closed() => return,
                () = wake.notified() => {}
            }
            redeliver_before = OffsetDateTime::now_utc() - REDELIVER_AFTER;
        }
    }
}

/// Claims and sends every due job of the peer's host, oldest first.
pub async fn deliver_due(
    store: &Store,
    connection: &quinn::Connection,
    peer: &Peer,
    redeliver_before: OffsetDateTime,
) -> Result<(), StoreError> {
    let now = OffsetDateTime::now_utc();
    let mut tx = store.tenant_tx(peer.identity.tenant_id).await?;
    let rows = job_store::deliverable(&mut tx, peer.identity.host_id, redeliver_before).await?;
    let mut to_send: Vec<JobRow> = Vec::new();
    for row in rows {
        let input = if row.state == JobState::Queued.as_str() {
            Input::Dispatch
        } else {
            Input::Redeliver
        };
        match transition(row.facts(), input, now) {
            Outcome::Move(JobState::Dispatched) => {
                job_store::update(&mut tx, row.id, &JobUpdate::Dispatched).await?;
                to_send.push(row);
            }
            Outcome::Move(JobState::Expired) => {
                job_store::update(
                    &mut tx,
                    row.id,
                    &JobUpdate::Closed {
                        state: JobState::Expired,
                        detail: "expired before the host could be reached",
                    },
                )
                .await?;
                tracing::info!(job_id = %row.id, "job expired before dispatch");
            }
            Outcome::Move(_) | Outcome::Ignore | Outcome::Refuse(_) => {}
        }
    }
    crate::store::commit(tx, "claiming jobs for dispatch").await?;
    for row in to_send {
        deliver(store, connection, peer, &row).await?;
    }
    Ok(())
}

/// Sends one claimed job and applies the answer. A lost stream leaves the row `dispatched`
/// for redelivery.
async fn deliver(
    store: &Store,
    connection: &quinn::Connection,
    peer: &Peer,
    row: &JobRow,
) -> Result<(), StoreError> {
    let Ok(key_id) = <[u8; 32]>::try_from(row.key_id.as_slice()) else {
        tracing::error!(job_id = %row.id, "job row has a malformed key id; not sent");
        return Ok(());
    };
    let push = Push::Job(SignedJob {
        key_id,
        spec: row.spec.clone(),
        signature: row.signature.clone(),
    });
    let started = std::time::Instant::now();
    let answer = match exchange(connection, &push).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::info!(job_id = %row.id, %error,
                "job sent but not answered; it will be sent again");
            return Ok(());
        }
    };
    let now = OffsetDateTime::now_utc();
    let mut tx = store.tenant_tx(peer.identity.tenant_id).await?;
    let applied = match &answer {
        PushReply::JobAccepted { job_id, .. } if *job_id == row.id => {
            outcome::accepted(&mut tx, peer, row.id, now).await?
        }
        PushReply::JobRefused(receipt) => {
            outcome::receipt(&mut tx, peer, receipt, now, Some(row.id)).await?
        }
        other => Applied::Rejected(format!("unexpected answer to a job: {other:?}")),
    };
    crate::store::commit(tx, "recording a job delivery").await?;
    match applied {
        Applied::Rejected(reason) => tracing::warn!(job_id = %row.id, %reason,
            "the agent's answer to a job was not acceptable"),
        Applied::Moved(state) => tracing::info!(job_id = %row.id, %state,
            answered_in = ?started.elapsed(), "job delivered"),
        Applied::Duplicate => {}
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    #[error("could not open a stream: {0}")]
    Open(#[from] quinn::ConnectionError),
    #[error(transparent)]
    Frame(#[from] unity_protocol::io::FrameIoError),
    #[error("stream error: {0}")]
    Stream(#[from] quinn::ClosedStream),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

async fn exchange(connection: &quinn::Connection, push: &Push) -> Result<PushReply, ExchangeError> {
    let run = async {
        let (mut send, mut recv) = connection.open_bi().await?;
        write_frame(&mut send, push).await?;
        send.finish()?;
        Ok::<_, ExchangeError>(read_frame::<_, PushReply>(&mut recv, MAX_ANSWER_FRAME).await?)
    };
    tokio::time::timeout(ANSWER_TIMEOUT, run)
        .await
        .map_err(|_| ExchangeError::Timeout(ANSWER_TIMEOUT))?
}

async fn push_keys(connection: &quinn::Connection, chain: Vec<SignedKeyStatement>) {
    match exchange(connection, &Push::JobKeys(chain)).await {
        Ok(PushReply::JobKeysApplied { version }) => {
            tracing::debug!(version, "agent holds the current job keys");
        }
        Ok(PushReply::JobKeysRefused { detail }) => {
            tracing::warn!(%detail, "agent refused the job-key statements");
        }
        Ok(other) => tracing::warn!(?other, "unexpected answer to the job-key statements"),
        Err(error) => tracing::info!(%error, "could not push the job-key statements"),
    }
}

/// Expires queued jobs, and unanswered deliveries long past expiry, of every tenant.
pub async fn expire_due(store: &Store, now: OffsetDateTime) -> Result<u64, StoreError> {
    let mut expired = 0;
    for tenant_id in job_store::tenants_with_expired_jobs(store).await? {
        let mut tx = store.tenant_tx(tenant_id).await?;
        for row in job_store::past_expiry(&mut tx).await? {
            if let Outcome::Move(JobState::Expired) = transition(row.facts(), Input::Sweep, now) {
                let detail = if row.dispatched_at.is_some() {
                    "expired: the host never answered its delivery"
                } else {
                    "expired before the host could be reached"
                };
                job_store::update(
                    &mut tx,
                    row.id,
                    &JobUpdate::Closed {
                        state: JobState::Expired,
                        detail,
                    },
                )
                .await?;
                tracing::info!(job_id = %row.id, %tenant_id, "job expired");
                expired += 1;
            }
        }
        crate::store::commit(tx, "expiring jobs").await?;
    }
    Ok(expired)
}
