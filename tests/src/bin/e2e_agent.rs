//! The real `unity-agent` command line, built inside the e2e crate so its tests can run (and
//! kill -9) agent processes: `CARGO_BIN_EXE_e2e-agent`.

fn main() -> std::process::ExitCode {
    unity_agent::cli::main()
}
