//! The ops a CMD can name, with their typed arguments and results.
//!
//! A runner turns a [`Cmd`](crate::message::Cmd) into an [`Op`] with [`Op::parse`]; an op it
//! does not know is an [`OpError::Unknown`], answered with ERROR `unknown_op`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::message::Env;

/// Largest content a `file.write` takes through DATA frames (`size`), in bytes.
pub const MAX_UPLOAD: u64 = 1 << 30;

/// Default cap on each output stream of an exec, in bytes.
pub const DEFAULT_MAX_OUTPUT: u64 = 16 << 20;

/// The op names, each spelled once.
pub mod name {
    /// Run a process.
    pub const EXEC: &str = "exec";
    /// Describe the host.
    pub const FACTS: &str = "facts";
    /// Write a file atomically.
    pub const FILE_WRITE: &str = "file.write";
    /// Remove a path.
    pub const FILE_ABSENT: &str = "file.absent";
    /// Describe a path.
    pub const FILE_STAT: &str = "file.stat";
    /// Make sure a directory exists.
    pub const DIR_ENSURE: &str = "dir.ensure";
    /// Make sure a package is (not) installed.
    pub const PKG_ENSURE: &str = "pkg.ensure";
    /// The prefix of the service ops (`service.start`, ...).
    pub const SERVICE_PREFIX: &str = "service.";
}

/// Ops this version defines.
pub const KNOWN_OPS: &[&str] = &[
    name::EXEC,
    name::FACTS,
    name::FILE_WRITE,
    name::FILE_ABSENT,
    name::FILE_STAT,
    name::DIR_ENSURE,
    name::PKG_ENSURE,
    "service.start",
    "service.stop",
    "service.restart",
    "service.reload",
    "service.enable",
    "service.disable",
    "service.status",
];

/// A parsed op. Deliberately exhaustive: an op added here must be handled by every match on
/// it (the runner's dispatch has no catch-all arm).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Run a process.
    Exec(ExecArgs),
    /// Describe the host.
    Facts,
    /// Make a file hold exactly the CMD's data section, atomically.
    FileWrite(FileWriteArgs),
    /// Make sure nothing exists at a path.
    FileAbsent(FileAbsentArgs),
    /// Describe what is at a path.
    FileStat(PathArgs),
    /// Make sure a directory exists, with a mode and owner.
    DirEnsure(DirEnsureArgs),
    /// Make sure a package is installed (or not).
    PkgEnsure(PkgEnsureArgs),
    /// Act on a service through the host's init system.
    Service(ServiceAction, ServiceArgs),
}

