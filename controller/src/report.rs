//! What the operator sees.
//!
//! Human mode: command output on stdout, one line at a time, prefixed with the host
//! (`host | ` for stdout, `host ! ` for stderr) and never mixed within a line; problems and
//! the recap on stderr, so stdout stays just the hosts' output.
//!
//! JSON mode (`--json`): JSON lines on stdout, one object per event, each with a `type`:
//! `output` (`host`, `stream`, `line`, `elapsed_ms`), `done`, `refused`, `unreachable`,
//! `facts`, `ping`, and a final `summary`.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wisp_protocol::message::{Done, ErrorFrame, EventKind, Ready, Status};

use crate::exit::ExitStatus;

/// How a host's part of the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOutcome {
    /// Succeeded.
    Ok,
    /// The command failed, timed out or was refused.
    Failed,
    /// The host could not be reached or the runner could not start.
    Unreachable,
    /// Ctrl-C stopped it.
    Interrupted,
}

impl HostOutcome {
    fn label(self) -> &'static str {
        match self {
            HostOutcome::Ok => "ok",
            HostOutcome::Failed => "failed",
            HostOutcome::Unreachable => "unreachable",
            HostOutcome::Interrupted => "interrupted",
        }
    }
}

/// One host's result, for the recap.
#[derive(Debug, Clone)]
pub struct HostResult {
    /// The host.
    pub host: String,
    /// How it ended.
    pub outcome: HostOutcome,
    /// A short description: `exit 0`, `signal SIGKILL`, the error.
    pub detail: String,
    /// Time from start to the end of this host's work.
    pub elapsed: Duration,
}

/// The exit status for a set of results (interrupted > failed > unreachable > ok).
pub fn exit_status(results: &[HostResult], interrupted: bool) -> ExitStatus {
    let any = |o| results.iter().any(|r| r.outcome == o);
    if interrupted || any(HostOutcome::Interrupted) {
        ExitStatus::Interrupted
    } else if any(HostOutcome::Failed) {
        ExitStatus::Failed
    } else if any(HostOutcome::Unreachable) {
        ExitStatus::Unreachable
    } else {
        ExitStatus::Ok
    }
}

/// Writes everything the operator sees; safe to share between host tasks.
#[derive(Debug)]
pub struct Reporter {
    json: bool,
    width: usize,
    started: Instant,
    lock: Mutex<()>,
}

