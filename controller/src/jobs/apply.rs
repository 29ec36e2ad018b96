//! `wisp apply`: a plan's tasks on one host, in order, over one runner session; then the
//! handlers that a changing task notified. Each task ends ok, changed, failed or skipped.
//! Here: what a plan's run is told and counts. The walk through blocks, loops and
//! conditions is [`super::flow`]'s; one op sent and its result read, [`super::op`]'s.
//!
//! What this module does not know: how the host was reached (it gets a session), other hosts.

use std::collections::BTreeSet;

use wisp_protocol::message::Limits;
use wisp_protocol::ops::{Facts, Op};

use crate::report::{Event, Reporter};
use crate::session::{CmdEvent, Session};

pub use wisp_plan::Compiled;

/// `--check`, `--diff`, drift and `--facts-ttl`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct ApplyOptions {
    /// Report what would change; change nothing (exec tasks are skipped).
    pub check: bool,
    /// Show a unified diff for each file whose content changes.
    pub diff: bool,
    /// A drift check: check mode with diffs, reported as one folded report.
    pub drift: bool,
    /// Facts in the store younger than this are used instead of reading them again.
    pub facts_ttl: Option<std::time::Duration>,
}

/// Where hosts start when a plan is retried from their failed task (`wisp retry
/// --from-failed-task`): each task before it is not run again, and is recorded as skipped,
/// done in the retried run. The handlers those tasks notified when they changed the host
/// still run, since the host failed before its handlers could.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Resume {
    /// The run retried.
    pub run: i64,
    /// Per host: the line of the task it failed at, and the lines of the tasks before it
    /// that changed the host (then, or in an earlier run that one carried over).
    pub hosts: std::collections::HashMap<String, (usize, BTreeSet<usize>)>,
}

/// How one task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Nothing to do.
    Ok,
    /// It changed the host (or would, in check mode).
    Changed,
    /// It failed.
    Failed,
    /// Its condition was false, or it cannot run in check mode.
    Skipped,
}

impl TaskStatus {
    pub(super) fn label(self) -> &'static str {
        match self {
            TaskStatus::Ok => "ok",
            TaskStatus::Changed => "changed",
            TaskStatus::Failed => "failed",
            TaskStatus::Skipped => "skipped",
        }
    }
}

/// Counts per status for one host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// Tasks with nothing to do.
    pub ok: usize,
    /// Tasks that changed something.
    pub changed: usize,
    /// Tasks that failed (and stopped the host).
    pub failed: usize,
    /// Tasks that failed with `ignore_errors`.
    pub ignored: usize,
    /// Tasks skipped.
    pub skipped: usize,
    /// Tasks that failed inside a block whose `rescue` then ended well.
    pub rescued: usize,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok={} changed={} failed={} skipped={}{}{}",
            self.ok,
            self.changed,
            self.failed,
            self.skipped,
            if self.rescued > 0 {
                format!(" rescued={}", self.rescued)
            } else {
                String::new()
            },
            if self.ignored > 0 {
                format!(" ignored={}", self.ignored)
            } else {
                String::new()
            }
        )
    }
}

/// Why a host stopped early.
#[derive(Debug)]
pub enum Stop {
    /// The connection broke.
    Lost(String),
    /// Ctrl-C.
    Interrupted,
}

/// The host's facts: from the store when read less than `ttl` ago from the same host key
/// and machine id, else read now (and stored).
pub(super) async fn facts(
    session: &mut Session,
    host: &str,
    ttl: Option<std::time::Duration>,
    reporter: &Reporter,
) -> Result<Facts, Stop> {
    if let Some(cached) = ttl
        .and_then(|ttl| reporter.cached_facts(&session.facts_key(), ttl))
        .and_then(|v| serde_json::from_value::<Facts>(v).ok())
    {
        return Ok(cached);
    }
    let id = session
        .start(&Op::Facts, Limits::default(), &[])
        .await
        .map_err(|e| Stop::Lost(e.to_string()))?;
    let done = match session.next_for(&id).await {
        Ok(CmdEvent::Done(done, _)) => done,
        Ok(other) => return Err(Stop::Lost(format!("facts: {other:?}"))),
        Err(e) => return Err(Stop::Lost(e.to_string())),
    };
    match (done.result_as::<Facts>(), &done.result) {
        (Some(Ok(facts)), Some(raw)) => {
            reporter.emit(Event::FactsRead {
                host: host.to_owned(),
                host_key: session.facts_key(),
                facts: raw.clone(),
            });
            Ok(facts)
        }
        (Some(Err(e)), _) => Err(Stop::Lost(format!("facts: undecodable result: {e}"))),
        _ => Err(Stop::Lost("facts: DONE without a result".into())),
    }
}

/// What a `run_once` task did, on the host that ran it.
#[derive(Debug)]
pub(super) struct Once {
    pub(super) host: String,
    pub(super) status: TaskStatus,
    pub(super) registered: wisp_plan::Data,
}

/// The `run_once` tasks of a run, each run by the first host that reaches it.
#[derive(Debug, Default)]
pub struct OnceTasks {
    cells: std::sync::Mutex<
        std::collections::HashMap<String, std::sync::Arc<tokio::sync::OnceCell<Once>>>,
    >,
}

impl OnceTasks {
    pub(super) fn cell(&self, t: &wisp_plan::Task) -> std::sync::Arc<tokio::sync::OnceCell<Once>> {
        let key = format!("{}:{}", t.file.as_deref().unwrap_or(""), t.line);
        let mut cells = self
            .cells
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::sync::Arc::clone(cells.entry(key).or_default())
    }
}

/// A run's hosts by name, with how each is reached: where `delegate_to` may send a task.
pub type Peers = std::collections::HashMap<String, std::sync::Arc<dyn wisp_transports::Transport>>;
