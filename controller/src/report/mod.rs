//! What the operator sees and what is recorded, from one stream of [`Event`]s.
//!
//! Producers (jobs, the fan-out, the bus reader, the CLI) call [`Reporter::emit`]; the
//! reporter hides this run's secrets in the event once, then hands it to each consumer:
//! - the renderer: [`terminal`] (human) or [`json`] (`--json`), each with `--fold`'s grouping
//!   ([`fold`]);
//! - the drift collector ([`drift`]) for `wisp drift`;
//! - the journal ([`wisp_store::journal`]), which writes the file and the state store;
//! - on a worker, instead of all of these, the bus forwarder ([`forward`]).

pub mod drift;
mod fold;
pub mod forward;
mod json;
mod nodeset;
mod records;
mod terminal;

pub use nodeset::fold_hosts;
pub use wisp_events::{
    Event, HostOutcome, HostResult, LineSplitter, capabilities, describe, exit_status, visible,
};

use wisp_events::exit::ExitStatus;
use wisp_store::record::RunStart;

/// Where events are shown.
#[derive(Debug)]
enum Render {
    Terminal(terminal::Terminal),
    Json(json::JsonLines),
}

/// Takes a run's events and hands them to every consumer; safe to share between host tasks.
#[derive(Debug)]
pub struct Reporter {
    render: Render,
    /// The run journal (a disabled one unless [`Reporter::with_journal`] set one).
    journal: wisp_store::journal::Journal,
    /// Hides secret values in every event, before any consumer sees it.
    redactor: wisp_secrets::Redactor,
    /// `wisp drift`: task results and diffs are collected for one folded report.
    drift: Option<drift::Collector>,
    /// On a worker: every job event goes here instead (see [`forward`]).
    forward: Option<forward::Sink>,
}

impl Reporter {
    /// A reporter for these hosts (their names set the prefix width).
    pub fn new(json: bool, hosts: &[String]) -> Self {
        let render = if json {
            Render::Json(json::JsonLines::new())
        } else {
            Render::Terminal(terminal::Terminal::new(hosts))
        };
        Self {
            render,
            journal: wisp_store::journal::Journal::disabled(),
            redactor: wisp_secrets::Redactor::default(),
            drift: None,
            forward: None,
        }
    }

    /// Keeps each host's output, to print it once per group of identical hosts at the end
    /// (with `--json`, output lines still stream, and a `fold` line comes before the summary).
    pub fn folding(mut self) -> Self {
        match &mut self.render {
            Render::Terminal(t) => t.folding(),
            Render::Json(j) => j.folding(),
        }
        self
    }

    /// Hides these secrets' values in every event.
    pub fn with_secrets(mut self, secrets: &wisp_secrets::SecretValues) -> Self {
        self.redactor = wisp_secrets::Redactor::new(secrets);
        self
    }

    /// Collects task results for a drift report instead of printing them.
    pub fn for_drift(mut self) -> Self {
        self.drift = Some(drift::Collector::default());
        match &mut self.render {
            Render::Terminal(t) => t.drift = true,
            Render::Json(j) => j.drift = true,
        }
        self
    }

    /// A redactor for one output stream of one command, hiding this run's secrets.
    pub fn stream_redactor(&self) -> wisp_secrets::StreamRedactor {
        self.redactor.stream()
    }

    /// Records what this reporter is told in `journal` as well.
    pub fn with_journal(mut self, journal: wisp_store::journal::Journal) -> Self {
        self.journal = journal;
        self
    }

    /// The facts of the host with `host_key` in the store, when read less than `max_age` ago.
    pub fn cached_facts(
        &self,
        host_key: &str,
        max_age: std::time::Duration,
    ) -> Option<serde_json::Value> {
        self.journal.cached_facts(host_key, max_age)
    }

    /// Begins the run: its first journal line, which gives it its number in the store.
    pub fn begin(&self, run: RunStart) -> Result<(), wisp_store::StoreError> {
        let event = Event::RunStarted(Box::new(run)).redacted(&self.redactor);
        if let Event::RunStarted(run) = &event {
            self.journal.begin(run)?;
        }
        Ok(())
    }

    /// Hands one event to every consumer, its secrets hidden first.
    pub fn emit(&self, event: Event) {
        wisp_events::Emit::emit(self, event);
    }
}

impl wisp_events::Emit for Reporter {
    fn emit(&self, event: Event) {
        let event = event.redacted(&self.redactor);
        if let Some(sink) = &self.forward {
            sink.pass(event);
            return;
        }
        if let Some(record) = records::record(&event) {
            self.journal.record(record);
        }
        if let Some(d) = &self.drift {
            d.take(&event);
        }
        match &self.render {
            Render::Terminal(t) => t.take(&event),
            Render::Json(j) => j.take(&event),
        }
    }
}

impl Reporter {
    /// The results with this run's secrets hidden in what they say.
    fn redacted(&self, results: &[HostResult]) -> Vec<HostResult> {
        results
            .iter()
            .map(|r| HostResult {
                detail: self.redactor.redact(&r.detail).into_owned(),
                sandbox: r
                    .sandbox
                    .as_deref()
                    .map(|s| self.redactor.redact(s).into_owned()),
                ..r.clone()
            })
            .collect()
    }

