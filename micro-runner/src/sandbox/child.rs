//! The steps that run in the child between fork and exec, in the order that keeps each one
//! possible: join the cgroups, enter namespaces (Landlock would forbid the mounts), set
//! rlimits, set no_new_privs, restrict with Landlock, install seccomp last (so nothing the
//! child still has to do is filtered).
//!
//! Everything was prepared by the runner beforehand (descriptors opened, ruleset built, BPF
//! compiled, strings formatted): here there are only system calls, no allocation. Each step's
//! failure is written to a pipe as `(step, errno)` so the runner can name it, whether the
//! child then stops (`require`) or carries on (`best-effort`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use landlock::{RulesetCreated, RulesetStatus};
use seccompiler::BpfProgram;

/// A step that can fail in the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Step {
    CgroupJoin = 1,
    Namespaces = 2,
    UserMap = 3,
    PrivateTmp = 4,
    Rlimit = 5,
    NoNewPrivs = 6,
    Landlock = 7,
    Seccomp = 8,
    PidNamespace = 9,
    Capabilities = 10,
}

impl Step {
    pub(crate) fn from_u32(n: u32) -> Option<Step> {
        Some(match n {
            1 => Step::CgroupJoin,
            2 => Step::Namespaces,
            3 => Step::UserMap,
            4 => Step::PrivateTmp,
            5 => Step::Rlimit,
            6 => Step::NoNewPrivs,
            7 => Step::Landlock,
            8 => Step::Seccomp,
            9 => Step::PidNamespace,
            10 => Step::Capabilities,
            _ => return None,
        })
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Step::CgroupJoin => "cgroup: the command could not join its group",
            Step::Namespaces => "namespaces: unshare failed",
            Step::UserMap => "namespaces: the user namespace's id maps could not be written",
            Step::PrivateTmp => "namespaces: a private /tmp could not be mounted",
            Step::Rlimit => "rlimits: setrlimit failed",
            Step::NoNewPrivs => "no_new_privs: prctl failed",
            Step::Landlock => "landlock: restrict_self failed",
            Step::Seccomp => "seccomp: the filter could not be installed",
            Step::PidNamespace => "namespaces: PID 1 of the new PID namespace could not be started",
            Step::Capabilities => "capabilities: CAP_SYS_RESOURCE could not be dropped",
        }
    }
}

/// Id maps for an unprivileged user namespace: the runner's own uid and gid map to themselves.
#[derive(Debug)]
pub(crate) struct UserMaps {
    pub(crate) uid_map: CString,
    pub(crate) gid_map: CString,
}

/// Everything the child applies, prepared.
#[derive(Debug, Default)]
pub(crate) struct ChildSteps {
    pub(crate) best_effort: bool,
    pub(crate) report: Option<OwnedFd>,
    pub(crate) cgroup_procs: Vec<RawFd>,
    pub(crate) unshare_flags: libc::c_int,
    pub(crate) user_maps: Option<UserMaps>,
    pub(crate) private_tmp: bool,
    /// `CLONE_NEWPID` is in `unshare_flags`: fork once more so the command is PID 1 there.
    pub(crate) pid_namespace: bool,
    pub(crate) rlimits: Vec<(libc::c_int, u64)>,
    pub(crate) no_new_privs: bool,
    /// Root's CAP_SYS_RESOURCE goes (bounding, inheritable and ambient sets), so rlimits and
    /// cgroup limits stay where they were set.
    pub(crate) drop_sys_resource: bool,
    pub(crate) landlock: Option<RulesetCreated>,
    pub(crate) seccomp: Vec<BpfProgram>,
}

