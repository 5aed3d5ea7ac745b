//! An enrolled agent's session: certificate → identity → Hello → reports.

use tracing::Instrument;
use unity_pki::HostIdentity;
use unity_protocol::io::{FrameIoError, read_frame, read_payload, read_prefix, write_frame};
use unity_protocol::latest::{
    Hello, HelloReply, Refusal, RefusalReason, Report, ReportBody, Welcome, close_code,
};
use unity_protocol::{MAX_FRAME_LEN, PROTOCOL_VERSION};

use std::sync::Arc;

use super::{FIRST_MESSAGE_TIMEOUT, HELLO_TIMEOUT, LinkContext, close, control};
use crate::error_chain;
use crate::ingest::{self, IngestError};
use crate::jobs::outcome::Peer;

use crate::store::certificates::{self, Presented};
use crate::store::hosts::{self, HostStanding};

/// What an agent is told to wait before reconnecting while the database is unreachable: about
/// the time the supervisor needs to start an embedded PostgreSQL again.
const RETRY_AFTER_SECS: u32 = 5;

pub(super) async fn handle(connection: quinn::Connection, ctx: Arc<LinkContext>) {
    let remote = connection.remote_address();
    let Some((identity, host_key, serial_hex)) = peer_identity(&connection) else {
        tracing::warn!(%remote, "agent session without a valid host certificate refused");
        close(
            &connection,
            close_code::CLIENT_CERTIFICATE_REQUIRED,
            "a Unity host certificate is required; enroll first",
        );
        return;
    };
    let span = tracing::info_span!("session", tenant_id = %identity.tenant_id,
        host_id = %identity.host_id, %remote);
    run(connection, ctx, Peer { identity, host_key }, serial_hex)
        .instrument(span)
        .await;
}

/// Reads the identity, the key receipts are checked with, and the serial from the client
/// certificate rustls already verified.
fn peer_identity(connection: &quinn::Connection) -> Option<(HostIdentity, Vec<u8>, String)> {
    let certs = connection
        .peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    let leaf = certs.first()?;
    let identity = match HostIdentity::from_certificate_der(leaf) {
        Ok(identity) => identity,
        Err(error) => {
            tracing::warn!(%error, "client certificate carries no usable host identity");
            return None;
        }
    };
    let serial = match unity_pki::ca::certificate_serial_hex(leaf) {
        Ok(serial) => serial,
        Err(error) => {
            tracing::warn!(%error, "client certificate serial cannot be read");
            return None;
        }
    };
    match unity_pki::receipt::certificate_public_key(leaf) {
        Ok(key) => Some((identity, key, serial)),
        Err(error) => {
            tracing::warn!(%error, "client certificate key cannot verify job receipts");
            None
        }
    }
}

async fn run(connection: quinn::Connection, ctx: Arc<LinkContext>, peer: Peer, serial_hex: String) {
    let identity = peer.identity;
    let hello = tokio::time::timeout(HELLO_TIMEOUT, async {
        let (send, mut recv) = connection.accept_bi().await.ok()?;
        let hello = read_frame::<_, Hello>(&mut recv, MAX_FRAME_LEN).await;
        Some((send, recv, hello))
    })
    .await;
    let (mut control, control_recv, hello) = match hello {
        Err(_) => {
            tracing::warn!(deadline = ?HELLO_TIMEOUT, "no Hello in time; closing");
            return close(&connection, close_code::TIMEOUT, "no Hello in time");
        }
        Ok(None) => return,
        Ok(Some((_, _, Err(error)))) => return protocol_violation(&connection, &error),
        Ok(Some((send, recv, Ok(hello)))) => (send, recv, hello),
    };
    let reply = match welcome(&ctx, identity, &serial_hex, &hello).await {
        Ok(welcome) => HelloReply::Welcome(welcome),
        Err(refusal) if refusal.reason == RefusalReason::Internal => {
            // The database, not this host: come back soon, not never and not in a minute.
            tracing::warn!(detail = %refusal.detail, retry_after = RETRY_AFTER_SECS,
                "session refused for now");
            return close(
                &connection,
                close_code::UNAVAILABLE,
                &close_code::unavailable_reason(RETRY_AFTER_SECS),
            );
        }
        Err(refusal) => {
            tracing::warn!(reason = ?refusal.reason, detail = %refusal.detail, "session refused");
            let code = match refusal.reason {
                RefusalReason::UnsupportedProtocolVersion => close_code::UNSUPPORTED_VERSION,
                _ => close_code::IDENTITY_REFUSED,
            };
            let _ = write_frame(&mut control, &HelloReply::Refused(refusal.clone())).await;
            let _ = control.finish();
            let _ = tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, connection.closed()).await;
            return close(&connection, code, &refusal.detail);
        }
    };
    if let Err(error) = write_frame(&mut control, &reply).await {
        tracing::info!(error = %error_chain(&error), "agent went away during Hello");
        return;
    }
    tracing::info!(agent_version = %hello.agent_version, "agent session established");
    // Jobs for this host reach it through this session from now on (dropped with it).
    let _dispatch = ctx.dispatcher.attach(connection.clone(), peer.clone());
    tokio::spawn(
        control::serve(
            connection.clone(),
            control,
            control_recv,
            ctx.clone(),
            control::ControlPeer {
                identity,
                serial_hex,
                agent_version: hello.agent_version.clone(),
            },
        )
        .in_current_span(),
    );
    loop {
        let (mut send, mut recv) = match connection.accept_bi().await {
            Ok(streams) => streams,
            Err(error) => {
                tracing::info!(%error, "agent session ended");
                return;
            }
        };
        // The deadline covers the peer's sending, never our waiting: the prefix, then (once
        // the budget has room) the payload.
        let deadline_passed = |connection: &quinn::Connection| {
            tracing::warn!(deadline = ?ctx.frame_deadline,
                "report stream did not deliver a whole frame in time; closing");
            close(
                connection,
                close_code::TIMEOUT,
                "a report frame did not arrive in time",
            )
        };
        let len =
            match tokio::time::timeout(ctx.frame_deadline, read_prefix(&mut recv, MAX_FRAME_LEN))
                .await
            {
                Ok(Ok(len)) => len,
                Ok(Err(error)) => return protocol_violation(&connection, &error),
                Err(_) => return deadline_passed(&connection),
            };
        let Ok(_frame_permit) = ctx.admission.frame(identity.tenant_id, len).await else {
            return close(&connection, close_code::NORMAL, "controller shutting down");
        };
        let report = match tokio::time::timeout(
            ctx.frame_deadline,
            read_payload::<_, Report>(&mut recv, len),
        )
        .await
        {
            Ok(Ok(report)) => report,
            Ok(Err(error)) => return protocol_violation(&connection, &error),
            Err(_) => return deadline_passed(&connection),
        };
        let seq = report.seq;
        let applied = if matches!(report.body, ReportBody::HostFacts(_)) {
            // Host facts go through the shared writers, which bound their own database use
            // (a few connections for every session's facts), so no tenant permit is held.
            ctx.facts_writer.apply(&peer, report).await
        } else {
            let Ok(_tenant_permit) = ctx.admission.tenant(identity.tenant_id).await else {
                return close(&connection, close_code::NORMAL, "controller shutting down");
            };
            ingest::apply_with(&ctx.store, &peer, &report, &ctx.ingest).await
        };
        let reply = match applied {
            Ok(reply) => reply,
            Err(IngestError::HostGone) => {
                tracing::warn!("host was revoked; closing its session");
                return close(&connection, close_code::IDENTITY_REFUSED, "host revoked");
            }
            Err(IngestError::Stopped) => {
                return close(&connection, close_code::NORMAL, "controller shutting down");
            }
            Err(IngestError::Store(error)) => {
                tracing::error!(seq, error = %error_chain(&error),
                    "could not store report; agent will resend");
                return close(
                    &connection,
                    close_code::UNAVAILABLE,
                    &close_code::unavailable_reason(RETRY_AFTER_SECS),
                );
            }
        };
        if let Err(error) = write_frame(&mut send, &reply).await {
            tracing::info!(error = %error_chain(&error), "could not acknowledge report");
            continue;
        }
        let _ = send.finish();
    }
}

