//! The run journal: every line of what ran where, what changed and what the sandbox enforced,
//! written to the state store ([`crate`], the source of truth) and exported as one
//! JSON-lines file per run under the XDG state directory (`$XDG_STATE_HOME/wisp/journal`, else
//! `~/.local/state/wisp/journal`; `WISP_JOURNAL_DIR` overrides).
//!
//! Lines, each an object with `kind`:
//! - `run`: the command, its targets, the plan and mode, the start time;
//! - `task`: per host per task (plans) or per host (`wisp run`): the op, status, changes,
//!   duration and the enforcement report;
//! - `host`: how each host ended;
//! - `end`: the exit status and the elapsed time.
//!
//! What is never written: file contents, template values, command arguments (only the program
//! is), passwords, passphrases; secret values are replaced by `[secret:NAME]` in every line,
//! before it reaches the file or the store. A file or store that cannot be written mid-run is
//! reported once on stderr and the run goes on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use crate::clock::{timestamp, timestamp_now};
use crate::record::{Line, Record, RunStart};
use crate::{Store, StoreError};

/// An open journal; a disabled one (no directory could be made) records nothing.
#[derive(Debug)]
pub struct Journal {
    file: Mutex<Option<(PathBuf, std::fs::File)>>,
    store: Mutex<Option<StoreSink>>,
}

/// The store and the number of the run being recorded in it (0 before [`Journal::begin`]).
#[derive(Debug)]
struct StoreSink {
    store: Store,
    run: i64,
}

/// Where journals go: `WISP_JOURNAL_DIR`, else the XDG state directory.
pub fn dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("WISP_JOURNAL_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    Some(crate::state_dir()?.join("journal"))
}

impl Journal {
    /// A journal that records nothing.
    pub fn disabled() -> Journal {
        Journal {
            file: Mutex::new(None),
            store: Mutex::new(None),
        }
    }

    /// Opens a new journal file in `dir` (made 0700, the file 0600), named by the start time.
    pub fn create(dir: &Path) -> std::io::Result<Journal> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "{}-{:03}-{}.jsonl",
            timestamp(now.as_secs()).replace(':', ""),
            now.subsec_millis(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Journal {
            file: Mutex::new(Some((path, file))),
            store: Mutex::new(None),
        })
    }

    /// The file, when there is one.
    pub fn path(&self) -> Option<PathBuf> {
        let guard = self.file.lock().ok()?;
        guard.as_ref().map(|(p, _)| p.clone())
    }

    /// Records into `store` as well, from the run line on.
    pub fn with_store(self, store: Store) -> Journal {
        if let Ok(mut sink) = self.store.lock() {
            *sink = Some(StoreSink { store, run: 0 });
        }
        self
    }

    /// The run's number in the store, once [`Journal::begin`] recorded it.
    pub fn run_number(&self) -> Option<i64> {
        let guard = self.store.lock().ok()?;
        guard.as_ref().map(|s| s.run).filter(|r| *r > 0)
    }

    /// The facts of the host with `host_key` in the store, when read less than `max_age` ago
    /// (and readable: a cache that fails is a cache miss).
    pub fn cached_facts(&self, host_key: &str, max_age: std::time::Duration) -> Option<Value> {
        let guard = self.store.lock().ok()?;
        let text = guard
            .as_ref()?
            .store
            .cached_facts(host_key, max_age)
            .ok()??;
        serde_json::from_str(&text).ok()
    }

    /// Records the run's first line. Unlike later lines, a store that cannot take it is an
    /// error: the run has not touched a host yet and should not start unrecorded.
    pub fn begin(&self, run: &RunStart) -> Result<(), StoreError> {
        let (line, _) = self.write_file(Record::Run(run.clone()));
        let Ok(mut guard) = self.store.lock() else {
            return Ok(());
        };
        let Some(sink) = guard.as_mut() else {
            return Ok(());
        };
        let at = line.at.as_deref().unwrap_or_default();
        sink.run = sink.store.begin_run(run, at)?;
        Ok(())
    }

    /// Appends one line, with the current time as `at`. A failed write is reported on
    /// stderr and turns that sink off (once, not per line).
    pub fn record(&self, record: Record) {
        let (line, text) = self.write_file(record);
        let Ok(mut guard) = self.store.lock() else {
            return;
        };
        let Some(sink) = guard.as_mut().filter(|s| s.run > 0) else {
            return;
        };
        if let Err(e) = sink.store.record(sink.run, &line, &text) {
            let _ = writeln!(
                std::io::stderr(),
                "wisp: {}; the rest of run {} is only in this output and the journal file",
                wisp_protocol::error::chain(&e),
                sink.run
            );
            *guard = None;
        }
    }

    /// Stamps `record` and appends it to the file; returns the line and its text, written
    /// once for the file and the store alike.
    fn write_file(&self, record: Record) -> (Line, String) {
        let line = Line {
            at: Some(timestamp_now()),
            record,
        };
        let text = line.to_json();
        let Ok(mut guard) = self.file.lock() else {
            return (line, text);
        };
        let Some((path, file)) = guard.as_mut() else {
            return (line, text);
        };
        if let Err(e) = file.write_all(format!("{text}\n").as_bytes()) {
            let _ = writeln!(
                std::io::stderr(),
                "wisp: journal {}: {e}; the rest of this run is not journalled",
                path.display()
            );
            *guard = None;
        }
        (line, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_a_time() {
        let tmp = std::env::temp_dir().join(format!("wisp-journal-{}", std::process::id()));
        let j = Journal::create(&tmp).unwrap();
        j.begin(&RunStart::default()).unwrap();
        j.record(Record::End {
            exit: 0,
            elapsed_ms: 1,
        });
        let text = std::fs::read_to_string(j.path().unwrap()).unwrap();
        let lines: Vec<Line> = text.lines().map(|l| Line::parse(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert!(matches!(lines[0].record, Record::Run(_)));
        assert!(matches!(lines[1].record, Record::End { exit: 0, .. }));
        assert!(lines[0].at.as_deref().unwrap().ends_with('Z'));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
