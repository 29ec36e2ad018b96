//! [`PlanError`]: what is wrong with a plan, and where (the file, the line), as fields.

use std::path::{Path, PathBuf};

/// A plan that cannot run: the file, the line (when one is to blame) and what is wrong.
/// Shown as `FILE:LINE: what is wrong`.
#[derive(Debug)]
pub struct PlanError {
    /// The plan file.
    pub path: PathBuf,
    /// The line to blame, when there is one.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: PlanErrorKind,
}

/// What is wrong with a plan. The text variants carry the message written for the operator.
#[derive(Debug, thiserror::Error)]
pub enum PlanErrorKind {
    /// The file could not be read.
    #[error("cannot read the plan")]
    Unreadable(#[source] std::io::Error),
    /// A task's `content_file` could not be read.
    #[error("cannot read content_file {}", path.display())]
    ContentFile {
        /// The file, relative to the plan's folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or not the plan's shape.
    #[error("{0}")]
    Syntax(String),
    /// A task or handler that is not whole: its keys, its op or the op's args.
    #[error("{0}")]
    Task(String),
    /// A `{{ ... }}` reference or a `when` condition that cannot be resolved.
    #[error("{0}")]
    Template(String),
    /// A `[limits]` table (the plan's or a task's) that does not parse or check.
    #[error("{0}")]
    Limits(String),
    /// A secret named where it may not go, or missing from the secrets file.
    #[error("{0}")]
    Secret(String),
    /// A task's `targets` pattern that selects nothing valid.
    #[error("{0}")]
    Targets(String),
    /// Something wrong in a file the plan includes (or a role's), at its own line.
    #[error("in {}:{line}: {error}", path.display())]
    Inside {
        /// The included file.
        path: PathBuf,
        /// The line in it.
        line: usize,
        /// What is wrong there.
        error: Box<PlanErrorKind>,
    },
}

impl PlanError {
    /// An error at `line` of `path` (line 0: the file, no line).
    pub(super) fn at(path: &Path, line: usize, kind: PlanErrorKind) -> PlanError {
        PlanError {
            path: path.to_owned(),
            line: (line > 0).then_some(line),
            kind,
        }
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.kind),
            None => write!(f, "{}: {}", self.path.display(), self.kind),
        }
    }
}

