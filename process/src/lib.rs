//! What both binaries do the same way at their edge: logging set-up and the signals that stop
//! them.
//!
//! Why a crate of its own: the agent and the controller each had a copy of both, and an
//! operator reading either's journal expects the same switches (`UNITY_LOG`,
//! `UNITY_LOG_FORMAT=json`) to mean the same thing. Kept out of `unity-errors`, which every
//! crate (the protocol too) depends on and which must stay free of a runtime.

/// Logs go to stderr (journald takes them from there): text by default, coloured only for a
/// person at a terminal, JSON lines with `UNITY_LOG_FORMAT=json`. `UNITY_LOG` is an
/// `EnvFilter` directive; `default_filter` applies when it is unset or invalid.
pub fn init_logging(default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("UNITY_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("UNITY_LOG_FORMAT").is_ok_and(|f| f == "json");
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what systemd and Kubernetes send), whichever comes
/// first; on SIGINT alone where SIGTERM cannot be watched.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
