//! Reading runs back: the recent runs, one run's hosts and tasks, and its event log (the
//! journal lines, for `wisp show RUN --json`).

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError};

/// One run, as `wisp history` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// The run's number.
    pub id: i64,
    /// When it started (UTC).
    pub started_at: String,
    /// When it ended; `None` for a run still going, or killed before its end.
    pub ended_at: Option<String>,
    /// Who ran it, and where.
    pub user: Option<String>,
    /// The machine it ran on.
    pub machine: Option<String>,
    /// `run`, `apply`, `facts`, `ping`.
    pub command: String,
    /// The program (`run`) or plan file (`apply`).
    pub what: Option<String>,
    /// The targets as given.
    pub targets: Option<String>,
    /// How many hosts it selected.
    pub hosts: i64,
    /// Its exit code, once ended.
    pub exit_code: Option<i64>,
    /// Its wall time, once ended.
    pub elapsed_ms: Option<i64>,
    /// How many hosts have a result, by outcome: ok, changed, failed, unreachable, other.
    pub outcomes: Vec<(String, i64)>,
    /// The run this one retried (`wisp retry`).
    pub retry_of: Option<i64>,
}

/// One host's end in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    /// The host.
    pub host: String,
    /// `ok`, `changed`, `failed`, `unreachable`, `interrupted`.
    pub outcome: String,
    /// A short description.
    pub detail: Option<String>,
    /// Its time.
    pub elapsed_ms: Option<i64>,
    /// What the sandbox enforced.
    pub sandbox: Option<String>,
}

/// One task (or a `wisp run` command) on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// The host.
    pub host: String,
    /// The task's name (`None` for a `wisp run` command).
    pub task: Option<String>,
    /// The op.
    pub op: Option<String>,
    /// `ok`, `changed`, `failed`, `skipped`, or a command's status.
    pub status: String,
    /// Whether it changed the host.
    pub changed: bool,
    /// What it said.
    pub detail: Option<String>,
    /// A command's exit code.
    pub exit_code: Option<i64>,
    /// Its time on the host.
    pub duration_ms: Option<i64>,
    /// The enforcement report (JSON), when it ran under limits.
    pub enforcement: Option<String>,
}

/// One host's drift over the drift runs of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDrift {
    /// The host.
    pub host: String,
    /// The newest drift run that checked it: (run, when, what it found: `drifted`, `clean`,
    /// `unreachable`, or how it ended).
    pub last: (i64, String, String),
    /// The first run that found it drifted after its last clean one, while it still drifts.
    pub drifted_since: Option<(i64, String)>,
    /// The last run that found it clean.
    pub last_clean: Option<(i64, String)>,
}

const RUN_COLUMNS: &str = "id, started_at, ended_at, user, machine, command, \
     coalesce(plan, program), targets, hosts, exit_code, elapsed_ms, retry_of";

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        started_at: r.get(1)?,
        ended_at: r.get(2)?,
        user: r.get(3)?,
        machine: r.get(4)?,
        command: r.get(5)?,
        what: r.get(6)?,
        targets: r.get(7)?,
        hosts: r.get(8)?,
        exit_code: r.get(9)?,
        elapsed_ms: r.get(10)?,
        outcomes: Vec::new(),
        retry_of: r.get(11)?,
    })
}

