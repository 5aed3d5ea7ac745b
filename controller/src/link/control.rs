//! The control stream after Welcome: requests from the agent (certificate renewal, release
//! chunks for a self-update), answered in order on the same stream. Runs beside the report loop for the session's lifetime.

use std::sync::Arc;

use time::OffsetDateTime;
use unity_pki::HostIdentity;
use unity_protocol::io::{FrameIoError, read_frame, write_frame};
use unity_protocol::latest::{
    ControlReply, ControlRequest, FetchRelease, Intermediates, Refusal, RefusalReason,
    ReleaseChunk, RenewGrant, RenewRequest, close_code,
};
use unity_protocol::{CHAIN_SINCE, version_at_least};

use super::{LinkContext, close};
use crate::error_chain;
use crate::issuer::{IssueError, IssuerKind};
use crate::store::{hosts, releases};

/// Who is on the other end of a session, as the control stream needs it.
#[derive(Debug, Clone)]
pub(super) struct ControlPeer {
    pub identity: HostIdentity,
    /// Serial of the certificate the session presented: a renewal keeps only it.
    pub serial_hex: String,
    /// From Hello: whether the agent can take a certificate with intermediates.
    pub agent_version: String,
}

/// Control requests are small (a CSR).
const MAX_CONTROL_FRAME: u32 = 64 * 1024;

pub(super) async fn serve(
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ctx: Arc<LinkContext>,
    peer: ControlPeer,
) {
    let identity = peer.identity;
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
            ControlRequest::Renew(renew) => match renew_certificate(&ctx, &peer, &renew).await {
                Ok((grant, intermediates)) if intermediates.is_empty() => {
                    ControlReply::Renewed(grant)
                }
                Ok((grant, intermediates)) => ControlReply::RenewedChain(
                    grant,
                    Intermediates {
                        certificates_der: intermediates,
                    },
                ),
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
/// records it on the host, unless the host was revoked meanwhile. Every other certificate of
/// the host but the session's is retired with it.
async fn renew_certificate(
    ctx: &LinkContext,
    peer: &ControlPeer,
    request: &RenewRequest,
) -> Result<(RenewGrant, Vec<Vec<u8>>), Refusal> {
    let identity = peer.identity;
    let refuse = |reason, detail: String| Refusal { reason, detail };
    crate::issuer::HostIssuer::check_csr(&request.csr_der).map_err(|e| {
        refuse(
            RefusalReason::BadRequest,
            format!("invalid CSR: {}", error_chain(&e)),
        )
    })?;
    if ctx.issuer.kind() == IssuerKind::StepCa
        && !version_at_least(&peer.agent_version, CHAIN_SINCE)
    {
        return Err(refuse(
            RefusalReason::BadRequest,
            format!(
                "agent {} cannot hold a step-ca certificate (it needs {}.{}.{} or later); \
                 update the agent — until then its certificate is not renewed",
                peer.agent_version, CHAIN_SINCE.0, CHAIN_SINCE.1, CHAIN_SINCE.2
            ),
        ));
    }
    let issued = ctx
        .issuer
        .issue(
            &request.csr_der,
            identity,
            ctx.host_cert_validity,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|e| match e {
            IssueError::BadCsr(_) => refuse(RefusalReason::BadRequest, error_chain(&e)),
            // The agent tries again at its next check.
            IssueError::Unavailable(_) => refuse(RefusalReason::Internal, error_chain(&e)),
        })?;
    let internal =
        |e: &dyn std::error::Error| internal_refusal("could not record a renewed certificate", e);
    let mut tx = ctx
        .store
        .tenant_tx(identity.tenant_id)
        .await
        .map_err(|e| internal(&e))?;
    let recorded = hosts::record_certificate(
        &mut tx,
        identity.tenant_id,
        identity.host_id,
        hosts::Renewed {
            from_serial: &peer.serial_hex,
            serial: &issued.serial_hex,
            not_after: issued.not_after,
            issuer: issued.issuer,
        },
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
        issuer = issued.issuer.as_str(), "host certificate renewed");
    Ok((
        RenewGrant {
            certificate_der: issued.certificate_der,
        },
        issued.intermediates,
    ))
}
