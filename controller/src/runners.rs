//! Finding runner executables: `--runner`, then `$WISP_RUNNER`, then `wisp-runner-<arch>`
//! beside the `wisp` executable, then the build tree
//! (`target/<arch>-unknown-linux-musl/runner/wisp-runner`, where `cargo xtask build-runner`
//! puts it), then a plain `wisp-runner` beside `wisp`.

use std::path::{Path, PathBuf};

use wisp_transports::RunnerBinaries;

/// Architectures runners are built for.
pub const ARCHES: &[&str] = &["x86_64", "aarch64"];

/// No runner was found for this machine's architecture.
#[derive(Debug, thiserror::Error)]
#[error(
    "no wisp-runner found for {arch}; looked in: {}\nbuild one with `cargo xtask build-runner`, or point WISP_RUNNER (or --runner) at one",
    looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
)]
pub struct RunnerNotFound {
    arch: String,
    looked: Vec<PathBuf>,
}

/// Collects the runners available to this controller.
pub fn locate(explicit: Option<&Path>) -> Result<RunnerBinaries, RunnerNotFound> {
    let native = std::env::consts::ARCH;
    let mut found = RunnerBinaries::default();
    let mut looked = Vec::new();
    if let Some(path) = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("WISP_RUNNER").map(PathBuf::from))
    {
        if path.is_file() {
            found.insert(native, path);
            return Ok(found);
        }
        looked.push(path);
        return Err(RunnerNotFound {
            arch: native.into(),
            looked,
        });
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let mut have_native = false;
    for arch in ARCHES {
        let mut candidates = Vec::new();
        if let Some(dir) = &exe_dir {
            candidates.push(dir.join(format!("wisp-runner-{arch}")));
            // target/debug/wisp → target/<triple>/runner/wisp-runner. Before a plain
            // `wisp-runner` beside it: in a build tree that one is the host (glibc) build that
            // `cargo test` leaves, possibly stale.
            if let Some(target) = dir.parent() {
                candidates
                    .push(target.join(format!("{arch}-unknown-linux-musl/runner/wisp-runner")));
            }
            if *arch == native {
                candidates.push(dir.join("wisp-runner"));
            }
        }
        match candidates.iter().find(|p| p.is_file()) {
            Some(p) => {
                have_native |= *arch == native;
                found.insert(*arch, p.clone());
            }
            None if *arch == native => looked.extend(candidates),
            None => {}
        }
    }
    if have_native {
        Ok(found)
    } else {
        Err(RunnerNotFound {
            arch: native.into(),
            looked,
        })
    }
}
