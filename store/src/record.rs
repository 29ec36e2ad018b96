//! The journal's lines, typed: one [`Record`] variant per `kind`, with the field names the
//! journal files and the store's event log have always held. Every writer builds a
//! [`Record`] and every reader (`wisp show`, `wisp history`, `wisp retry`, the store's tables)
//! decodes one; a line of a kind this wisp does not know is kept as it is
//! ([`Record::Other`]) and still read back and shown.
//!
//! A line is serialised through [`serde_json::Value`], whose keys are sorted: a line written
//! from a record has the same bytes as the same line written before records were typed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One journal line: the time it was written and what it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// When it was written (RFC 3339, UTC); set by the journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// What it says.
    #[serde(flatten)]
    pub record: Record,
}

/// What a journal line says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A run's first line.
    Run(RunStart),
    /// Something done on the operator's authority (secrets opened, a runner pushed, root).
    Audit { act: String, detail: String },
    /// The run went through a NATS bus.
    Bus { nats: String, bus_run: String },
    /// One task of a plan on one host, or `wisp run`'s command.
    Task(TaskLine),
    /// A command finished (`wisp run`).
    Command(CommandLine),
    /// How a host ended.
    Host(HostLine),
    /// Facts read from a host (the store caches them by host key).
    Facts {
        host: String,
        host_key: String,
        facts: Value,
    },
    /// What a worker on the bus did with a host's item.
    Worker(WorkerLine),
    /// The run's end.
    End { exit: u8, elapsed_ms: u64 },
    /// A kind this wisp does not know, kept as it was written.
    #[serde(untagged)]
    Other(serde_json::Map<String, Value>),
}

/// A run's first line: what ran, where, by whom, how. A field an older wisp did not write
/// reads as empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunStart {
    /// The wisp version.
    pub wisp: String,
    /// `run`, `apply`, `drift`, `facts` or `ping`.
    pub command: String,
    /// The targets as given.
    pub targets: String,
    /// Every host they named.
    pub hosts: Vec<String>,
    pub user: Option<String>,
    pub machine: Option<String>,
    /// `--become` (or `--ask-become-pass`).
    pub r#become: bool,
    /// With a sudo password.
    pub become_pass: bool,
    pub forks: usize,
    /// The inventory file, absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<String>,
    /// The run this one retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<i64>,
    /// `wisp run`: the program (its arguments are never recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// A plan's run: the plan, its file and hash, and the modes.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanRun>,
}

/// The plan of an `apply` or `drift` run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanRun {
    /// As given on the command line.
    pub plan: String,
    /// Absolute, for `wisp retry`.
    pub plan_file: String,
    pub plan_hash: String,
    pub check: bool,
    pub diff: bool,
}

/// One task on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLine {
    pub host: String,
    pub task: String,
    /// The loop item it ran for (its label), when the task loops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    pub op: String,
    /// Its line in the plan.
    pub line: usize,
    pub status: String,
    pub detail: String,
    #[serde(flatten)]
    pub how: TaskHow,
}

/// How a task came to its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TaskHow {
    /// It ran (or was skipped) in this run.
    Ran {
        check: bool,
        duration_ms: Option<u64>,
        enforcement: Option<Value>,
    },
    /// A resumed host did not run it again: it was done in an earlier run.
    Carried {
        changed: bool,
        done_in: i64,
        done_changed: bool,
    },
}

/// A finished command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandLine {
    pub host: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub changed: bool,
    pub duration_ms: u64,
    pub enforcement: Option<Value>,
}

/// A host's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostLine {
    pub host: String,
    /// `ok`, `failed`, `unreachable`, `interrupted` or `not started`.
    pub outcome: String,
    pub detail: String,
    pub elapsed_ms: u64,
    /// What the sandbox could not apply, when it fell short.
    pub sandbox: Option<String>,
}

/// A worker's part in a host's item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerLine {
    pub host: String,
    /// The bus item.
    pub item: String,
    #[serde(flatten)]
    pub event: WorkerEvent,
}

