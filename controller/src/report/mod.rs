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
use std::time::Instant;

use serde_json::{Value, json};
use wisp_protocol::message::{Capabilities, Done, ErrorFrame, EventKind, Ready};

pub mod drift;
mod fold;
mod folded;
pub mod forward;
mod lines;
mod outcome;
mod recap;

pub use fold::fold_hosts;
pub use lines::{LineSplitter, capabilities, describe, visible};
pub use outcome::{HostOutcome, HostResult, exit_status};

/// Writes everything the operator sees; safe to share between host tasks.
#[derive(Debug)]
pub struct Reporter {
    json: bool,
    /// Human output to a terminal: host output has its control characters shown, not obeyed.
    terminal: bool,
    width: usize,
    started: Instant,
    lock: Mutex<()>,
    /// Colour per host, when stdout is a terminal and `NO_COLOR` is unset.
    colours: Option<Vec<(String, &'static str)>>,
    /// Hosts done / failed / unreachable, when stderr is a terminal (not with `--json`).
    progress: Option<indicatif::ProgressBar>,
    counts: Mutex<[usize; 3]>,
    /// The run journal (a disabled one unless [`Reporter::with_journal`] set one).
    journal: crate::journal::Journal,
    /// Hides secret values in everything printed.
    redactor: crate::secrets::Redactor,
    /// `wisp drift`: task results and diffs are collected for one folded report, not printed.
    drift: Option<drift::Collector>,
    /// `--fold`: output kept, and printed once per group of hosts at the end.
    fold: Option<folded::Folder>,
    /// On a worker: every job-level call goes here instead (see [`forward`]).
    forward: Option<forward::Sink>,
}

/// The colour of an outcome in the recap.
fn outcome_colour(outcome: &str) -> &'static str {
    match outcome {
        "ok" => GREEN,
        "failed" => RED,
        _ => YELLOW,
    }
}

const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
/// Host prefix colours, assigned in turn.
const HOST_COLOURS: &[&str] = &[
    "\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[96m", "\x1b[95m", "\x1b[94m",
];

