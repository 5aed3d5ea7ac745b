//! `unity-agent`: see [`unity_agent::cli`].

fn main() -> std::process::ExitCode {
    unity_agent::cli::main()
}
