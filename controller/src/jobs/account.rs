//! `user` and `group` on a host: `/etc/passwd` and `/etc/group` read, what differs found by
//! [`wisp_plan::edit::account`], the host's own `useradd`/`usermod`/`userdel` (or `group*`)
//! run for that only, and the files read again for what the account now is.

use tokio::sync::watch;
use wisp_events::interrupt::Interrupt;
use wisp_plan::edit::account::{ACCOUNT_FILES, account, after};
use wisp_plan::{Data, Engine, Task};

use super::apply::{Stop, TaskStatus};
use super::edit::{read, rendered_args};
use super::op::{Ran, run_op};
use crate::report::Reporter;
use crate::session::Session;

/// The two account files, as text.
async fn files(session: &mut Session) -> Result<Result<[String; 2], String>, Stop> {
    let mut out = [String::new(), String::new()];
    for (slot, path) in out.iter_mut().zip(ACCOUNT_FILES) {
        match read(session, path).await? {
            Ok((Some(bytes), _)) => *slot = String::from_utf8_lossy(&bytes).into_owned(),
            Ok((None, _)) => return Ok(Err(format!("{path} does not exist on this host"))),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(out))
}

/// Runs the account `task` on the host, rendered in `frame`.
#[allow(clippy::too_many_arguments)] // run_op's context, passed on
pub(super) async fn run_account(
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
    let fail = |e: String| Ok(Ran::without_running(TaskStatus::Failed, e));
    let args = match rendered_args(task, engine, frame) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let before = match files(session).await? {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let change = match account(&task.op, &args, [&before[0], &before[1]]) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let Some(argv) = change.argv else {
        let mut ran = Ran::without_running(TaskStatus::Ok, String::new());
        ran.result.extend(change.result);
        ran.result.insert("changed".into(), Data::Bool(false));
        return Ok(ran);
    };
    let shown = argv.join(" ");
    if check {
        let mut ran = Ran::without_running(TaskStatus::Changed, format!("would run {shown}"));
        ran.result.extend(change.result);
        ran.result.insert("changed".into(), Data::Bool(true));
        return Ok(ran);
    }
    // The command, as an exec task of its own (its output and status reported as any).
    let mut exec = task.clone();
    exec.op = "exec".into();
    exec.args = [(
        "argv".to_owned(),
        Data::List(argv.into_iter().map(Data::Str).collect()),
    )]
    .into_iter()
    .collect();
    exec.content = None;
    exec.stdin = None;
    let mut ran = run_op(
        session,
        &exec,
        engine,
        frame,
        arch,
        (false, diff),
        host,
        reporter,
        interrupt,
    )
    .await?;
    if ran.status == TaskStatus::Failed {
        return Ok(ran);
    }
    ran.status = TaskStatus::Changed;
    ran.detail = shown;
    let mut result = change.result;
    if let Ok(now) = files(session).await? {
        let name = args.get("name").and_then(Data::as_str).unwrap_or_default();
        after(&task.op, name, [&now[0], &now[1]], &mut result);
    }
    ran.result.extend(result);
    ran.result.insert("changed".into(), Data::Bool(true));
    Ok(ran)
}
