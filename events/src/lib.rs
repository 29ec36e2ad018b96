//! The one stream a run's output travels on. Jobs (local, or on a worker) and the fan-out
//! produce [`Event`]s; the [`super::Reporter`] hides secrets in each once and hands it to
//! every consumer: the terminal or JSON-lines renderer (with `--fold`'s grouping), the drift
//! collector, the journal (and through it the store), and on a worker the bus forwarder.
//! No producer formats text or JSON, and no consumer knows which job produced an event.
//!
//! Every consumer matches [`Event`] whole, with no catch-all arm, so a new kind of event
//! makes the compiler name each consumer that must decide what to do with it. An event this
//! build does not know (from a newer worker on the bus) arrives as [`Event::Other`]: the
//! journal records it, the JSON renderer prints it and the forwarder passes it on, as it is.

pub mod exit;
pub mod interrupt;
mod lines;
mod outcome;

pub use lines::{LineSplitter, capabilities, describe, visible, visible_on};
pub use outcome::{HostOutcome, HostResult, exit_status};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wisp_protocol::message::{Done, ErrorFrame, EventKind, Ready};

use wisp_store::record::{HostLine, RunStart, TaskLine, WorkerLine};

/// Something that happened in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run began: what, where, by whom (the journal's first line).
    RunStarted(Box<RunStart>),
    /// A privileged act of the run (secrets opened, a runner pushed, root).
    Audit { act: String, detail: String },
    /// The run goes through a NATS bus.
    Bus { nats: String, bus_run: String },
    /// One complete line of a host's output.
    Output {
        host: String,
        stream: EventKind,
        line: String,
    },
    /// A command finished on a host.
    CommandDone { host: String, done: Box<Done> },
    /// A plan task finished (or was skipped) on a host.
    Task(Box<TaskLine>),
    /// A unified diff of what a host's next task changes.
    Diff { host: String, text: String },
    /// The runner refused a command.
    Refused { host: String, error: ErrorFrame },
    /// The host could not be reached, or its session broke.
    Unreachable { host: String, message: String },
    /// The host was reached and logged in to, but the runner could not start there (becoming
    /// root refused, no place that can execute it, a shell that cannot run the bootstrap).
    CouldNotStart { host: String, message: String },
    /// Facts were read from a host (recorded for the facts cache; not shown).
    FactsRead {
        host: String,
        host_key: String,
        facts: Value,
    },
    /// A host's facts, to show (`wisp facts`).
    Facts { host: String, facts: Value },
    /// A runner answered READY (`wisp ping`).
    Ping { host: String, ready: Box<Ready> },
    /// A host's part of the run ended (`again`: a later correction, a run timeout turning
    /// interrupted into failed).
    HostEnded { end: HostLine, again: bool },
    /// A worker on the bus claimed, finished or lost a host's item, or an event was refused.
    Worker(WorkerLine),
    /// Something the operator should know that is neither a host's output nor its result.
    Warning { message: String },
    /// The run starts no more hosts, and why.
    Stopping { why: String },
    /// The run ended with this exit status.
    RunEnded { exit: u8, elapsed_ms: u64 },
    /// An event this build does not know, as it came (its `event` field names it).
    #[serde(untagged)]
    Other(Map<String, Value>),
}

impl Event {
    /// One line of a host's output.
    pub fn output(host: &str, stream: EventKind, line: &str) -> Event {
        Event::Output {
            host: host.to_owned(),
            stream,
            line: line.to_owned(),
        }
    }

    /// The host could not be reached.
    pub fn unreachable(host: &str, message: &str) -> Event {
        Event::Unreachable {
            host: host.to_owned(),
            message: message.to_owned(),
        }
    }

    /// The runner refused a command on `host`.
    pub fn refused(host: &str, error: &ErrorFrame) -> Event {
        Event::Refused {
            host: host.to_owned(),
            error: error.clone(),
        }
    }

    /// How `result`'s host ended (`again`: a correction of an end already told).
    pub fn host_ended(result: &HostResult, again: bool) -> Event {
        Event::HostEnded {
            end: HostLine {
                host: result.host.clone(),
                outcome: result.outcome.label().to_owned(),
                detail: result.detail.clone(),
                elapsed_ms: u64::try_from(result.elapsed.as_millis()).unwrap_or(u64::MAX),
                sandbox: result.sandbox.clone(),
            },
            again,
        }
    }

