//! Enrollment: a token and a CSR in, a host certificate out.

use time::OffsetDateTime;
use unity_pki::HostIdentity;
use unity_protocol::io::{read_frame, write_frame};
use unity_protocol::latest::{
    EnrollGrant, EnrollRequest, EnrollResponse, Intermediates, Refusal, RefusalReason, close_code,
};
use unity_protocol::{CHAIN_SINCE, PROTOCOL_VERSION, version_at_least};
use uuid::Uuid;

use super::{FIRST_MESSAGE_TIMEOUT, LinkContext, close};
use crate::error_chain;
use crate::issuer::IssueError;
use crate::store::{self, EnrollmentTokenOutcome, NewHost, StoreError};

/// Enrollment requests are small: a token, a CSR, a hostname.
const MAX_ENROLL_FRAME: u32 = 64 * 1024;

pub(super) async fn handle(connection: quinn::Connection, ctx: &LinkContext) {
    let remote = connection.remote_address();
    let exchange = async {
        let (mut send, mut recv) = connection.accept_bi().await.ok()?;
        let request = read_frame::<_, EnrollRequest>(&mut recv, MAX_ENROLL_FRAME).await;
        Some((send_reply(&mut send, request, ctx, remote).await, send))
    };
    match tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, exchange).await {
        Ok(Some((code, mut send))) => {
            let _ = send.finish();
            // Let the reply reach the agent before the connection goes away.
            let _ = tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, connection.closed()).await;
            close(&connection, code, "enrollment finished");
        }
        Ok(None) => {}
        Err(_) => {
            tracing::warn!(%remote, "enrollment timed out waiting for the request");
            close(
                &connection,
                close_code::TIMEOUT,
                "no enrollment request in time",
            );
        }
    }
}

/// Decides and writes the reply; returns the close code to use.
async fn send_reply(
    send: &mut quinn::SendStream,
    request: Result<EnrollRequest, unity_protocol::io::FrameIoError>,
    ctx: &LinkContext,
    remote: std::net::SocketAddr,
) -> u32 {
    let request = match request {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%remote, error = %error_chain(&error), "malformed enrollment request");
            return close_code::PROTOCOL_VIOLATION;
        }
    };
    let response = match enroll(&request, ctx).await {
        Ok((grant, intermediates)) => {
            tracing::info!(%remote, tenant_id = %grant.tenant_id, host_id = %grant.host_id,
                hostname = %request.hostname, issuer = ctx.issuer.kind().as_str(),
                "host enrolled");
            if intermediates.is_empty() {
                EnrollResponse::Enrolled(grant)
            } else {
                EnrollResponse::EnrolledChain(
                    grant,
                    Intermediates {
                        certificates_der: intermediates,
                    },
                )
            }
        }
        Err(refusal) => {
            tracing::warn!(%remote, hostname = %request.hostname, reason = ?refusal.reason,
                detail = %refusal.detail, "enrollment refused");
            EnrollResponse::Refused(refusal)
        }
    };
    match write_frame(send, &response).await {
        Ok(()) => close_code::NORMAL,
        Err(error) => {
            tracing::warn!(%remote, error = %error_chain(&error), "could not send enrollment reply");
            close_code::INTERNAL_ERROR
        }
    }
}

fn refusal(reason: RefusalReason, detail: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        detail: detail.into(),
    }
}