    /// The recap after a run: per host on stderr (human), or the summary line (JSON).
    pub fn recap(&self, results: &[HostResult], status: ExitStatus, stopped: Option<&str>) {
        let results = self.redacted(results);
        match &self.render {
            Render::Terminal(t) => t.recap(&results, stopped),
            Render::Json(j) => j.recap(&results, status, stopped),
        }
    }

    /// The drift report for these results, printed (stdout, or one `drift` JSON line), with
    /// its exit status. `None` when this reporter is not collecting drift.
    pub fn drift_report(&self, results: &[HostResult], interrupted: bool) -> Option<ExitStatus> {
        let collector = self.drift.as_ref()?;
        let report = drift::Drift::new(collector, &self.redacted(results));
        let status = report.exit_status(interrupted);
        match &self.render {
            Render::Json(j) => {
                let mut value = serde_json::to_value(&report).unwrap_or_default();
                if let Some(map) = value.as_object_mut() {
                    map.insert("type".into(), "drift".into());
                    map.insert("exit_code".into(), (status as u8).into());
                }
                j.print(value);
            }
            // The report escapes what hosts put in it (diffs, details) itself.
            Render::Terminal(t) => t.print(&report.text()),
        }
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A buffer the JSON renderer writes into, readable by the test.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// An event no consumer knows by name (one a newer worker sent, say) still reaches the
    /// journal, the JSON output and the bus, whole.
    #[test]
    fn an_event_no_consumer_knows_is_journalled_printed_and_forwarded_as_it_is() {
        let text = r#"{"event":"package_held","host":"web1","package":"nginx"}"#;
        let later: Event = serde_json::from_str(text).unwrap();

        let tmp = std::env::temp_dir().join(format!("wisp-report-other-{}", std::process::id()));
        let journal = wisp_store::journal::Journal::create(&tmp).unwrap();
        let path = journal.path().unwrap();
        let out = Shared::default();
        let mut reporter = Reporter::new(true, &[]).with_journal(journal);
        reporter.render = Render::Json(json::JsonLines::to(Box::new(out.clone())));
        reporter.emit(later.clone());
        drop(reporter);
        let printed = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let printed: serde_json::Value = serde_json::from_str(printed.trim()).unwrap();
        assert_eq!(
            printed.get("type").and_then(|t| t.as_str()),
            Some("package_held")
        );
        assert_eq!(
            printed.get("package").and_then(|t| t.as_str()),
            Some("nginx")
        );
        let written = std::fs::read_to_string(&path).unwrap();
        let line = wisp_store::record::Line::parse(written.trim()).unwrap();
        assert_eq!(
            line.record.kind(),
            "event",
            "it cannot pass for a known kind"
        );
        assert_eq!(line.record.host(), Some("web1"));
        let mut expected: serde_json::Value = serde_json::from_str(text).unwrap();
        if let Some(map) = expected.as_object_mut() {
            map.insert("kind".into(), "event".into());
            map.insert("at".into(), line.at.clone().unwrap().into());
        }
        assert_eq!(written.trim(), expected.to_string());
        std::fs::remove_dir_all(&tmp).unwrap();

        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&forwarded);
        let worker = Reporter::forwarding(forward::Sink(Arc::new(move |e| {
            into.lock().unwrap().push(e);
        })));
        worker.emit(later);
        let forwarded = forwarded.lock().unwrap();
        assert_eq!(serde_json::to_string(&forwarded[0]).unwrap(), text);
    }

    /// Secrets are hidden by the reporter, before the journal (and so the store) sees them.
    #[test]
    fn secrets_are_redacted_before_the_store_sees_them() {
        let tmp = std::env::temp_dir().join(format!("wisp-journal-store-{}", std::process::id()));
        let db = tmp.join("wisp.db");
        let value = "hunter2-very-secret";
        let secrets = wisp_secrets::SecretValues::from(std::collections::BTreeMap::from([(
            "pw".to_owned(),
            value.to_owned(),
        )]));
        let journal = wisp_store::journal::Journal::create(&tmp.join("journal"))
            .unwrap()
            .with_store(wisp_store::Store::open(&db).unwrap());
        let reporter = Reporter::new(true, &[])
            .with_journal(journal)
            .with_secrets(&secrets);
        let run = RunStart {
            command: "apply".into(),
            targets: value.into(),
            ..RunStart::default()
        };
        reporter.begin(run).unwrap();
        reporter.emit(Event::Task(Box::new(wisp_store::record::TaskLine {
            host: "h".into(),
            task: "t".into(),
            item: None,
            op: "exec".into(),
            line: 1,
            status: "failed".into(),
            detail: format!("said {value}\n"),
            how: wisp_store::record::TaskHow::Ran {
                check: false,
                duration_ms: None,
                enforcement: None,
            },
        })));
        drop(reporter);
        let store = wisp_store::Store::open(&db).unwrap();
        let run = store.run("last").unwrap();
        let tasks = store.tasks(run.id, None).unwrap();
        assert_eq!(tasks[0].detail.as_deref(), Some("said [secret:pw]\n"));
        assert_eq!(run.targets.as_deref(), Some("[secret:pw]"));
        drop(store);
        for e in std::fs::read_dir(&tmp).unwrap() {
            let path = e.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                    "{} holds the secret",
                    path.display()
                );
            }
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
