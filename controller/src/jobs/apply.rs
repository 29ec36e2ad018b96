//! `wisp apply`: a plan's tasks on one host, in order, over one runner session; then the
//! handlers that a changing task notified. Each task ends ok, changed, failed or skipped.
//!
//! What this module does not know: how the host was reached (it gets a session), other hosts.

use std::collections::BTreeSet;

use tokio::sync::watch;
use wisp_protocol::message::{Done, Limits, Status};
use wisp_protocol::ops::{Facts, FileResult, Op, PkgResult, ServiceResult};

use super::command::{Ended, follow};
use super::task::{Before, diff_of, render_task};
use crate::fleet::Target;
use crate::report::{Event, Reporter};
use crate::session::{CmdEvent, Session};
use wisp_events::interrupt::Interrupt;
use wisp_plan::{Context, Plan, Task};
use wisp_store::record::{TaskHow, TaskLine};

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
    fn label(self) -> &'static str {
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
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok={} changed={} failed={} skipped={}{}",
            self.ok,
            self.changed,
            self.failed,
            self.skipped,
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

/// The host's facts: from the store when read less than `ttl` ago from the same host key,
/// else read now (and stored).
async fn facts(
    session: &mut Session,
    host: &str,
    ttl: Option<std::time::Duration>,
    reporter: &Reporter,
) -> Result<Facts, Stop> {
    if let Some(cached) = ttl
        .and_then(|ttl| reporter.cached_facts(session.host_key(), ttl))
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
                host_key: session.host_key().to_owned(),
                facts: raw.clone(),
            });
            Ok(facts)
        }
        (Some(Err(e)), _) => Err(Stop::Lost(format!("facts: undecodable result: {e}"))),
        _ => Err(Stop::Lost("facts: DONE without a result".into())),
    }
}

/// Runs the plan on one host. `Ok` with the tally when every task ran (or a failure stopped
/// the host, counted as failed); `Err` when the host could not be finished.
#[allow(clippy::too_many_arguments)] // one host's whole context; a struct would only rename it
pub async fn run_on_host(
    session: &mut Session,
    plan: &Plan,
    options: ApplyOptions,
    resume: Option<&Resume>,
    target: &Target,
    reporter: &Reporter,
    interrupt: &mut watch::Receiver<Interrupt>,
) -> Result<Tally, Stop> {
    let host = target.name.as_str();
    let facts = if plan.needs_facts {
        Some(facts(session, host, options.facts_ttl, reporter).await?)
    } else {
        None
    };
    let ctx = Context::for_host(&plan.vars, host, &target.vars, facts.as_ref())
        .with_secrets(&plan.secrets);
    let arch = session.ready().arch.clone();
    let mut tally = Tally::default();
    let mut notified = BTreeSet::new();
    let mut resuming = resume.and_then(|r| r.hosts.get(host).map(|h| (r.run, h)));
    for task in &plan.tasks {
        if let Some((run, (from_line, changed))) = resuming {
            if task.line == *from_line {
                resuming = None;
            } else {
                let changed = changed.contains(&task.line);
                carried_over(task, host, run, changed, reporter);
                tally.skipped += 1;
                if changed {
                    notified.extend(task.notify.iter().cloned());
                }
                continue;
            }
        }
        let status = run_task(
            session, task, &ctx, &arch, options, host, reporter, interrupt,
        )
        .await?;
        count(&mut tally, status, task.ignore_errors);
        if status == TaskStatus::Changed {
            notified.extend(task.notify.iter().cloned());
        }
        if status == TaskStatus::Failed && !task.ignore_errors {
            return Ok(tally);
        }
    }
    for handler in plan.handlers.iter().filter(|h| notified.contains(&h.name)) {
        let status = run_task(
            session, handler, &ctx, &arch, options, host, reporter, interrupt,
        )
        .await?;
        count(&mut tally, status, handler.ignore_errors);
        if status == TaskStatus::Failed && !handler.ignore_errors {
            return Ok(tally);
        }
    }
    Ok(tally)
}

/// Records a task a resumed host does not run again: done in run `run`.
fn carried_over(task: &Task, host: &str, run: i64, changed: bool, reporter: &Reporter) {
    reporter.emit(Event::Task(Box::new(TaskLine {
        host: host.to_owned(),
        task: task.name.clone(),
        op: task.op.clone(),
        line: task.line,
        status: TaskStatus::Skipped.label().to_owned(),
        detail: format!("done in run {run}"),
        how: TaskHow::Carried {
            changed: false,
            done_in: run,
            done_changed: changed,
        },
    })));
}

fn count(t: &mut Tally, s: TaskStatus, ignore_errors: bool) {
    match s {
        TaskStatus::Ok => t.ok += 1,
        TaskStatus::Changed => t.changed += 1,
        TaskStatus::Failed if ignore_errors => t.ignored += 1,
        TaskStatus::Failed => t.failed += 1,
        TaskStatus::Skipped => t.skipped += 1,
    }
}

