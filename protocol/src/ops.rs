//! The ops a CMD can name, with their typed arguments and results.
//!
//! A runner turns a [`Cmd`](crate::message::Cmd) into an [`Op`] with [`Op::parse`]; an op it
//! does not know is an [`OpError::Unknown`], answered with ERROR `unknown_op`.

use serde::{Deserialize, Serialize};

use crate::message::Env;

/// Default cap on each output stream of an exec, in bytes.
pub const DEFAULT_MAX_OUTPUT: u64 = 16 << 20;

/// Ops this version defines.
pub const KNOWN_OPS: &[&str] = &["exec", "facts"];

/// A parsed op.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Op {
    /// Run a process.
    Exec(ExecArgs),
    /// Describe the host.
    Facts,
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
    /// Parses an op name and its args.
    pub fn parse(op: &str, args: &serde_json::Value) -> Result<Op, OpError> {
        let args = if args.is_null() {
            &serde_json::Value::Object(Default::default())
        } else {
            args
        };
        match op {
            "exec" => {
                let a: ExecArgs = serde_json::from_value(args.clone())
                    .map_err(|e| OpError::BadArgs(format!("exec args: {e}")))?;
                a.validate().map_err(OpError::BadArgs)?;
                Ok(Op::Exec(a))
            }
            "facts" => {
                if !args.is_object() {
                    return Err(OpError::BadArgs("facts args: expected an object".into()));
                }
                Ok(Op::Facts)
            }
            other => Err(OpError::Unknown(other.to_owned())),
        }
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