    /// The name it travels and is recorded under.
    pub fn name(&self) -> &str {
        match self {
            Event::RunStarted(_) => "run_started",
            Event::Audit { .. } => "audit",
            Event::Bus { .. } => "bus",
            Event::Output { .. } => "output",
            Event::CommandDone { .. } => "command_done",
            Event::Task(_) => "task",
            Event::Diff { .. } => "diff",
            Event::Refused { .. } => "refused",
            Event::Unreachable { .. } => "unreachable",
            Event::CouldNotStart { .. } => "could_not_start",
            Event::FactsRead { .. } => "facts_read",
            Event::Facts { .. } => "facts",
            Event::Ping { .. } => "ping",
            Event::HostEnded { .. } => "host_ended",
            Event::Worker(_) => "worker",
            Event::Warning { .. } => "warning",
            Event::Stopping { .. } => "stopping",
            Event::RunEnded { .. } => "run_ended",
            Event::Other(map) => map.get("event").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// The host it is about, when it is about one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Event::Output { host, .. }
            | Event::CommandDone { host, .. }
            | Event::Diff { host, .. }
            | Event::Refused { host, .. }
            | Event::Unreachable { host, .. }
            | Event::CouldNotStart { host, .. }
            | Event::FactsRead { host, .. }
            | Event::Facts { host, .. }
            | Event::Ping { host, .. } => Some(host),
            Event::Task(t) => Some(&t.host),
            Event::HostEnded { end, .. } => Some(&end.host),
            Event::Worker(w) => Some(&w.host),
            Event::Other(map) => map.get("host").and_then(Value::as_str),
            Event::RunStarted(_)
            | Event::Audit { .. }
            | Event::Bus { .. }
            | Event::Warning { .. }
            | Event::Stopping { .. }
            | Event::RunEnded { .. } => None,
        }
    }

    /// Whether a job produces it on a host's behalf (what a worker may send about the host
    /// it claimed); the rest belong to the run and are made by the controller alone.
    pub fn is_job_event(&self) -> bool {
        match self {
            Event::Output { .. }
            | Event::CommandDone { .. }
            | Event::Task(_)
            | Event::Diff { .. }
            | Event::Refused { .. }
            | Event::Unreachable { .. }
            | Event::CouldNotStart { .. }
            | Event::FactsRead { .. }
            | Event::Facts { .. }
            | Event::Ping { .. }
            | Event::Other(_) => true,
            Event::RunStarted(_)
            | Event::Audit { .. }
            | Event::Bus { .. }
            | Event::HostEnded { .. }
            | Event::Worker(_)
            | Event::Warning { .. }
            | Event::Stopping { .. }
            | Event::RunEnded { .. } => false,
        }
    }

    /// The event with every secret `redactor` knows hidden in each of its texts.
    pub fn redacted(self, redactor: &wisp_secrets::Redactor) -> Event {
        if redactor.is_empty() {
            return self;
        }
        match self {
            // The most frequent event, by far: no round trip through JSON.
            Event::Output { host, stream, line } => Event::Output {
                host: redactor.redact(&host).into_owned(),
                stream,
                line: redactor.redact(&line).into_owned(),
            },
            other => {
                let Ok(mut value) = serde_json::to_value(&other) else {
                    return other;
                };
                redactor.redact_json(&mut value);
                serde_json::from_value(value).unwrap_or(other)
            }
        }
    }
}

/// Whatever takes a run's events: the controller's reporter, through which each one reaches
/// every consumer.
pub trait Emit: Send + Sync {
    /// Takes one event.
    fn emit(&self, event: Event);
}

/// Where a job's events go when its reporter forwards them (on a worker: the bus).
#[derive(Clone)]
pub struct Sink(pub std::sync::Arc<dyn Fn(Event) + Send + Sync>);

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

impl Sink {
    /// Passes on a job's event, whatever it is; the run's own events stay where they are.
    pub fn pass(&self, event: Event) {
        if event.is_job_event() {
            (self.0)(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_travel_as_json_and_come_back_the_same() {
        let events = [
            Event::output("web1", EventKind::Stderr, "oops"),
            Event::unreachable("web2", "refused"),
            Event::Warning {
                message: "m".into(),
            },
            Event::RunEnded {
                exit: 2,
                elapsed_ms: 5,
            },
        ];
        for e in events {
            let text = serde_json::to_string(&e).unwrap();
            let back: Event = serde_json::from_str(&text).unwrap();
            assert_eq!(back, e, "{text}");
        }
    }

    #[test]
    fn an_event_from_a_newer_build_is_kept_whole() {
        let text = r#"{"event":"package_held","host":"web1","package":"nginx"}"#;
        let e: Event = serde_json::from_str(text).unwrap();
        assert!(matches!(e, Event::Other(_)));
        assert_eq!(e.name(), "package_held");
        assert_eq!(e.host(), Some("web1"));
        assert!(e.is_job_event());
        assert_eq!(serde_json::to_string(&e).unwrap(), text);
    }

    #[test]
    fn secrets_are_hidden_in_every_text_of_an_event() {
        let secrets = wisp_secrets::SecretValues::from(std::collections::BTreeMap::from([(
            "pw".to_owned(),
            "hunter2-event".to_owned(),
        )]));
        let redactor = wisp_secrets::Redactor::new(&secrets);
        let e = Event::Diff {
            host: "web1".into(),
            text: "+password = hunter2-event\n".into(),
        }
        .redacted(&redactor);
        assert_eq!(
            e,
            Event::Diff {
                host: "web1".into(),
                text: "+password = [secret:pw]\n".into()
            }
        );
        let line = Event::output("web1", EventKind::Stdout, "x hunter2-event").redacted(&redactor);
        assert_eq!(
            line,
            Event::output("web1", EventKind::Stdout, "x [secret:pw]")
        );
    }
}
