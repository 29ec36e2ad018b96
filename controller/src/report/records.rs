//! The journal's consumer: which events are recorded, and as which [`Record`]. The run's
//! first line is [`super::Reporter::begin`]'s; output, diffs and what is only shown are not
//! recorded (the journal keeps what ran and how it ended, never file contents).

use super::Event;
use wisp_store::record::{CommandLine, Record};

/// What the journal keeps of `event`, as a record; `None` for what is shown, not recorded.
pub(super) fn record(event: &Event) -> Option<Record> {
    let record = match event {
        Event::Audit { act, detail } => Record::Audit {
            act: act.clone(),
            detail: detail.clone(),
        },
        Event::Bus { nats, bus_run } => Record::Bus {
            nats: nats.clone(),
            bus_run: bus_run.clone(),
        },
        Event::CommandDone { host, done } => Record::Command(CommandLine {
            host: host.clone(),
            status: serde_json::to_value(done.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            exit_code: done.exit_code,
            signal: done.signal.clone(),
            changed: done.changed,
            duration_ms: done.duration_ms,
            enforcement: done
                .enforcement
                .as_ref()
                .and_then(|e| serde_json::to_value(e).ok()),
        }),
        Event::Task(t) => Record::Task((**t).clone()),
        Event::FactsRead {
            host,
            host_key,
            facts,
        } => Record::Facts {
            host: host.clone(),
            host_key: host_key.clone(),
            facts: facts.clone(),
        },
        Event::HostEnded { end, .. } => Record::Host(end.clone()),
        Event::Worker(w) => Record::Worker(w.clone()),
        Event::RunEnded { exit, elapsed_ms } => Record::End {
            exit: *exit,
            elapsed_ms: *elapsed_ms,
        },
        // Kept as it came, under a kind of its own: it cannot pass for a known line.
        Event::Other(fields) => {
            let mut fields = fields.clone();
            fields.insert("kind".into(), "event".into());
            Record::Other(fields)
        }
        // The run line is [`Journal::begin`]'s; the rest is shown, not recorded.
        Event::RunStarted(_)
        | Event::Output { .. }
        | Event::Diff { .. }
        | Event::Refused { .. }
        | Event::Unreachable { .. }
        | Event::CouldNotStart { .. }
        | Event::Facts { .. }
        | Event::Ping { .. }
        | Event::Warning { .. }
        | Event::Stopping { .. } => return None,
    };
    Some(record)
}
