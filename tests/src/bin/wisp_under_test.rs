//! The `wisp` CLI for end-to-end tests: the same entry point as the shipped binary.

fn main() -> std::process::ExitCode {
    wisp::cli::main()
}