/// Why a CMD's op could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// The op name is not known.
    Unknown(String),
    /// The args do not fit the op.
    BadArgs(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Unknown(op) => {
                write!(
                    f,
                    "unknown op {op:?} (this runner knows: {})",
                    KNOWN_OPS.join(", ")
                )
            }
            OpError::BadArgs(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for OpError {}

impl Op {
    /// Parses an op name and its args as they come off the wire (`null` args read as `{}`).
    pub fn parse(op: &str, args: &serde_json::Value) -> Result<Op, OpError> {
        if args.is_null() {
            return Op::from_args(op, serde_json::Value::Object(Default::default()));
        }
        Op::from_args(op, args.clone())
    }

    /// Parses an op name and its args from any self-describing form (the wire's JSON, a plan's
    /// TOML table), with the same checks and messages whichever it is.
    pub fn from_args<'de, D>(op: &str, args: D) -> Result<Op, OpError>
    where
        D: serde::Deserializer<'de>,
        D::Error: std::fmt::Display,
    {
        // Some formats end their messages with a newline; the message is one line here.
        let bad =
            |e: D::Error| OpError::BadArgs(format!("{op} args: {}", e.to_string().trim_end()));
        match op {
            name::EXEC => {
                let a = ExecArgs::deserialize(args).map_err(bad)?;
                a.validate().map_err(OpError::BadArgs)?;
                Ok(Op::Exec(a))
            }
            name::FACTS => {
                BTreeMap::<String, serde::de::IgnoredAny>::deserialize(args)
                    .map_err(|_| OpError::BadArgs("facts args: expected an object".into()))?;
                Ok(Op::Facts)
            }
            name::FILE_WRITE => {
                let a = FileWriteArgs::deserialize(args).map_err(bad)?;
                a.validate(op)?;
                if a.size.is_some_and(|s| s > MAX_UPLOAD) {
                    return Err(OpError::BadArgs(format!(
                        "file.write args: size is over the {MAX_UPLOAD}-byte limit"
                    )));
                }
                Ok(Op::FileWrite(a))
            }
            name::FILE_ABSENT => {
                let a = FileAbsentArgs::deserialize(args).map_err(bad)?;
                check_path(op, &a.path)?;
                Ok(Op::FileAbsent(a))
            }
            name::FILE_STAT => {
                let a = PathArgs::deserialize(args).map_err(bad)?;
                check_path(op, &a.path)?;
                Ok(Op::FileStat(a))
            }
            name::DIR_ENSURE => {
                let a = DirEnsureArgs::deserialize(args).map_err(bad)?;
                a.validate(op)?;
                Ok(Op::DirEnsure(a))
            }
            name::PKG_ENSURE => {
                let a = PkgEnsureArgs::deserialize(args).map_err(bad)?;
                a.validate()?;
                Ok(Op::PkgEnsure(a))
            }
            other => match other
                .strip_prefix(name::SERVICE_PREFIX)
                .and_then(ServiceAction::parse)
            {
                Some(action) => {
                    let a = ServiceArgs::deserialize(args).map_err(bad)?;
                    a.validate(op, action)?;
                    Ok(Op::Service(action, a))
                }
                None => Err(OpError::Unknown(other.to_owned())),
            },
        }
    }

    /// The op's name, as a CMD carries it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Exec(_) => name::EXEC,
            Op::Facts => name::FACTS,
            Op::FileWrite(_) => name::FILE_WRITE,
            Op::FileAbsent(_) => name::FILE_ABSENT,
            Op::FileStat(_) => name::FILE_STAT,
            Op::DirEnsure(_) => name::DIR_ENSURE,
            Op::PkgEnsure(_) => name::PKG_ENSURE,
            Op::Service(action, _) => action.op_name(),
        }
    }

    /// The op's args, as a CMD carries them (what [`Op::parse`] reads back).
    pub fn args(&self) -> serde_json::Value {
        let value = match self {
            Op::Exec(a) => serde_json::to_value(a),
            Op::Facts => Ok(serde_json::Value::Object(Default::default())),
            Op::FileWrite(a) => serde_json::to_value(a),
            Op::FileAbsent(a) => serde_json::to_value(a),
            Op::FileStat(a) => serde_json::to_value(a),
            Op::DirEnsure(a) => serde_json::to_value(a),
            Op::PkgEnsure(a) => serde_json::to_value(a),
            Op::Service(_, a) => serde_json::to_value(a),
        };
        // Plain structs of strings, numbers and string maps: serialising cannot fail.
        value.unwrap_or_default()
    }

    /// Turns on check mode (report, change nothing). False for the ops that have no check
    /// mode: `exec` and `facts` (which change nothing anyway, as does `file.stat`).
    pub fn set_check(&mut self) -> bool {
        match self {
            Op::FileWrite(a) => a.check = true,
            Op::FileAbsent(a) => a.check = true,
            Op::DirEnsure(a) => a.check = true,
            Op::PkgEnsure(a) => a.check = true,
            Op::Service(_, a) => a.check = true,
            Op::FileStat(_) => {}
            Op::Exec(_) | Op::Facts => return false,
        }
        true
    }
}

/// Arguments of `exec`. The CMD's data section, when present, is the process's stdin;
/// without one, stdin is `/dev/null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecArgs {
    /// Program and arguments, run without a shell. Exactly one of `argv` and `shell`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// A command line for `/bin/sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Variables set on top of the runner's environment (or of an empty one with `clear_env`).
    #[serde(default, skip_serializing_if = "Env::is_empty")]
    pub env: Env,
    /// Start from an empty environment.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear_env: bool,
    /// Working directory; the runner's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Bytes kept per output stream; the rest is read and dropped. Default [`DEFAULT_MAX_OUTPUT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output: Option<u64>,
}