impl ChildSteps {
    /// Runs in the child. `Err` stops the exec; only `require` mode returns it.
    pub(crate) fn apply(&mut self) -> io::Result<()> {
        for fd in &self.cgroup_procs {
            // SAFETY: the descriptor was opened by the runner and stays open until exec.
            #[allow(unsafe_code)]
            let r = unsafe { libc::write(*fd, b"0".as_ptr().cast(), 1) };
            if r != 1 {
                self.fail(Step::CgroupJoin)?;
            }
        }
        if self.unshare_flags != 0 {
            // The runner is not dumpable, and neither is this fork of it until exec: its
            // /proc/self/uid_map would be root's, not writable by the user mapping it.
            if self.user_maps.is_some() {
                // SAFETY: PR_SET_DUMPABLE takes no pointers.
                #[allow(unsafe_code)]
                unsafe {
                    libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0)
                };
            }
            // SAFETY: unshare takes no pointers.
            #[allow(unsafe_code)]
            let r = unsafe { libc::unshare(self.unshare_flags) };
            if r != 0 {
                self.fail(Step::Namespaces)?;
            } else {
                if let Some(maps) = &self.user_maps
                    && !write_maps(maps)
                {
                    self.fail(Step::UserMap)?;
                }
                // Keep new mounts (/tmp, /proc) from propagating back to the host.
                if self.unshare_flags & libc::CLONE_NEWNS != 0 && !make_mounts_private() {
                    self.fail(Step::PrivateTmp)?;
                }
                if self.private_tmp && !mount_private_tmp() {
                    self.fail(Step::PrivateTmp)?;
                }
                if self.pid_namespace {
                    self.become_pid_one()?;
                }
            }
        }
        for (i, (resource, value)) in self.rlimits.iter().enumerate() {
            let lim = libc::rlimit {
                rlim_cur: *value,
                rlim_max: *value,
            };
            // SAFETY: `lim` is a live local. The resource type differs between libcs.
            #[allow(unsafe_code, clippy::useless_conversion)]
            let r = unsafe { libc::setrlimit((*resource).try_into().unwrap_or_default(), &lim) };
            if r != 0 {
                self.fail_at(Step::Rlimit, u32::try_from(i).unwrap_or(0))?;
            }
        }
        if self.drop_sys_resource && !drop_sys_resource() {
            self.fail(Step::Capabilities)?;
        }
        if self.no_new_privs {
            // SAFETY: PR_SET_NO_NEW_PRIVS takes no pointers.
            #[allow(unsafe_code)]
            let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            if r != 0 {
                self.fail(Step::NoNewPrivs)?;
            }
        }
        if let Some(ruleset) = self.landlock.take() {
            let ok = matches!(
                ruleset.restrict_self(),
                Ok(s) if s.ruleset == RulesetStatus::FullyEnforced
            );
            if !ok {
                self.fail(Step::Landlock)?;
            }
        }
        for prog in &self.seccomp {
            if seccompiler::apply_filter(prog).is_err() {
                self.fail(Step::Seccomp)?;
            }
        }
        Ok(())
    }

    /// After `unshare(CLONE_NEWPID)` only this process's next child is in the new namespace:
    /// fork it; this process stays behind as a minimal parent that waits for it and exits the
    /// same way (code or signal), so the runner sees the command's own ending. Returns in the
    /// child (PID 1), which mounts its own `/proc` and carries on to exec.
    fn become_pid_one(&self) -> io::Result<()> {
        // SAFETY: the process is single-threaded here (a forked child); fork, waitpid, close,
        // prctl, mount, kill and _exit are async-signal-safe and get only locals or literals.
        #[allow(unsafe_code)]
        unsafe {
            let pid = libc::fork();
            if pid < 0 {
                // Not even best-effort can go on: the namespace exists, and the program's
                // first child would become its PID 1.
                let err = io::Error::last_os_error();
                let _ = self.fail(Step::PidNamespace);
                return Err(err);
            }
            if pid == 0 {
                // PID 1 dies with its parent, and with it the whole namespace.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::mount(
                    c"proc".as_ptr(),
                    c"/proc".as_ptr(),
                    c"proc".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                ) != 0
                {
                    return self.fail(Step::PidNamespace);
                }
                return Ok(());
            }
            // The parent keeps nothing open: the runner must see every pipe (stdout, stderr,
            // the exec-status and failure pipes) close when the command is done with them.
            libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
            let mut status = 0;
            while libc::waitpid(pid, &mut status, 0) < 0
                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
            {}
            if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                libc::kill(libc::getpid(), sig);
                libc::_exit(128 + sig);
            }
            libc::_exit(libc::WEXITSTATUS(status));
        }
    }

    fn fail(&self, step: Step) -> io::Result<()> {
        self.fail_at(step, 0)
    }

    /// Records the failure (`index`: which of several, for rlimits); in `require` mode, stops
    /// the exec with the step's errno.
    fn fail_at(&self, step: Step, index: u32) -> io::Result<()> {
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if let Some(fd) = &self.report {
            let mut rec = [0u8; 8];
            rec[..4].copy_from_slice(&((step as u32) | (index << 16)).to_le_bytes());
            rec[4..].copy_from_slice(&errno.to_le_bytes());
            // SAFETY: `rec` is a live local; a short write to a fresh pipe cannot happen for
            // 8 bytes (below PIPE_BUF).
            #[allow(unsafe_code)]
            unsafe {
                libc::write(fd.as_raw_fd(), rec.as_ptr().cast(), rec.len());
            }
        }
        if self.best_effort {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(if errno == 0 {
                libc::EPERM
            } else {
                errno
            }))
        }
    }
}