async fn welcome(
    ctx: &LinkContext,
    identity: HostIdentity,
    serial_hex: &str,
    hello: &Hello,
) -> Result<Welcome, Refusal> {
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(Refusal {
            reason: RefusalReason::UnsupportedProtocolVersion,
            detail: format!(
                "agent speaks protocol {}, controller speaks {PROTOCOL_VERSION}",
                hello.protocol_version
            ),
        });
    }
    let internal = |error: &dyn std::error::Error| {
        tracing::error!(error = %error_chain(error), "could not check in host");
        Refusal {
            reason: RefusalReason::Internal,
            detail: "controller database error".into(),
        }
    };
    // A fleet reconnecting at once checks in here: wait for the agents' share of the
    // pool (in order, however long) rather than time out at the pool and refuse.
    let Ok(_database) = ctx.admission.database().await else {
        return Err(Refusal {
            reason: RefusalReason::Internal,
            detail: "controller shutting down".into(),
        });
    };
    let mut tx = ctx
        .store
        .tenant_tx(identity.tenant_id)
        .await
        .map_err(|e| internal(&e))?;
    let standing = hosts::check_in(&mut tx, identity.host_id, &hello.agent_version)
        .await
        .map_err(|e| internal(&e))?;
    if standing == HostStanding::Active {
        match certificates::present(&mut tx, identity.host_id, serial_hex)
            .await
            .map_err(|e| internal(&e))?
        {
            Presented::Current => {}
            Presented::Retired { retired_at } => {
                return Err(Refusal {
                    reason: RefusalReason::HostRevoked,
                    detail: format!(
                        "this certificate (serial {serial_hex}) was replaced at {retired_at} by a \
                         newer one of the same host; an agent restored from an old copy of its \
                         state must re-enroll"
                    ),
                });
            }
            Presented::Unknown => {
                return Err(Refusal {
                    reason: RefusalReason::HostRevoked,
                    detail: format!(
                        "this certificate (serial {serial_hex}) was not issued to this host by \
                         this controller; re-enroll the host"
                    ),
                });
            }
        }
        crate::presence::host_returned(
            &mut tx,
            identity.tenant_id,
            identity.host_id,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| internal(&e))?;
    }
    tx.commit().await.map_err(|e| internal(&e))?;
    match standing {
        HostStanding::Active => Ok(Welcome {
            protocol_version: PROTOCOL_VERSION,
            controller_version: crate::VERSION.to_owned(),
            tenant_id: identity.tenant_id,
            host_id: identity.host_id,
            report_interval_secs: u32::try_from(ctx.report_interval.as_secs()).unwrap_or(u32::MAX),
        }),
        HostStanding::Revoked => Err(Refusal {
            reason: RefusalReason::HostRevoked,
            detail: "this host's enrollment was revoked".into(),
        }),
        HostStanding::Unknown => Err(Refusal {
            reason: RefusalReason::UnknownHost,
            detail: "certificate names no host of its tenant".into(),
        }),
    }
}

fn protocol_violation(connection: &quinn::Connection, error: &FrameIoError) {
    tracing::warn!(error = %error_chain(error), "protocol violation; closing connection");
    close(
        connection,
        close_code::PROTOCOL_VIOLATION,
        &error.to_string(),
    );
}
