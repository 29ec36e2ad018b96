//! What this host is and what it can enforce, probed for real rather than assumed: a kernel
//! can have Landlock built but disabled, seccomp compiled out, or cgroups that this uid may
//! not write to.

use std::path::{Path, PathBuf};

use wisp_protocol::message::{Capabilities, CgroupCap, LandlockCap, SeccompCap};
use wisp_protocol::ops::Facts;

/// `landlock_create_ruleset` has this number on every architecture (it is newer than the
/// unified syscall table).
const SYS_LANDLOCK_CREATE_RULESET: libc::c_long = 444;
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const TMPFS_MAGIC: i64 = 0x0102_1994;

pub(crate) fn capabilities() -> Capabilities {
    Capabilities {
        landlock: landlock(),
        seccomp: seccomp(),
        cgroup: cgroup(),
    }
}

fn landlock() -> LandlockCap {
    // SAFETY: with a null attribute pointer and size 0 the kernel reads no memory; the call
    // only reports the ABI version.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r > 0 {
        return LandlockCap {
            abi: u32::try_from(r).ok(),
            status: "enabled".into(),
        };
    }
    let status = match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOSYS) => "not_built",
        Some(libc::EOPNOTSUPP) => "disabled",
        _ => "error",
    };
    LandlockCap {
        abi: None,
        status: status.into(),
    }
}

fn seccomp() -> SeccompCap {
    // SAFETY: PR_GET_SECCOMP takes no pointer arguments.
    #[allow(unsafe_code)]
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    // Asking to install a filter from a null program is the documented probe: EFAULT means
    // filter mode exists (the kernel tried to read the program), EINVAL means it does not.
    // SAFETY: the kernel rejects the null pointer before installing anything.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            std::ptr::null::<u8>(),
            0,
            0,
        )
    };
    let filter = r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT);
    SeccompCap {
        filter,
        already_filtered: mode == 2,
    }
}

// The field is a signed long on glibc and an unsigned one on some libcs; the magics fit both.
#[allow(clippy::unnecessary_cast)]
fn fs_type(path: &str) -> Option<i64> {
    nix::sys::statfs::statfs(path)
        .ok()
        .map(|s| s.filesystem_type().0 as i64)
}

/// The cgroup mode of the host: `v2`, `hybrid`, `v1` or `none`.
pub(crate) fn cgroup_mode() -> &'static str {
    match fs_type("/sys/fs/cgroup") {
        Some(CGROUP2_SUPER_MAGIC) => "v2",
        Some(TMPFS_MAGIC) if fs_type("/sys/fs/cgroup/unified") == Some(CGROUP2_SUPER_MAGIC) => {
            "hybrid"
        }
        Some(TMPFS_MAGIC) if fs_type("/sys/fs/cgroup/memory") == Some(CGROUP_SUPER_MAGIC) => "v1",
        _ => "none",
    }
}

fn cgroup() -> CgroupCap {
    let mode = cgroup_mode();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    // On v2 our group is the `0::` line; on v1 and hybrid the limits live in the v1 memory
    // hierarchy, so that is where a child group must be creatable.
    let base = match mode {
        "v2" => own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(|p| Path::new("/sys/fs/cgroup").join(p.trim_start_matches('/'))),
        "v1" | "hybrid" => own.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/')))
        }),
        _ => None,
    };
    let Some(base) = base else {
        return CgroupCap {
            mode: mode.into(),
            writable: false,
            detail: "no cgroup of this process found".into(),
        };
    };
    let probe: PathBuf = base.join(format!("wisp-probe-{}", std::process::id()));
    match std::fs::create_dir(&probe) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&probe);
            CgroupCap {
                mode: mode.into(),
                writable: true,
                detail: format!("can create groups under {}", base.display()),
            }
        }
        Err(e) => CgroupCap {
            mode: mode.into(),
            writable: false,
            detail: format!("cannot create a group under {}: {e}", base.display()),
        },
    }
}

pub(crate) fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn facts(caps: &Capabilities) -> Facts {
    let os = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    let field = |key: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    let uts = nix::sys::utsname::uname().ok();
    let os_id = field("ID");
    Facts {
        os_id: if os_id.is_empty() {
            "unknown".into()
        } else {
            os_id
        },
        os_version: field("VERSION_ID"),
        os_pretty: field("PRETTY_NAME"),
        kernel: kernel_release(),
        arch: std::env::consts::ARCH.into(),
        hostname: uts
            .map(|u| u.nodename().to_string_lossy().into_owned())
            .unwrap_or_default(),
        cpus: std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
        mem_total_kb: mem_total_kb(),
        caps: caps.clone(),
        init: init_system().into(),
        pkg_manager: pkg_manager().into(),
    }
}

fn mem_total_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) fn init_system() -> &'static str {
    if Path::new("/run/systemd/system").is_dir() {
        "systemd"
    } else if Path::new("/run/openrc").is_dir() || Path::new("/sbin/openrc-run").exists() {
        "openrc"
    } else if Path::new("/etc/init.d").is_dir() {
        "sysv"
    } else {
        "unknown"
    }
}

pub(crate) fn pkg_manager() -> &'static str {
    const DIRS: &[&str] = &["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"];
    const MANAGERS: &[(&str, &str)] = &[
        ("apt-get", "apt"),
        ("dnf", "dnf"),
        ("yum", "yum"),
        ("apk", "apk"),
        ("zypper", "zypper"),
        ("pacman", "pacman"),
    ];
    MANAGERS
        .iter()
        .find(|(bin, _)| DIRS.iter().any(|d| Path::new(d).join(bin).exists()))
        .map_or("none", |(_, name)| name)
}
