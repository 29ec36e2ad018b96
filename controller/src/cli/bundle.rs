//! `wisp bundle`: a copy of this `wisp` carrying its checked runners.

use std::path::PathBuf;

use clap::Args;

use super::usage_error;
use wisp_events::exit::ExitStatus;

#[derive(Debug, Args)]
pub(super) struct BundleArgs {
    /// Where to write the bundled wisp.
    #[arg(long, value_name = "FILE")]
    pub(super) out: PathBuf,
    /// The runner for this machine's architecture [default: as for a run].
    #[arg(long, value_name = "PATH")]
    pub(super) runner: Option<PathBuf>,
    /// Also trust runners signed by this minisign public key (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(super) trusted_key: Vec<PathBuf>,
}

/// `wisp bundle`: this executable plus its checked runners, in one file.
pub(super) fn main(a: &BundleArgs) -> ExitStatus {
    let files = wisp_runners::Trust::load(&a.trusted_key, false)
        .and_then(|trust| wisp_runners::checked_files(a.runner.as_deref(), &trust));
    let files = match files {
        Ok(f) => f,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Err(e) = wisp_runners::bundle::write(&a.out, &files) {
        return usage_error(&format!("cannot write {}: {e}", a.out.display()));
    }
    let arches: Vec<&str> = files.iter().map(|(a, _)| a.as_str()).collect();
    eprintln!(
        "wrote {} with the runners for {}",
        a.out.display(),
        arches.join(" and ")
    );
    ExitStatus::Ok
}
