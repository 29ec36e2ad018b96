//! seccomp profiles, compiled to BPF in the runner (per architecture, from `libc`'s syscall
//! numbers for the architecture being built) and installed by the child as its last step
//! before exec.
//!
//! `default` is a deny-list, so it comes with a guard filter: a deny-list keyed by syscall
//! number would let the x32 ABI (numbers with bit 30 set, same audit arch as x86_64) and
//! `clone3` (whose flags live in memory a filter cannot read) walk around it.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};
use wisp_protocol::sandbox::Seccomp;

mod allowed;
use allowed::allowed;

/// Compiled filters, installed in order.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    pub(crate) programs: Vec<BpfProgram>,
}

/// Compiles `profile` for this architecture. `Err` names what is wrong with a custom filter.
pub(crate) fn compile(profile: &Seccomp) -> Result<Filters, String> {
    let arch = arch()?;
    let programs = match profile {
        Seccomp::None => Vec::new(),
        Seccomp::Default => vec![tty_guard(), guard(), deny_list(arch)?],
        // The allow-list last: it refuses the seccomp call that would install another filter.
        Seccomp::Strict => vec![tty_guard(), allow_list(arch)?],
        Seccomp::Bpf {
            name,
            arch: for_arch,
            program,
        } => {
            if for_arch != std::env::consts::ARCH {
                return Err(format!(
                    "seccomp filter {name} was compiled for {for_arch}, this host is {}",
                    std::env::consts::ARCH
                ));
            }
            vec![decode(program).map_err(|e| format!("seccomp filter {name}: {e}"))?]
        }
    };
    Ok(Filters { programs })
}

/// The most instructions the kernel accepts in one filter (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// Decodes a program sent in hex, 8 bytes per instruction.
fn decode(hex: &str) -> Result<BpfProgram, String> {
    let bytes = hex.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(16) || bytes.len() / 16 > MAX_INSNS {
        return Err(format!(
            "a program is 1 to {MAX_INSNS} instructions of 16 hex digits each"
        ));
    }
    let nibble = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
            .ok_or("not hex")
    };
    let mut raw = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks_exact(2) {
        raw.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Ok(raw
        .chunks_exact(8)
        .map(|i| sock_filter {
            code: u16::from_le_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_le_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect())
}

fn arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| format!("seccomp: no filters for {}", std::env::consts::ARCH))
}

const AUDIT_ARCH: u32 = if cfg!(target_arch = "aarch64") {
    0xC000_00B7
} else {
    0xC000_003E
};
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Kills foreign-arch calls, refuses x32 numbers with EPERM and `clone3` with ENOSYS (libc
/// then falls back to `clone`, whose flags the deny-list can read).
fn guard() -> BpfProgram {
    let mut p = vec![
        op(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        op(JEQ_K, 1, 0, AUDIT_ARCH),
        op(RET_K, 0, 0, RET_KILL_PROCESS),
        op(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
    ];
    if cfg!(target_arch = "x86_64") {
        p.push(op(JGE_K, 0, 1, X32_SYSCALL_BIT));
        p.push(op(RET_K, 0, 0, RET_ERRNO | errno(libc::EPERM)));
    }
    p.push(op(JEQ_K, 0, 1, nr(libc::SYS_clone3)));
    p.push(op(RET_K, 0, 0, RET_ERRNO | errno(libc::ENOSYS)));
    p.push(op(RET_K, 0, 0, RET_ALLOW));
    p
}

fn errno(e: i32) -> u32 {
    u32::try_from(e).unwrap_or(1)
}

fn nr(n: libc::c_long) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `kexec_file_load`: the kernel has it on both arches; musl's aarch64 headers (and so libc)
/// lack the name.
#[cfg(target_arch = "x86_64")]
const SYS_KEXEC_FILE_LOAD: libc::c_long = libc::SYS_kexec_file_load;
#[cfg(target_arch = "aarch64")]
const SYS_KEXEC_FILE_LOAD: libc::c_long = 294;

/// The dangerous families: changing mounts and namespaces, loading code into the kernel,
/// tracing other processes or taking their descriptors, io_uring (whose operations no filter
/// sees), the kernel keyring, rebooting, swap, the clock and the host's names.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))] // only x86_64 adds its own
fn denied() -> Vec<libc::c_long> {
    let mut v = vec![
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_kexec_load,
        SYS_KEXEC_FILE_LOAD,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_ptrace,
        libc::SYS_pidfd_getfd,
        libc::SYS_process_madvise,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kcmp,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_open_by_handle_at,
        libc::SYS_quotactl,
        libc::SYS_acct,
        libc::SYS_vhangup,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_iopl, libc::SYS_ioperm]);
    v
}

/// Namespace flags `clone` may not carry under `default` (each one a rule: any set → EPERM).
const CLONE_NS_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

fn deny_list(arch: TargetArch) -> Result<BpfProgram, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied().into_iter().map(|n| (n, Vec::new())).collect();
    let clone_rules = CLONE_NS_FLAGS
        .iter()
        .map(|f| {
            let f = u64::from(f.unsigned_abs());
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(f), f)
                .and_then(|c| SeccompRule::new(vec![c]))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("seccomp: {e}"))?;
    rules.insert(libc::SYS_clone, clone_rules);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno(libc::EPERM)),
        arch,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    filter.try_into().map_err(|e| format!("seccomp: {e}"))
}

/// Both profiles: no keystrokes pushed into a terminal (TIOCSTI) and no console tricks
/// (TIOCLINUX), whichever terminal the command opens. Written out by hand, like [`guard`]:
/// four comparisons do not need the filter compiler.
fn tty_guard() -> BpfProgram {
    // The same numbers on every Linux architecture wisp builds for (libc's type differs).
    const TIOCSTI: u32 = 0x5412;
    const TIOCLINUX: u32 = 0x541C;
    // seccomp_data.args[1], low 32 bits (both architectures are little-endian).
    const ARG1_LOW: u32 = 24;
    vec![
        op(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        op(JEQ_K, 1, 0, AUDIT_ARCH),
        op(RET_K, 0, 0, RET_ALLOW), // another arch: the profile's own filter decides
        op(LD_W_ABS, 0, 0, 0),      // seccomp_data.nr
        op(JEQ_K, 1, 0, nr(libc::SYS_ioctl)),
        op(RET_K, 0, 0, RET_ALLOW),
        op(LD_W_ABS, 0, 0, ARG1_LOW),
        op(JEQ_K, 2, 0, TIOCSTI),
        op(JEQ_K, 1, 0, TIOCLINUX),
        op(RET_K, 0, 0, RET_ALLOW),
        op(RET_K, 0, 0, RET_ERRNO | errno(libc::EPERM)),
    ]
}

fn allow_list(arch: TargetArch) -> Result<BpfProgram, String> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> =
        allowed().into_iter().map(|n| (n, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(errno(libc::ENOSYS)),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    filter.try_into().map_err(|e| format!("seccomp: {e}"))
}
