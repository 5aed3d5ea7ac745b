//! The link loop: sessions with the controller. Delivers the spool oldest first, forgetting a
//! report only once it is acknowledged; sends job results; answers pushes; renews the host
//! certificate. Reconnects with jittered exponential backoff that is reset only once a session
//! proved itself (a report acknowledged) — a controller that accepts the handshake and then
//! fails every report is retried slower and slower, not hammered.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use unity_pki::HostIdentity;
use unity_pki::rotation::Validity;
use unity_protocol::io::{FrameIoError, read_frame, write_frame};
use unity_protocol::latest::{JobReceipt, Push, ReportBody, ReportReply, close_code};

use super::{RunOptions, Shared, now_ms, tls_config};
use crate::error_chain;
use crate::jobs::JobHost;
use crate::jobs::agent_update::fetch::{FetchFailure, FetchRequest};
use crate::link::backoff::{Backoff, hinted_delay, random_unit};
use crate::link::{self, Session, SessionError};
use crate::state::AgentState;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Connect(#[from] link::ConnectError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("could not build the TLS configuration")]
    Tls(#[from] unity_pki::tls::TlsConfigError),
    /// Found before dialing: the controller would refuse the handshake with a bare TLS alert.
    #[error(
        "the host certificate expired at {not_after}: this host was away longer than its \
         certificate lives, so it cannot renew it; re-enroll it with a new token \
         (`unity-agent enroll --force --controller … --token … --ca-fingerprint …`)"
    )]
    Expired { not_after: OffsetDateTime },
    /// Not a failure: the session renewed the certificate and ends so the next one presents
    /// the new certificate, which is what makes the controller stop accepting the old one.
    #[error("reconnecting with the renewed certificate")]
    Renewed,
}

impl AttemptError {
    fn is_permanent(&self) -> bool {
        matches!(self, AttemptError::Expired { .. })
            || matches!(self, AttemptError::Session(e) if e.is_permanent())
    }
}

pub(super) async fn link_forever(
    state: &AgentState,
    options: &RunOptions,
    shared: &Shared,
    jobs: &Arc<JobHost>,
) {
    let mut carried = Carried {
        backoff: Backoff::new(options.backoff_base, options.backoff_max),
        chain: state.chain(),
        fetches: jobs.take_fetch_requests(),
    };
    loop {
        let (error, hint) = session_life(state, options, shared, jobs, &mut carried).await;
        if matches!(error, AttemptError::Renewed) {
            tracing::info!("reconnecting with the renewed certificate");
            continue;
        }
        let (queued, _) = shared.spool().depth();
        if let Some(hint) = hint {
            let delay = hinted_delay(hint.retry_after_secs, random_unit());
            if hint.restarting {
                tracing::info!(retry_in = ?delay, queued,
                    "controller is stopping; reports are kept in the spool; coming back \
                     within the window it gave, spread out with the rest of the fleet");
            } else {
                tracing::warn!(error = %error_chain(&error), retry_in = ?delay, queued,
                    "controller cannot store now (its database is unreachable); reports are \
                     kept in the spool; coming back when it said");
            }
            tokio::time::sleep(delay).await;
            continue;
        }
        let delay = carried.backoff.next_delay(random_unit());
        if error.is_permanent() {
            tracing::error!(error = %error_chain(&error), retry_in = ?delay, queued,
                "controller refuses this host; re-enroll it or restore its record");
        } else {
            tracing::warn!(error = %error_chain(&error), retry_in = ?delay, queued,
                "lost the controller; reports are kept in the spool; reconnecting");
        }
        tokio::time::sleep(delay).await;
    }
}

/// What outlives a connection.
struct Carried {
    backoff: Backoff,
    /// The certificate in use and its intermediates; replaced in place when a session renews
    /// it, so the next connection presents the new one.
    chain: Vec<CertificateDer<'static>>,
    /// Release chunks `agent_update` jobs ask for, served on whichever session is up.
    fetches: Option<FetchRequests>,
}

/// When the controller said to come back, closing a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ComeBack {
    retry_after_secs: u32,
    /// It is stopping (a normal close), rather than unable to store (`UNAVAILABLE`).
    restarting: bool,
}

