//! The run journal: one JSON-lines file per run under the XDG state directory
//! (`$XDG_STATE_HOME/wisp/journal`, else `~/.local/state/wisp/journal`; `WISP_JOURNAL_DIR`
//! overrides), recording what ran where, what changed and what the sandbox enforced.
//!
//! Lines, each an object with `kind`:
//! - `run`: the command, its targets, the plan and mode, the start time;
//! - `task`: per host per task (plans) or per host (`wisp run`): the op, status, changes,
//!   duration and the enforcement report;
//! - `host`: how each host ended;
//! - `end`: the exit status and the elapsed time.
//!
//! What is never written: file contents, template values, command arguments (only the program
//! is), passwords, passphrases; secret values are replaced by `[secret:NAME]` in every line. A journal that cannot be written is reported once on stderr;
//! the run goes on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

/// An open journal; a disabled one (no directory could be made) records nothing.
#[derive(Debug)]
pub struct Journal {
    file: Mutex<Option<(PathBuf, std::fs::File)>>,
    redactor: crate::secrets::Redactor,
}

/// Where journals go: `WISP_JOURNAL_DIR`, else the XDG state directory.
pub fn dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("WISP_JOURNAL_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| Path::new(d).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".local/state"))
        })?;
    Some(state.join("wisp/journal"))
}

impl Journal {
    /// A journal that records nothing.
    pub fn disabled() -> Journal {
        Journal {
            file: Mutex::new(None),
            redactor: Default::default(),
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
            redactor: Default::default(),
        })
    }

    /// Hides secret values in every line from now on.
    pub fn set_redactor(&mut self, redactor: crate::secrets::Redactor) {
        self.redactor = redactor;
    }

    /// The file, when there is one.
    pub fn path(&self) -> Option<PathBuf> {
        let guard = self.file.lock().ok()?;
        guard.as_ref().map(|(p, _)| p.clone())
    }

    /// Appends one line, with the current time as `at`. A failed write is reported on
    /// stderr and turns the journal off (once, not per line).
    pub fn record(&self, mut line: Value) {
        let Ok(mut guard) = self.file.lock() else {
            return;
        };
        let Some((path, file)) = guard.as_mut() else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        line["at"] = Value::String(timestamp(now.as_secs()));
        let mut text = self.redactor.redact(&line.to_string()).into_owned();
        text.push('\n');
        if let Err(e) = file.write_all(text.as_bytes()) {
            let _ = writeln!(
                std::io::stderr(),
                "wisp: journal {}: {e}; the rest of this run is not journalled",
                path.display()
            );
            *guard = None;
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (UTC).
pub fn timestamp(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(timestamp(1_796_083_199), "2026-11-30T23:59:59Z");
    }

    #[test]
    fn lines_are_json_with_a_time() {
        let tmp = std::env::temp_dir().join(format!("wisp-journal-{}", std::process::id()));
        let j = Journal::create(&tmp).unwrap();
        j.record(serde_json::json!({"kind": "run"}));
        j.record(serde_json::json!({"kind": "end", "exit": 0}));
        let text = std::fs::read_to_string(j.path().unwrap()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["exit"], 0);
        assert!(lines[0]["at"].as_str().unwrap().ends_with('Z'));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
