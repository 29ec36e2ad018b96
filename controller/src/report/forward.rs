//! The bus forwarder, on a worker: every job event goes to a sink (the bus) instead of being
//! shown or journalled, and the controller hands each one it admits to its own reporter, so
//! output, `--json`, the recap and the journal are the same as a local run's. The run's own
//! events (a host's end, warnings) are not forwarded: the controller makes its own.

pub use wisp_events::Sink;

impl super::Reporter {
    /// A reporter that shows and records nothing and hands every job event to `sink`.
    pub fn forwarding(sink: Sink) -> Self {
        let mut reporter = Self::new(true, &[]);
        reporter.forward = Some(sink);
        reporter
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use wisp_protocol::message::EventKind;

    use super::*;
    use crate::report::{Event, HostOutcome, HostResult};

    #[test]
    fn every_job_event_is_forwarded_and_nothing_else() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&seen);
        let reporter = super::super::Reporter::forwarding(Sink(Arc::new(move |e| {
            into.lock().unwrap().push(e);
        })));
        reporter.emit(Event::output("web1", EventKind::Stdout, "hello"));
        reporter.emit(Event::unreachable("web2", "refused"));
        let later: Event =
            serde_json::from_str(r#"{"event":"package_held","host":"web1","package":"nginx"}"#)
                .unwrap();
        reporter.emit(later);
        // A host's end belongs to the fan-out on the controller, not to the forwarder.
        let result = HostResult::new("web1", HostOutcome::Ok, "exit 0");
        reporter.emit(Event::host_ended(&result, false));
        reporter.emit(Event::Warning {
            message: "m".into(),
        });
        let seen = seen.lock().unwrap();
        let names: Vec<&str> = seen.iter().map(Event::name).collect();
        assert_eq!(names, ["output", "unreachable", "package_held"]);
        let whole = serde_json::to_string(&seen[2]).unwrap();
        assert_eq!(
            whole, r#"{"event":"package_held","host":"web1","package":"nginx"}"#,
            "an unknown event is passed on whole"
        );
        // What travels comes back as the same event.
        let text = serde_json::to_string(&seen[0]).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, Event::output("web1", EventKind::Stdout, "hello"));
    }
}
