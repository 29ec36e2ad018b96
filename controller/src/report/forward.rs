//! A reporter that reports elsewhere: on a worker, every call a job makes on its reporter
//! becomes an [`Event`] handed to a sink (the bus), and the controller replays each event on
//! its own reporter, so output, `--json`, the recap and the journal are the same as a local
//! run's. Fan-out calls (a host's end) are not forwarded: the controller's own fan-out makes
//! them from the host's result.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wisp_protocol::message::{Done, ErrorFrame, EventKind, Ready};

/// One reporter call, as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Event {
    /// [`super::Reporter::line`].
    Line {
        host: String,
        stream: EventKind,
        line: String,
    },
    /// [`super::Reporter::done`].
    Done { host: String, done: Box<Done> },
    /// [`super::Reporter::task`].
    Task {
        host: String,
        task: String,
        status: String,
        detail: String,
    },
    /// [`super::Reporter::diff`].
    Diff { host: String, text: String },
    /// [`super::Reporter::refused`].
    Refused { host: String, error: ErrorFrame },
    /// [`super::Reporter::unreachable`].
    Unreachable { host: String, message: String },
    /// [`super::Reporter::facts_read`].
    FactsRead {
        host: String,
        host_key: String,
        facts: Value,
    },
    /// [`super::Reporter::facts`].
    Facts { host: String, facts: Value },
    /// [`super::Reporter::ping`].
    Ping { host: String, ready: Box<Ready> },
    /// A journal line written by a job itself (task results).
    Journal { line: Value },
}

/// Where a forwarding reporter's events go.
#[derive(Clone)]
pub struct Sink(pub Arc<dyn Fn(Event) + Send + Sync>);

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

impl Event {
    /// The host the event is about, when it names one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Event::Line { host, .. }
            | Event::Done { host, .. }
            | Event::Task { host, .. }
            | Event::Diff { host, .. }
            | Event::Refused { host, .. }
            | Event::Unreachable { host, .. }
            | Event::FactsRead { host, .. }
            | Event::Facts { host, .. }
            | Event::Ping { host, .. } => Some(host),
            Event::Journal { .. } => None,
        }
    }
}

impl super::Reporter {
    /// A reporter that prints nothing and hands every job-level call to `sink`.
    pub fn forwarding(sink: Sink) -> Self {
        let mut reporter = Self::new(false, &[]);
        let journal_sink = sink.clone();
        reporter.journal =
            crate::journal::Journal::forwarding(crate::journal::Forward(Arc::new(move |line| {
                (journal_sink.0)(Event::Journal { line });
            })));
        reporter.progress = None;
        reporter.forward = Some(sink);
        reporter
    }

    /// Hands the call `make` describes to the sink, when forwarding; says whether it did.
    pub(super) fn forwarded(&self, make: impl FnOnce() -> Event) -> bool {
        match &self.forward {
            Some(sink) => {
                (sink.0)(make());
                true
            }
            None => false,
        }
    }

    /// Makes the call a forwarding reporter elsewhere was asked to make.
    pub fn replay(&self, event: Event) {
        match event {
            Event::Line { host, stream, line } => self.line(&host, stream, &line),
            Event::Done { host, done } => self.done(&host, &done),
            Event::Task {
                host,
                task,
                status,
                detail,
            } => self.task(&host, &task, &status, &detail),
            Event::Diff { host, text } => self.diff(&host, &text),
            Event::Refused { host, error } => self.refused(&host, &error),
            Event::Unreachable { host, message } => self.unreachable(&host, &message),
            Event::FactsRead {
                host,
                host_key,
                facts,
            } => self.facts_read(&host, &host_key, &facts),
            Event::Facts { host, facts } => self.facts(&host, &facts),
            Event::Ping { host, ready } => self.ping(&host, &ready),
            Event::Journal { line } => self.journal.record(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn every_job_call_is_forwarded_and_nothing_else() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&seen);
        let reporter = super::super::Reporter::forwarding(Sink(Arc::new(move |e| {
            into.lock().unwrap().push(serde_json::to_value(&e).unwrap());
        })));
        reporter.line("web1", EventKind::Stdout, "hello");
        reporter.task("web1", "config", "changed", "");
        reporter.unreachable("web2", "refused");
        reporter
            .journal()
            .record(serde_json::json!({"kind": "task", "host": "web1"}));
        // A host's end belongs to the fan-out that replays these, not to the forwarder.
        reporter.host_finished(&crate::report::HostResult::new(
            "web1",
            crate::report::HostOutcome::Ok,
            "exit 0",
        ));
        let seen = seen.lock().unwrap();
        let calls: Vec<&str> = seen.iter().map(|v| v["call"].as_str().unwrap()).collect();
        assert_eq!(calls, ["line", "task", "unreachable", "journal"]);
        assert_eq!(seen[3]["line"]["kind"], "task");
        // What travels comes back as the same call.
        let back: Event = serde_json::from_value(seen[0].clone()).unwrap();
        assert!(matches!(back, Event::Line { ref line, .. } if line == "hello"));
    }
}
