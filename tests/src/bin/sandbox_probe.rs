//! A victim program for the sandbox tests: tries one thing the sandbox may forbid and prints
//! `<what> <errno>` (0 for success), so a test can tell the sandbox's refusal (EPERM from
//! seccomp, EACCES from Landlock, ENOSYS from an allow-list) from any other failure.
//!
//! usage: sandbox-probe unshare|mount|bpf|ptrace|keyctl|x32|clone-newuser
//!        sandbox-probe connect PORT | bind PORT
//!        sandbox-probe alloc MIB | spin MILLISECONDS

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
        other => {
            eprintln!("sandbox-probe: unknown probe {other:?}");
            std::process::exit(100);
        }
    };
    println!("{what} {errno}");
}
