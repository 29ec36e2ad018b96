//! `wisp conformance`: the golden suite against any runner executable.

use std::path::PathBuf;

use clap::Args;

use wisp_events::exit::ExitStatus;

#[derive(Debug, Args)]
pub(super) struct ConformanceArgs {
    /// The runner executable to test.
    #[arg(long, value_name = "PATH")]
    pub(super) runner: PathBuf,
    /// Start it through this emulator, for a runner built for another architecture
    /// (`--interpreter qemu-aarch64-static`).
    #[arg(long, value_name = "PROGRAM")]
    pub(super) interpreter: Option<PathBuf>,
    /// The directory of golden cases [default: ./golden, else the one this wisp was built from].
    #[arg(long, value_name = "DIR")]
    pub(super) golden: Option<PathBuf>,
    /// Run only the cases whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub(super) case: Option<String>,
    /// Rewrite the expected frames from the runner's answers instead of comparing.
    #[arg(long)]
    pub(super) update: bool,
}

/// Runs the suite and says how it went.
pub(super) fn main(args: ConformanceArgs) -> ExitStatus {
    use wisp_conformance::{Verdict, cli_main};
    match cli_main(
        &args.runner,
        args.interpreter.as_deref(),
        args.golden,
        args.case,
        args.update,
    ) {
        Verdict::Passed => ExitStatus::Ok,
        Verdict::Failed => ExitStatus::Failed,
        Verdict::NoRunner => ExitStatus::BadOptions,
        Verdict::BadCases => ExitStatus::ParseError,
    }
}
