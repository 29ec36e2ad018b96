//! A victim program for the sandbox tests: tries one thing the sandbox may forbid and prints
//! `<what> <errno>` (0 for success), so a test can tell the sandbox's refusal (EPERM from
//! seccomp, EACCES from Landlock, ENOSYS from an allow-list) from any other failure.
//!
//! usage: sandbox-probe unshare|mount|bpf|ptrace|keyctl|x32|clone-newuser
//!        sandbox-probe connect PORT | bind PORT
//!        sandbox-probe alloc MIB | spin MILLISECONDS
//!
//! and the attacks on what watches the command (each prints the errno of the step that was
//! refused, 0 when the attack went through):
//!        sandbox-probe forge-proc FILE [PID] | forge-pidfd FILE [PID]
//!                                       write FILE into the stdout of PID (default: the parent)
//!        sandbox-probe proc-mem [PID]        open its memory read-write
//!        sandbox-probe tiocsti TTY           push a keystroke into TTY
//!        sandbox-probe mknod PATH            make a character device
//!        sandbox-probe kill PID | sethostname | io-uring
//!        sandbox-probe cgroup-escape         join the parent of each own cgroup
//!        sandbox-probe raise-nofile|raise-fsize|raise-core   lift an rlimit past its hard limit

#![allow(unsafe_code, clippy::print_stdout)] // raw syscalls on purpose; stdout is the answer

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn errno_of(r: libc::c_long) -> i32 {
    if r == -1 {
        io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map_or("", String::as_str);
    let arg = |i: usize| -> u64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{what} needs a number"))
    };
    // SAFETY (every block below): each call passes only constants, nulls, or live locals;
    // invalid arguments are deliberate and the kernel rejects them without touching memory.
    let errno = match what {
        // SAFETY: constants, nulls or live locals only (see above).
        "unshare" => errno_of(unsafe { libc::unshare(libc::CLONE_NEWUTS) }.into()),
        "mount" => errno_of(
            // SAFETY: constants, nulls or live locals only (see above).
            unsafe {
                libc::mount(
                    c"none".as_ptr(),
                    c"/nonexistent-wisp".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                )
            }
            .into(),
        ),
        // BPF_MAP_CREATE with an empty attribute: EINVAL or EPERM without a filter.
        "bpf" => {
            let attr = [0u8; 64];
            // SAFETY: constants, nulls or live locals only (see above).
            errno_of(unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), 64) })
        }
        // SAFETY: constants, nulls or live locals only (see above).
        "ptrace" => errno_of(unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, std::ptr::null_mut::<u8>(), 0)
        }),
        // KEYCTL_GET_KEYRING_ID of the session keyring.
        // SAFETY: constants, nulls or live locals only (see above).
        "keyctl" => errno_of(unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) }),
        // getpid through the x32 ABI (bit 30): ENOSYS where x32 is off, a pid where it is on.
        // SAFETY: constants, nulls or live locals only (see above).
        "x32" => errno_of(unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) }),
        // clone(CLONE_NEWUSER), child exits at once.
        "clone-newuser" => {
            // SAFETY: constants, nulls or live locals only (see above).
            let r = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    libc::CLONE_NEWUSER | libc::SIGCHLD,
                    0,
                    0,
                    0,
                    0,
                )
            };
            if r == 0 {
                // SAFETY: constants, nulls or live locals only (see above).
                unsafe { libc::_exit(0) };
            }
            if r > 0 {
                // SAFETY: constants, nulls or live locals only (see above).
                unsafe { libc::waitpid(i32::try_from(r).unwrap_or(0), std::ptr::null_mut(), 0) };
            }
            errno_of(r)
        }
        "connect" => {
            let port = u16::try_from(arg(1)).unwrap_or(0);
            let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
            match TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5)) {
                Ok(_) => 0,
                Err(e) => e.raw_os_error().unwrap_or(-1),
            }
        }
        "bind" => {
            let port = u16::try_from(arg(1)).unwrap_or(0);
            match TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)) {
                Ok(_) => 0,
                Err(e) => e.raw_os_error().unwrap_or(-1),
            }
        }
        // Allocates and touches MIB mebibytes, one page at a time.
        "alloc" => {
            let mut v: Vec<u8> = Vec::new();
            for _ in 0..arg(1) {
                let mut chunk = vec![0u8; 1 << 20];
                for i in (0..chunk.len()).step_by(4096) {
                    chunk[i] = 1;
                }
                v.extend_from_slice(&chunk);
            }
            println!("allocated {}", v.len());
            0
        }
        // Burns CPU for this many milliseconds of wall-clock time.
        "spin" => {
            let until = Instant::now() + Duration::from_millis(arg(1));
            let mut x = 0u64;
            while Instant::now() < until {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            0
        }
        "forge-proc" | "forge-pidfd" => forge(
            what,
            args.get(1).map_or("", String::as_str),
            args.get(2).and_then(|p| p.parse().ok()),
        ),
        "proc-mem" => {
            let pid = args.get(1).and_then(|p| p.parse().ok());
            let path = format!(
                "/proc/{}/mem",
                pid.unwrap_or_else(std::os::unix::process::parent_id)
            );
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
            {
                Ok(_) => 0,
                Err(e) => e.raw_os_error().unwrap_or(-1),
            }
        }
        "tiocsti" => {
            let path = args.get(1).map_or("/dev/tty", String::as_str);
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
            {
                // SAFETY: a live descriptor and a live one-byte local.
                Ok(f) => errno_of(
                    unsafe {
                        libc::ioctl(
                            std::os::fd::AsRawFd::as_raw_fd(&f),
                            libc::TIOCSTI,
                            c"#".as_ptr(),
                        )
                    }
                    .into(),
                ),
                Err(e) => e.raw_os_error().unwrap_or(-1),
            }
        }
        "mknod" => {
            let path =
                std::ffi::CString::new(args.get(1).map_or("", String::as_str)).unwrap_or_default();
            // /dev/null's numbers: harmless if the refusal is missing.
            // SAFETY: a live C string and constants.
            errno_of(
                unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) }
                    .into(),
            )
        }
        "kill" => {
            let pid = i32::try_from(arg(1)).unwrap_or(0);
            // SAFETY: constants only.
            errno_of(unsafe { libc::kill(pid, libc::SIGKILL) }.into())
        }
        "sethostname" => {
            // The name it already has: nothing changes when the refusal is missing.
            let mut name = [0u8; 256];
            // SAFETY: a live buffer and its length.
            unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) };
            let len = name.iter().position(|b| *b == 0).unwrap_or(0);
            // SAFETY: a live buffer and a length inside it.
            errno_of(unsafe { libc::sethostname(name.as_ptr().cast(), len) }.into())
        }
        "io-uring" => {
            let params = [0u8; 120];
            // SAFETY: a live, zeroed io_uring_params.
            let r = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_ptr()) };
            errno_of(r)
        }
        "cgroup-escape" => cgroup_escape(),
        "raise-nofile" | "raise-fsize" | "raise-core" => {
            let resource = match what {
                "raise-nofile" => libc::RLIMIT_NOFILE,
                "raise-fsize" => libc::RLIMIT_FSIZE,
                _ => libc::RLIMIT_CORE,
            };
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: a live local.
            unsafe { libc::getrlimit(resource, &mut lim) };
            // One past the hard limit: only CAP_SYS_RESOURCE allows it (and far below
            // fs.nr_open, which would refuse a larger RLIMIT_NOFILE for its own reason).
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max.saturating_add(1),
                rlim_max: lim.rlim_max.saturating_add(1),
            };
            // SAFETY: a live local.
            errno_of(unsafe { libc::setrlimit(resource, &raised) }.into())
        }
        other => {
            eprintln!("sandbox-probe: unknown probe {other:?}");
            std::process::exit(100);
        }
    };
    println!("{what} {errno}");
}

