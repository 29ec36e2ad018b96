//! An edit on a host (`lineinfile`, `blockinfile`, `replace`): the file read with
//! `file.stat` (its content and stamp), the new content computed here, then written with
//! `file.write` (diff, check mode, mode and owner as for any file) only if the file is still
//! the one read: a change made on the host in between is never overwritten.

use tokio::sync::watch;
use wisp_events::interrupt::Interrupt;
use wisp_plan::edit::{Edit, MAX_EDIT};
use wisp_plan::{Content, Data, Engine, Task};
use wisp_protocol::message::{EventKind, Limits, Status};
use wisp_protocol::ops::{ExecArgs, FileStat, Op, PathArgs};

use super::apply::{Stop, TaskStatus};
use super::op::{Ran, run_op};
use crate::report::Reporter;
use crate::session::{CmdEvent, Session};

/// What `path` holds: its content (`None`: nothing there) and its stamp.
pub(super) async fn read(
    session: &mut Session,
    path: &str,
) -> Result<Result<(Option<Vec<u8>>, String), String>, Stop> {
    let op = Op::FileStat(PathArgs {
        path: path.to_owned(),
        read: Some(MAX_EDIT),
    });
    let id = session
        .start(&op, Limits::default(), &[])
        .await
        .map_err(|e| Stop::Lost(e.to_string()))?;
    match session.next_for(&id).await {
        Ok(CmdEvent::Done(done, data)) if done.status == Status::Ok => {
            let stat: FileStat = match done.result_as::<FileStat>() {
                Some(Ok(s)) => s,
                _ => return Ok(Err(format!("{path}: the runner's stat does not decode"))),
            };
            Ok(Ok(match stat.kind.as_str() {
                "none" => (None, stat.stamp),
                "file" => (Some(data), stat.stamp),
                other => return Ok(Err(format!("Path {path} is a {other}, not a file !"))),
            }))
        }
        Ok(CmdEvent::Refused(e)) => Ok(Err(e.message)),
        Ok(_) => Ok(Err(format!("{path}: the runner did not say what is there"))),
        Err(e) => Err(Stop::Lost(e.to_string())),
    }
}

/// Runs `argv` on the host for what it prints: its exit code and stdout.
pub(super) async fn capture(
    session: &mut Session,
    argv: Vec<String>,
) -> Result<Result<(i32, Vec<u8>), String>, Stop> {
    let op = Op::Exec(ExecArgs {
        argv: Some(argv),
        ..ExecArgs::default()
    });
    let id = session
        .start(&op, Limits::default(), &[])
        .await
        .map_err(|e| Stop::Lost(e.to_string()))?;
    let mut out = Vec::new();
    loop {
        match session.next_for(&id).await {
            Ok(CmdEvent::Output(EventKind::Stdout, bytes)) => out.extend(bytes),
            Ok(CmdEvent::Output(..)) => {}
            Ok(CmdEvent::Done(done, _)) => {
                return Ok(match done.exit_code {
                    Some(code) => Ok((code, out)),
                    None => Err(format!("{:?}", done.status)),
                });
            }
            Ok(CmdEvent::Refused(e)) => return Ok(Err(e.message)),
            Err(e) => return Err(Stop::Lost(e.to_string())),
        }
    }
}

/// The network facts (`ansible_default_ipv4`...), asked of the host's `ip`; none when it
/// has no `ip` or does not answer.
pub(super) async fn net_facts(session: &mut Session) -> Result<Data, Stop> {
    let argv = ["/bin/sh", "-c", wisp_plan::ansible::net::SCRIPT]
        .map(str::to_owned)
        .to_vec();
    let out = match capture(session, argv).await? {
        Ok((_, out)) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => String::new(),
    };
    Ok(Data::Map(wisp_plan::ansible::net::parse(&out)))
}

/// `task`'s args rendered for the host, as a table.
pub(super) fn rendered_args(
    task: &Task,
    engine: &Engine,
    frame: &minijinja::Value,
) -> Result<wisp_plan::DataMap, String> {
    match engine.data(&Data::Map(task.args.clone()), frame)? {
        Data::Map(a) => Ok(a),
        _ => Err("args did not render to a table".into()),
    }
}

/// Runs the edit `task` on the host, rendered in `frame`.
#[allow(clippy::too_many_arguments)] // run_op's context, passed on
pub(super) async fn run_edit(
    session: &mut Session,
    task: &Task,
    engine: &Engine,
    frame: &minijinja::Value,
    arch: &str,
    modes: (bool, bool),
    host: &str,
    reporter: &Reporter,
    interrupt: &mut watch::Receiver<Interrupt>,
) -> Result<Ran, Stop> {
    let fail = |e: String| Ok(Ran::without_running(TaskStatus::Failed, e));
    let args = match rendered_args(task, engine, frame) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let edit = match Edit::parse(&task.op, &args) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let (content, stamp) = match read(session, &edit.path).await? {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let (new, msg) = match edit.apply(content.as_deref()) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if content.is_none() && edit.removes() {
        let mut ran = Ran::without_running(TaskStatus::Ok, "file not present".into());
        ran.result
            .insert("msg".into(), Data::Str("file not present".into()));
        return Ok(ran);
    }
    // The write: the new content as bytes (never rendered again), only over the file read.
    let mut write = task.clone();
    write.op = "file.write".into();
    write.args = edit.write_args.clone();
    write
        .args
        .insert("path".into(), Data::Str(edit.path.clone()));
    write.args.insert("if_stamp".into(), Data::Str(stamp));
    if edit.create {
        write.args.insert("make_parents".into(), Data::Bool(true));
    }
    write.content = Some(Content::File(new));
    write.stdin = None;
    let mut ran = run_op(
        session, &write, engine, frame, arch, modes, host, reporter, interrupt,
    )
    .await?;
    if ran.status != TaskStatus::Failed {
        ran.result.insert("msg".into(), Data::Str(msg));
    }
    Ok(ran)
}
