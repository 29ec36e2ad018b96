//! One plan op on a host: sent, followed to its end, and read into what it did (its status,
//! its diff, the result a later task may `register`); and the task lines it records.

use tokio::sync::watch;
use wisp_protocol::message::{Done, Limits, Status};
use wisp_protocol::ops::{FileResult, Op, PkgResult, ServiceResult};

use super::apply::{Stop, Tally, TaskStatus};
use super::command::{Ended, follow};
use super::task::{Before, diff_of, render_task};
use crate::report::{Event, Reporter};
use crate::session::{CmdEvent, Session};
use wisp_events::interrupt::Interrupt;
use wisp_plan::{Data, DataMap, Engine, Task};
use wisp_store::record::{TaskHow, TaskLine};

/// Records a task a resumed host does not run again: done in run `run`.
pub(super) fn carried_over(task: &Task, host: &str, run: i64, changed: bool, reporter: &Reporter) {
    reporter.emit(Event::Task(Box::new(TaskLine {
        host: host.to_owned(),
        task: task.name.clone(),
        item: None,
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

pub(super) fn count(t: &mut Tally, s: TaskStatus, ignore_errors: bool) {
    match s {
        TaskStatus::Ok => t.ok += 1,
        TaskStatus::Changed => t.changed += 1,
        TaskStatus::Failed if ignore_errors => t.ignored += 1,
        TaskStatus::Failed => t.failed += 1,
        TaskStatus::Skipped => t.skipped += 1,
    }
}

/// What a `no_log` task shows instead of its detail.
const NO_LOG: &str = "the output has been hidden due to the fact that 'no_log: true' was \
                      specified for this result";

/// Records a task's result (with what the runner enforced, when it ran).
pub(super) fn record(
    reporter: &Reporter,
    host: &str,
    (task, item): (&Task, Option<&str>),
    check: bool,
    (status, detail, done): (TaskStatus, &str, Option<&Done>),
) {
    let detail = if task.flow.no_log { NO_LOG } else { detail };
    reporter.emit(Event::Task(Box::new(TaskLine {
        host: host.to_owned(),
        task: task.name.clone(),
        item: item.map(str::to_owned),
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
}

/// What one op did on the host: its status and detail, the DONE (when it ran), and the
/// result a later task may read (`register`).
#[derive(Debug)]
pub(super) struct Ran {
    pub(super) status: TaskStatus,
    pub(super) detail: String,
    pub(super) done: Option<Done>,
    pub(super) result: DataMap,
}

impl Ran {
    /// An op that did not run: skipped or failed before anything was sent.
    pub(super) fn without_running(status: TaskStatus, detail: String) -> Ran {
        let mut result = DataMap::new();
        result.insert("changed".into(), Data::Bool(false));
        result.insert("failed".into(), Data::Bool(status == TaskStatus::Failed));
        if status == TaskStatus::Skipped {
            result.insert("skipped".into(), Data::Bool(true));
        }
        result.insert("msg".into(), Data::Str(detail.clone()));
        Ran {
            status,
            detail,
            done: None,
            result,
        }
    }
}

/// Whether a path is there (`Some(true)`), not there, or cannot be told (the stat failed).
pub(super) async fn stat_exists(session: &mut Session, stat: &Op) -> Result<Option<bool>, Stop> {
    let id = session
        .start(stat, Limits::default(), &[])
        .await
        .map_err(|e| Stop::Lost(e.to_string()))?;
    match session.next_for(&id).await {
        Ok(CmdEvent::Done(done, _)) if done.status == Status::Ok => Ok(done
            .result
            .as_ref()
            .and_then(|r| r.get("kind"))
            .and_then(|k| k.as_str())
            .map(|k| k != "none")),
        Ok(_) => Ok(None),
        Err(e) => Err(Stop::Lost(e.to_string())),
    }
}

/// Sends one of `task`'s ops, rendered in `frame`, and follows it to its end.
#[allow(clippy::too_many_arguments)] // one op's whole context; a struct would only rename it
pub(super) async fn run_op(
    session: &mut Session,
    task: &Task,
    engine: &Engine,
    frame: &minijinja::Value,
    arch: &str,
    (check, diff): (bool, bool),
    host: &str,
    reporter: &Reporter,
    interrupt: &mut watch::Receiver<Interrupt>,
) -> Result<Ran, Stop> {
    let mut r = match render_task(task, engine, frame, arch, (check, diff)) {
        Before::Send(r) => *r,
        Before::Skip(why) => return Ok(Ran::without_running(TaskStatus::Skipped, why)),
        Before::Fail(why) => return Ok(Ran::without_running(TaskStatus::Failed, why)),
    };
    if let Op::Exec(a) = &mut r.op
        && let Err(e) = become_as(task, engine, frame, session.ready().euid, a)
    {
        return Ok(Ran::without_running(TaskStatus::Failed, e));
    }
    let started = match r.from_disk {
        Some(f) => session.start_file(&r.op, r.limits.clone(), f).await,
        None => session.start(&r.op, r.limits.clone(), &r.content).await,
    };
    let id = match started {
        Ok(id) => id,
        Err(
            crate::session::SessionError::TooLarge(e) | crate::session::SessionError::Content(e),
        ) => return Ok(Ran::without_running(TaskStatus::Failed, e)),
        Err(e) => return Err(Stop::Lost(e.to_string())),
    };
    let mut cancelled = false;
    let max_output = match &r.op {
        Op::Exec(a) => a
            .max_output
            .unwrap_or(wisp_protocol::ops::DEFAULT_MAX_OUTPUT),
        _ => wisp_protocol::ops::DEFAULT_MAX_OUTPUT,
    };
    let mut captured: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut tee = |stream: usize, bytes: &[u8]| {
        if let Some(c) = captured.get_mut(stream) {
            c.extend_from_slice(bytes);
        }
    };
    let streams = super::command::Streams {
        tee: &mut tee,
        max_output,
        quiet: task.flow.no_log,
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
        Ended::Refused(e) => {
            return Ok(Ran::without_running(TaskStatus::Failed, e.message));
        }
        Ended::Disconnected => return Err(Stop::Interrupted),
        Ended::Lost(e) => return Err(Stop::Lost(e.to_string())),
    };
    if cancelled {
        return Err(Stop::Interrupted);
    }
    Ok(finished(&r, *done, &previous, captured, (host, reporter)))
}

/// `become` and `become_user` on an exec task, as a prefix of its command line: `runuser -u
/// USER --` from a root session, `sudo -n [-u USER] --` from another (sudo must not need a
/// password there).
fn become_as(
    task: &Task,
    engine: &Engine,
    frame: &minijinja::Value,
    euid: u32,
    exec: &mut wisp_protocol::ops::ExecArgs,
) -> Result<(), String> {
    let user = match &task.flow.become_user {
        Some(u) => Some(
            engine
                .render(u, frame)
                .map_err(|e| format!("become_user: {e}"))?,
        ),
        None => None,
    };
    let root = task.flow.become_root == Some(true) || user.is_some();
    if !root || (euid == 0 && user.as_deref().is_none_or(|u| u == "root")) {
        return Ok(());
    }
    let prefix: Vec<String> = match (euid, user) {
        (0, Some(u)) => vec!["runuser".into(), "-u".into(), u, "--".into()],
        (_, Some(u)) => vec!["sudo".into(), "-n".into(), "-u".into(), u, "--".into()],
        (_, None) => vec!["sudo".into(), "-n".into(), "--".into()],
    };
    let argv = match (exec.argv.take(), exec.shell.take()) {
        (Some(argv), _) => argv,
        (None, Some(shell)) => vec!["/bin/sh".into(), "-c".into(), shell],
        (None, None) => return Err("exec has neither argv nor shell".into()),
    };
    exec.argv = Some(prefix.into_iter().chain(argv).collect());
    Ok(())
}

/// A DONE read into what the op did: its changes, its diff (shown), its result.
fn finished(
    r: &super::task::Rendered<'_>,
    done: Done,
    previous: &[u8],
    [stdout, stderr]: [Vec<u8>; 2],
    (host, reporter): (&str, &Reporter),
) -> Ran {
    let mut result = result_of(&r.op, &done);
    let text = |b: Vec<u8>| {
        String::from_utf8_lossy(&b)
            .trim_end_matches('\n')
            .to_owned()
    };
    if matches!(r.op, Op::Exec(_)) {
        let (out, err) = (text(stdout), text(stderr));
        let lines = |s: &str| Data::List(s.lines().map(|l| Data::Str(l.to_owned())).collect());
        result.insert("stdout_lines".into(), lines(&out));
        result.insert("stderr_lines".into(), lines(&err));
        result.insert("stdout".into(), Data::Str(out));
        result.insert("stderr".into(), Data::Str(err));
    }
    if done.status != Status::Ok {
        let detail = crate::report::describe(&done);
        result.insert("msg".into(), Data::Str(detail.clone()));
        return Ran {
            status: TaskStatus::Failed,
            detail,
            done: Some(done),
            result,
        };
    }
    let (changes, previous_content) = match changes(&r.op, &done) {
        Ok(c) => c,
        Err(e) => {
            let detail = format!(
                "the runner's result for {} does not decode: {e}",
                r.op.name()
            );
            return Ran {
                status: TaskStatus::Failed,
                detail,
                done: Some(done),
                result,
            };
        }
    };
    let changes = changes.join(", ");
    if let Some(path) = r.diff_path.as_deref()
        && done.changed
        && !r.no_log
    {
        let created = changes.contains("created");
        let text = diff_of(r, path, previous, created, previous_content);
        if !text.is_empty() {
            reporter.emit(Event::Diff {
                host: host.to_owned(),
                text,
            });
        }
    }
    let status = if done.changed {
        TaskStatus::Changed
    } else {
        TaskStatus::Ok
    };
    Ran {
        status,
        detail: changes,
        done: Some(done),
        result,
    }
}

/// The result a task registers: `changed`, `failed`, `rc` (exec), and the op's own result
/// fields (`stat` for file.stat; `changes`, `before`, ... for the others).
fn result_of(op: &Op, done: &Done) -> DataMap {
    let mut r = DataMap::new();
    r.insert("changed".into(), Data::Bool(done.changed));
    r.insert("failed".into(), Data::Bool(done.status != Status::Ok));
    if let Some(code) = done.exit_code {
        r.insert("rc".into(), Data::Int(i64::from(code)));
    }
    if let Some(Data::Map(fields)) = done.result.as_ref().map(Data::from_json) {
        if matches!(op, Op::FileStat(_)) {
            let exists = fields
                .get("kind")
                .and_then(Data::as_str)
                .is_some_and(|k| k != "none");
            let mut stat = fields.clone();
            stat.insert("exists".into(), Data::Bool(exists));
            stat.insert(
                "isdir".into(),
                Data::Bool(fields.get("kind").and_then(Data::as_str) == Some("dir")),
            );
            stat.insert(
                "isreg".into(),
                Data::Bool(fields.get("kind").and_then(Data::as_str) == Some("file")),
            );
            r.insert("stat".into(), Data::Map(stat));
        } else {
            for (k, v) in fields {
                r.entry(k).or_insert(v);
            }
        }
    }
    r
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
