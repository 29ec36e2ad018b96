//! `wisp-runner`: executes commands on a host for the wisp controller.
//!
//! The controller starts it with a session nonce and talks to it in frames over stdin and
//! stdout (PROTOCOL.md). It deletes its own executable and private directory as soon as it
//! starts, serves commands, and exits, killing everything it started, when the controller says
//! EXIT, when stdin closes, on SIGTERM/SIGINT/SIGHUP, and when its time to live runs out.
//!
//! Invariants: no async runtime; nothing but frames on stdout (diagnostics go to stderr);
//! nothing from the wire is unwrapped.

mod diag;
mod exec;
mod input;
mod ops;
mod pkg;
mod probe;
mod safepath;
mod sandbox;
mod service;
mod session;
mod signals;
mod system;
mod wire;

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use wisp_protocol::marker::valid_nonce;

use crate::session::{Config, Session};

const DEFAULT_TTL_S: u64 = 600;
/// How long a `file.write` may wait for its next DATA frame.
const DEFAULT_UPLOAD_IDLE_S: u64 = 60;
/// How long after its TTL a session that has not ended by itself is ended by the watchdog.
const WATCHDOG_GRACE: Duration = Duration::from_secs(5);
/// Exit status when the watchdog ends the runner.
const WATCHDOG_EXIT: i32 = 3;
/// Bound on queued inputs: when the controller reads slowly, output pumps block and so do the
/// commands writing output, instead of the runner buffering without limit; when a file is
/// written more slowly than its content comes (parts of 1 MiB), the reader stops reading.
/// 32 parts: the runner holds at most 32 MiB of content it has not written yet.
const INPUT_QUEUE: usize = 32;

const USAGE: &str = "\
usage: wisp-runner --marker NONCE [--ttl SECONDS] [--upload-idle SECONDS] [--private-dir DIR]

Started by the wisp controller, which speaks framed JSON to it on stdin/stdout (PROTOCOL.md).
  --marker NONCE     session nonce; the runner writes `WISP-START NONCE` before its first frame
  --ttl SECONDS      exit, killing all commands, after this long (default 600)
  --upload-idle SECONDS
                     drop a file.write whose DATA stops arriving for this long (default 60)
  --private-dir DIR  staging directory holding this executable; removed at start
";

struct Args {
    nonce: String,
    ttl: Duration,
    upload_idle: Duration,
    private_dir: Option<PathBuf>,
}

/// A whole number of seconds above zero, for option `name`.
fn seconds(name: &str, v: &str) -> Result<u64, String> {
    v.parse()
        .ok()
        .filter(|t| *t > 0)
        .ok_or(format!("{name} {v:?}: expected seconds > 0"))
}

fn parse_args() -> Result<Args, String> {
    let mut nonce = None;
    let mut ttl = DEFAULT_TTL_S;
    let mut upload_idle = DEFAULT_UPLOAD_IDLE_S;
    let mut private_dir = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--marker" => nonce = Some(value("--marker")?),
            "--ttl" => ttl = seconds("--ttl", &value("--ttl")?)?,
            "--upload-idle" => upload_idle = seconds("--upload-idle", &value("--upload-idle")?)?,
            "--private-dir" => private_dir = Some(PathBuf::from(value("--private-dir")?)),
            // Exits 0: the SSH bootstrap runs it to find out whether its location can execute.
            "--version" => {
                diag::say(env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "-h" | "--help" => return Err(USAGE.trim_end().to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let nonce = nonce.ok_or_else(|| format!("--marker is required\n{USAGE}"))?;
    if !valid_nonce(&nonce) {
        return Err(format!(
            "--marker {nonce:?}: expected 8 to 64 characters from [A-Za-z0-9_-]"
        ));
    }
    Ok(Args {
        nonce,
        ttl: Duration::from_secs(ttl),
        upload_idle: Duration::from_secs(upload_idle),
        private_dir,
    })
}

/// Removes the staged copy of this executable and its private directory. Only a directory
/// that holds the running executable and belongs to this user (or any user, for root) is
/// removed: a runner started from a build tree never deletes the build artifact.
fn remove_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("--private-dir {}: {e}", dir.display()))?;
    if exe.parent() != Some(dir.as_path()) {
        return Err(format!(
            "--private-dir {} does not hold this executable ({}); not removing it",
            dir.display(),
            exe.display()
        ));
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Root may remove a directory staged by the user who ran `sudo`.
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid && euid != 0 {
        return Err(format!(
            "{} is not owned by this user; not removing it",
            dir.display()
        ));
    }
    std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))
}

