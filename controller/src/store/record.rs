//! Journal lines into rows: every line goes to the event log, and by its `kind` into the run,
//! host, task or audit tables, in one transaction per line.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::{Store, StoreError};
use crate::clock::timestamp_now;

fn text(line: &Value, key: &str) -> Option<String> {
    match &line[key] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn int(line: &Value, key: &str) -> Option<i64> {
    line[key].as_i64()
}

impl Store {
    /// Records a run's first line (`kind: run`) and gives the run its number.
    pub fn begin_run(&mut self, line: &Value) -> Result<i64, StoreError> {
        let hosts = line["hosts"].as_array().map_or(0, Vec::len);
        let options: serde_json::Map<String, Value> = ["check", "diff", "become", "forks"]
            .iter()
            .filter_map(|k| line.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        let started = text(line, "at").unwrap_or_else(timestamp_now);
        let insert = |s: &Store| -> rusqlite::Result<i64> {
            let tx = s.conn.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO runs (started_at, user, machine, wisp, command, program, plan, \
                 plan_hash, targets, hosts, options, retry_of) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    started,
                    text(line, "user"),
                    text(line, "machine"),
                    text(line, "wisp"),
                    text(line, "command").unwrap_or_default(),
                    text(line, "program"),
                    text(line, "plan"),
                    text(line, "plan_hash"),
                    text(line, "targets"),
                    i64::try_from(hosts).unwrap_or(i64::MAX),
                    Value::Object(options).to_string(),
                    int(line, "retry_of"),
                ],
            )?;
            let id = tx.last_insert_rowid();
            event(&tx, id, &started, line)?;
            tx.commit()?;
            Ok(id)
        };
        insert(self).map_err(|e| self.fail("cannot record the run", e))
    }

    /// Records one later line of run `run`.
    pub fn record(&self, run: i64, line: &Value) -> Result<(), StoreError> {
        let at = text(line, "at").unwrap_or_else(timestamp_now);
        let write = || -> rusqlite::Result<()> {
            let tx = self.conn.unchecked_transaction()?;
            event(&tx, run, &at, line)?;
            match line["kind"].as_str() {
                Some("task" | "command") => {
                    let status = text(line, "status").unwrap_or_default();
                    let changed = line["changed"].as_bool().unwrap_or(status == "changed");
                    tx.execute(
                        "INSERT INTO task_results (run_id, host, task, op, line, status, \
                         changed, check_mode, detail, exit_code, duration_ms, enforcement, at, \
                         done_in, done_changed) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                        params![
                            run,
                            text(line, "host").unwrap_or_default(),
                            text(line, "task"),
                            text(line, "op").or_else(|| Some("exec".into())),
                            int(line, "line"),
                            status,
                            changed,
                            line["check"].as_bool().unwrap_or(false),
                            text(line, "detail"),
                            int(line, "exit_code"),
                            int(line, "duration_ms"),
                            text(line, "enforcement"),
                            at,
                            int(line, "done_in"),
                            line["done_changed"].as_bool().unwrap_or(false),
                        ],
                    )?;
                }
                Some("host") => {
                    // A later line for the same host (a run timeout turning interrupted into
                    // failed) replaces the earlier one.
                    tx.execute(
                        "INSERT OR REPLACE INTO host_results \
                         (run_id, host, outcome, detail, elapsed_ms, sandbox, at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            run,
                            text(line, "host").unwrap_or_default(),
                            text(line, "outcome").unwrap_or_default(),
                            text(line, "detail"),
                            int(line, "elapsed_ms"),
                            text(line, "sandbox"),
                            at,
                        ],
                    )?;
                }
                Some("end") => {
                    tx.execute(
                        "UPDATE runs SET ended_at = ?2, exit_code = ?3, elapsed_ms = ?4 \
                         WHERE id = ?1",
                        params![run, at, int(line, "exit"), int(line, "elapsed_ms")],
                    )?;
                }
                Some("facts") => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                    tx.execute(
                        "INSERT OR REPLACE INTO facts (host_key, host, read_at, read_unix, facts) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            text(line, "host_key").unwrap_or_default(),
                            text(line, "host").unwrap_or_default(),
                            at,
                            now,
                            line["facts"].to_string(),
                        ],
                    )?;
                }
                Some("audit") => {
                    tx.execute(
                        "INSERT INTO audit (run_id, at, act, detail) VALUES (?1, ?2, ?3, ?4)",
                        params![
                            run,
                            at,
                            text(line, "act").unwrap_or_default(),
                            text(line, "detail")
                        ],
                    )?;
                }
                _ => {}
            }
            tx.commit()
        };
        write().map_err(|e| self.fail("cannot record a result", e))
    }

    /// The newest run's number, if any.
    pub fn last_run(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.fail("cannot read it", e))
    }
}

fn event(tx: &rusqlite::Transaction<'_>, run: i64, at: &str, line: &Value) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO events (run_id, at, kind, body) VALUES (?1, ?2, ?3, ?4)",
        params![
            run,
            at,
            line["kind"].as_str().unwrap_or(""),
            line.to_string()
        ],
    )
    .map(drop)
}
