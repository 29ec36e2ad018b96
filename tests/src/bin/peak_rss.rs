//! `peak-rss OUT PROGRAM [ARGS...]`: runs PROGRAM with this process's standard streams,
//! environment and directory, writes its peak RSS (KiB, from `wait4`, so PROGRAM's and that of
//! the children it reaped) to OUT, and exits as PROGRAM did.
//!
//! Why a program of its own: a child's `ru_maxrss` also counts the address space it was
//! started from, since Linux records the old memory's high-water mark when the child execs.
//! Measured straight from a test binary holding a few hundred MiB for another test, a `wisp`
//! that used 20 MiB would be reported at the test binary's size. Started from this small
//! process, it is reported at its own.

#![allow(unsafe_code)] // wait4 and raise, to measure the child and pass its end on

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: peak-rss OUT PROGRAM [ARGS...]");
        return ExitCode::from(64);
    };
    let child = match Command::new(&program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peak-rss: cannot start {}: {e}", program.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: our own child's pid, with a live status and rusage.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        eprintln!("peak-rss: wait4: {}", std::io::Error::last_os_error());
        return ExitCode::from(70);
    }
    if let Err(e) = std::fs::write(&out, usage.ru_maxrss.to_string()) {
        eprintln!("peak-rss: {}: {e}", out.to_string_lossy());
        return ExitCode::from(73);
    }
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        // SAFETY: restoring the default action, then ending by the same signal as the child.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
    ExitCode::from(u8::try_from(libc::WEXITSTATUS(status)).unwrap_or(1))
}