impl std::error::Error for PlanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// Where in the plan text an error is, and what it is; [`Plan::parse`] adds the file.
pub(super) type Located = (usize, PlanErrorKind);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Plan;

    /// Plan text that must fail: the line it blames, the kind and the whole message.
    fn check(text: &str, line: usize, kind: &str, message: &str) {
        let e = Plan::parse(text, Path::new("plan.toml")).unwrap_err();
        assert_eq!(e.path, Path::new("plan.toml"), "{text}");
        assert_eq!(e.line, Some(line), "line of {e} in:\n{text}");
        let debug = format!("{:?}", e.kind);
        assert!(
            debug.starts_with(kind),
            "{kind} expected, got {debug}:\n{text}"
        );
        assert_eq!(e.kind.to_string(), message, "in:\n{text}");
        assert_eq!(e.to_string(), format!("plan.toml:{line}: {message}"));
    }

    #[test]
    fn errors_name_the_file_line_and_kind() {
        let known = [
            wisp_protocol::ops::KNOWN_OPS,
            crate::CONTROLLER_OPS,
            crate::edit::EDIT_OPS,
            crate::edit::account::ACCOUNT_OPS,
            &[crate::edit::cron::CRON],
            &["template"],
        ]
        .concat()
        .join(", ");
        let cases: &[(&str, usize, &str, String)] = &[
            (
                "[[task]]\nop = \"file.wirte\"\npath = \"/x\"\n",
                2,
                "Task",
                format!("unknown op \"file.wirte\" (known: {known})"),
            ),
            (
                "[vars]\na = \"1\"\n\n[[task]]\nop = \"dir.ensure\"\nmode = \"0755\"\n",
                4,
                "Task",
                "dir.ensure args: missing field `path`".into(),
            ),
            (
                "[[task]]\nop = \"file.absent\"\npath = \"/x\"\nrecursiv = true\n",
                1,
                "Task",
                "file.absent args: unknown field `recursiv`, expected one of `path`, `recursive`, `check`"
                    .into(),
            ),
            (
                "[[task]]\nop = \"exec\"\nshell = \"x\"\nnotify = [\"nope\"]\n",
                1,
                "Task",
                "notify: no handler named \"nope\"".into(),
            ),
            (
                "[[task]]\nop = \"exec\"\nshell = \"x\"\nnotify = 3\n",
                4,
                "Task",
                "notify must be a name or a list of names".into(),
            ),
            (
                "[[task]]\nop = \"exec\"\nargv = [\"true\"]\ncontent = \"x\"\n",
                1,
                "Task",
                "exec takes no content".into(),
            ),
        ];
        for (text, line, kind, message) in cases {
            check(text, *line, kind, message);
        }
    }

    #[test]
    fn template_secret_and_arg_errors_name_their_line() {
        let cases: &[(&str, usize, &str, String)] = &[
            (
                "[[task]]\nop = \"exec\"\nshell = \"{{ facts.oss | quote }}\"\n",
                1,
                "Template",
                format!(
                    "args.shell: facts have no \"oss\" (they have: {})",
                    wisp_protocol::ops::Facts::NAMES.join(", ")
                ),
            ),
            (
                "[[task]]\nop = \"exec\"\nshell = \"true\"\nwhen = \"a b\"\n",
                1,
                "Template",
                "when: syntax error: unexpected identifier, expected `)`".into(),
            ),
            (
                "[[task]]\nop = \"exec\"\nshell = \"echo {{ secret.pw }}\"\n",
                1,
                "Secret",
                "args.shell: a secret may go only in an exec task's env or stdin, or in file \
                 content: a command line or a path is visible to every user of the host"
                    .into(),
            ),
            (
                "[[task]]\nop = \"exec\"\nshell = \"x\"\nlimits = { memory = \"lots\" }\n",
                4,
                "Limits",
                "limits: memory: \"lots\" is not a size like 512M, 2G or 1048576".into(),
            ),
            (
                "[limits]\ntimeout = \"soon\"\n",
                1,
                "Limits",
                "[limits]: timeout: \"soon\" is not a duration like 500ms, 30s, 10m or 1h".into(),
            ),
            (
                "[vars]\nlist = [1]\nbad = \"{{ list[\"\n",
                3,
                "Template",
                "vars.bad: syntax error: unexpected end of input, expected expression".into(),
            ),
            (
                "[[task]]\nop = \"file.write\"\npath = \"/x\"\ncontent = \"\"\nmode = 644\n",
                5,
                "Task",
                "mode = 644 is a decimal number (octal 1204); write the octal mode as text, \
                 mode = \"0644\", or as a TOML octal, mode = 0o644"
                    .into(),
            ),
            (
                "[[task]]\nname = \"tz\"\nop = \"pkg.ensure\"\n",
                1,
                "Task",
                "pkg.ensure needs the package's name in its args: a task's own `name` is its \
                 display name. Write args = { name = \"tz\" }"
                    .into(),
            ),
            (
                "[[task]]\nop = \"exec\"\nshell = \"x\"\ncreates = \"/x\"\nunless = \"y\"\n",
                1,
                "Task",
                "exec args: unknown field `unless`, expected one of `argv`, `shell`, `env`, \
                 `clear_env`, `cwd`, `max_output`, `programs`"
                    .into(),
            ),
            (
                "[[task]]\nop = \"exec\"\nshell = \"x\n",
                3,
                "Syntax",
                "invalid basic string, expected `\"`".into(),
            ),
        ];
        for (text, line, kind, message) in cases {
            check(text, *line, kind, message);
        }
    }

    #[test]
    fn an_unreadable_plan_or_content_file_keeps_its_cause() {
        let e = Plan::load(Path::new("/nonexistent/plan.toml")).unwrap_err();
        assert_eq!(e.line, None);
        assert!(matches!(e.kind, PlanErrorKind::Unreadable(_)));
        assert_eq!(
            wisp_protocol::error::chain(&e),
            "/nonexistent/plan.toml: cannot read the plan: No such file or directory (os error 2)"
        );
        let text = "[[task]]\nop = \"file.write\"\npath = \"/x\"\ncontent_file = \"gone\"\n";
        let e = Plan::parse(text, Path::new("/nonexistent/plan.toml")).unwrap_err();
        assert_eq!(e.line, Some(4));
        assert_eq!(
            wisp_protocol::error::chain(&e),
            "/nonexistent/plan.toml:4: cannot read content_file /nonexistent/gone: \
             No such file or directory (os error 2)"
        );
    }
}
