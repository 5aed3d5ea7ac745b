//! Notifications: every alert reaches a person (docs/notifications.md).
//!
//! * [`channel`] — channel URLs (`ntfy://host/topic`, `smtp://…`, …), parsed and redacted.
//! * [`create`] — adding a channel (API and CLI): checks, sealing, the row.
//! * [`message`] — what a notification says and the exact request each service gets (pure).
//! * [`send`] — carries a request out (reqwest, lettre); classifies failures.
//! * [`secret`] — channel URLs and webhook secrets sealed at rest.
//! * [`worker`] — the delivery loop over the outbox: claim, send, retry with backoff and
//!   jitter, dead-letter; reminders.
//!
//! Routing happens in the database: a trigger on `alerts` inserts one outbox row per matching
//! channel in the alert's own transaction (migration 0015), so an alert is never committed
//! without its notifications, whichever code path raised it.

pub mod channel;
pub mod create;
pub mod message;
pub mod secret;
pub mod send;
pub mod worker;

pub use secret::Sealer;
pub use worker::NotifySettings;

/// What a channel's sealed values are bound to.
pub fn seal_context(tenant_id: uuid::Uuid, channel_id: uuid::Uuid) -> Vec<u8> {
    format!("unity-fleet channel v1\0{tenant_id}/{channel_id}").into_bytes()
}