/// Records a task's result (with what the runner enforced, when it ran); its status.
fn record(
    reporter: &Reporter,
    host: &str,
    task: &Task,
    check: bool,
    (status, detail, done): (TaskStatus, &str, Option<&Done>),
) -> TaskStatus {
    reporter.emit(Event::Task(Box::new(TaskLine {
        host: host.to_owned(),
        task: task.name.clone(),
        op: task.op.clone(),
        line: task.line,
        status: status.label().to_owned(),
        detail: detail.to_owned(),
        how: TaskHow::Ran {
            check,
            duration_ms: done.map(|d| d.duration_ms),
            enforcement: done
                .and_then(|d| d.enforcement.as_ref())
                .and_then(|e| serde_json::to_value(e).ok()),
        },
    })));
    status
}

#[allow(clippy::too_many_arguments)] // one task's whole context; a struct would only rename it
async fn run_task(
    session: &mut Session,
    task: &Task,
    ctx: &Context,
    arch: &str,
    options: ApplyOptions,
    host: &str,
    reporter: &Reporter,
    interrupt: &mut watch::Receiver<Interrupt>,
) -> Result<TaskStatus, Stop> {
    let record = |status, detail: &str, done| {
        record(reporter, host, task, options.check, (status, detail, done))
    };
    let r = match render_task(task, ctx, host, arch, (options.check, options.diff)) {
        Before::Send(r) => *r,
        Before::Skip(why) => return Ok(record(TaskStatus::Skipped, &why, None)),
        Before::Fail(why) => return Ok(record(TaskStatus::Failed, &why, None)),
    };
    let started = match r.from_disk {
        Some(f) => session.start_file(&r.op, r.limits.clone(), f).await,
        None => session.start(&r.op, r.limits.clone(), &r.content).await,
    };
    let id = match started {
        Ok(id) => id,
        Err(
            crate::session::SessionError::TooLarge(e) | crate::session::SessionError::Content(e),
        ) => {
            return Ok(record(TaskStatus::Failed, &e, None));
        }
        Err(e) => return Err(Stop::Lost(e.to_string())),
    };
    let mut cancelled = false;
    let max_output = match &r.op {
        Op::Exec(a) => a
            .max_output
            .unwrap_or(wisp_protocol::ops::DEFAULT_MAX_OUTPUT),
        _ => wisp_protocol::ops::DEFAULT_MAX_OUTPUT,
    };
    let streams = super::command::Streams {
        tee: &mut |_, _| {},
        max_output,
    };
    let ended = follow(
        session,
        &id,
        host,
        reporter,
        interrupt,
        &mut cancelled,
        streams,
    )
    .await;
    let (done, previous) = match ended {
        Ended::Done(done, previous) => (done, previous),
        Ended::Refused(e) => return Ok(record(TaskStatus::Failed, &e.message, None)),
        Ended::Disconnected => return Err(Stop::Interrupted),
        Ended::Lost(e) => return Err(Stop::Lost(e.to_string())),
    };
    if cancelled {
        return Err(Stop::Interrupted);
    }
    if done.status != Status::Ok {
        let detail = crate::report::describe(&done);
        return Ok(record(TaskStatus::Failed, &detail, Some(&done)));
    }
    let (changes, previous_content) = match changes(&r.op, &done) {
        Ok(c) => c,
        Err(e) => {
            let detail = format!(
                "the runner's result for {} does not decode: {e}",
                r.op.name()
            );
            return Ok(record(TaskStatus::Failed, &detail, Some(&done)));
        }
    };
    let changes = changes.join(", ");
    if let Some(path) = r.diff_path.as_deref()
        && done.changed
    {
        let created = changes.contains("created");
        let text = diff_of(&r, path, &previous, created, previous_content);
        if !text.is_empty() {
            reporter.emit(Event::Diff {
                host: host.to_owned(),
                text,
            });
        }
    }
    let is_exec = matches!(r.op, Op::Exec(_));
    let changed = done.changed && !(is_exec && task.changed_when == Some(false));
    let status = if changed {
        TaskStatus::Changed
    } else {
        TaskStatus::Ok
    };
    Ok(record(status, &changes, Some(&done)))
}

/// What a DONE says changed (and whether a file op sent its previous content), read as the
/// op's typed result.
fn changes(op: &Op, done: &Done) -> Result<(Vec<String>, bool), serde_json::Error> {
    Ok(match op {
        Op::FileWrite(_) | Op::FileAbsent(_) | Op::DirEnsure(_) => done
            .result_as::<FileResult>()
            .transpose()?
            .map_or((Vec::new(), false), |r| (r.changes, r.previous_content)),
        Op::PkgEnsure(_) => (
            done.result_as::<PkgResult>()
                .transpose()?
                .map_or_else(Vec::new, |r| r.changes),
            false,
        ),
        Op::Service(..) => (
            done.result_as::<ServiceResult>()
                .transpose()?
                .map_or_else(Vec::new, |r| r.changes),
            false,
        ),
        Op::Exec(_) | Op::Facts | Op::FileStat(_) => (Vec::new(), false),
    })
}