/// The hint in a close: `UNAVAILABLE` (the database is away) or `NORMAL` from a stopping
/// controller, each with `retry_after`. Other closes carry none (the backoff applies).
fn come_back(close: &quinn::ApplicationClose) -> Option<ComeBack> {
    let restarting = if close.error_code == close_code::UNAVAILABLE.into() {
        false
    } else if close.error_code == close_code::NORMAL.into() {
        true
    } else {
        return None;
    };
    close_code::retry_after(&close.reason).map(|retry_after_secs| ComeBack {
        retry_after_secs,
        restarting,
    })
}

/// One connection's life: why it ended, and the controller's `retry_after` hint if it closed
/// the connection with one.
async fn session_life(
    state: &AgentState,
    options: &RunOptions,
    shared: &Shared,
    jobs: &Arc<JobHost>,
    carried: &mut Carried,
) -> (AttemptError, Option<ComeBack>) {
    let mut connection = None;
    let error = connection_life(state, options, shared, jobs, carried, &mut connection).await;
    let hint = connection
        .and_then(|c: quinn::Connection| c.close_reason())
        .and_then(|reason| match reason {
            quinn::ConnectionError::ApplicationClosed(close) => come_back(&close),
            _ => None,
        });
    (error, hint)
}

async fn connection_life(
    state: &AgentState,
    options: &RunOptions,
    shared: &Shared,
    jobs: &Arc<JobHost>,
    carried: &mut Carried,
    connection_out: &mut Option<quinn::Connection>,
) -> AttemptError {
    if let Some(expired) = expired(&carried.chain, OffsetDateTime::now_utc()) {
        return expired;
    }
    let tls = match tls_config(state, carried.chain.clone()) {
        Ok(tls) => tls,
        Err(error) => return error.into(),
    };
    let (_endpoint, connection) = match link::connect_any(&state.enrollment.controller, tls).await {
        Ok(pair) => pair,
        Err(error) => return error.into(),
    };
    let addr = connection.remote_address();
    *connection_out = Some(connection.clone());
    let mut session = match Session::open(connection, crate::version()).await {
        Ok(session) => session,
        Err(error) => return error.into(),
    };
    if options.report_interval.is_none() {
        let asked =
            std::time::Duration::from_secs(u64::from(session.welcome.report_interval_secs.max(1)));
        let changed = shared.interval.send_if_modified(|current| {
            let changed = *current != asked;
            *current = asked;
            changed
        });
        if changed {
            super::remember_interval(&state.dir, asked);
        }
    }
    let (queued, _) = shared.spool().depth();
    tracing::info!(%addr, queued, controller_version = %session.welcome.controller_version,
        "connected to controller");
    jobs.session_established();
    // Jobs and key statements are answered by a task of their own, so a slow report never
    // delays a job (and a slow job never delays a report). It ends with the connection.
    let _pushes = AbortOnDrop(tokio::spawn(serve_pushes(
        session.connection().clone(),
        jobs.clone(),
    )));
    // The controller learns the spool's state, and the labels the host declares, at every
    // connection.
    {
        let mut spool = shared.spool();
        let status = super::collector::status_report(&spool);
        let now = now_ms();
        for body in [status, ReportBody::Labels(options.labels.clone())] {
            if let Err(error) = spool.append(body, now, now) {
                tracing::warn!(error = %error_chain(&error), "could not spool a report");
            }
        }
    }
    let mut proven = false;
    let mut renew = tokio::time::interval(*shared.interval.borrow());
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Err(error) = send_results(&mut session, shared, jobs).await {
            return error.into();
        }
        match drain(&mut session, shared).await {
            Ok(delivered) => {
                if delivered > 0 && !proven {
                    // A session that carries reports is a good one: only now is the
                    // backoff forgotten.
                    proven = true;
                    carried.backoff.reset();
                }
            }
            Err(error) => return error.into(),
        }
        tokio::select! {
            error = session.closed() => return SessionError::Closed(error).into(),
            () = shared.wake.notified() => {}
            _ = renew.tick() => {
                if renew_if_due(&mut session, state, &mut carried.chain).await {
                    session.close();
                    return AttemptError::Renewed;
                }
            }
            Some(request) = next_fetch(&mut carried.fetches) => {
                if let Err(error) = serve_fetch(&mut session, request).await {
                    return error.into();
                }
            }
        }
    }
}

