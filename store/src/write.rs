//! Journal lines into rows: every line goes to the event log, and by its `kind` into the run,
//! host, task or audit tables, in one transaction per line.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::record::{Line, Record, RunStart, TaskHow};
use super::{Store, StoreError};
use crate::clock::timestamp_now;

impl Store {
    /// Records a run's first line, written at `at`, and gives the run its number.
    pub fn begin_run(&mut self, run: &RunStart, at: &str) -> Result<i64, StoreError> {
        let line = Line {
            at: Some(at.to_owned()),
            record: Record::Run(run.clone()),
        };
        let mut options = serde_json::Map::new();
        if let Some(plan) = &run.plan {
            options.insert("check".into(), plan.check.into());
            options.insert("diff".into(), plan.diff.into());
        }
        options.insert("become".into(), run.r#become.into());
        options.insert("forks".into(), run.forks.into());
        let started = at.to_owned();
        let plan = run.plan.as_ref();
        let insert = |s: &Store| -> rusqlite::Result<i64> {
            let tx = s.conn.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO runs (started_at, user, machine, wisp, command, program, plan, \
                 plan_hash, targets, hosts, options, retry_of, plan_file) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    started,
                    run.user,
                    run.machine,
                    run.wisp,
                    run.command,
                    run.program,
                    plan.map(|p| &p.plan),
                    plan.map(|p| &p.plan_hash),
                    run.targets,
                    i64::try_from(run.hosts.len()).unwrap_or(i64::MAX),
                    Value::Object(options).to_string(),
                    run.retry_of,
                    plan.map(|p| &p.plan_file),
                ],
            )?;
            let id = tx.last_insert_rowid();
            event(&tx, id, &started, &line, &line.to_json())?;
            tx.commit()?;
            Ok(id)
        };
        insert(self).map_err(|e| self.fail("cannot record the run", e))
    }

    /// Records one later line of run `run`, written as `text` (its [`Line::to_json`]).
    pub fn record(&self, run: i64, line: &Line, text: &str) -> Result<(), StoreError> {
        let at = line.at.clone().unwrap_or_else(timestamp_now);
        let write = || -> rusqlite::Result<()> {
            let tx = self.conn.unchecked_transaction()?;
            event(&tx, run, &at, line, text)?;
            match &line.record {
                Record::Task(t) => {
                    let (changed, check, duration, enforcement, done_in, done_changed) =
                        match &t.how {
                            TaskHow::Ran {
                                check,
                                duration_ms,
                                enforcement,
                            } => (
                                t.status == "changed",
                                *check,
                                *duration_ms,
                                enforcement.as_ref().map(Value::to_string),
                                None,
                                false,
                            ),
                            TaskHow::Carried {
                                changed,
                                done_in,
                                done_changed,
                            } => (*changed, false, None, None, Some(*done_in), *done_changed),
                        };
                    tx.execute(
                        "INSERT INTO task_results (run_id, host, task, op, line, status, \
                         changed, check_mode, detail, exit_code, duration_ms, enforcement, at, \
                         done_in, done_changed) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                        params![
                            run,
                            t.host,
                            t.task,
                            t.op,
                            i64::try_from(t.line).unwrap_or(i64::MAX),
                            t.status,
                            changed,
                            check,
                            t.detail,
                            None::<i64>,
                            duration.and_then(|d| i64::try_from(d).ok()),
                            enforcement,
                            at,
                            done_in,
                            done_changed,
                        ],
                    )?;
                }
                Record::Command(c) => {
                    tx.execute(
                        "INSERT INTO task_results (run_id, host, task, op, line, status, \
                         changed, check_mode, detail, exit_code, duration_ms, enforcement, at, \
                         done_in, done_changed) \
                         VALUES (?1, ?2, NULL, 'exec', NULL, ?3, ?4, 0, NULL, ?5, ?6, ?7, ?8, \
                         NULL, 0)",
                        params![
                            run,
                            c.host,
                            c.status,
                            c.changed,
                            c.exit_code,
                            i64::try_from(c.duration_ms).unwrap_or(i64::MAX),
                            c.enforcement.as_ref().map(Value::to_string),
                            at,
                        ],
                    )?;
                }
                Record::Host(h) => {
                    // A later line for the same host (a run timeout turning interrupted into
                    // failed) replaces the earlier one.
                    tx.execute(
                        "INSERT OR REPLACE INTO host_results \
                         (run_id, host, outcome, detail, elapsed_ms, sandbox, at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            run,
                            h.host,
                            h.outcome,
                            h.detail,
                            i64::try_from(h.elapsed_ms).unwrap_or(i64::MAX),
                            h.sandbox,
                            at,
                        ],
                    )?;
                }
                Record::End { exit, elapsed_ms } => {
                    tx.execute(
                        "UPDATE runs SET ended_at = ?2, exit_code = ?3, elapsed_ms = ?4 \
                         WHERE id = ?1",
                        params![
                            run,
                            at,
                            exit,
                            i64::try_from(*elapsed_ms).unwrap_or(i64::MAX)
                        ],
                    )?;
                }
                Record::Facts {
                    host,
                    host_key,
                    facts,
                } => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                    tx.execute(
                        "INSERT OR REPLACE INTO facts (host_key, host, read_at, read_unix, facts) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![host_key, host, at, now, facts.to_string()],
                    )?;
                }
                Record::Audit { act, detail } => {
                    tx.execute(
                        "INSERT INTO audit (run_id, at, act, detail) VALUES (?1, ?2, ?3, ?4)",
                        params![run, at, act, detail],
                    )?;
                }
                // In the event log only.
                Record::Run(_) | Record::Bus { .. } | Record::Worker(_) | Record::Other(_) => {}
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

fn event(
    tx: &rusqlite::Transaction<'_>,
    run: i64,
    at: &str,
    line: &Line,
    text: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO events (run_id, at, kind, body) VALUES (?1, ?2, ?3, ?4)",
        params![run, at, line.record.kind(), text],
    )
    .map(drop)
}