/// What happened to the item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// A worker took it (`took_over`: from this lost worker).
    Claimed {
        worker: String,
        at_ms: u64,
        took_over: Option<String>,
    },
    /// The worker finished it.
    Finished {
        worker: String,
        at_ms: u64,
        outcome: String,
    },
    /// The worker went away with it (`by`: how that was seen).
    Lost { worker: String, by: String },
    /// An event about it was refused (not from its claimant, out of order, ...).
    RefusedEvent { why: String },
}

impl Record {
    /// The `kind` it is written with.
    pub fn kind(&self) -> &str {
        match self {
            Record::Run(_) => "run",
            Record::Audit { .. } => "audit",
            Record::Bus { .. } => "bus",
            Record::Task(_) => "task",
            Record::Command(_) => "command",
            Record::Host(_) => "host",
            Record::Facts { .. } => "facts",
            Record::Worker(_) => "worker",
            Record::End { .. } => "end",
            Record::Other(map) => map.get("kind").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// The host it is about, when it is about one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Record::Task(t) => Some(&t.host),
            Record::Command(c) => Some(&c.host),
            Record::Host(h) => Some(&h.host),
            Record::Facts { host, .. } => Some(host),
            Record::Worker(w) => Some(&w.host),
            Record::Other(map) => map.get("host").and_then(Value::as_str),
            Record::Run(_) | Record::Audit { .. } | Record::Bus { .. } | Record::End { .. } => None,
        }
    }
}

impl Line {
    /// `record`, not yet stamped.
    pub fn new(record: Record) -> Line {
        Line { at: None, record }
    }

    /// Reads one line as written; `None` for a line that is not a JSON object.
    pub fn parse(text: &str) -> Option<Line> {
        serde_json::from_str(text).ok()
    }

    /// The line as written: one JSON object, keys sorted.
    pub fn to_json(&self) -> String {
        serde_json::to_value(self)
            .map(|v| v.to_string())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The journals of the records fixture: written by an earlier wisp, read as records and
    /// written again, byte for byte, with no line falling back to [`Record::Other`].
    #[test]
    fn every_line_of_the_fixture_journals_round_trips_typed() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/records-v1/store/journal"
        );
        let mut lines = 0;
        let mut kinds = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for text in text.lines() {
                let line = Line::parse(text).unwrap_or_else(|| panic!("unread: {text}"));
                assert!(
                    !matches!(line.record, Record::Other(_)),
                    "not typed: {text}"
                );
                kinds.insert(line.record.kind().to_owned());
                assert_eq!(line.to_json(), text);
                lines += 1;
            }
        }
        assert!(lines > 50, "{lines} lines");
        let expected = ["audit", "command", "end", "facts", "host", "run", "task"];
        assert_eq!(kinds.into_iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn an_unknown_kind_is_kept_as_written() {
        let text = r#"{"at":"2026-01-01T00:00:00Z","host":"web1","kind":"later","n":[1,2]}"#;
        let line = Line::parse(text).unwrap();
        assert_eq!(line.record.kind(), "later");
        assert_eq!(line.record.host(), Some("web1"));
        assert_eq!(line.to_json(), text);
    }

    #[test]
    fn worker_lines_round_trip() {
        for text in [
            r#"{"at":"t","event":"claimed","host":"h","item":"i","kind":"worker","at_ms":5,"took_over":null,"worker":"w"}"#,
            r#"{"at":"t","event":"claimed","host":"h","item":"i","kind":"worker","at_ms":5,"took_over":"w0","worker":"w"}"#,
            r#"{"at":"t","by":"heartbeat","event":"lost","host":"h","item":"i","kind":"worker","worker":"w"}"#,
            r#"{"at":"t","event":"refused_event","host":"h","item":"i","kind":"worker","why":"x"}"#,
        ] {
            let line = Line::parse(text).unwrap();
            assert!(matches!(line.record, Record::Worker(_)), "{text}");
            let sorted: Value = serde_json::from_str(text).unwrap();
            assert_eq!(line.to_json(), sorted.to_string());
        }
    }
}
