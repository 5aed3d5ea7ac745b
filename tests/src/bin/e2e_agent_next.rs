//! The real agent built from these sources, reporting `NEXT_AGENT_VERSION` (newer than this build): the "next release" the
//! self-update tests install (`CARGO_BIN_EXE_e2e-agent-next`).

fn main() -> std::process::ExitCode {
    unity_agent::cli::main_as(unity_e2e::process::NEXT_AGENT_VERSION)
}
