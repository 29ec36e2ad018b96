//! `pkg.ensure`: a package installed or not, through the host's package manager. The package
//! database is queried first, so nothing runs when nothing would change; a manager lock held
//! by another process is reported as such (with its holder), not as a failure.
//!
//! Supported so far: apt/dpkg. Other managers are refused by name rather than guessed at.
//!
//! What this module does not know: frames, sessions. It runs on a thread of its own (a package
//! manager can take minutes) and hands its outcome back.

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use wisp_protocol::ops::{PkgEnsureArgs, PkgResult, PkgState};

/// Why `pkg.ensure` could not do its work.
#[derive(Debug)]
pub(crate) enum PkgError {
    /// The manager failed, or is not supported; the message says which and why.
    Failed(String),
    /// Another process holds the manager's lock.
    Locked(String),
}

const DPKG_LOCKS: &[&str] = &["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"];

/// Makes `args` true; returns what was there and what changed.
pub(crate) fn ensure(args: &PkgEnsureArgs, manager: &str) -> Result<PkgResult, PkgError> {
    if manager != "apt" {
        return Err(PkgError::Failed(format!(
            "pkg.ensure supports apt/dpkg so far; this host's package manager is {manager}"
        )));
    }
    let before = installed(&args.name)?;
    let wanted = match (&args.file, &args.version) {
        (Some(file), _) => Some(deb_field(file, "Version")?),
        (None, v) => v.clone(),
    };
    if let Some(file) = &args.file {
        let name = deb_field(file, "Package")?;
        if name != args.name {
            return Err(PkgError::Failed(format!(
                "{file} holds package {name:?}, not {:?}",
                args.name
            )));
        }
    }
    let mut result = PkgResult {
        name: args.name.clone(),
        manager: manager.into(),
        before: before.clone(),
        after: before.clone(),
        changes: Vec::new(),
    };
    let action = match (args.state, &before) {
        (PkgState::Absent, Some(_)) => Some("removed"),
        (PkgState::Absent, None) => None,
        (PkgState::Present, None) => Some("installed"),
        (PkgState::Present, Some(have)) => match &wanted {
            Some(v) if v != have => Some("upgraded"),
            _ => None,
        },
    };
    let Some(action) = action else {
        return Ok(result);
    };
    result.changes.push(action.into());
    if args.check {
        return Ok(result);
    }
    check_locks()?;
    let mut cmd = Command::new("apt-get");
    cmd.args(["-y", "-q", "-o", "Dpkg::Options::=--force-confdef"])
        .args(["-o", "Dpkg::Options::=--force-confold"]);
    if action == "removed" {
        cmd.args(["remove", &args.name]);
    } else {
        cmd.args(["install", "--no-install-recommends"]);
        match (&args.file, &args.version) {
            (Some(file), _) => cmd.arg(file),
            (None, Some(v)) => cmd.arg(format!("{}={v}", args.name)),
            (None, None) => cmd.arg(&args.name),
        };
    }
    run(cmd)?;
    result.after = installed(&args.name)?;
    Ok(result)
}

/// The installed version, or `None` when the package is not installed.
fn installed(name: &str) -> Result<Option<String>, PkgError> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev} ${Version}", name])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PkgError::Failed(format!("cannot run dpkg-query: {e}")))?;
    if !out.status.success() {
        // Unknown to dpkg: never installed.
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // "ii  1.0-1": desired install, status installed. Anything else is not (fully) installed.
    Ok(text
        .strip_prefix("ii ")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty()))
}

fn deb_field(file: &str, field: &str) -> Result<String, PkgError> {
    let out = Command::new("dpkg-deb")
        .args(["-f", file, field])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PkgError::Failed(format!("cannot run dpkg-deb: {e}")))?;
    if !out.status.success() {
        return Err(PkgError::Failed(format!(
            "{file}: not a readable package: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Refuses early, naming the holder, when another process holds dpkg's locks.
fn check_locks() -> Result<(), PkgError> {
    // The lock constants are small (0 to 2) and l_type/l_whence are shorts on every libc.
    let short = |v: libc::c_int| libc::c_short::try_from(v).unwrap_or_default();
    for path in DPKG_LOCKS {
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        else {
            continue;
        };
        // SAFETY: flock is plain old data; zeroed is a valid value to fill in.
        #[allow(unsafe_code)]
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = short(libc::F_WRLCK);
        lock.l_whence = short(libc::SEEK_SET);
        // SAFETY: `lock` is a live flock and the descriptor is open.
        #[allow(unsafe_code)]
        let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut lock) };
        if r == 0 && lock.l_type != short(libc::F_UNLCK) {
            let holder = std::fs::read_to_string(format!("/proc/{}/comm", lock.l_pid))
                .map(|c| c.trim().to_owned())
                .unwrap_or_else(|_| "another process".into());
            return Err(PkgError::Locked(format!(
                "{path} is held by {holder} (pid {}); retry when it is done",
                lock.l_pid
            )));
        }
    }
    Ok(())
}

fn run(mut cmd: Command) -> Result<(), PkgError> {
    let out = cmd
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PkgError::Failed(format!("cannot run apt-get: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The lock was taken between the check and the run.
    if stderr.contains("Could not get lock") {
        return Err(PkgError::Locked(stderr.trim().to_owned()));
    }
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(PkgError::Failed(format!(
        "apt-get failed ({}): {}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
    )))
}
