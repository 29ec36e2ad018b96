//! The typed frames. Each is the JSON section of a frame, tagged by `t`.
//!
//! Compatibility rules (PROTOCOL.md, "Evolution"): unknown fields are ignored everywhere except
//! in [`Limits`], where an unknown limit is refused because ignoring a protection would be
//! silent degradation; an unknown `t` is answered with ERROR `unknown_frame`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorClass, ErrorCode};
use crate::frame::{self, EncodeError, RawFrame};
use crate::sandbox::{Enforcement, FsRules, Namespace, NetRules, Rlimits, SandboxMode, Seccomp};

/// A decoded frame: its message and its raw data section.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The message.
    pub message: Message,
    /// Raw bytes that travel with it: output for EVENT, stdin for an exec CMD.
    pub data: Vec<u8>,
}

impl Frame {
    /// A frame without a data section.
    pub fn new(message: Message) -> Self {
        Self {
            message,
            data: Vec::new(),
        }
    }

    /// Encodes this frame onto `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let json = serde_json::to_vec(&self.message).map_err(|_| EncodeError {
            json_len: usize::MAX,
            data_len: self.data.len(),
        })?;
        frame::encode(&json, &self.data, out)
    }

    /// Decodes a raw frame. On failure, the error still carries the frame's `t` and `id` when
    /// they could be read, so the answer can name the command it belongs to.
    pub fn decode(raw: RawFrame) -> Result<Self, MessageError> {
        let head: Head = serde_json::from_slice(&raw.json).map_err(|e| MessageError {
            kind: MessageErrorKind::Malformed,
            t: None,
            id: None,
            detail: e.to_string(),
        })?;
        let Some(t) = head.t else {
            return Err(MessageError {
                kind: MessageErrorKind::Malformed,
                t: None,
                id: head.id,
                detail: "missing frame type field `t`".into(),
            });
        };
        if !KNOWN_TYPES.contains(&t.as_str()) {
            return Err(MessageError {
                kind: MessageErrorKind::UnknownType,
                detail: format!("unknown frame type {t:?}"),
                t: Some(t),
                id: head.id,
            });
        }
        match serde_json::from_slice::<Message>(&raw.json) {
            Ok(message) => Ok(Frame {
                message,
                data: raw.data,
            }),
            Err(e) => {
                // A limit the runner does not know must be refused as such, so the controller
                // can say which protection is missing instead of "bad frame".
                let limits_err = (t == "cmd")
                    .then(|| serde_json::from_slice::<LimitsOnly>(&raw.json).err())
                    .flatten();
                let (kind, detail) = match limits_err {
                    Some(le) => (MessageErrorKind::UnsupportedLimit, format!("limits: {le}")),
                    None => (MessageErrorKind::Invalid, format!("invalid {t} frame: {e}")),
                };
                Err(MessageError {
                    kind,
                    detail,
                    t: Some(t),
                    id: head.id,
                })
            }
        }
    }
}

/// The frame types of this protocol version.
pub const KNOWN_TYPES: &[&str] = &[
    "ready", "hello", "cmd", "event", "done", "error", "cancel", "data", "exit",
];

/// Just enough of any frame to route an error about it.
#[derive(Deserialize)]
struct Head {
    t: Option<String>,
    #[serde(default, deserialize_with = "lenient_id")]
    id: Option<String>,
}

#[derive(Deserialize)]
struct LimitsOnly {
    #[serde(default)]
    #[allow(dead_code)] // parsed only to find out whether it parses
    limits: Limits,
}

fn lenient_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

/// A raw frame that is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError {
    /// What is wrong.
    pub kind: MessageErrorKind,
    /// The frame's type, when it could be read.
    pub t: Option<String>,
    /// The frame's id, when it could be read.
    pub id: Option<String>,
    /// A human-readable detail.
    pub detail: String,
}

/// The kinds of [`MessageError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageErrorKind {
    /// Not a JSON object with a string `t`.
    Malformed,
    /// A `t` this version does not define.
    UnknownType,
    /// A known `t` whose fields do not fit it.
    Invalid,
    /// A CMD whose `limits` name a limit this version does not know, or give it a bad value.
    UnsupportedLimit,
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for MessageError {}

/// Every frame type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum Message {
    /// Runner → controller, once, right after the marker.
    Ready(Ready),
    /// Controller → runner, once, before any CMD: the chosen protocol version.
    Hello(Hello),
    /// Controller → runner: run an op.
    Cmd(Cmd),
    /// Runner → controller: output or progress of a command in flight.
    Event(Event),
    /// Runner → controller: a command finished. The last frame for its id.
    Done(Done),
    /// Runner → controller: a request failed, or the session did.
    Error(ErrorFrame),
    /// Controller → runner: stop a command in flight.
    Cancel(Cancel),
    /// Controller → runner: more of a CMD's data section, for content larger than one frame.
    Data(DataFrame),
    /// Both ways: controller asks for a clean shutdown; the runner's last frame.
    Exit(Exit),
}

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

/// Environment for an exec, ordered so frames encode deterministically.
pub type Env = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawFrame {
        RawFrame {
            json: json.as_bytes().to_vec(),
            data: Vec::new(),
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let f = Frame::decode(raw(r#"{"t":"cancel","id":"a","future":1}"#)).unwrap();
        assert_eq!(f.message, Message::Cancel(Cancel { id: "a".into() }));
    }

    #[test]
    fn unknown_limits_are_refused() {
        let e = Frame::decode(raw(
            r#"{"t":"cmd","id":"a","op":"exec","limits":{"memory":1}}"#,
        ))
        .unwrap_err();
        assert_eq!(e.kind, MessageErrorKind::UnsupportedLimit);
        assert_eq!(e.id.as_deref(), Some("a"));
        assert!(e.detail.contains("memory"), "{}", e.detail);
    }

    #[test]
    fn unknown_type_keeps_its_name_and_id() {
        let e = Frame::decode(raw(r#"{"t":"teleport","id":"x"}"#)).unwrap_err();
        assert_eq!(e.kind, MessageErrorKind::UnknownType);
        assert_eq!(e.t.as_deref(), Some("teleport"));
        assert_eq!(e.id.as_deref(), Some("x"));
    }

    #[test]
    fn malformed_json_and_missing_type() {
        assert_eq!(
            Frame::decode(raw("{nope")).unwrap_err().kind,
            MessageErrorKind::Malformed
        );
        assert_eq!(
            Frame::decode(raw("[1,2]")).unwrap_err().kind,
            MessageErrorKind::Malformed
        );
        assert_eq!(
            Frame::decode(raw(r#"{"id":"a"}"#)).unwrap_err().kind,
            MessageErrorKind::Malformed
        );
        assert_eq!(
            Frame::decode(raw(r#"{"t":5}"#)).unwrap_err().kind,
            MessageErrorKind::Malformed
        );
    }

    #[test]
    fn unknown_error_codes_decode_as_other() {
        let f = Frame::decode(raw(
            r#"{"t":"error","code":"quantum_flux","class":"transient","message":"m"}"#,
        ))
        .unwrap();
        let Message::Error(e) = f.message else {
            panic!("not an error")
        };
        assert_eq!(e.code, ErrorCode::Other);
        assert_eq!(e.class, ErrorClass::Transient);
    }
}