/// Writes FILE's bytes into the parent's (the runner's) stdout, through /proc or a pidfd.
fn forge(how: &str, file: &str, pid_arg: Option<u32>) -> i32 {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let parent = pid_arg.unwrap_or_else(std::os::unix::process::parent_id);
    let out: std::fs::File = if how == "forge-proc" {
        match std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/{parent}/fd/1"))
        {
            Ok(f) => f,
            Err(e) => return e.raw_os_error().unwrap_or(-1),
        }
    } else {
        // SAFETY: constants and the parent's pid.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, parent, 0) };
        if pidfd < 0 {
            return errno_of(pidfd);
        }
        // SAFETY: a descriptor pidfd_open just returned.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, 1, 0) };
        if fd < 0 {
            return errno_of(fd);
        }
        // SAFETY: pidfd_getfd returned a new descriptor this process owns.
        unsafe { std::os::fd::FromRawFd::from_raw_fd(i32::try_from(fd).unwrap_or(-1)) }
    };
    use std::io::Write as _;
    match (&out).write_all(&bytes) {
        Ok(()) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Moves this process into the parent of each cgroup it is in (v1 and v2 lines of
/// /proc/self/cgroup). Returns 0 when any move went through, else the last errno.
fn cgroup_escape() -> i32 {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut last = libc::ENOENT;
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next());
        let Some(path) = path else { continue };
        if path == "/" {
            continue;
        }
        let parent = std::path::Path::new(path)
            .parent()
            .unwrap_or(std::path::Path::new("/"));
        for m in mounts.lines() {
            let fields: Vec<&str> = m.split(' ').collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let fstype = fields.get(dash + 1).copied().unwrap_or("");
            let opts = fields.get(dash + 3).copied().unwrap_or("");
            let matches = if controllers.is_empty() {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup"
                    && controllers
                        .split(',')
                        .all(|c| opts.split(',').any(|o| o == c))
            };
            if !matches {
                continue;
            }
            let procs = std::path::Path::new(fields[4])
                .join(parent.strip_prefix("/").unwrap_or(parent))
                .join("cgroup.procs");
            match std::fs::write(&procs, b"0") {
                Ok(()) => return 0,
                Err(e) => last = e.raw_os_error().unwrap_or(-1),
            }
        }
    }
    last
}
