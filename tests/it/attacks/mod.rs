//! The attack suite: each test plays someone who wants more than wisp gives them — a command
//! that wants out of its sandbox, another user on the host, a hostile host or peer, a reader of
//! logs — against the real binaries, and checks that the attack was refused and that wisp said
//! so. SECURITY.md names the promise each test keeps.
//!
//! The sandbox attacks run as root on localhost (the strongest attacker a sandbox faces) through
//! `sandbox-probe`, which prints the errno of the one step the sandbox must refuse (0 when the
//! attack went through).

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output, Stdio};

use wisp_tests::{ScratchDir, root_or_explain};

mod command;
mod faults;
mod host_user;
mod hostile_host;
mod hostile_input;
mod hostile_peer;
mod operator_user;
mod readers;
mod terminal;

/// `wisp run localhost FLAGS -- ARGV` in `tmp`, shown on failure.
fn run_local(tmp: &ScratchDir, flags: &[&str], argv: &[&str]) -> Output {
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["run", "localhost"])
        .args(flags)
        .arg("--")
        .args(argv)
        .env("TMPDIR", &tmp.0)
        .stdin(Stdio::null());
    wisp_tests::wisp::run(&mut c, &tmp.0)
}

/// A pseudo-terminal pair: the master, and the slave's path.
fn open_pty() -> (std::fs::File, String) {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt, grantpt, unlockpt and ptsname take the descriptor just returned;
    // ptsname's static buffer is copied before anything else can call it.
    #[allow(unsafe_code)]
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(fd))
            .to_string_lossy()
            .into_owned();
        (std::fs::File::from_raw_fd(fd), name)
    }
}

/// `wisp run localhost FLAGS -- ARGV` through `broken-runner` (the real runner behind it),
/// which turns at the first frame holding `trigger` in the way `mode` (one of its
/// `BROKEN_RUNNER_*` variables) says.
fn broken_run(
    tmp: &ScratchDir,
    flags: &[&str],
    argv: &[&str],
    trigger: &str,
    mode: (&str, &str),
) -> Command {
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["run", "localhost", "--insecure-unsigned-runner"])
        .args(flags)
        .arg("--")
        .args(argv)
        .env("WISP_RUNNER", env!("CARGO_BIN_EXE_broken-runner"))
        .env("TMPDIR", &tmp.0);
    // The local runner gets a login's environment only: the broken runner reads its
    // settings from the isolated HOME.
    let settings = format!(
        "BROKEN_RUNNER_REAL={}\nBROKEN_RUNNER_FROM={trigger}\nBROKEN_RUNNER_TO={trigger}\n{}={}\n",
        wisp_tests::runner_path().display(),
        mode.0,
        mode.1
    );
    std::fs::write(
        wisp_tests::wisp::env_dir(&tmp.0).join("home/broken-runner.env"),
        settings,
    )
    .expect("write the broken runner's settings");
    c
}

/// A directory like /tmp (world-writable, sticky) in `tmp`, and a root-owned victim file
/// outside it; `plant` puts a symbolic link owned by `nobody` at NAME in the directory,
/// pointing at the victim.
struct SharedDir {
    dir: std::path::PathBuf,
    victim: std::path::PathBuf,
}

impl SharedDir {
    fn new(tmp: &ScratchDir) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmp.0.join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let victim = tmp.0.join("victim-owned-by-root");
        std::fs::write(&victim, "root's own\n").unwrap();
        Self { dir, victim }
    }

    fn plant(&self, name: &str) {
        let link = self.dir.join(name);
        std::os::unix::fs::symlink(&self.victim, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    }

    fn victim_untouched(&self) -> bool {
        std::fs::read(&self.victim).unwrap() == b"root's own\n"
    }
}

/// `wisp apply PLAN localhost` (as root) with the plan's text, in `tmp`.
fn apply_local(tmp: &ScratchDir, name: &str, plan: &str) -> (Output, String) {
    let path = tmp.0.join(name);
    std::fs::write(&path, plan).unwrap();
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.arg("apply")
        .arg(&path)
        .arg("localhost")
        .env("TMPDIR", &tmp.0)
        .stdin(Stdio::null());
    let out = wisp_tests::wisp::run(&mut c, &tmp.0);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// Runs `cmd` to its end (at most `limit`, then its process group is killed), returning its
/// output, its peak RSS in KiB (its own and its reaped children's, through `peak-rss`) and
/// whether it had to be killed.
fn run_measured(cmd: &mut Command, limit: std::time::Duration) -> (Output, i64, bool) {
    use std::os::unix::process::CommandExt;
    // Through peak-rss (see there): measured from here, the child would also be billed for
    // this test binary's memory, which other tests running beside it can fill.
    let peak = std::env::temp_dir().join(format!(
        "wisp-peak-rss-{}",
        wisp_transports::stage::random_token()
    ));
    let mut measured = Command::new(env!("CARGO_BIN_EXE_peak-rss"));
    measured
        .arg(&peak)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (name, value) in cmd.get_envs() {
        match value {
            Some(v) => measured.env(name, v),
            None => measured.env_remove(name),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        measured.current_dir(dir);
    }
    measured
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = measured.spawn().unwrap();
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut so, &mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut se, &mut v);
        v
    });
    let ended = wisp_tests::wait_for(limit, || child.try_wait().unwrap());
    let timed_out = ended.is_none();
    if timed_out {
        let group = i32::try_from(child.id()).unwrap();
        // SAFETY: the process group this test started; everything in it is ours to kill.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-group, libc::SIGKILL)
        };
    }
    let status = child.wait().unwrap();
    let rss = std::fs::read_to_string(&peak).map_or(0, |s| s.trim().parse().unwrap_or(0));
    let _ = std::fs::remove_file(&peak);
    let out = Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    };
    assert!(timed_out || rss > 0, "peak-rss reported nothing: {out:?}");
    (out, rss, timed_out)
}