impl ExecArgs {
    /// Checks the rules serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        let form: Result<(), String> = match (&self.argv, &self.shell) {
            (Some(_), Some(_)) => Err("exec args: give either argv or shell, not both".into()),
            (None, None) => Err("exec args: one of argv or shell is required".into()),
            (Some(argv), None) if argv.is_empty() => Err("exec args: argv is empty".into()),
            (Some(argv), None) if argv.iter().any(|a| a.contains('\0')) => {
                Err("exec args: argv contains a NUL byte".into())
            }
            (None, Some(s)) if s.contains('\0') => {
                Err("exec args: shell contains a NUL byte".into())
            }
            _ => Ok(()),
        };
        form?;
        if self
            .env
            .iter()
            .any(|(k, v)| k.is_empty() || k.contains(['=', '\0']) || v.contains('\0'))
        {
            return Err("exec args: env names must be non-empty without '=' or NUL".into());
        }
        Ok(())
    }

    /// The argv to execute, with `shell` expanded to `/bin/sh -c`.
    pub fn command_line(&self) -> Vec<String> {
        match (&self.argv, &self.shell) {
            (Some(argv), _) => argv.clone(),
            (None, Some(s)) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            (None, None) => Vec::new(),
        }
    }
}

fn check_path(op: &str, path: &str) -> Result<(), OpError> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(OpError::BadArgs(format!(
            "{op} args: path {path:?} must be absolute, without NUL bytes"
        )));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(OpError::BadArgs(format!(
            "{op} args: path {path:?} must not contain `..`"
        )));
    }
    Ok(())
}

/// Declares an args struct for an op that creates a path, with the fields every such op
/// shares (path, mode, owner, group, parents, check) and its own.
macro_rules! creating_args {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty = $skip:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Absolute path.
            pub path: String,
            /// Permission bits as octal text (`"0644"`); kept as they are when absent (new
            /// files: 0644, new directories: 0755).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub mode: Option<String>,
            /// Owner, a user name or a numeric uid; kept when absent (new: the runner's user).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub owner: Option<String>,
            /// Group, a name or a numeric gid; kept when absent.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub group: Option<String>,
            /// Create missing parent directories (0755, the runner's user).
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            pub make_parents: bool,
            /// Check mode: report what would change, change nothing.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            pub check: bool,
            $($(#[$fdoc])* #[serde(default, skip_serializing_if = $skip)] pub $field: $ty,)*
        }

        impl $name {
            fn validate(&self, op: &str) -> Result<(), OpError> {
                check_path(op, &self.path)?;
                if self.path.len() > 1 && self.path.ends_with('/') {
                    return Err(OpError::BadArgs(format!(
                        "{op} args: path {:?} ends with `/`",
                        self.path
                    )));
                }
                if let Some(m) = &self.mode
                    && self.mode_bits().is_none()
                {
                    return Err(OpError::BadArgs(format!(
                        "{op} args: mode {m:?} is not octal like \"0644\""
                    )));
                }
                Ok(())
            }

            /// The mode as permission bits (`0o7777` at most).
            pub fn mode_bits(&self) -> Option<u32> {
                let m = self.mode.as_deref().filter(|m| !m.is_empty())?;
                u32::from_str_radix(m, 8).ok().filter(|b| *b <= 0o7777)
            }
        }
    };
}

creating_args! {
    /// Arguments of `file.write`. The content is the CMD's data section.
    FileWriteArgs {
        /// Keep the previous version as `PATH.<unix seconds>.bak` when the content changes.
        backup: bool = "std::ops::Not::not",
        /// Send the previous content back (DONE's data section) when it changes and is text
        /// of at most 1 MiB, for a diff.
        diff: bool = "std::ops::Not::not",
        /// The content's total length when it is larger than the CMD's data section: the rest
        /// follows in DATA frames for this id, and the file is written once all has come.
        size: Option<u64> = "Option::is_none",
    }
}

creating_args! {
    /// Arguments of `dir.ensure`.
    DirEnsureArgs {}
}

/// What `pkg.ensure` makes true.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PkgState {
    /// Installed (at `version`, when given).
    #[default]
    Present,
    /// Not installed.
    Absent,
    /// Installed at the newest version the host's repositories offer.
    Latest,
}

/// Arguments of `pkg.ensure`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PkgEnsureArgs {
    /// The package name.
    pub name: String,
    /// `present` (default), `absent` or `latest`.
    #[serde(default)]
    pub state: PkgState,
    /// An exact version to have installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Install from this package file on the host (a `.deb`) instead of the repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Check mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
}

