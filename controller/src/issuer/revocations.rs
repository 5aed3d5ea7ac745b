//! Telling step-ca about certificates the controller no longer accepts: those of revoked or
//! deleted hosts, and predecessors retired by renewal. The controller's own refusal (every
//! session is checked against `host_certificates`) does not wait for this; the revocation at
//! step-ca makes the certificate useless elsewhere too (step-ca refuses to renew it, and it
//! is listed as revoked there). A sweep, not a call in the API handler, so a revocation made
//! while step-ca is down — or from the command line — still reaches it.

use std::time::Duration;

use time::OffsetDateTime;

use crate::error_chain;
use crate::stepca::StepCa;
use crate::stepca::client::serial_decimal;
use crate::store::{Store, StoreError, certificates, commit, policies};

/// Revocations sent per tenant per round.
const BATCH: i64 = 100;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepOutcome {
    pub revoked: u64,
    pub failed: u64,
    pub forgotten: u64,
}

/// Every `every`: forgets the settled certificates of deleted hosts (whatever CA signed
/// them) and, when step-ca is configured, revokes there what is retired here.
pub async fn sweep_forever(
    store: Store,
    issuer: std::sync::Arc<crate::issuer::HostIssuer>,
    every: Duration,
) {
    loop {
        match sweep(&store, issuer.step_ca(), OffsetDateTime::now_utc()).await {
            Ok(outcome) if outcome.failed > 0 => {
                tracing::warn!(
                    revoked = outcome.revoked,
                    failed = outcome.failed,
                    "some revocations did not reach step-ca; the next round retries"
                );
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error_chain(&error),
                    "certificate revocation sweep failed; the next round retries");
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Revokes at step-ca (when there is one) what is retired here and not revoked there yet;
/// forgets the settled certificates of deleted hosts.
///
/// No transaction is held across a call to step-ca: the pending list is read, each
/// revocation is sent, and each success is recorded in its own short transaction. Two
/// replicas may then send the same serial; step-ca answers the second "already revoked",
/// which counts as done.
pub async fn sweep(
    store: &Store,
    ca: Option<&StepCa>,
    now: OffsetDateTime,
) -> Result<SweepOutcome, StoreError> {
    let mut outcome = SweepOutcome::default();
    for tenant_id in policies::tenant_ids(store).await? {
        if let Some(ca) = ca {
            let pending = {
                let mut tx = store.tenant_tx(tenant_id).await?;
                let pending = certificates::to_revoke_at_issuer(&mut tx, BATCH).await?;
                commit(tx, "reading certificates to revoke at step-ca").await?;
                pending
            };
            for cert in pending {
                let Some(decimal) = serial_decimal(&cert.serial) else {
                    continue;
                };
                let result = ca
                    .revoke(
                        &decimal,
                        "retired by Unity Fleet (host revoked or renewed)",
                        now,
                    )
                    .await;
                match result {
                    Ok(()) => {
                        tracing::info!(%tenant_id, host_id = %cert.host_id, serial = %cert.serial,
                            "host certificate revoked at step-ca");
                        outcome.revoked += 1;
                    }
                    // A serial step-ca already revoked (another replica, or an earlier
                    // round whose record was lost): that is done too.
                    Err(crate::stepca::StepCaError::Refused { message, .. })
                        if message.contains("already revoked") => {}
                    Err(error) => {
                        outcome.failed += 1;
                        tracing::warn!(%tenant_id, host_id = %cert.host_id, serial = %cert.serial,
                            error = %error_chain(&error), "could not revoke at step-ca");
                        // Step-ca is likely down: the rest waits for the next round rather
                        // than a timeout per certificate.
                        break;
                    }
                }
                let mut tx = store.tenant_tx(tenant_id).await?;
                certificates::mark_revoked_at_issuer(&mut tx, cert.host_id, &cert.serial).await?;
                commit(tx, "recording a revocation at step-ca").await?;
            }
        }
        let mut tx = store.tenant_tx(tenant_id).await?;
        outcome.forgotten += certificates::forget_settled(&mut tx).await?;
        commit(tx, "forgetting settled certificates").await?;
    }
    Ok(outcome)
}
