//! `unity-controller`: see [`unity_controller::cli`].

fn main() -> std::process::ExitCode {
    unity_controller::cli::main()
}