/// The error for a chain whose certificate ended before `now`: the controller would refuse
/// the handshake with a bare TLS alert, and renewing needs a session.
fn expired(chain: &[CertificateDer<'static>], now: OffsetDateTime) -> Option<AttemptError> {
    let validity = Validity::of_der(chain.first()?).ok()?;
    (validity.not_after <= now).then_some(AttemptError::Expired {
        not_after: validity.not_after,
    })
}

type FetchRequests = tokio::sync::mpsc::Receiver<FetchRequest>;

/// The next release-chunk request, or never (no job host channel).
async fn next_fetch(fetches: &mut Option<FetchRequests>) -> Option<FetchRequest> {
    match fetches {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Fetches one release chunk on the control stream for the job that asked. A refusal is
/// the job's to report; a broken session ends the session (the job asks again).
async fn serve_fetch(session: &mut Session, request: FetchRequest) -> Result<(), SessionError> {
    if request.reply.is_closed() {
        // The job gave up waiting for this one (it was queued while no session was up).
        return Ok(());
    }
    match session.fetch_release(request.sha256, request.chunk).await {
        Ok(bytes) => {
            let _ = request.reply.send(Ok(bytes));
            Ok(())
        }
        Err(SessionError::Refused(refusal)) => {
            let _ = request
                .reply
                .send(Err(FetchFailure::Refused(refusal.detail.clone())));
            Ok(())
        }
        Err(error) => {
            let _ = request
                .reply
                .send(Err(FetchFailure::Session(error_chain(&error))));
            Err(error)
        }
    }
}

/// Sends spooled reports oldest first until the spool is empty; returns how many the
/// controller acknowledged. Any failure ends the session with the report still spooled.
async fn drain(session: &mut Session, shared: &Shared) -> Result<usize, SessionError> {
    let mut delivered = 0;
    loop {
        let front = shared.spool().front();
        let report = match front {
            Ok(Some(report)) => report,
            Ok(None) => return Ok(delivered),
            Err(error) => {
                tracing::error!(error = %error_chain(&error), "cannot read the spool; retrying later");
                return Ok(delivered);
            }
        };
        let kind = crate::spool::Kind::of(&report.body).as_str();
        if !controller_understands(&report.body, &session.welcome.controller_version) {
            // An older controller cannot decode it and would close the session on every
            // resend: it is dropped (the next round is collected again once it upgrades).
            tracing::warn!(kind, controller_version = %session.welcome.controller_version,
                "controller is too old for this report kind; dropped");
        } else {
            match session.send_report(&report).await? {
                ReportReply::Ack { seq, duplicate } => {
                    tracing::debug!(seq, duplicate, kind, "report acknowledged");
                    delivered += 1;
                }
                ReportReply::Rejected { seq, detail } => {
                    // The controller will never take this one: it is dropped, the rest goes on.
                    tracing::error!(seq, kind, %detail, "controller rejected a report; dropped");
                }
            }
        }
        if let Err(error) = shared.spool().remove(report.stream_id, report.seq) {
            tracing::error!(error = %error_chain(&error),
                "could not remove a delivered report from the spool; it will be sent again");
            return Ok(delivered);
        }
    }
}

/// Whether a controller of `version` decodes `body` (report kinds added after v1 shipped).
fn controller_understands(body: &unity_protocol::latest::ReportBody, version: &str) -> bool {
    match body {
        unity_protocol::latest::ReportBody::Packages(_) => {
            unity_protocol::version_at_least(version, unity_protocol::PACKAGES_SINCE)
        }
        unity_protocol::latest::ReportBody::Labels(_) => {
            unity_protocol::version_at_least(version, unity_protocol::LABELS_SINCE)
        }
        _ => true,
    }
}

/// Sends job results not yet acknowledged: handed over by the job host, and any the journal
/// still holds (from before a restart or a lost session).
async fn send_results(
    session: &mut Session,
    shared: &Shared,
    jobs: &JobHost,
) -> Result<(), SessionError> {
    let mut results = shared.take_results();
    for (job_id, receipt) in jobs.unacked_results() {
        if !results.iter().any(|(id, _)| *id == job_id) {
            results.push((job_id, receipt));
        }
    }
    let mut pending = results.into_iter();
    while let Some((job_id, receipt)) = pending.next() {
        if let Err(error) = send_job_result(session, jobs, job_id, receipt.clone()).await {
            // Keep what was not sent for the next session.
            shared.pending_result(job_id, receipt);
            for (id, r) in pending {
                shared.pending_result(id, r);
            }
            return Err(error);
        }
    }
    Ok(())
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

/// Aborts a task when dropped (the push server of a connection that ended).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pushes are small (a signed job, key statements).
const MAX_PUSH_FRAME: u32 = 1024 * 1024;

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

/// Renews the host certificate over the session once it is two thirds through its life.
/// Checked every facts interval (a certificate parse: microseconds); a failure is logged and
/// retried at the next check, with a third of the lifetime left to succeed. True when a new
/// certificate is stored and in `chain`.
async fn renew_if_due(
    session: &mut Session,
    state: &AgentState,
    chain: &mut Vec<CertificateDer<'static>>,
) -> bool {
    let Some(certificate) = chain.first() else {
        return false;
    };
    let validity = match Validity::of_der(certificate) {
        Ok(validity) => validity,
        Err(error) => {
            tracing::error!(%error, "the host certificate in use cannot be read");
            return false;
        }
    };
    if !validity.renewal_due(OffsetDateTime::now_utc()) {
        return false;
    }
    let csr = match state.key.csr_der(&state.enrollment.host_id.to_string()) {
        Ok(csr) => csr,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not build a renewal CSR");
            return false;
        }
    };
    let (grant, intermediates) = match session.renew(csr).await {
        Ok(renewed) => renewed,
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), not_after = %validity.not_after,
                "certificate renewal failed; retrying at the next check");
            return false;
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
            return false;
        }
    }
    let intermediates = intermediates.certificates_der;
    if let Err(error) =
        AgentState::save_certificate(&state.dir, &grant.certificate_der, &intermediates)
    {
        tracing::error!(error = %error_chain(&error), "could not store the renewed certificate");
        return false;
    }
    let not_after = Validity::of_der(&grant.certificate_der)
        .map(|v| v.not_after)
        .ok();
    let due_at_once = Validity::of_der(&grant.certificate_der)
        .is_ok_and(|v| v.renewal_due(OffsetDateTime::now_utc()));
    *chain = std::iter::once(grant.certificate_der)
        .chain(intermediates)
        .map(CertificateDer::from)
        .collect();
    if due_at_once {
        // A reconnect would renew again at once, and again: keep this session (the next
        // connection presents the new certificate) and say why renewal keeps coming due.
        tracing::warn!(
            ?not_after,
            "host certificate renewed, and due for renewal again \
            already: its lifetime is very short or this host's clock is wrong"
        );
        return false;
    }
    tracing::info!(?not_after, "host certificate renewed");
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;
    use unity_pki::CertificateAuthority;
    use unity_pki::agent_key::AgentKey;
    use uuid::Uuid;

    fn close(code: u32, reason: &str) -> quinn::ApplicationClose {
        quinn::ApplicationClose {
            error_code: code.into(),
            reason: reason.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn a_stopping_controller_and_an_unavailable_store_say_when_to_come_back() {
        assert_eq!(
            come_back(&close(close_code::NORMAL, &close_code::restart_reason(10))),
            Some(ComeBack {
                retry_after_secs: 10,
                restarting: true
            })
        );
        assert_eq!(
            come_back(&close(
                close_code::UNAVAILABLE,
                &close_code::unavailable_reason(5)
            )),
            Some(ComeBack {
                retry_after_secs: 5,
                restarting: false
            })
        );
        // An older controller's plain shutdown, and hints under other codes: the backoff.
        assert_eq!(
            come_back(&close(close_code::NORMAL, "controller shutting down")),
            None
        );
        assert_eq!(
            come_back(&close(close_code::PROTOCOL_VIOLATION, "retry_after=1")),
            None
        );
    }

    #[test]
    fn an_expired_certificate_is_a_permanent_error_that_says_re_enroll() {
        let ca = CertificateAuthority::generate("t").unwrap();
        let key = AgentKey::generate().unwrap();
        let identity = HostIdentity {
            tenant_id: Uuid::new_v4(),
            host_id: Uuid::new_v4(),
        };
        let issued_at = OffsetDateTime::now_utc();
        let issued = ca
            .issue_host(
                &key.csr_der("h").unwrap(),
                identity,
                Duration::from_secs(3600),
                issued_at,
            )
            .unwrap();
        let chain = vec![issued.der.clone()];
        assert!(expired(&chain, issued_at).is_none());
        let error = expired(&chain, issued.not_after).unwrap();
        assert!(error.is_permanent());
        let text = error.to_string();
        assert!(
            text.contains("expired") && text.contains("re-enroll"),
            "{text}"
        );
        assert!(text.contains("unity-agent enroll --force"), "{text}");
        assert!(expired(&[], issued_at).is_none());
    }
}