impl PkgEnsureArgs {
    fn validate(&self) -> Result<(), OpError> {
        let ok = |s: &str| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-._:~".contains(c))
        };
        if !ok(&self.name) {
            return Err(OpError::BadArgs(format!(
                "pkg.ensure args: {:?} is not a package name",
                self.name
            )));
        }
        if let Some(v) = &self.version
            && !ok(v)
        {
            return Err(OpError::BadArgs(format!(
                "pkg.ensure args: {v:?} is not a version"
            )));
        }
        if let Some(f) = &self.file {
            check_path("pkg.ensure", f)?;
        }
        if self.state != PkgState::Present && (self.version.is_some() || self.file.is_some()) {
            return Err(OpError::BadArgs(
                "pkg.ensure args: version and file go with state \"present\" only".into(),
            ));
        }
        Ok(())
    }
}

/// What a `service.*` op does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAction {
    /// Running afterwards; unchanged when it already was.
    Start,
    /// Stopped afterwards; unchanged when it already was.
    Stop,
    /// Restarted (started when it was stopped); always a change.
    Restart,
    /// Told to reload its configuration; always a change.
    Reload,
    /// Started at boot; unchanged when it already is.
    Enable,
    /// Not started at boot; unchanged when it already is not.
    Disable,
    /// Only report: running, enabled; never a change.
    Status,
}

impl ServiceAction {
    /// The action named by the part after `service.`.
    pub fn parse(name: &str) -> Option<ServiceAction> {
        Some(match name {
            "start" => ServiceAction::Start,
            "stop" => ServiceAction::Stop,
            "restart" => ServiceAction::Restart,
            "reload" => ServiceAction::Reload,
            "enable" => ServiceAction::Enable,
            "disable" => ServiceAction::Disable,
            "status" => ServiceAction::Status,
            _ => return None,
        })
    }

    /// The op that names this action (`service.start`).
    pub fn op_name(self) -> &'static str {
        match self {
            ServiceAction::Start => "service.start",
            ServiceAction::Stop => "service.stop",
            ServiceAction::Restart => "service.restart",
            ServiceAction::Reload => "service.reload",
            ServiceAction::Enable => "service.enable",
            ServiceAction::Disable => "service.disable",
            ServiceAction::Status => "service.status",
        }
    }

    /// The verb as the init systems spell it.
    pub fn verb(self) -> &'static str {
        match self {
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
            ServiceAction::Reload => "reload",
            ServiceAction::Enable => "enable",
            ServiceAction::Disable => "disable",
            ServiceAction::Status => "status",
        }
    }
}

/// Arguments of the `service.*` ops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceArgs {
    /// The service (`nginx`, `ssh`): a systemd unit name, an OpenRC or SysV script name.
    pub name: String,
    /// `service.reload` only: restart instead when the service cannot reload.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart_fallback: bool,
    /// Check mode: report what would change, change nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
}

impl ServiceArgs {
    fn validate(&self, op: &str, action: ServiceAction) -> Result<(), OpError> {
        let ok = !self.name.is_empty()
            && !self.name.starts_with(['-', '.'])
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "@+-._:".contains(c));
        if !ok {
            return Err(OpError::BadArgs(format!(
                "{op} args: {:?} is not a service name",
                self.name
            )));
        }
        if self.restart_fallback && action != ServiceAction::Reload {
            return Err(OpError::BadArgs(format!(
                "{op} args: restart_fallback is for service.reload only"
            )));
        }
        Ok(())
    }
}

/// What a `service.*` op found and did, in DONE's `result`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceResult {
    /// The service.
    pub name: String,
    /// The init system used: `systemd`, `openrc` or `sysv`.
    pub manager: String,
    /// Running before the op.
    pub running: bool,
    /// Started at boot before the op, when the init system can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `started`, `stopped`, `restarted`, `reloaded`, `enabled`, `disabled` (or would be, in
    /// check mode); empty when nothing changed.
    pub changes: Vec<String>,
}

/// What `pkg.ensure` found and did, in DONE's `result`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkgResult {
    /// The package.
    pub name: String,
    /// The package manager used (`apt`, `dnf`, `yum`, `apk`, `zypper`, `pacman`).
    pub manager: String,
    /// The version installed before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// The version installed after (in check mode: unchanged), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// `installed`, `removed`, `upgraded` (or would be, in check mode); empty when nothing.
    pub changes: Vec<String>,
}

/// Arguments of `file.stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// Absolute path.
    pub path: String,
}