/// The TTL, enforced even when the session loop cannot act: a controller that stops reading
/// (without closing the stream) leaves the loop blocked on a full stdout pipe. A grace period
/// after the TTL, this thread kills every command and exits, without further frames.
fn start_watchdog(ttl: Duration, live_groups: exec::LiveGroups) {
    let watchdog = move || {
        std::thread::sleep(ttl + WATCHDOG_GRACE);
        diag::say(
            "the session did not end at its time to live (is the controller still reading?); killing its commands",
        );
        exec::kill_live_groups(&live_groups);
        exec::kill_orphans();
        std::process::exit(WATCHDOG_EXIT);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("watchdog".into())
        .stack_size(64 * 1024)
        .spawn(watchdog)
    {
        diag::say(&format!("cannot start the watchdog thread: {e}"));
        std::process::exit(2);
    }
}

/// Removes every `WISP_*` and `SSH_*` variable from the runner's environment, so no command
/// it starts sees them: whatever started it with an agent socket, a password or an age key
/// in its environment, that stays with the runner. Walks `environ` itself (std's iterator
/// and setters cost over a kilobyte of the runner's size).
fn drop_secret_environment() {
    // SAFETY: `environ` is the C library's environment array, declared as POSIX declares it.
    #[allow(unsafe_code)]
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: the runner has not started a thread yet, so nothing else reads or changes the
    // environment; `environ` is a NULL-terminated array of NUL-terminated strings, and each
    // name is copied (NUL-terminated) before `unsetenv` changes the array, after which the
    // walk starts again from the top.
    #[allow(unsafe_code)]
    unsafe {
        'again: loop {
            let mut entry = environ;
            while !entry.is_null() && !(*entry).is_null() {
                let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
                if text.starts_with(b"WISP_") || text.starts_with(b"SSH_") {
                    let name_len = text.iter().position(|b| *b == b'=').unwrap_or(text.len());
                    let mut name = text[..name_len].to_vec();
                    name.push(0);
                    if libc::unsetenv(name.as_ptr().cast()) == 0 {
                        continue 'again;
                    }
                }
                entry = entry.add(1);
            }
            return;
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(message) => {
            diag::say(&message);
            std::process::exit(2);
        }
    };
    // Nothing of the runner stays on disk, even if it is killed a moment from now.
    if let Some(dir) = &args.private_dir
        && let Err(e) = remove_private_dir(dir)
    {
        diag::say(&e);
        std::process::exit(2);
    }
    drop_secret_environment();
    if let Err(e) = signals::block() {
        diag::say(&format!("cannot block termination signals: {e}"));
        std::process::exit(2);
    }
    // Orphans of our commands (daemonised with setsid) are reparented to us, not to init,
    // so shutdown can find and kill them.
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag, no pointers.
    #[allow(unsafe_code)]
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    // Not dumpable: a process of the same user (a command, or anyone else on the host) cannot
    // open /proc/RUNNER/fd or /proc/RUNNER/mem, trace it or take its descriptors, so it cannot
    // write frames in the runner's name. Root's commands are kept out by their sandbox.
    // SAFETY: PR_SET_DUMPABLE takes an integer flag, no pointers.
    #[allow(unsafe_code)]
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }

    let mut out = wire::FrameWriter::new();
    out.marker(&args.nonce);
    let caps = probe::capabilities();
    let (tx, rx) = mpsc::sync_channel(INPUT_QUEUE);
    for (name, f) in [
        (
            "stdin",
            wire::read_stdin as fn(mpsc::SyncSender<input::Input>),
        ),
        ("signals", signals::wait_loop),
    ] {
        let tx = tx.clone();
        if let Err(e) = std::thread::Builder::new()
            .name(name.into())
            .stack_size(128 * 1024)
            .spawn(move || f(tx))
        {
            diag::say(&format!("cannot start {name} thread: {e}"));
            std::process::exit(2);
        }
    }
    let live_groups = exec::LiveGroups::default();
    start_watchdog(args.ttl, Arc::clone(&live_groups));
    let code = Session::new(
        Config {
            ttl: args.ttl,
            upload_idle: args.upload_idle,
        },
        out,
        caps,
        live_groups,
    )
    .run(&rx, &tx);
    std::process::exit(code);
}
