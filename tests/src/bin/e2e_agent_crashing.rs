//! A bad release for the self-update tests (`CARGO_BIN_EXE_e2e-agent-crashing`): it passes
//! its self-test (the real one, as `CRASHING_AGENT_VERSION`) and then crashes as soon as it is started
//! as the service — the failure no check before the swap can catch.

fn main() -> std::process::ExitCode {
    if std::env::args().any(|a| a == "run") {
        eprintln!("e2e-agent-crashing: crashing at start, as this test release is built to");
        std::process::abort();
    }
    unity_agent::cli::main_as(unity_e2e::process::CRASHING_AGENT_VERSION)
}
