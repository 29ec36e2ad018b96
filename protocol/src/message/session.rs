//! The frames that open and close a session: READY (what the runner is and can enforce),
//! HELLO (the version chosen) and EXIT.

use serde::{Deserialize, Serialize};

/// A range of protocol versions, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRange {
    /// Oldest supported version.
    pub min: u32,
    /// Newest supported version.
    pub max: u32,
}

/// The runner introduces itself and what this host can enforce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    /// Protocol versions the runner speaks.
    pub protocol: VersionRange,
    /// The runner's own version.
    pub runner_version: String,
    /// CPU architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Real user id the runner runs as.
    pub uid: u32,
    /// Effective user id.
    pub euid: u32,
    /// The runner's process id.
    pub pid: u32,
    /// Seconds until the runner shuts itself down.
    pub ttl_s: u64,
    /// Ops this runner implements.
    pub ops: Vec<String>,
    /// What the host can enforce, as probed at start.
    pub caps: Capabilities,
    /// The host's `/etc/machine-id` (empty when it has none): two hosts cloned from one
    /// image share a host key but, once booted, not this.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub machine_id: String,
}

/// Enforcement capabilities probed on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Landlock support.
    pub landlock: LandlockCap,
    /// seccomp support.
    pub seccomp: SeccompCap,
    /// cgroup layout and delegation.
    pub cgroup: CgroupCap,
}

/// Landlock support on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandlockCap {
    /// The ABI version, when Landlock is usable.
    pub abi: Option<u32>,
    /// `enabled`, `disabled` (built but not in the LSM list), `not_built`, or `error`.
    pub status: String,
}

/// seccomp support on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeccompCap {
    /// Filters can be installed.
    pub filter: bool,
    /// The runner itself already runs under a seccomp filter (filters still stack).
    pub already_filtered: bool,
}

/// cgroup layout and whether this user can create child groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupCap {
    /// `v2`, `hybrid`, `v1` or `none`.
    pub mode: String,
    /// A child cgroup could be created (and was removed again) by this uid.
    pub writable: bool,
    /// Where the probe tried, or why it did not.
    pub detail: String,
}

/// Controller → runner handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the session will use.
    pub version: u32,
}

/// Why the runner is exiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// The controller sent EXIT.
    Requested,
    /// The runner's stdin closed: the controller is gone.
    StdinClosed,
    /// SIGTERM, SIGINT or SIGHUP.
    Signal,
    /// The runner's time to live passed.
    Ttl,
    /// A fatal ERROR preceded this frame.
    Error,
}

/// Clean shutdown. From the controller: a request (no reason). From the runner: its last frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Exit {
    /// Set by the runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ExitReason>,
}
