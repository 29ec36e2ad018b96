//! What `wisp retry` reads back: the run it retries, the hosts of that run that did not end
//! well, and where each of them stopped in a plan.

use rusqlite::{OptionalExtension, params};

use super::record::{Line, Record, RunStart};
use super::{Store, StoreError};

/// Outcomes a retry runs again. Any other (`ok`) is done.
pub const RETRIED_OUTCOMES: &[&str] = &[
    "failed",
    "unreachable",
    "could not start",
    "interrupted",
    "not started",
];

/// A recorded run, as far as a retry needs it.
#[derive(Debug, Clone)]
pub struct RetrySource {
    /// Its number.
    pub id: i64,
    /// Its first journal line: the command, targets, plan, hash and options.
    pub run: RunStart,
    /// Whether it recorded its end (a killed run did not).
    pub ended: bool,
    /// Its hosts that a retry runs again, in the run's order, each with how it ended (`None`:
    /// no result recorded, as for a run killed midway).
    pub hosts: Vec<(String, Option<String>)>,
}

/// One task row of one host, in the order it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStep {
    /// The task's line in the plan.
    pub line: Option<i64>,
    /// `ok`, `changed`, `failed`, `skipped`.
    pub status: String,
    /// Whether it changed the host in this run.
    pub changed: bool,
    /// For a task a resumed host did not run again: the run it was done in, and whether it
    /// changed the host there.
    pub done_in: Option<(i64, bool)>,
}

impl Store {
    /// Run `which` (a number or `last`) and its hosts to run again.
    pub fn retry_source(&self, which: &str) -> Result<RetrySource, StoreError> {
        let run = self.run(which)?;
        let first: Option<String> = self
            .conn
            .query_row(
                "SELECT body FROM events WHERE run_id = ?1 AND kind = 'run' ORDER BY seq LIMIT 1",
                [run.id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.fail("cannot read the run's first line", e))?;
        let run_start = match first.as_deref().and_then(Line::parse) {
            Some(Line {
                record: Record::Run(r),
                ..
            }) => r,
            _ => RunStart::default(),
        };
        let ended_as: std::collections::HashMap<String, String> = self
            .hosts(run.id, None)?
            .into_iter()
            .map(|h| (h.host, h.outcome))
            .collect();
        let hosts = run_start
            .hosts
            .iter()
            .map(String::as_str)
            .filter_map(|h| match ended_as.get(h) {
                Some(o) if RETRIED_OUTCOMES.contains(&o.as_str()) => {
                    Some((h.to_owned(), Some(o.clone())))
                }
                Some(_) => None,
                None => Some((h.to_owned(), None)),
            })
            .collect();
        Ok(RetrySource {
            id: run.id,
            run: run_start,
            ended: run.ended_at.is_some(),
            hosts,
        })
    }

    /// The task rows of `host` in run `run`, in the order they ran.
    pub fn steps(&self, run: i64, host: &str) -> Result<Vec<TaskStep>, StoreError> {
        let read = || -> rusqlite::Result<Vec<TaskStep>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT line, status, changed, done_in, done_changed FROM task_results \
                 WHERE run_id = ?1 AND host = ?2 ORDER BY id",
            )?;
            stmt.query_map(params![run, host], |r| {
                let done_in: Option<i64> = r.get(3)?;
                let done_changed: bool = r.get(4)?;
                Ok(TaskStep {
                    line: r.get(0)?,
                    status: r.get(1)?,
                    changed: r.get(2)?,
                    done_in: done_in.map(|n| (n, done_changed)),
                })
            })?
            .collect()
        };
        read().map_err(|e| self.fail("cannot read the run's tasks", e))
    }
}
