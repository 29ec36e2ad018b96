//! `facts`: what a host is, as the runner reads it.

use serde::{Deserialize, Serialize};

/// The result of `facts`, in DONE's `result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// `ID` from os-release (`debian`, `alpine`), or `unknown`.
    pub os_id: String,
    /// `VERSION_ID` from os-release, or empty.
    pub os_version: String,
    /// `PRETTY_NAME` from os-release, or empty.
    pub os_pretty: String,
    /// Kernel release.
    pub kernel: String,
    /// CPU architecture.
    pub arch: String,
    /// Host name.
    pub hostname: String,
    /// CPUs this process may use.
    pub cpus: u32,
    /// Total memory, KiB.
    pub mem_total_kb: u64,
    /// Same as READY's `caps`.
    pub caps: crate::message::Capabilities,
    /// `systemd`, `openrc`, `sysv` or `unknown`.
    pub init: String,
    /// First package manager found: `apt`, `dnf`, `yum`, `apk`, `zypper`, `pacman`, or `none`.
    pub pkg_manager: String,
}

impl Facts {
    /// The facts a plan may name: every field but `caps`, in declaration order.
    pub const NAMES: &[&str] = &[
        "os_id",
        "os_version",
        "os_pretty",
        "kernel",
        "arch",
        "hostname",
        "cpus",
        "mem_total_kb",
        "init",
        "pkg_manager",
    ];

    /// Each of [`Facts::NAMES`] with its value as text.
    pub fn values(&self) -> [(&'static str, String); 10] {
        [
            ("os_id", self.os_id.clone()),
            ("os_version", self.os_version.clone()),
            ("os_pretty", self.os_pretty.clone()),
            ("kernel", self.kernel.clone()),
            ("arch", self.arch.clone()),
            ("hostname", self.hostname.clone()),
            ("cpus", self.cpus.to_string()),
            ("mem_total_kb", self.mem_total_kb.to_string()),
            ("init", self.init.clone()),
            ("pkg_manager", self.pkg_manager.clone()),
        ]
    }
}
