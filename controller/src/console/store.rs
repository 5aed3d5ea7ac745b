//! The console's way into the store: a transaction of the user's own tenant (row-level
//! security, as for the API), and a store failure as the "unavailable" page, logged once
//! with its cause.

use super::session::{ConsoleUser, Refusal};
use crate::api::ApiState;
use crate::store::{StoreError, TenantTx};

pub fn unavailable(error: StoreError) -> Refusal {
    tracing::warn!(error = %crate::error_chain(&error), "console: store query failed");
    Refusal::Unavailable
}

pub async fn tenant_tx(state: &ApiState, who: &ConsoleUser) -> Result<TenantTx, Refusal> {
    state
        .store
        .tenant_tx(who.user.tenant_id)
        .await
        .map_err(unavailable)
}

pub async fn commit(tx: TenantTx, action: &'static str) -> Result<(), Refusal> {
    crate::store::commit(tx, action).await.map_err(unavailable)
}
