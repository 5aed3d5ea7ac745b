//! `ping`: changes nothing on the host. It proves, end to end, that a job reaches this host,
//! passes every check, is journaled, and comes back with a receipt signed by the host key —
//! the cheapest way to test the path before trusting it with a real change.

use unity_protocol::latest::{JobEnd, JobEventKind, PingParams};

use super::{Ending, JobContext};

pub fn run(ctx: &mut JobContext, params: &PingParams) -> Ending {
    ctx.event(
        JobEventKind::Progress,
        "pong",
        serde_json::json!({ "message": params.message }),
    );
    Ending::new(
        JobEnd::Succeeded,
        format!("pong: {}", params.message),
        serde_json::json!({
            "message": params.message,
            "agent_version": crate::version(),
        }),
    )
}
