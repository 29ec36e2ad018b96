//! What the ops that drive the host's own tools (`pkg.*`, `service.*`) share: running a tool
//! with a clean environment and turning its failure into a message that names the tool, its
//! status and the last lines it printed.
//!
//! These ops run on a thread of their own (a package manager can take minutes); the session
//! gets their outcome back as a [`SystemDone`].

use std::process::{Command, Output, Stdio};

pub(crate) use crate::input::{Failure, Outcome, SystemDone};

/// The serialized result with the change flag, for a thread to hand back.
pub(crate) fn outcome(changed: bool, result: serde_json::Result<serde_json::Value>) -> Outcome {
    result
        .map(|v| (changed, v))
        .map_err(|e| Failure::Failed(format!("cannot encode the result: {e}")))
}

/// Runs a tool with stdin closed, a fixed PATH and the C locale, and collects its output.
/// Only a tool that cannot be started is an error here; its exit status is the caller's.
pub(crate) fn output(cmd: &mut Command) -> Result<Output, Failure> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    )
    .env("LC_ALL", "C")
    .stdin(Stdio::null())
    .output()
    .map_err(|e| Failure::Failed(format!("cannot run {program}: {e}")))
}

/// Runs a tool that must succeed; on failure, says which, with its status and last lines.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, Failure> {
    let out = output(cmd)?;
    if out.status.success() {
        return Ok(out);
    }
    Err(Failure::Failed(failed(cmd, &out)))
}

/// `PROGRAM ARGS failed (STATUS): LAST LINES`.
pub(crate) fn failed(cmd: &Command, out: &Output) -> String {
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!(
        "`{}` failed ({}): {}",
        line.join(" "),
        out.status,
        tail(out)
    )
}

/// The last few lines of what a tool printed, stderr first, on one line.
pub(crate) fn tail(out: &Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let keep = &lines[lines.len().saturating_sub(5)..];
    if keep.is_empty() {
        "no output".into()
    } else {
        keep.join(" / ")
    }
}
