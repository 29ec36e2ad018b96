//! The human renderer: host output on stdout, one line at a time, prefixed with the host
//! (`host | ` for stdout, `host ! ` for stderr) and never mixed within a line; problems, the
//! progress bar and the recap on stderr, so stdout stays just the hosts' output. With
//! `--fold`, each host's lines are kept and printed once per group of alike hosts at the end.

use std::io::Write;
use std::sync::Mutex;

use wisp_protocol::message::{Capabilities, EventKind};

use super::Event;
use super::fold::{self, Folder};
use super::{HostOutcome, HostResult};
use wisp_events::{capabilities, visible, visible_on};

const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
/// Host prefix colours, assigned in turn.
const HOST_COLOURS: &[&str] = &[
    "\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[96m", "\x1b[95m", "\x1b[94m",
];

/// The colour of an outcome in the recap.
fn outcome_colour(outcome: &str) -> &'static str {
    match outcome {
        "ok" => GREEN,
        "failed" => RED,
        _ => YELLOW,
    }
}

#[derive(Debug)]
pub(super) struct Terminal {
    /// Stdout is a terminal: host output has its control characters shown, not obeyed.
    tty: bool,
    width: usize,
    lock: Mutex<()>,
    /// Colour per host, when stdout is a terminal and `NO_COLOR` is unset.
    colours: Option<Vec<(String, &'static str)>>,
    /// Hosts done / failed / unreachable, when stderr is a terminal.
    progress: Option<indicatif::ProgressBar>,
    counts: Mutex<[usize; 3]>,
    /// `--fold`: lines kept for the end instead of printed.
    fold: Option<Folder>,
    /// `wisp drift`: task results and diffs are the drift report's, not printed one by one.
    pub(super) drift: bool,
}

impl Terminal {
    pub(super) fn new(hosts: &[String]) -> Terminal {
        use std::io::IsTerminal;
        let tty = std::io::stdout().is_terminal();
        let colour = tty && std::env::var_os("NO_COLOR").is_none();
        let colours = colour.then(|| {
            hosts
                .iter()
                .enumerate()
                .map(|(i, h)| (h.clone(), HOST_COLOURS[i % HOST_COLOURS.len()]))
                .collect()
        });
        let progress = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(hosts.len() as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} hosts  {msg}  {elapsed}",
            ) {
                bar.set_style(style);
            }
            bar.set_message("0 failed, 0 unreachable");
            bar
        });
        Terminal {
            tty,
            width: hosts.iter().map(String::len).max().unwrap_or(0),
            lock: Mutex::new(()),
            colours,
            progress,
            counts: Mutex::new([0; 3]),
            fold: None,
            drift: false,
        }
    }

    pub(super) fn folding(&mut self) {
        self.fold = Some(Folder::default());
    }

    /// A task's line: its status painted; its name, loop item and detail (from the plan and
    /// the host) escaped.
    fn task_line(&self, t: &wisp_store::record::TaskLine) -> String {
        let colour = match t.status.as_str() {
            "changed" => YELLOW,
            "failed" => RED,
            "ok" => GREEN,
            _ => "",
        };
        let detail = if t.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", visible(&t.detail))
        };
        let item = t
            .item
            .as_deref()
            .map(|i| format!(" (item={})", visible(i)))
            .unwrap_or_default();
        format!(
            "{} {}{item}{detail}",
            self.paint(colour, &format!("{:<8}", t.status)),
            visible(&t.task)
        )
    }

    /// Shows one event.
    pub(super) fn take(&self, event: &Event) {
        match event {
            Event::Output { host, stream, line } => {
                self.line(host, *stream, &visible_on(self.tty, line));
            }
            Event::CommandDone { host, done } => {
                if !done.truncated.is_empty() {
                    self.err(&format!(
                        "{host}: output cut at the output cap ({:?})",
                        done.truncated
                    ));
                }
            }
            Event::Task(t) if !self.drift => {
                let text = self.task_line(t);
                self.line(&t.host, EventKind::Stdout, &text);
            }
            Event::Diff { host, text } if !self.drift => {
                for line in text.lines() {
                    self.line(host, EventKind::Stdout, &visible_on(self.tty, line));
                }
            }
            Event::Task(_) | Event::Diff { .. } => {}
            Event::Refused { host, error: e } => {
                if e.missing.is_empty() {
                    self.err(&format!("{host}: FAILED: {}", visible(&e.message)));
                    return;
                }
                let mut text = format!(
                    "{host}: FAILED: the command did not run: the sandbox (require mode) cannot \
                     apply:"
                );
                for gap in &e.missing {
                    text.push_str(&format!("\n{host}:   - {}", visible(gap)));
                }
                text.push_str(&format!(
                    "\n{host}:   fix the host, drop those limits, or pass --sandbox best-effort"
                ));
                self.err(&text);
            }
            Event::Unreachable { host, message } => {
                self.err(&format!("{host}: UNREACHABLE: {}", visible(message)));
            }
            Event::CouldNotStart { host, message } => {
                self.err(&format!("{host}: COULD NOT START: {}", visible(message)));
            }
            Event::Facts { host, facts } => {
                if let Some(caps) = facts
                    .get("caps")
                    .and_then(|c| serde_json::from_value::<Capabilities>(c.clone()).ok())
                {
                    let text = format!("sandbox: {}", capabilities(&caps));
                    self.line(host, EventKind::Stdout, &visible_on(self.tty, &text));
                }
                let text = serde_json::to_string_pretty(facts).unwrap_or_default();
                for line in text.lines() {
                    self.line(host, EventKind::Stdout, &visible_on(self.tty, line));
                }
            }
            Event::Ping { host, ready } => {
                let text = format!(
                    "pong: runner {} on {} (kernel {}), uid {}; {}",
                    ready.runner_version,
                    ready.arch,
                    ready.kernel,
                    ready.uid,
                    capabilities(&ready.caps),
                );
                self.line(host, EventKind::Stdout, &visible_on(self.tty, &text));
            }
            Event::HostEnded { end, again: false } => self.count(&end.outcome),
            Event::Warning { message } => self.err(&format!("wisp: {}", visible(message))),
            Event::Stopping { why } => {
                self.err(&format!("wisp: stopping: {why}; no further host starts"));
            }
            // Recorded, not shown; an event this build does not know is shown by --json.
            Event::RunStarted(_)
            | Event::Audit { .. }
            | Event::Bus { .. }
            | Event::FactsRead { .. }
            | Event::HostEnded { .. }
            | Event::Worker(_)
            | Event::RunEnded { .. }
            | Event::Other(_) => {}
        }
    }

    /// One line of a host's output, made safe for the terminal already.
    fn line(&self, host: &str, stream: EventKind, line: &str) {
        let stderr = stream == EventKind::Stderr;
        if let Some(fold) = &self.fold {
            fold.line(host, stderr, line);
            return;
        }
        let sep = if stderr {
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

    /// Counts a finished host on the progress bar.
    fn count(&self, outcome: &str) {
        let Some(bar) = &self.progress else { return };
        if let Ok(mut c) = self.counts.lock() {
            match outcome {
                "failed" => c[1] += 1,
                "unreachable" => c[2] += 1,
                _ => c[0] += 1,
            }
            bar.set_message(format!("{} failed, {} unreachable", c[1], c[2]));
        }
        bar.inc(1);
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

    /// Writes with the progress bar (if any) out of the way.
    fn around_bar(&self, write: impl FnOnce()) {
        let _guard = self.lock.lock();
        match &self.progress {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    #[allow(clippy::print_stdout)] // rendering is this module's job
    fn out(&self, text: &str) {
        self.around_bar(|| {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
        });
    }

    fn err(&self, text: &str) {
        self.around_bar(|| {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        });
    }

    /// Prints `text` on stdout as it is (a report that escaped what hosts put in it).
    pub(super) fn print(&self, text: &str) {
        self.finish_bar();
        let _guard = self.lock.lock();
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }

    fn finish_bar(&self) {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
    }

    /// The recap: the folded groups' output (with `--fold`), then a row per host or group.
    pub(super) fn recap(&self, results: &[HostResult], stopped: Option<&str>) {
        self.finish_bar();
        let groups = self.fold.as_ref().map(|f| f.groups(results));
        if let Some(groups) = &groups {
            let text: String = groups.iter().map(fold::Group::text).collect();
            self.out(text.trim_end_matches('\n'));
        }
        let mut text = String::from("\nRECAP\n");
        for r in results.iter().filter(|_| groups.is_none()) {
            let colour = outcome_colour(r.outcome.label());
            text.push_str(&format!(
                "{:<w$}  {}  {:<16}  {:.3}s\n",
                r.host,
                self.paint(colour, &format!("{:<11}", r.outcome.label())),
                visible(&r.detail),
                r.elapsed.as_secs_f64(),
                w = self.width
            ));
            if let Some(sandbox) = &r.sandbox {
                let sandbox = visible(sandbox);
                text.push_str(&format!("{:<w$}  {sandbox}\n", "", w = self.width));
            }
        }
        for (hosts, outcome, detail) in groups.as_deref().map(fold::recap_rows).unwrap_or_default()
        {
            text.push_str(&format!(
                "{hosts:<w$}  {}  {}\n",
                self.paint(outcome_colour(outcome), &format!("{outcome:<11}")),
                visible(detail),
                w = self.width
            ));
        }
        text.push_str(&totals(results, stopped));
        self.err(&text);
    }
}

/// The recap's last line: how many hosts ended how, and why the run stopped early.
fn totals(results: &[HostResult], stopped: Option<&str>) -> String {
    let count = |o| results.iter().filter(|r| r.outcome == o).count();
    let extra = |n: usize, what: &str| {
        if n > 0 {
            format!(", {n} {what}")
        } else {
            String::new()
        }
    };
    let not_started = count(HostOutcome::NotStarted);
    let mut text = format!(
        "{} host{}: {} ok, {} failed, {} unreachable{}{}{}",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        count(HostOutcome::Ok),
        count(HostOutcome::Failed),
        count(HostOutcome::Unreachable),
        extra(count(HostOutcome::CouldNotStart), "could not start"),
        extra(count(HostOutcome::Interrupted), "interrupted"),
        extra(not_started, "not started"),
    );
    if let Some(why) = stopped {
        text.push_str(&format!(
            "\nstopped: {why}; {not_started} hosts not started"
        ));
    }
    text
}
