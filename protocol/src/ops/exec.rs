//! `exec`: a program with its arguments (or a shell string), environment, directory, stdin,
//! timeout and output cap.

use serde::{Deserialize, Serialize};

use crate::message::Env;

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
    /// When given, the only programs that may run: the command's program (found on `PATH`
    /// when it has no `/`) must resolve, symlinks followed, to one of these (each resolved
    /// the same way on the host); otherwise the command is refused before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<String>,
}

impl ExecArgs {
    /// Its fields' names. A runner ignores a field it does not know (a newer controller's);
    /// a plan, written for this version, is held to these.
    pub const FIELDS: &[&str] = &[
        "argv",
        "shell",
        "env",
        "clear_env",
        "cwd",
        "max_output",
        "programs",
    ];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_names_every_field() {
        let all = ExecArgs {
            argv: Some(vec!["true".into()]),
            shell: Some("true".into()),
            env: [("A".to_owned(), "1".to_owned())].into_iter().collect(),
            clear_env: true,
            cwd: Some("/".into()),
            max_output: Some(1),
            programs: vec!["/bin/true".into()],
        };
        let json = serde_json::to_value(&all).unwrap_or_default();
        let mut keys: Vec<&str> = json
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        let mut fields = ExecArgs::FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(keys, fields);
    }
}
