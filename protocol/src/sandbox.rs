//! The sandbox half of the contract: the protections a CMD may ask for (inside
//! [`Limits`](crate::message::Limits)) and the enforcement report a DONE carries back.
//!
//! Every request type refuses unknown fields: a protection the runner does not understand
//! must be refused (`unsupported_limit`), never dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the runner does when a requested protection cannot be applied exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Fail closed: the command does not run; ERROR `sandbox_unavailable` names each gap.
    #[default]
    Require,
    /// Run anyway; the DONE's enforcement report lists each gap.
    BestEffort,
}

impl SandboxMode {
    /// The name used on the wire and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Require => "require",
            SandboxMode::BestEffort => "best-effort",
        }
    }
}

/// Resource limits set with `setrlimit` in the child. `core` is 0 unless given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rlimits {
    /// Open file descriptors (`RLIMIT_NOFILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<u64>,
    /// Largest file the command may write, bytes (`RLIMIT_FSIZE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsize: Option<u64>,
    /// Core dump size, bytes (`RLIMIT_CORE`); 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<u64>,
}

impl Rlimits {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Rlimits::default()
    }
}

/// Landlock filesystem rules. When present, every filesystem access the kernel can control is
/// denied except what these paths (and, with `system`, the system directories) grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsRules {
    /// Paths readable (files and directory listings) beneath.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ro: Vec<String>,
    /// Paths with every access beneath (read, write, create, remove, rename, truncate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rw: Vec<String>,
    /// Paths readable and executable beneath.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
    /// Also grant what ordinary programs need to start: read and execute beneath `/usr`,
    /// `/bin`, `/sbin`, `/lib*`; read beneath `/etc`; `/proc`, and the harmless devices
    /// (`/dev/null`, `/dev/zero`, `/dev/full`, `/dev/random`, `/dev/urandom`, `/dev/tty`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub system: bool,
}

impl Default for FsRules {
    fn default() -> Self {
        Self {
            ro: Vec::new(),
            rw: Vec::new(),
            exec: Vec::new(),
            system: true,
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Landlock TCP rules (ABI 4 and later): every TCP connect and bind is denied except to and
/// on these ports. Other protocols (UDP, UNIX sockets) are not affected; use the `net`
/// namespace for no network at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetRules {
    /// TCP ports the command may connect to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connect: Vec<u16>,
    /// TCP ports the command may bind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bind: Vec<u16>,
}

/// A seccomp profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Seccomp {
    /// Allow everything except the dangerous families (mount, pivot_root, kexec, modules,
    /// bpf, perf_event_open, ptrace and process_vm_*, keyctl, userfaultfd, reboot, swap,
    /// clock setting, namespaces), which fail with EPERM.
    Default,
    /// Allow only a list that runs shells, coreutils and package managers; everything else
    /// fails with ENOSYS (so libc falls back to older calls instead of failing).
    Strict,
    /// No filter.
    None,
    /// A filter the controller compiled (from a seccompiler JSON file) for the host's
    /// architecture. The runner installs it as given.
    Bpf {
        /// Where it came from, for reports (a file name).
        name: String,
        /// The architecture it was compiled for (`x86_64`, `aarch64`); another is refused.
        arch: String,
        /// The classic BPF program in hex: 8 bytes per instruction (`code` u16, `jt` u8, `jf`
        /// u8, `k` u32, little-endian).
        program: String,
    },
}

impl Seccomp {
    /// The profile's name in reports: `default`, `strict`, `none`, or the filter file's name.
    pub fn name(&self) -> &str {
        match self {
            Seccomp::Default => "default",
            Seccomp::Strict => "strict",
            Seccomp::None => "none",
            Seccomp::Bpf { name, .. } => name,
        }
    }
}

/// A namespace the command may be put in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    /// A new network namespace: only a loopback interface, down. No network at all.
    Net,
    /// A new mount namespace with a private, empty tmpfs on `/tmp`.
    Mount,
    /// A new PID namespace (with a mount namespace and its own `/proc`): the command is PID 1,
    /// sees only its own processes, and all of them die with it.
    Pid,
}

impl Namespace {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Net => "net",
            Namespace::Mount => "mount",
            Namespace::Pid => "pid",
        }
    }
}

/// What was enforced on one command, sent in its DONE. Sections are present for what was
/// requested (rlimits and the kill method always).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enforcement {
    /// The mode the command ran under.
    pub mode: SandboxMode,
    /// Everything requested was applied exactly.
    pub complete: bool,
    /// Each requested protection that was not applied, and why (best-effort only: under
    /// `require` the command would not have run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// `PR_SET_NO_NEW_PRIVS` was set (it is whenever Landlock, seccomp or a namespace is on).
    pub no_new_privs: bool,
    /// Landlock, when rules were requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock: Option<LandlockReport>,
    /// seccomp, when a profile other than `none` was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompReport>,
    /// The cgroup, when memory, CPU or pids limits were requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<CgroupReport>,
    /// Each rlimit set (soft = hard), by name.
    pub rlimits: BTreeMap<String, u64>,
    /// Namespaces the command ran in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<Namespace>,
    /// How the command's process tree is killed on timeout or cancel: `cgroup.kill`,
    /// `cgroup-sweep` (every process listed in the cgroup), or `process-group`.
    pub kill: String,
}

/// Landlock as applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockReport {
    /// The kernel's Landlock ABI (0 when unavailable).
    pub abi: u32,
    /// `full`, `partial` (some requested rights could not be handled) or `none`.
    pub status: String,
    /// Filesystem rights handled (denied unless granted), by their Landlock names.
    pub fs_rights: Vec<String>,
    /// TCP rules enforced (ABI 4 and later).
    pub net: bool,
    /// Paths granted, as `ro:PATH`, `rw:PATH`, `exec:PATH` (system paths included).
    pub rules: Vec<String>,
}

/// seccomp as applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompReport {
    /// The profile.
    pub profile: String,
    /// The architecture the filter was built for.
    pub arch: String,
}

/// The command's cgroup, with each limit as read back from the kernel after writing it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupReport {
    /// `v1` or `v2`: the hierarchy holding the limits.
    pub version: String,
    /// The group's path below the hierarchy's mount point.
    pub path: String,
    /// Memory limit in bytes, as read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<u64>,
    /// CPU quota as read back: microseconds per period (`"20000 100000"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_max: Option<String>,
    /// Process limit, as read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    /// Processes the kernel OOM-killed in the group.
    pub oom_kills: u64,
    /// Forks refused because the group was at `pids_max`.
    pub pids_refused: u64,
    /// CPU time the whole group used, milliseconds (children that were never waited for
    /// included, unlike `usage`).
    pub cpu_ms: u64,
}