impl Reporter {
    /// A reporter for these hosts (their names set the prefix width).
    pub fn new(json: bool, hosts: &[String]) -> Self {
        use std::io::IsTerminal;
        let width = hosts.iter().map(String::len).max().unwrap_or(0);
        let terminal = !json && std::io::stdout().is_terminal();
        let colour = terminal && std::env::var_os("NO_COLOR").is_none();
        let colours = colour.then(|| {
            hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (h.clone(), HOST_COLOURS[i % HOST_COLOURS.len()]))
                .collect()
        });
        let progress = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(hosts.len() as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} hosts  {msg}  {elapsed}",
            ) {
                bar.set_style(style);
            }
            bar.set_message("0 failed, 0 unreachable");
            bar
        });
        Self {
            json,
            terminal,
            width,
            started: Instant::now(),
            lock: Mutex::new(()),
            colours,
            progress,
            counts: Mutex::new([0; 3]),
            journal: crate::journal::Journal::disabled(),
            redactor: crate::secrets::Redactor::default(),
            drift: None,
            fold: None,
            forward: None,
        }
    }

    /// Keeps each host's output, to print it once per group of identical hosts at the end
    /// (with `--json`, output lines still stream, and a `fold` line comes before the summary).
    pub fn folding(mut self) -> Self {
        self.fold = Some(folded::Folder::default());
        self
    }

    /// Hides these secrets' values in everything printed and journalled.
    pub fn with_secrets(mut self, secrets: &crate::secrets::SecretValues) -> Self {
        self.redactor = crate::secrets::Redactor::new(secrets);
        self.journal.set_redactor(self.redactor.clone());
        self
    }

    /// Collects task results for a drift report instead of printing them.
    pub fn for_drift(mut self) -> Self {
        self.drift = Some(drift::Collector::default());
        self
    }

    /// A redactor for one output stream of one command, hiding this run's secrets.
    pub fn stream_redactor(&self) -> crate::secrets::StreamRedactor {
        self.redactor.stream()
    }

    /// Records what this reporter is told in `journal` as well.
    pub fn with_journal(mut self, journal: crate::journal::Journal) -> Self {
        self.journal = journal;
        self
    }

    /// A host's end, as a journal line (again, when a run timeout changed it afterwards).
    pub fn journal_host(&self, r: &HostResult) {
        if self.forward.is_some() {
            return;
        }
        self.journal.record(json!({
            "kind": "host", "host": r.host, "outcome": r.outcome.label(), "detail": r.detail,
            "elapsed_ms": u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
            "sandbox": r.sandbox,
        }));
    }

    /// The run journal.
    pub fn journal(&self) -> &crate::journal::Journal {
        &self.journal
    }

    fn paint(&self, colour: &str, text: &str) -> String {
        if self.colours.is_some() && !colour.is_empty() {
            format!("{colour}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    fn host_colour(&self, host: &str) -> &'static str {
        self.colours
            .as_ref()
            .and_then(|c| c.iter().find(|(h, _)| h == host))
            .map_or("", |(_, c)| c)
    }

    /// Records a finished host in the journal (so a run killed later still has it) and
    /// counts it on the progress bar.
    pub fn host_finished(&self, result: &HostResult) {
        if self.forward.is_some() {
            return;
        }
        self.journal_host(result);
        let outcome = result.outcome;
        let Some(bar) = &self.progress else { return };
        if let Ok(mut c) = self.counts.lock() {
            match outcome {
                HostOutcome::Failed => c[1] += 1,
                HostOutcome::Unreachable => c[2] += 1,
                _ => c[0] += 1,
            }
            bar.set_message(format!("{} failed, {} unreachable", c[1], c[2]));
        }
        bar.inc(1);
    }

    /// Writes with the progress bar (if any) out of the way.
    fn around_bar(&self, write: impl FnOnce()) {
        let _guard = self.lock.lock();
        match &self.progress {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    #[allow(clippy::print_stdout)] // reporting is this module's job
    fn out(&self, text: &str) {
        let text = self.redactor.redact(text);
        self.around_bar(|| {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
        });
    }

    fn err(&self, text: &str) {
        let text = self.redactor.redact(text);
        self.around_bar(|| {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        });
    }

    fn json(&self, mut value: Value) {
        if let Some(map) = value.as_object_mut() {
            map.insert("elapsed_ms".into(), json!(self.elapsed_ms()));
        }
        self.out(&value.to_string());
    }

    /// One complete line of a host's output.
    pub fn line(&self, host: &str, stream: EventKind, line: &str) {
        if self.forwarded(|| forward::Event::Line {
            host: host.to_owned(),
            stream,
            line: line.to_owned(),
        }) {
            return;
        }
        self.emit_line(host, stream, &lines::visible_on(self.terminal, line));
    }

    /// One line of output, made safe for the terminal already.
    fn emit_line(&self, host: &str, stream: EventKind, line: &str) {
        if let Some(fold) = &self.fold {
            fold.line(host, stream == EventKind::Stderr, line);
            if !self.json {
                return;
            }
        }
        if self.json {
            let stream = if stream == EventKind::Stderr {
                "stderr"
            } else {
                "stdout"
            };
            self.json(json!({"type": "output", "host": host, "stream": stream, "line": line}));
        } else {
            let sep = if stream == EventKind::Stderr {
                self.paint(RED, "!")
            } else {
                "|".to_owned()
            };
            let prefix = self.paint(
                self.host_colour(host),
                &format!("{host:<w$}", w = self.width),
            );
            self.out(&format!("{prefix} {sep} {line}"));
        }
    }

    /// A command finished.
    pub fn done(&self, host: &str, done: &Done) {
        if self.forwarded(|| forward::Event::Done {
            host: host.to_owned(),
            done: Box::new(done.clone()),
        }) {
            return;
        }
        self.journal.record(json!({
            "kind": "command", "host": host, "status": done.status, "exit_code": done.exit_code,
            "signal": done.signal, "changed": done.changed, "duration_ms": done.duration_ms,
            "enforcement": done.enforcement,
        }));
        if self.json {
            self.json(json!({
                "type": "done", "host": host, "status": done.status, "exit_code": done.exit_code,
                "signal": done.signal, "changed": done.changed, "duration_ms": done.duration_ms,
                "usage": done.usage, "truncated": done.truncated, "enforcement": done.enforcement,
            }));
        } else if !done.truncated.is_empty() {
            self.err(&format!(
                "{host}: output cut at the output cap ({:?})",
                done.truncated
            ));
        }
    }

    /// A plan task finished on a host.
    pub fn task(&self, host: &str, task: &str, status: &str, detail: &str) {
        if self.forwarded(|| forward::Event::Task {
            host: host.to_owned(),
            task: task.to_owned(),
            status: status.to_owned(),
            detail: detail.to_owned(),
        }) {
            return;
        }
        if let Some(d) = &self.drift {
            d.task(host, task, status, &self.redactor.redact(detail));
            return;
        }
        if self.json {
            self.json(json!({"type": "task", "host": host, "task": task, "status": status, "detail": detail}));
            return;
        }
        let colour = match status {
            "changed" => YELLOW,
            "failed" => RED,
            "ok" => GREEN,
            _ => "",
        };
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", visible(detail))
        };
        // The status is painted here; the task's name and detail come from the plan and the
        // host, and are shown escaped.
        let text = format!(
            "{} {}{detail}",
            self.paint(colour, &format!("{status:<8}")),
            visible(task)
        );
        self.emit_line(host, EventKind::Stdout, &text);
    }

    /// A unified diff of what a task changes.
    pub fn diff(&self, host: &str, text: &str) {
        if self.forwarded(|| forward::Event::Diff {
            host: host.to_owned(),
            text: text.to_owned(),
        }) {
            return;
        }
        if let Some(d) = &self.drift {
            d.diff(host, &self.redactor.redact(text));
            return;
        }
        if self.json {
            self.json(json!({"type": "diff", "host": host, "diff": text}));
            return;
        }
        for line in text.lines() {
            self.line(host, EventKind::Stdout, line);
        }
    }

    /// The runner refused a command.
    pub fn refused(&self, host: &str, e: &ErrorFrame) {
        if self.forwarded(|| forward::Event::Refused {
            host: host.to_owned(),
            error: e.clone(),
        }) {
            return;
        }
        if self.json {
            self.json(json!({"type": "refused", "host": host, "code": e.code, "class": e.class, "message": e.message, "missing": e.missing}));
        } else if !e.missing.is_empty() {
            let mut text = format!(
                "{host}: FAILED: the command did not run: the sandbox (require mode) cannot apply:"
            );
            for gap in &e.missing {
                text.push_str(&format!("\n{host}:   - {}", visible(gap)));
            }
            text.push_str(&format!(
                "\n{host}:   fix the host, drop those limits, or pass --sandbox best-effort"
            ));
            self.err(&text);
        } else {
            self.err(&format!("{host}: FAILED: {}", visible(&e.message)));
        }
    }

    /// The host could not be reached, or the session broke.
    pub fn unreachable(&self, host: &str, message: &str) {
        if self.forwarded(|| forward::Event::Unreachable {
            host: host.to_owned(),
            message: message.to_owned(),
        }) {
            return;
        }
        if self.json {
            self.json(json!({"type": "unreachable", "host": host, "message": message}));
        } else {
            self.err(&format!("{host}: UNREACHABLE: {}", visible(message)));
        }
    }

    /// Facts just read from a host, into the journal (and so the store's facts cache).
    pub fn facts_read(&self, host: &str, host_key: &str, facts: &Value) {
        if self.forwarded(|| forward::Event::FactsRead {
            host: host.to_owned(),
            host_key: host_key.to_owned(),
            facts: facts.clone(),
        }) {
            return;
        }
        self.journal.record(json!({
            "kind": "facts", "host": host, "host_key": host_key, "facts": facts,
        }));
    }

    /// A host's facts.
    pub fn facts(&self, host: &str, facts: &Value) {
        if self.forwarded(|| forward::Event::Facts {
            host: host.to_owned(),
            facts: facts.clone(),
        }) {
            return;
        }
        if self.json {
            self.json(json!({"type": "facts", "host": host, "facts": facts}));
            return;
        }
        if let Some(caps) = facts
            .get("caps")
            .and_then(|c| serde_json::from_value::<Capabilities>(c.clone()).ok())
        {
            self.line(
                host,
                EventKind::Stdout,
                &format!("sandbox: {}", capabilities(&caps)),
            );
        }
        let text = serde_json::to_string_pretty(facts).unwrap_or_default();
        for line in text.lines() {
            self.line(host, EventKind::Stdout, line);
        }
    }

    /// A runner answered READY.
    pub fn ping(&self, host: &str, ready: &Ready) {
        if self.forwarded(|| forward::Event::Ping {
            host: host.to_owned(),
            ready: Box::new(ready.clone()),
        }) {
            return;
        }
        if self.json {
            self.json(json!({"type": "ping", "host": host, "ready": ready}));
            return;
        }
        self.line(
            host,
            EventKind::Stdout,
            &format!(
                "pong: runner {} on {} (kernel {}), uid {}; {}",
                ready.runner_version,
                ready.arch,
                ready.kernel,
                ready.uid,
                capabilities(&ready.caps),
            ),
        );
    }

    /// Something the operator should know that is neither a host's output nor its result
    /// (a refused bus message, say); its text may hold what a peer chose, shown escaped.
    pub fn warn(&self, text: &str) {
        if self.json {
            self.json(json!({"type": "warning", "message": text}));
        } else {
            self.err(&format!("wisp: {}", visible(text)));
        }
    }

    /// The run starts no more hosts, and why (said as it happens; the recap says it again).
    pub fn stopping(&self, why: &str) {
        if self.json {
            self.json(json!({"type": "stopped", "reason": why}));
        } else {
            self.err(&format!("wisp: stopping: {why}; no further host starts"));
        }
    }
}
