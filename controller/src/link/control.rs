//! The control stream after Welcome: requests from the agent (certificate renewal, release
//! chunks for a self-update), answered in order on the same stream. Runs beside the report loop for the session's lifetime.

use std::sync::Arc;

use time::OffsetDateTime;
use unity_pki::{CertificateAuthority, HostIdentity};
use unity_protocol::io::{FrameIoError, read_frame, write_frame};
use unity_protocol::latest::{
    ControlReply, ControlRequest, FetchRelease, Refusal, RefusalReason, ReleaseChunk, RenewGrant,
    RenewRequest, close_code,
};

use super::{LinkContext, close};
use crate::error_chain;
use crate::store::{hosts, releases};

/// Control requests are small (a CSR).
const MAX_CONTROL_FRAME: u32 = 64 * 1024;

pub(super) async fn serve(
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ctx: Arc<LinkContext>,
    identity: HostIdentity,
) {
    loop {
        let request = match read_frame::<_, ControlRequest>(&mut recv, MAX_CONTROL_FRAME).await {
            Ok(request) => request,
            // The agent finished the stream or the connection ended: nothing more to serve.
            Err(FrameIoError::Closed) | Err(FrameIoError::Io(_)) => return,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "bad control frame; closing");
                return close(
                    &connection,
                    close_code::PROTOCOL_VIOLATION,
                    &error.to_string(),
                );
            }
        };
        let reply = match request {
            ControlRequest::Renew(renew) => match renew_certificate(&ctx, identity, &renew).await {
                Ok(grant) => ControlReply::Renewed(grant),
                Err(refusal) => {
                    tracing::warn!(reason = ?refusal.reason, detail = %refusal.detail,
                        "certificate renewal refused");
                    ControlReply::Refused(refusal)
                }
            },
            ControlRequest::Retire => match retire(&ctx, identity).await {
                Ok(()) => ControlReply::Retired,
                Err(refusal) => ControlReply::Refused(refusal),
            },
            ControlRequest::FetchRelease(fetch) => {
                match release_chunk(&ctx, identity, &fetch).await {
                    Ok(chunk) => ControlReply::ReleaseChunk(chunk),
                    Err(refusal) => {
                        tracing::warn!(reason = ?refusal.reason, detail = %refusal.detail,
                            sha256 = %hex::encode(fetch.sha256), chunk = fetch.chunk,
                            "release fetch refused");
                        ControlReply::Refused(refusal)
                    }
                }
            }
        };
        if let Err(error) = write_frame(&mut send, &reply).await {
            tracing::info!(error = %error_chain(&error), "agent went away before the control reply");
            return;
        }
    }
}

/// A database failure answered to the agent (it retries), logged with what was attempted.
fn internal_refusal(what: &'static str, error: &dyn std::error::Error) -> Refusal {
    tracing::error!(error = %error_chain(error), "{what}");
    Refusal {
        reason: RefusalReason::Internal,
        detail: "controller database error; try again".into(),
    }
}

/// One chunk of a release, for a host with an `agent_update` job for it in progress (a
/// session cannot download releases it was not told to install).
async fn release_chunk(
    ctx: &LinkContext,
    identity: HostIdentity,
    fetch: &FetchRelease,
) -> Result<ReleaseChunk, Refusal> {
    let internal =
        |e: &dyn std::error::Error| internal_refusal("could not read a release chunk", e);
    let mut tx = ctx
        .store
        .tenant_tx(identity.tenant_id)
        .await
        .map_err(|e| internal(&e))?;
    if !releases::fetch_allowed(&mut tx, identity.host_id, &fetch.sha256)
        .await
        .map_err(|e| internal(&e))?
    {
        return Err(Refusal {
            reason: RefusalReason::BadRequest,
            detail: "no agent_update job of this host names that release".into(),
        });
    }
    let bytes = releases::chunk(&mut tx, &fetch.sha256, fetch.chunk)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(|| Refusal {
            reason: RefusalReason::BadRequest,
            detail: format!("the release has no chunk {}", fetch.chunk),
        })?;
    tx.commit().await.map_err(|e| internal(&e))?;
    Ok(ReleaseChunk {
        chunk: fetch.chunk,
        bytes,
    })
}

/// Revokes the session's own host: it enrolled again under a new identity.
async fn retire(ctx: &LinkContext, identity: HostIdentity) -> Result<(), Refusal> {
    let internal = |e: &dyn std::error::Error| internal_refusal("could not retire a host", e);
    let mut tx = ctx
        .store
        .tenant_tx(identity.tenant_id)
        .await
        .map_err(|e| internal(&e))?;
    hosts::revoke_host(&mut tx, identity.host_id)
        .await
        .map_err(|e| internal(&e))?;
    tx.commit().await.map_err(|e| internal(&e))?;
    tracing::info!("host retired: it enrolled again under a new identity");
    Ok(())
}

/// Issues a new certificate for the session's own identity (never one named in the CSR) and
/// records it on the host, unless the host was revoked meanwhile.
async fn renew_certificate(
    ctx: &LinkContext,
    identity: HostIdentity,
    request: &RenewRequest,
) -> Result<RenewGrant, Refusal> {
    let refuse = |reason, detail: String| Refusal { reason, detail };
    CertificateAuthority::check_csr(&request.csr_der).map_err(|e| {
        refuse(
            RefusalReason::BadRequest,
            format!("invalid CSR: {}", error_chain(&e)),
        )
    })?;
    let issued = ctx
        .ca
        .issue_host(
            &request.csr_der,
            identity,
            ctx.host_cert_validity,
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| refuse(RefusalReason::BadRequest, error_chain(&e)))?;
    let internal =
        |e: &dyn std::error::Error| internal_refusal("could not record a renewed certificate", e);
    let mut tx = ctx
        .store
        .tenant_tx(identity.tenant_id)
        .await
        .map_err(|e| internal(&e))?;
    let recorded = hosts::record_certificate(
        &mut tx,
        identity.host_id,
        &issued.serial_hex,
        issued.not_after,
    )
    .await
    .map_err(|e| internal(&e))?;
    if !recorded {
        return Err(refuse(
            RefusalReason::HostRevoked,
            "this host is revoked or no longer enrolled".into(),
        ));
    }
    tx.commit().await.map_err(|e| internal(&e))?;
    tracing::info!(serial = %issued.serial_hex, not_after = %issued.not_after,
        "host certificate renewed");
    Ok(RenewGrant {
        certificate_der: issued.der.to_vec(),
    })
}
