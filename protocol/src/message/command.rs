//! The frames of one command: CMD with its limits, EVENT, DONE, ERROR, CANCEL and DATA.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorClass, ErrorCode};
use crate::sandbox::{Enforcement, FsRules, Namespace, NetRules, Rlimits, SandboxMode, Seccomp};

/// A command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cmd {
    /// Chosen by the controller; unique among the commands in flight.
    pub id: String,
    /// The op to run (`exec`, `facts`).
    pub op: String,
    /// Op-specific arguments (see [`crate::ops`]).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub args: serde_json::Value,
    /// Limits enforced on the command.
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
}

/// Limits and protections on one command. Unknown fields are refused, not ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock limit in milliseconds; the whole process tree is killed when it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Memory limit of the command's cgroup, bytes (swap included where the kernel counts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<u64>,
    /// CPU quota in thousandths of a CPU (`200` = a fifth of one CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    /// Most processes (and threads) alive at once in the command's cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    /// rlimits; `core` is 0 unless set here.
    #[serde(default, skip_serializing_if = "Rlimits::is_empty")]
    pub rlimits: Rlimits,
    /// Landlock filesystem rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsRules>,
    /// Landlock TCP port rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<NetRules>,
    /// seccomp profile; absent means `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    /// Namespaces to run the command in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<Namespace>,
    /// What to do when a protection cannot be applied; `require` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxMode>,
}

impl Limits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The mode in force: `require` unless `best-effort` was asked for.
    pub fn mode(&self) -> SandboxMode {
        self.sandbox.unwrap_or_default()
    }

    /// Limits that need a cgroup.
    pub fn wants_cgroup(&self) -> bool {
        self.memory_max.is_some() || self.cpu_millis.is_some() || self.pids_max.is_some()
    }

    /// Checks values that parse but make no sense, naming the limit.
    pub fn validate(&self) -> Result<(), String> {
        if self.memory_max == Some(0) {
            return Err("memory_max must be at least 1 byte".into());
        }
        if self.cpu_millis == Some(0) {
            return Err("cpu_millis must be at least 1".into());
        }
        if self.pids_max == Some(0) {
            return Err("pids_max must be at least 1".into());
        }
        if let Some(fs) = &self.fs {
            for p in fs.ro.iter().chain(&fs.rw).chain(&fs.exec) {
                if !p.starts_with('/') {
                    return Err(format!("fs path {p:?} is not absolute"));
                }
            }
        }
        if let Some(net) = &self.net
            && net.connect.is_empty()
            && net.bind.is_empty()
        {
            return Err("net rules with no port: omit `net` or name a port".into());
        }
        Ok(())
    }
}

/// What an EVENT carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A chunk of the command's stdout, in the data section.
    Stdout,
    /// A chunk of the command's stderr, in the data section.
    Stderr,
    /// A note from the runner about the command, in `message`.
    Log,
}

/// Output or a note about a command in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The command.
    pub id: String,
    /// What this event carries.
    pub kind: EventKind,
    /// Text for `log` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The op succeeded (exec: exit code 0).
    Ok,
    /// The op ran and failed (exec: non-zero exit, or killed by a signal the runner did not send).
    Failed,
    /// The wall-clock limit passed; the runner killed the process group.
    Timeout,
    /// A CANCEL, or the runner's shutdown, killed it.
    Cancelled,
    /// The kernel's OOM killer killed a process of the command (its cgroup hit `memory_max`).
    Oom,
}

/// Resource usage of a finished command (its process and the descendants it waited for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Peak resident set size, KiB.
    pub max_rss_kb: u64,
    /// User CPU time, milliseconds.
    pub user_ms: u64,
    /// System CPU time, milliseconds.
    pub sys_ms: u64,
}

/// A command finished; no frame for its id follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// The command.
    pub id: String,
    /// How it ended.
    pub status: Status,
    /// Exit code, when the process exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal name (`SIGKILL`), when a signal ended the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The op changed the host.
    pub changed: bool,
    /// Wall-clock time from CMD to DONE.
    pub duration_ms: u64,
    /// Resource usage, for ops that run processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Output streams that hit the output cap and were cut (bytes over the cap were dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<EventKind>,
    /// Op-specific result (facts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// What was enforced, for ops that run a process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
}

impl Done {
    /// The result decoded as the op's result type ([`FileResult`](crate::ops::FileResult),
    /// [`Facts`](crate::ops::Facts), ...); `None` when the DONE carries none.
    pub fn result_as<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Option<Result<T, serde_json::Error>> {
        self.result.clone().map(serde_json::from_value)
    }
}

/// A failed request, or a failed session when `fatal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The command it is about; absent for session-level errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// What the controller may do about it.
    pub class: ErrorClass,
    /// Human-readable explanation.
    pub message: String,
    /// The runner is shutting down after this frame.
    #[serde(default)]
    pub fatal: bool,
    /// For `sandbox_unavailable`: each protection that could not be applied, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

impl ErrorFrame {
    /// An error with the code's usual class.
    pub fn new(id: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            id,
            code,
            class: code.class(),
            message: message.into(),
            fatal: false,
            missing: Vec::new(),
        }
    }
}

/// Stop a command in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The command.
    pub id: String,
}

/// More bytes (in the data section) for the CMD `id`, whose args announced their total `size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFrame {
    /// The command.
    pub id: String,
}

/// Environment for an exec, ordered so frames encode deterministically.
pub type Env = BTreeMap<String, String>;
