//! The JSON-lines renderer (`--json`): one object per event on stdout, each with a `type`:
//! `output` (`host`, `stream`, `line`), `done`, `task`, `diff`, `refused`, `unreachable`,
//! `facts`, `ping`, `warning`, `stopped`, then `fold` (with `--fold`) or `drift`, and a final
//! `summary`; every object carries `elapsed_ms` since the run began. An event this build does
//! not know is printed with its own name as `type` and its fields as they came.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Value, json};
use wisp_protocol::message::EventKind;

use super::Event;
use super::fold::Folder;
use super::{HostOutcome, HostResult};
use wisp_events::exit::ExitStatus;

pub(super) struct JsonLines {
    started: Instant,
    /// Stdout, but for tests.
    out: Mutex<Box<dyn Write + Send>>,
    /// `--fold`: output lines are kept as well, for the `fold` line before the summary.
    fold: Option<Folder>,
    /// `wisp drift`: task results and diffs are the drift report's.
    pub(super) drift: bool,
}

impl std::fmt::Debug for JsonLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLines")
            .field("fold", &self.fold.is_some())
            .field("drift", &self.drift)
            .finish()
    }
}

impl JsonLines {
    pub(super) fn new() -> JsonLines {
        JsonLines::to(Box::new(std::io::stdout()))
    }

    /// Lines written to `out`.
    pub(super) fn to(out: Box<dyn Write + Send>) -> JsonLines {
        JsonLines {
            started: Instant::now(),
            out: Mutex::new(out),
            fold: None,
            drift: false,
        }
    }

    pub(super) fn folding(&mut self) {
        self.fold = Some(Folder::default());
    }

    /// Prints one event.
    pub(super) fn take(&self, event: &Event) {
        match event {
            Event::Output { host, stream, line } => {
                let stderr = *stream == EventKind::Stderr;
                if let Some(fold) = &self.fold {
                    fold.line(host, stderr, line);
                }
                let stream = if stderr { "stderr" } else { "stdout" };
                self.print(json!({"type": "output", "host": host, "stream": stream, "line": line}));
            }
            Event::CommandDone { host, done } => self.print(json!({
                "type": "done", "host": host, "status": done.status, "exit_code": done.exit_code,
                "signal": done.signal, "changed": done.changed, "duration_ms": done.duration_ms,
                "usage": done.usage, "truncated": done.truncated, "enforcement": done.enforcement,
            })),
            Event::Task(t) if !self.drift => self.print(json!({
                "type": "task", "host": t.host, "task": t.task, "status": t.status,
                "detail": t.detail,
            })),
            Event::Diff { host, text } if !self.drift => {
                self.print(json!({"type": "diff", "host": host, "diff": text}));
            }
            Event::Task(_) | Event::Diff { .. } => {}
            Event::Refused { host, error: e } => self.print(json!({
                "type": "refused", "host": host, "code": e.code, "class": e.class,
                "message": e.message, "missing": e.missing,
            })),
            Event::Unreachable { host, message } => {
                self.print(json!({"type": "unreachable", "host": host, "message": message}));
            }
            Event::CouldNotStart { host, message } => {
                self.print(json!({"type": "could_not_start", "host": host, "message": message}));
            }
            Event::Facts { host, facts } => {
                self.print(json!({"type": "facts", "host": host, "facts": facts}));
            }
            Event::Ping { host, ready } => {
                self.print(json!({"type": "ping", "host": host, "ready": ready}));
            }
            Event::Warning { message } => {
                self.print(json!({"type": "warning", "message": message}));
            }
            Event::Stopping { why } => self.print(json!({"type": "stopped", "reason": why})),
            Event::Other(fields) => {
                let mut fields = fields.clone();
                let name = fields.remove("event").unwrap_or(Value::Null);
                fields.insert("type".into(), name);
                self.print(Value::Object(fields));
            }
            // Recorded, not printed.
            Event::RunStarted(_)
            | Event::Audit { .. }
            | Event::Bus { .. }
            | Event::FactsRead { .. }
            | Event::HostEnded { .. }
            | Event::Worker(_)
            | Event::RunEnded { .. } => {}
        }
    }

    /// One line: `value` with the time since the run began.
    pub(super) fn print(&self, mut value: Value) {
        if let Some(map) = value.as_object_mut() {
            let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            map.insert("elapsed_ms".into(), json!(elapsed));
        }
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{value}").and_then(|()| out.flush());
        }
    }

    /// The `fold` line (with `--fold`) and the `summary` line.
    pub(super) fn recap(&self, results: &[HostResult], status: ExitStatus, stopped: Option<&str>) {
        if let Some(fold) = &self.fold {
            self.print(json!({"type": "fold", "groups": fold.groups(results)}));
        }
        let count = |o| results.iter().filter(|r| r.outcome == o).count();
        self.print(json!({
            "type": "summary", "hosts": results.len(), "ok": count(HostOutcome::Ok),
            "failed": count(HostOutcome::Failed), "unreachable": count(HostOutcome::Unreachable),
            "could_not_start": count(HostOutcome::CouldNotStart),
            "interrupted": count(HostOutcome::Interrupted),
            "not_started": count(HostOutcome::NotStarted), "stopped": stopped,
            "exit_code": status as u8,
        }));
    }
}
