//! Starting an `exec` command and watching it: the child runs in its own process group with
//! pipes for stdout and stderr (never the runner's stdout), one thread pumps each pipe into
//! session inputs as bytes arrive, and one thread waits for the exit with its rusage.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::thread;

use wisp_protocol::message::{EventKind, Usage};
use wisp_protocol::ops::ExecArgs;

use crate::input::{Exit, Input};
use crate::sandbox::ChildSteps;

const PIPE_CHUNK: usize = 64 * 1024;

/// Process groups whose leader has not been reaped, shared by everything that signals them.
///
/// A group may be signalled only while its leader is unreaped: a reaped leader's pid, and so
/// the group's number, can be reused by an unrelated process. The wait thread removes a group
/// (under the lock) after the leader exits but before reaping it, and every kill happens under
/// the same lock, so no signal can reach a recycled group.
pub(crate) type LiveGroups = Arc<Mutex<HashSet<i32>>>;

/// SIGKILLs one group, if it is still live.
pub(crate) fn kill_group(groups: &LiveGroups, pgid: i32) {
    if let Ok(live) = groups.lock()
        && live.contains(&pgid)
    {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// SIGKILLs every live group.
pub(crate) fn kill_live_groups(groups: &LiveGroups) {
    if let Ok(live) = groups.lock() {
        for pgid in live.iter() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(*pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Why a command could not start.
#[derive(Debug)]
pub(crate) struct SpawnError {
    pub(crate) message: String,
    /// The kernel was short of something (EAGAIN, ENOMEM): retrying may work.
    pub(crate) transient: bool,
}

/// The program to exec: `program` itself, or, when `args` lists the programs that may run,
/// the real path it resolves to (on `PATH`, symlinks followed), which must be one of theirs.
fn allowed(program: &str, args: &ExecArgs) -> Result<std::path::PathBuf, String> {
    if args.programs.is_empty() {
        return Ok(program.into());
    }
    let path_var = args
        .env
        .get("PATH")
        .cloned()
        .or_else(|| {
            (!args.clear_env)
                .then(|| std::env::var("PATH").ok())
                .flatten()
        })
        .unwrap_or_default();
    let found = if program.contains('/') {
        Some(std::path::PathBuf::from(program))
    } else {
        path_var
            .split(':')
            .map(|d| Path::new(d).join(program))
            .find(|p| p.is_file())
    };
    let real = found
        .and_then(|p| std::fs::canonicalize(p).ok())
        .ok_or_else(|| {
            format!("program {program:?} not found: the policy allows only listed programs")
        })?;
    if args
        .programs
        .iter()
        .any(|p| std::fs::canonicalize(p).is_ok_and(|r| r == real))
    {
        Ok(real)
    } else {
        Err(format!(
            "program {program:?} is {}, which the policy does not allow",
            real.display()
        ))
    }
}

/// The command to start, checked: a program, an existing working directory, and a program
/// the policy allows.
fn command(args: &ExecArgs, argv: &[String]) -> Result<Command, String> {
    let Some((program, rest)) = argv.split_first() else {
        return Err("empty command line".into());
    };
    if let Some(cwd) = &args.cwd
        && !Path::new(cwd).is_dir()
    {
        return Err(format!("cwd {cwd:?} is not an existing directory"));
    }
    let mut cmd = Command::new(allowed(program, args)?);
    cmd.arg0(program).args(rest);
    Ok(cmd)
}

/// Starts the command; returns its pid, which is also its process group id.
pub(crate) fn spawn(
    serial: u64,
    args: &ExecArgs,
    stdin: Vec<u8>,
    tx: &SyncSender<Input>,
    groups: &LiveGroups,
    mut sandbox: ChildSteps,
) -> Result<i32, SpawnError> {
    let argv = args.command_line();
    let mut cmd = command(args, &argv).map_err(|message| SpawnError {
        message,
        transient: false,
    })?;
    cmd.stdin(if stdin.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if args.clear_env {
        cmd.env_clear();
    }
    cmd.envs(&args.env);
    if let Some(cwd) = &args.cwd {
        cmd.current_dir(cwd);
    }
    // SAFETY: the closure runs between fork and exec and only makes system calls
    // (sigprocmask, rt_sigaction, prctl, and the sandbox's writes, unshare, mount, setrlimit,
    // landlock_restrict_self, seccomp), all async-signal-safe; it allocates nothing and touches
    // only its own captures, which the runner prepared before the fork.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            // The runner blocks its termination signals (a sigwait thread takes them) and
            // ignores SIGPIPE, and whatever started it may have ignored others; ignored
            // dispositions survive exec. A child starts clean: nothing blocked, every signal
            // at its default, so `kill -TERM` reaches it and a broken pipe ends it.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The raw syscall, because musl's wrapper refuses the signals it reserves for
            // itself (32-34), which a glibc parent's posix_spawn leaves ignored. An all-zero
            // kernel sigaction is SIG_DFL with no flags and an empty mask on every arch; 32
            // bytes cover the largest layout. SIGKILL and SIGSTOP refuse, which is fine.
            let dfl = [0u64; 4];
            for signo in 1..=64 {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signo,
                    dfl.as_ptr(),
                    std::ptr::null::<u8>(),
                    8usize,
                );
            }
            // Its own session (and so process group, which kill(-pid) reaches): no controlling
            // terminal, so nothing the command does can type into the operator's terminal.
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // If the runner dies without cleaning up (SIGKILL), the direct child dies with it.
            // The runner spawns from its main thread, which lives as long as the process.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            sandbox.apply()
        });
    }
    let spawned = cmd.spawn();
    // Dropping the command drops the pre_exec closure and with it the runner's copies of what
    // the child used (the failure pipe's write end, so the runner can read it to the end).
    drop(cmd);
    let mut child = spawned.map_err(|e| SpawnError {
        transient: matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOMEM)),
        message: format!("cannot start {:?}: {e}", argv[0]),
    })?;
    let pid = i32::try_from(child.id()).map_err(|_| SpawnError {
        message: "pid out of range".into(),
        transient: false,
    })?;

    if let Some(mut pipe) = child.stdin.take() {
        // A child that never reads its stdin must not block the runner, hence a thread.
        spawn_thread("stdin", move || {
            let _ = pipe.write_all(&stdin);
        });
    }
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        spawn_thread("stdout", move || pump(serial, EventKind::Stdout, out, &tx));
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        spawn_thread("stderr", move || pump(serial, EventKind::Stderr, err, &tx));
    }
    if let Ok(mut live) = groups.lock() {
        live.insert(pid);
    }
    let tx = tx.clone();
    let groups = Arc::clone(groups);
    spawn_thread("wait", move || {
        let exit = wait(pid, &groups);
        let _ = tx.send(Input::Exited { serial, exit });
    });
    // The Child handle is dropped without waiting: the wait thread reaps by pid with wait4.
    drop(child);
    Ok(pid)
}

fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) {
    // Small stacks keep the runner's footprint low; none of these threads recurse.
    let builder = thread::Builder::new()
        .name(name.into())
        .stack_size(64 * 1024);
    if let Err(e) = builder.spawn(f) {
        crate::diag::say(&format!("cannot start {name} thread: {e}"));
    }
}

fn pump(serial: u64, stream: EventKind, mut pipe: impl Read, tx: &SyncSender<Input>) {
    let mut buf = vec![0u8; PIPE_CHUNK];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let bytes = buf[..n].to_vec();
                if tx
                    .send(Input::Output {
                        serial,
                        stream,
                        bytes,
                    })
                    .is_err()
                {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = tx.send(Input::OutputClosed { serial });
}

fn wait(pid: i32, groups: &LiveGroups) -> Exit {
    // Observe the exit without reaping: the pid stays taken (a zombie) while the group leaves
    // the live set, so nothing can signal a recycled number.
    loop {
        // SAFETY: siginfo_t is plain old data; zeroed is a valid value for waitid to fill.
        #[allow(unsafe_code)]
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a live, writable siginfo_t; the pid is our own child.
        #[allow(unsafe_code)]
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid.unsigned_abs(),
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    if let Ok(mut live) = groups.lock() {
        live.remove(&pid);
    }
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; an all-zero value is valid.
    #[allow(unsafe_code)]
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers refer to live, writable locals of the right types.
        #[allow(unsafe_code)]
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        // ECHILD cannot happen for our own unreaped child; report an unknown ending.
        return Exit {
            code: None,
            signal: None,
            usage: Usage {
                max_rss_kb: 0,
                user_ms: 0,
                sys_ms: 0,
            },
        };
    }
    let st = std::process::ExitStatus::from_raw(status);
    Exit {
        code: st.code(),
        signal: st.signal(),
        usage: usage_of(&usage),
    }
}

fn usage_of(u: &libc::rusage) -> Usage {
    let ms = |tv: libc::timeval| {
        u64::try_from(tv.tv_sec).unwrap_or(0) * 1000 + u64::try_from(tv.tv_usec).unwrap_or(0) / 1000
    };
    Usage {
        max_rss_kb: u64::try_from(u.ru_maxrss).unwrap_or(0),
        user_ms: ms(u.ru_utime),
        sys_ms: ms(u.ru_stime),
    }
}

/// Kills every process that was reparented to the runner (it is a child subreaper): the ones
/// that left their process group with `setsid` and were orphaned. Bounded: a fork bomb cannot
/// keep the runner here forever.
pub(crate) fn kill_orphans() {
    let me = std::process::id();
    for _ in 0..20 {
        let mut found = false;
        for pid in children().unwrap_or_else(every_process) {
            // Zombies are already dead; they vanish when the runner exits.
            if let Some((state, ppid)) = state_and_parent(pid)
                && ppid == me
                && state != 'Z'
            {
                found = true;
                let pid = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        if !found {
            return;
        }
        thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The runner's children, from its main thread's `children` list: an orphan is adopted by
/// the first live thread of the runner, which is the main thread while the runner runs.
/// Only that thread's entry is read: entries made for threads that end at exit cost the
/// kernel a contended cleanup when the runner is reaped. `None` where the kernel keeps no
/// such lists (built without `CONFIG_PROC_CHILDREN`): then every process is looked at.
fn children() -> Option<Vec<i32>> {
    let me = std::process::id();
    let list = std::fs::read_to_string(format!("/proc/self/task/{me}/children")).ok()?;
    Some(
        list.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
    )
}

/// Every process id in `/proc`: a scan that costs a read per process on the host.
fn every_process() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

fn state_and_parent(pid: i32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::{children, every_process};

    #[test]
    fn an_orphan_is_found_by_the_main_threads_list_and_by_the_scan() {
        // As the runner is: a subreaper, so the orphan below is adopted by this process.
        nix::sys::prctl::set_child_subreaper(true).expect("become a subreaper");
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!"])
            .output()
            .expect("start sh");
        let pid: i32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the orphan's pid");
        let listed = children().expect("this kernel keeps /proc/PID/task/TID/children");
        let scanned = every_process();
        let orphan = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(orphan, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(orphan, None);
        assert!(listed.contains(&pid), "{pid} not in {listed:?}");
        assert!(
            scanned.contains(&pid),
            "{pid} not among {} processes",
            scanned.len()
        );
    }
}