fn write_maps(maps: &UserMaps) -> bool {
    write_proc(c"/proc/self/setgroups", c"deny")
        && write_proc(c"/proc/self/uid_map", &maps.uid_map)
        && write_proc(c"/proc/self/gid_map", &maps.gid_map)
}

fn write_proc(path: &std::ffi::CStr, value: &std::ffi::CStr) -> bool {
    // SAFETY: both are NUL-terminated strings that outlive the calls.
    #[allow(unsafe_code)]
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let bytes = value.to_bytes();
        let ok = libc::write(fd, bytes.as_ptr().cast(), bytes.len())
            == isize::try_from(bytes.len()).unwrap_or(-1);
        libc::close(fd);
        ok
    }
}

fn make_mounts_private() -> bool {
    // SAFETY: every pointer is a NUL-terminated literal or null, as mount(2) allows.
    #[allow(unsafe_code)]
    unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) == 0
    }
}

fn mount_private_tmp() -> bool {
    // SAFETY: every pointer is a NUL-terminated literal or null, as mount(2) allows.
    #[allow(unsafe_code)]
    unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            c"/tmp".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=1777".as_ptr().cast(),
        ) == 0
    }
}

/// Reads the failures the child recorded, as `(step, index, errno)`. Call after the child has
/// exec'd or died (the write end closes on exec), with the runner's copy already closed.
pub(crate) fn read_failures(read_end: &OwnedFd) -> Vec<(Step, usize, i32)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8 * 16];
    let mut filled = 0;
    loop {
        // SAFETY: the buffer is live and `filled` stays within it.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::read(
                read_end.as_raw_fd(),
                buf[filled..].as_mut_ptr().cast(),
                buf.len() - filled,
            )
        };
        if n > 0 {
            filled += usize::try_from(n).unwrap_or(0);
            if filled == buf.len() {
                break;
            }
            continue;
        }
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break;
    }
    for rec in buf[..filled].chunks_exact(8) {
        let step = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
        let errno = i32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
        if let Some(s) = Step::from_u32(step & 0xffff) {
            out.push((s, usize::try_from(step >> 16).unwrap_or(0), errno));
        }
    }
    out
}

/// Drops CAP_SYS_RESOURCE from the bounding set (so no exec, setuid ones included, gets it
/// back), from the ambient set and from the inheritable, permitted and effective sets.
fn drop_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: prctl takes constants; capget and capset get a live v3 header and the two
    // data structs v3 wants.
    #[allow(unsafe_code)]
    unsafe {
        if libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0) != 0 {
            return false;
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        if libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) != 0 {
            return false;
        }
        let bit = !(1u32 << CAP_SYS_RESOURCE);
        data[0].effective &= bit;
        data[0].permitted &= bit;
        data[0].inheritable &= bit;
        libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) == 0
    }
}
