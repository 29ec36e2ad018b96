//! `cron` on a host: a file of `/etc/cron.d` read and written as an edit is (only over the
//! file read), or a user's crontab read with `crontab -l` and installed with `crontab -`;
//! the new text computed by [`wisp_plan::edit::cron`] either way.

use tokio::sync::watch;
use wisp_events::interrupt::Interrupt;
use wisp_plan::edit::cron::{CronArgs, cron};
use wisp_plan::{Content, Data, Engine, Task};

use super::apply::{Stop, TaskStatus};
use super::edit::{capture, read, rendered_args};
use super::op::{Ran, run_op};
use crate::report::Reporter;
use crate::session::Session;

/// The crontab as it is (`None`: there is none), with the stamp of a `cron_file`.
async fn current(
    session: &mut Session,
    a: &CronArgs,
) -> Result<Result<(Option<Vec<u8>>, Option<String>), String>, Stop> {
    Ok(Ok(match &a.cron_file {
        Some(path) => match read(session, path).await? {
            Ok((bytes, stamp)) => (bytes, Some(stamp)),
            Err(e) => return Ok(Err(e)),
        },
        None => {
            let user = a.user.iter().flat_map(|u| ["-u".to_owned(), u.clone()]);
            let argv = ["crontab".to_owned()]
                .into_iter()
                .chain(user)
                .chain(["-l".to_owned()])
                .collect();
            match capture(session, argv).await? {
                Ok((0, out)) => (Some(out), None),
                // `crontab -l` exits 1 when the user has none.
                Ok((1, _)) => (None, None),
                Ok((code, _)) => return Ok(Err(format!("Unable to read crontab (exit {code})"))),
                Err(e) => return Ok(Err(e)),
            }
        }
    }))
}

/// Runs the cron `task` on the host, rendered in `frame`.
#[allow(clippy::too_many_arguments)] // run_op's context, passed on
pub(super) async fn run_cron(
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
    let a = match rendered_args(task, engine, frame).and_then(|args| CronArgs::parse(&args)) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let user = a.user.iter().flat_map(|u| ["-u".to_owned(), u.clone()]);
    let mut next = task.clone();
    next.stdin = None;
    let (existing, stamp) = match current(session, &a).await? {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let text = existing.as_deref().map(String::from_utf8_lossy);
    let change = cron(text.as_deref(), &a);
    let mut result = wisp_plan::DataMap::new();
    if let Some(f) = &a.cron_file {
        result.insert("cron_file".into(), Data::Str(f.clone()));
    }
    if change.remove_file {
        next.op = "file.absent".into();
        next.args = [(
            "path".to_owned(),
            Data::Str(a.cron_file.unwrap_or_default()),
        )]
        .into_iter()
        .collect();
        next.content = None;
    } else if let Some(new) = change.new {
        match (&a.cron_file, stamp) {
            (Some(path), Some(stamp)) => {
                next.op = "file.write".into();
                next.args = [
                    ("path".to_owned(), Data::Str(path.clone())),
                    ("if_stamp".to_owned(), Data::Str(stamp)),
                ]
                .into_iter()
                .collect();
                if existing.is_none() {
                    next.args.insert("mode".into(), Data::Str("0644".into()));
                }
            }
            _ if check => {
                let mut ran = Ran::without_running(
                    TaskStatus::Changed,
                    "would install the new crontab".into(),
                );
                ran.result.insert("changed".into(), Data::Bool(true));
                return Ok(ran);
            }
            _ => {
                let argv = ["crontab".to_owned()]
                    .into_iter()
                    .chain(user)
                    .chain(["-".to_owned()]);
                next.op = "exec".into();
                next.args = [("argv".to_owned(), Data::List(argv.map(Data::Str).collect()))]
                    .into_iter()
                    .collect();
            }
        }
        next.content = Some(Content::File(new.into_bytes()));
    } else {
        let mut ran = Ran::without_running(TaskStatus::Ok, String::new());
        ran.result.extend(result);
        return Ok(ran);
    }
    let mut ran = run_op(
        session,
        &next,
        engine,
        frame,
        arch,
        (check, diff),
        host,
        reporter,
        interrupt,
    )
    .await?;
    if ran.status == TaskStatus::Ok && next.op == "exec" {
        ran.status = TaskStatus::Changed;
    }
    ran.result.extend(result);
    Ok(ran)
}