/// Checks the request, spends the token, issues the certificate and records the host — the
/// last three in one transaction, so a failure anywhere leaves the token unspent.
async fn enroll(
    request: &EnrollRequest,
    ctx: &LinkContext,
) -> Result<(EnrollGrant, Vec<Vec<u8>>), Refusal> {
    if request.protocol_version != PROTOCOL_VERSION {
        return Err(refusal(
            RefusalReason::UnsupportedProtocolVersion,
            format!(
                "agent speaks protocol {}, controller speaks {PROTOCOL_VERSION}",
                request.protocol_version
            ),
        ));
    }
    if request.hostname.is_empty() || request.hostname.len() > 253 {
        return Err(refusal(
            RefusalReason::BadRequest,
            "hostname must be 1-253 bytes",
        ));
    }
    if request.hostname.chars().any(char::is_control) {
        return Err(refusal(
            RefusalReason::BadRequest,
            "hostname must not contain NUL or other control characters",
        ));
    }
    crate::issuer::HostIssuer::check_csr(&request.csr_der).map_err(|error| {
        refusal(
            RefusalReason::BadRequest,
            format!("invalid CSR: {}", error_chain(&error)),
        )
    })?;
    if ctx.issuer.kind() == crate::issuer::IssuerKind::StepCa
        && !version_at_least(&request.agent_version, CHAIN_SINCE)
    {
        // Its certificate needs intermediates this agent cannot store or present.
        return Err(refusal(
            RefusalReason::BadRequest,
            format!(
                "agent {} cannot hold a step-ca certificate (it needs {}.{}.{} or later); \
                 update the agent, then enroll",
                request.agent_version, CHAIN_SINCE.0, CHAIN_SINCE.1, CHAIN_SINCE.2
            ),
        ));
    }
    let internal = |error: StoreError| {
        tracing::error!(error = %error_chain(&error), "enrollment failed in the store");
        refusal(
            RefusalReason::Internal,
            "controller database error; try again",
        )
    };
    // Read before the token is spent: a broken key file must not burn a token.
    let job_key = ctx.job_keys.current().map_err(|error| {
        tracing::error!(error = %error_chain(&error), "enrollment failed: no job-signing key");
        refusal(
            RefusalReason::Internal,
            "controller cannot read its job-signing key; try again",
        )
    })?;
    let host_id = Uuid::new_v4();
    let mut tx = ctx.store.begin().await.map_err(internal)?;
    let tenant_id = match store::tenants::consume_enrollment_token(&mut tx, &request.token, host_id)
        .await
        .map_err(internal)?
    {
        EnrollmentTokenOutcome::Accepted { tenant_id } => tenant_id,
        EnrollmentTokenOutcome::Unknown => {
            return Err(refusal(
                RefusalReason::TokenUnknown,
                "enrollment token is not known",
            ));
        }
        EnrollmentTokenOutcome::Expired => {
            return Err(refusal(
                RefusalReason::TokenExpired,
                "enrollment token has expired",
            ));
        }
        EnrollmentTokenOutcome::AlreadyUsed => {
            return Err(refusal(
                RefusalReason::TokenAlreadyUsed,
                "enrollment token was already used; create a new one",
            ));
        }
    };
    let identity = HostIdentity { tenant_id, host_id };
    // Inside the transaction that spent the token: if the issuer fails (step-ca down), the
    // rollback leaves the token unspent for the agent's next try.
    let issued = ctx
        .issuer
        .issue(
            &request.csr_der,
            identity,
            ctx.host_cert_validity,
            OffsetDateTime::now_utc(),
        )
        .await
        .map_err(|error| {
            tracing::warn!(%tenant_id, error = %error_chain(&error),
                "enrollment: the issuer did not sign; the token stays unspent");
            match error {
                IssueError::BadCsr(_) => refusal(
                    RefusalReason::BadRequest,
                    format!("could not issue: {}", error_chain(&error)),
                ),
                IssueError::Unavailable(_) => refusal(
                    RefusalReason::Internal,
                    format!(
                        "{}; the enrollment token was not spent, try again",
                        error_chain(&error)
                    ),
                ),
            }
        })?;
    store::enter_tenant(&mut tx, tenant_id)
        .await
        .map_err(internal)?;
    store::hosts::insert_host(
        &mut tx,
        &NewHost {
            id: host_id,
            tenant_id,
            hostname: request.hostname.clone(),
            agent_version: request.agent_version.clone(),
            cert_serial: issued.serial_hex.clone(),
            cert_not_after: issued.not_after,
            cert_issuer: issued.issuer,
        },
    )
    .await
    .map_err(internal)?;
    tx.commit().await.map_err(|e| {
        internal(StoreError::Query {
            action: "committing enrollment",
            source: e,
        })
    })?;
    Ok((
        EnrollGrant {
            tenant_id,
            host_id,
            certificate_der: issued.certificate_der,
            // The CA the agent verifies the controller with: always the built-in one, which
            // signs the controller's own certificate whoever signs hosts'.
            ca_certificate_der: ctx.issuer.built_in_certificate_der().to_vec(),
            job_signing_keys: vec![job_key.public_key().to_vec()],
        },
        issued.intermediates,
    ))
}
