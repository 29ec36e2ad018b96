//! The ops a CMD can name, with their typed arguments and results.
//!
//! A runner turns a [`Cmd`](crate::message::Cmd) into an [`Op`] with [`Op::parse`]; an op it
//! does not know is an [`OpError::Unknown`], answered with ERROR `unknown_op`.

use std::collections::BTreeMap;

use serde::Deserialize;

mod exec;
mod facts;
mod file;
mod system;

pub use exec::ExecArgs;
pub use facts::Facts;
pub use file::{DirEnsureArgs, FileAbsentArgs, FileResult, FileStat, FileWriteArgs, PathArgs};
pub use system::{PkgEnsureArgs, PkgResult, PkgState, ServiceAction, ServiceArgs, ServiceResult};

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