impl Reporter {
    /// A reporter for these hosts (their names set the prefix width).
    pub fn new(json: bool, hosts: &[String]) -> Self {
        let width = hosts.iter().map(String::len).max().unwrap_or(0);
        Self {
            json,
            width,
            started: Instant::now(),
            lock: Mutex::new(()),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    #[allow(clippy::print_stdout)] // reporting is this module's job
    fn out(&self, text: &str) {
        let _guard = self.lock.lock();
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
    }

    fn err(&self, text: &str) {
        let _guard = self.lock.lock();
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    fn json(&self, mut value: Value) {
        if let Some(map) = value.as_object_mut() {
            map.insert("elapsed_ms".into(), json!(self.elapsed_ms()));
        }
        self.out(&value.to_string());
    }

    /// One complete line of a host's output.
    pub fn line(&self, host: &str, stream: EventKind, line: &str) {
        if self.json {
            let stream = if stream == EventKind::Stderr {
                "stderr"
            } else {
                "stdout"
            };
            self.json(json!({"type": "output", "host": host, "stream": stream, "line": line}));
        } else {
            let sep = if stream == EventKind::Stderr {
                '!'
            } else {
                '|'
            };
            self.out(&format!("{host:<w$} {sep} {line}", w = self.width));
        }
    }

    /// A command finished.
    pub fn done(&self, host: &str, done: &Done) {
        if self.json {
            self.json(json!({
                "type": "done", "host": host, "status": done.status, "exit_code": done.exit_code,
                "signal": done.signal, "changed": done.changed, "duration_ms": done.duration_ms,
                "usage": done.usage, "truncated": done.truncated,
            }));
        } else if !done.truncated.is_empty() {
            self.err(&format!(
                "{host}: output cut at the output cap ({:?})",
                done.truncated
            ));
        }
    }

    /// The runner refused a command.
    pub fn refused(&self, host: &str, e: &ErrorFrame) {
        if self.json {
            self.json(json!({"type": "refused", "host": host, "code": e.code, "class": e.class, "message": e.message}));
        } else {
            self.err(&format!("{host}: FAILED: {}", e.message));
        }
    }

    /// The host could not be reached, or the session broke.
    pub fn unreachable(&self, host: &str, message: &str) {
        if self.json {
            self.json(json!({"type": "unreachable", "host": host, "message": message}));
        } else {
            self.err(&format!("{host}: UNREACHABLE: {message}"));
        }
    }

    /// A host's facts.
    pub fn facts(&self, host: &str, facts: &Value) {
        if self.json {
            self.json(json!({"type": "facts", "host": host, "facts": facts}));
            return;
        }
        let text = serde_json::to_string_pretty(facts).unwrap_or_default();
        for line in text.lines() {
            self.line(host, EventKind::Stdout, line);
        }
    }

    /// A runner answered READY.
    pub fn ping(&self, host: &str, ready: &Ready) {
        if self.json {
            self.json(json!({"type": "ping", "host": host, "ready": ready}));
            return;
        }
        let c = &ready.caps;
        let landlock = c
            .landlock
            .abi
            .map_or_else(|| c.landlock.status.clone(), |abi| format!("abi {abi}"));
        self.line(
            host,
            EventKind::Stdout,
            &format!(
                "pong: runner {} on {} (kernel {}), uid {}; landlock {landlock}, seccomp {}, cgroup {}{}",
                ready.runner_version,
                ready.arch,
                ready.kernel,
                ready.uid,
                if c.seccomp.filter { "yes" } else { "no" },
                c.cgroup.mode,
                if c.cgroup.writable { " (writable)" } else { "" },
            ),
        );
    }

    /// The recap after a run: per host on stderr (human), or the summary line (JSON).
    pub fn recap(&self, results: &[HostResult], status: ExitStatus) {
        let count = |o| results.iter().filter(|r| r.outcome == o).count();
        let (ok, failed, unreachable, interrupted) = (
            count(HostOutcome::Ok),
            count(HostOutcome::Failed),
            count(HostOutcome::Unreachable),
            count(HostOutcome::Interrupted),
        );
        if self.json {
            self.json(json!({
                "type": "summary", "hosts": results.len(), "ok": ok, "failed": failed,
                "unreachable": unreachable, "interrupted": interrupted, "exit_code": status as u8,
            }));
            return;
        }
        let mut text = String::from("\nRECAP\n");
        for r in results {
            text.push_str(&format!(
                "{:<w$}  {:<11}  {:<16}  {:.3}s\n",
                r.host,
                r.outcome.label(),
                r.detail,
                r.elapsed.as_secs_f64(),
                w = self.width
            ));
        }
        text.push_str(&format!(
            "{} host{}: {ok} ok, {failed} failed, {unreachable} unreachable{}",
            results.len(),
            if results.len() == 1 { "" } else { "s" },
            if interrupted > 0 {
                format!(", {interrupted} interrupted")
            } else {
                String::new()
            },
        ));
        self.err(&text);
    }
}

/// Short description of how a command ended, for the recap.
pub fn describe(done: &Done) -> String {
    match (done.status, done.exit_code, &done.signal) {
        (Status::Timeout, _, _) => "timed out".into(),
        (Status::Cancelled, _, _) => "cancelled".into(),
        (_, Some(code), _) => format!("exit {code}"),
        (_, None, Some(sig)) => format!("signal {sig}"),
        _ => String::new(),
    }
}

/// Splits a byte stream into lines without ever holding more than a bounded partial line.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

/// A partial line longer than this is emitted as if it ended, so memory stays bounded.
const MAX_LINE: usize = 64 * 1024;

impl LineSplitter {
    /// Adds bytes; returns the lines they complete (without their newline).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let rest = self.pending.split_off(pos + 1);
            self.pending.pop();
            lines.push(String::from_utf8_lossy(&self.pending).into_owned());
            self.pending = rest;
        }
        if self.pending.len() > MAX_LINE {
            lines.push(String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned());
        }
        lines
    }

    /// The unterminated last line, if any.
    pub fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty())
            .then(|| String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_chunks() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"a\nb"), ["a"]);
        assert_eq!(s.push(b"c\n\nd"), ["bc", ""]);
        assert_eq!(s.finish().as_deref(), Some("d"));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn exit_status_precedence() {
        let r = |outcome| HostResult {
            host: "h".into(),
            outcome,
            detail: String::new(),
            elapsed: Duration::ZERO,
        };
        assert_eq!(exit_status(&[r(HostOutcome::Ok)], false), ExitStatus::Ok);
        assert_eq!(
            exit_status(&[r(HostOutcome::Ok), r(HostOutcome::Unreachable)], false),
            ExitStatus::Unreachable
        );
        assert_eq!(
            exit_status(
                &[r(HostOutcome::Failed), r(HostOutcome::Unreachable)],
                false
            ),
            ExitStatus::Failed
        );
        assert_eq!(
            exit_status(&[r(HostOutcome::Ok)], true),
            ExitStatus::Interrupted
        );
    }
}