/// Arguments of `file.absent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAbsentArgs {
    /// Absolute path.
    pub path: String,
    /// Also remove a directory and everything in it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recursive: bool,
    /// Check mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check: bool,
}

/// What a file op found and did, in DONE's `result`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileResult {
    /// The path.
    pub path: String,
    /// What was there before: `file`, `dir`, `symlink`, `other`, or `none`.
    pub before: String,
    /// What changed (or would, in check mode): `created`, `content`, `mode`, `owner`, `group`,
    /// `removed`. Empty when nothing did.
    pub changes: Vec<String>,
    /// The backup made of the previous version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// The previous content travels in the data section (diff asked, text, changed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub previous_content: bool,
}

/// The result of `file.stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// The path.
    pub path: String,
    /// `file`, `dir`, `symlink`, `other`, or `none`.
    pub kind: String,
    /// Permission bits as octal text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Owner uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Group gid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Modification time, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// Where a symlink points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exec_needs_exactly_one_command_form() {
        assert!(Op::parse("exec", &json!({"argv": ["true"]})).is_ok());
        assert!(Op::parse("exec", &json!({"shell": "true"})).is_ok());
        assert!(matches!(
            Op::parse("exec", &json!({})),
            Err(OpError::BadArgs(_))
        ));
        assert!(matches!(
            Op::parse("exec", &json!({"argv": ["a"], "shell": "b"})),
            Err(OpError::BadArgs(_))
        ));
        assert!(matches!(
            Op::parse("exec", &json!({"argv": []})),
            Err(OpError::BadArgs(_))
        ));
        assert!(matches!(
            Op::parse("exec", &json!({"argv": "ls"})),
            Err(OpError::BadArgs(_))
        ));
    }

    #[test]
    fn every_op_round_trips_through_its_name_and_args() {
        let ops = [
            json!(["exec", {"argv": ["true"], "cwd": "/"}]),
            json!(["facts", {}]),
            json!(["file.write", {"path": "/a", "mode": "0600", "diff": true}]),
            json!(["file.absent", {"path": "/a", "recursive": true}]),
            json!(["file.stat", {"path": "/a"}]),
            json!(["dir.ensure", {"path": "/a", "make_parents": true}]),
            json!(["pkg.ensure", {"name": "curl", "state": "latest"}]),
            json!(["service.reload", {"name": "nginx", "restart_fallback": true}]),
        ];
        for o in ops {
            let op = Op::parse(o[0].as_str().unwrap(), &o[1]).unwrap();
            assert_eq!(op.name(), o[0]);
            assert_eq!(Op::parse(op.name(), &op.args()), Ok(op.clone()), "{o}");
        }
        assert_eq!(KNOWN_OPS.len(), 14);
        for known in KNOWN_OPS {
            assert!(!matches!(
                Op::parse(known, &json!({})),
                Err(OpError::Unknown(_))
            ));
        }
    }

    #[test]
    fn fact_names_are_the_fields_values_reports() {
        let facts: Facts = serde_json::from_value(json!({
            "os_id": "debian", "os_version": "13", "os_pretty": "Debian", "kernel": "6.18",
            "arch": "x86_64", "hostname": "h", "cpus": 2, "mem_total_kb": 1024,
            "caps": {
                "landlock": {"abi": 7, "status": "enabled"},
                "seccomp": {"filter": true, "already_filtered": false},
                "cgroup": {"mode": "hybrid", "writable": true, "detail": ""}
            },
            "init": "sysv", "pkg_manager": "apt"
        }))
        .unwrap();
        let names: Vec<&str> = facts.values().iter().map(|(k, _)| *k).collect();
        assert_eq!(names, Facts::NAMES);
        let encoded = serde_json::to_value(&facts).unwrap();
        for (k, v) in facts.values() {
            let field = &encoded[k];
            let text = field
                .as_str()
                .map_or_else(|| field.to_string(), str::to_owned);
            assert_eq!(text, v, "{k}");
        }
    }

    #[test]
    fn unknown_op() {
        assert_eq!(
            Op::parse("reboot", &json!(null)),
            Err(OpError::Unknown("reboot".into()))
        );
    }

    #[test]
    fn shell_expands_to_sh_c() {
        let Op::Exec(a) = Op::parse("exec", &json!({"shell": "echo hi"})).unwrap() else {
            panic!()
        };
        assert_eq!(a.command_line(), ["/bin/sh", "-c", "echo hi"]);
    }
}
