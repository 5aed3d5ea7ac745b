//! The real `unity-controller` command line, built inside the e2e crate so its tests can run
//! (and kill -9) controller processes: `CARGO_BIN_EXE_e2e-controller`.

fn main() -> std::process::ExitCode {
    unity_controller::cli::main()
}