impl Store {
    /// The `limit` newest runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        let read = || -> rusqlite::Result<Vec<RunRow>> {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"
            ))?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut runs = stmt
                .query_map([limit], run_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for run in &mut runs {
                run.outcomes = self.outcomes(run.id)?;
            }
            Ok(runs)
        };
        read().map_err(|e| self.fail("cannot read its runs", e))
    }

    /// One run, by number; `last` is the newest.
    pub fn run(&self, which: &str) -> Result<RunRow, StoreError> {
        let id = match which {
            "last" => self.last_run()?,
            n => n.parse::<i64>().ok(),
        };
        let read = || -> rusqlite::Result<Option<RunRow>> {
            let Some(id) = id else { return Ok(None) };
            let run = self
                .conn
                .query_row(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                    [id],
                    run_row,
                )
                .optional()?;
            run.map(|mut r| {
                r.outcomes = self.outcomes(r.id)?;
                Ok(r)
            })
            .transpose()
        };
        read()
            .map_err(|e| self.fail("cannot read it", e))?
            .ok_or_else(|| StoreError::NoRun {
                path: self.path.clone(),
                run: which.to_owned(),
            })
    }

    fn outcomes(&self, run: i64) -> rusqlite::Result<Vec<(String, i64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT outcome, count(*) FROM host_results WHERE run_id = ?1 \
             GROUP BY outcome ORDER BY outcome",
        )?;
        stmt.query_map([run], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    }

    /// The hosts of run `run` that have a result, in name order (`host` alone, when given).
    pub fn hosts(&self, run: i64, host: Option<&str>) -> Result<Vec<HostRow>, StoreError> {
        let read = || -> rusqlite::Result<Vec<HostRow>> {
            let mut stmt = self.conn.prepare(
                "SELECT host, outcome, detail, elapsed_ms, sandbox FROM host_results \
                 WHERE run_id = ?1 AND (?2 IS NULL OR host = ?2) ORDER BY host",
            )?;
            stmt.query_map(params![run, host], |r| {
                Ok(HostRow {
                    host: r.get(0)?,
                    outcome: r.get(1)?,
                    detail: r.get(2)?,
                    elapsed_ms: r.get(3)?,
                    sandbox: r.get(4)?,
                })
            })?
            .collect()
        };
        read().map_err(|e| self.fail("cannot read its hosts", e))
    }

    /// The tasks of run `run`, by host then in the order they ran (`host` alone, when given).
    pub fn tasks(&self, run: i64, host: Option<&str>) -> Result<Vec<TaskRow>, StoreError> {
        let read = || -> rusqlite::Result<Vec<TaskRow>> {
            let mut stmt = self.conn.prepare(
                "SELECT host, task, op, status, changed, detail, exit_code, duration_ms, \
                 enforcement FROM task_results WHERE run_id = ?1 AND (?2 IS NULL OR host = ?2) \
                 ORDER BY host, id",
            )?;
            stmt.query_map(params![run, host], |r| {
                Ok(TaskRow {
                    host: r.get(0)?,
                    task: r.get(1)?,
                    op: r.get(2)?,
                    status: r.get(3)?,
                    changed: r.get(4)?,
                    detail: r.get(5)?,
                    exit_code: r.get(6)?,
                    duration_ms: r.get(7)?,
                    enforcement: r.get(8)?,
                })
            })?
            .collect()
        };
        read().map_err(|e| self.fail("cannot read its tasks", e))
    }

    /// The facts last read from the host with `host_key`, when read less than `max_age` ago.
    pub fn cached_facts(
        &self,
        host_key: &str,
        max_age: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let oldest = now.saturating_sub(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
        self.conn
            .query_row(
                "SELECT facts FROM facts WHERE host_key = ?1 AND read_unix > ?2",
                params![host_key, oldest],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.fail("cannot read its facts", e))
    }

    /// Each host's drift over every `wisp drift` run of the plan file at `plan_file` (its
    /// absolute path: two files of the same name are two plans).
    pub fn drift_history(&self, plan_file: &str) -> Result<Vec<HostDrift>, StoreError> {
        // (run, started, host, outcome, tasks that drifted)
        type Row = (i64, String, String, String, i64);
        let read = || -> rusqlite::Result<Vec<Row>> {
            let mut stmt = self.conn.prepare(
                "SELECT r.id, r.started_at, h.host, h.outcome, \
                 (SELECT count(*) FROM task_results t WHERE t.run_id = r.id \
                  AND t.host = h.host AND t.status IN ('changed', 'failed')) \
                 FROM runs r JOIN host_results h ON h.run_id = r.id \
                 WHERE r.command = 'drift' AND r.plan_file = ?1 ORDER BY r.id, h.host",
            )?;
            stmt.query_map([plan_file], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        };
        let rows = read().map_err(|e| self.fail("cannot read its drift runs", e))?;
        let mut hosts: std::collections::BTreeMap<String, HostDrift> = Default::default();
        for (run, at, host, outcome, found) in rows {
            let h = hosts.entry(host.clone()).or_insert_with(|| HostDrift {
                host,
                last: (run, at.clone(), String::new()),
                drifted_since: None,
                last_clean: None,
            });
            let what = if found > 0 {
                if h.drifted_since.is_none() {
                    h.drifted_since = Some((run, at.clone()));
                }
                "drifted".to_owned()
            } else if outcome == "ok" {
                h.drifted_since = None;
                h.last_clean = Some((run, at.clone()));
                "clean".to_owned()
            } else {
                outcome
            };
            h.last = (run, at, what);
        }
        Ok(hosts.into_values().collect())
    }

    /// Run `run`'s audit rows: (act, detail), in order.
    pub fn audit(&self, run: i64) -> Result<Vec<(String, String)>, StoreError> {
        let read = || -> rusqlite::Result<Vec<(String, String)>> {
            let mut stmt = self.conn.prepare(
                "SELECT act, coalesce(detail, '') FROM audit WHERE run_id = ?1 ORDER BY id",
            )?;
            stmt.query_map([run], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        };
        read().map_err(|e| self.fail("cannot read its audit rows", e))
    }

    /// Run `run`'s journal lines, in order, as they were recorded.
    pub fn events(&self, run: i64) -> Result<Vec<String>, StoreError> {
        let read = || -> rusqlite::Result<Vec<String>> {
            let mut stmt = self
                .conn
                .prepare("SELECT body FROM events WHERE run_id = ?1 ORDER BY seq")?;
            stmt.query_map([run], |r| r.get(0))?.collect()
        };
        read().map_err(|e| self.fail("cannot read its events", e))
    }
}
