//! The one way tests run the `wisp` CLI: [`wisp_command!`](crate::wisp_command) builds a
//! command whose HOME, XDG directories and journal are inside the test's scratch directory,
//! with no WISP_* or SSH_* variable leaking in from the environment the tests were started
//! from (only WISP_RUNNER is set again, to the runner under test). [`run`] runs it and prints
//! the command, its status, stdout, stderr and the scratch tree: libtest shows that print only
//! when the test fails, so a failure always comes with everything needed to read it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A `wisp-under-test` command isolated in `scratch` (see the module docs).
#[macro_export]
macro_rules! wisp_command {
    ($scratch:expr) => {
        $crate::wisp::isolated(
            ::std::path::Path::new(env!("CARGO_BIN_EXE_wisp-under-test")),
            ::std::convert::AsRef::<::std::path::Path>::as_ref($scratch),
        )
    };
}

/// The directory in a scratch directory that holds the isolated environment. The harness's
/// views of a scratch directory ([`crate::snapshot`], [`crate::ScratchDir::entries`]) leave it
/// out, so tests that check what a run left behind see only the run's own traces.
pub const ENV_DIR: &str = "wisp-env";

/// Where the isolated environment of a scratch directory lives.
pub fn env_dir(scratch: &Path) -> PathBuf {
    scratch.join(ENV_DIR)
}

/// `exe` with its environment isolated in `scratch`.
pub fn isolated(exe: &Path, scratch: &Path) -> Command {
    let base = env_dir(scratch);
    let dirs = [
        ("HOME", "home"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_DATA_HOME", "data"),
        ("WISP_JOURNAL_DIR", "journal"),
    ];
    let mut c = Command::new(exe);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("WISP_") || name.starts_with("SSH_") || name.starts_with("XDG_") {
            c.env_remove(name.as_ref());
        }
    }
    for (var, dir) in dirs {
        let path = base.join(dir);
        std::fs::create_dir_all(&path).expect("create the isolated environment");
        c.env(var, path);
    }
    c.env("WISP_RUNNER", crate::runner_path());
    c
}

/// Runs `cmd` to its end and prints everything about it (shown only if the test fails).
pub fn run(cmd: &mut Command, scratch: &Path) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    show(cmd, &out, scratch);
    out
}

/// Prints the command, its status and output, and the scratch tree.
#[allow(clippy::print_stdout)] // libtest captures it and shows it only for a failed test
pub fn show(cmd: &Command, out: &Output, scratch: &Path) {
    let mut tree = Vec::new();
    list(scratch, scratch, &mut tree);
    println!(
        "--- command\n{cmd:?}\n--- status\n{}\n--- stdout\n{}--- stderr\n{}--- scratch {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        scratch.display(),
        tree.join("\n")
    );
}

fn list(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if path.is_dir() && out.len() < 200 {
            out.push(format!("{rel}/"));
            list(root, &path, out);
        } else if out.len() < 200 {
            let len = e.metadata().map_or(0, |m| m.len());
            out.push(format!("{rel} ({len} bytes)"));
        }
    }
}
