//! One plan task made ready for one host before anything is sent: its args rendered into
//! the typed op the runner will parse, its content or stdin, check mode, `--diff` and limits;
//! and, once it ran, the diff it shows.

use minijinja::value::Value;
use wisp_plan::{Content, Engine, Task};
use wisp_protocol::message::Limits;
use wisp_protocol::ops::Op;

/// A task ready to send: its op rendered for this host, its data and limits.
pub(super) struct Rendered<'a> {
    pub(super) op: Op,
    /// Its inline content or stdin (a `content_file` is read from disk as it is sent).
    pub(super) content: std::borrow::Cow<'a, [u8]>,
    pub(super) from_disk: Option<&'a wisp_plan::FileAt>,
    pub(super) limits: Limits,
    /// The file whose diff is shown, with `--diff`.
    pub(super) diff_path: Option<String>,
    /// `no_log`: no diff is shown.
    pub(super) no_log: bool,
}

/// What becomes of a task on a host before anything is sent.
pub(super) enum Before<'a> {
    Send(Box<Rendered<'a>>),
    Skip(String),
    Fail(String),
}

/// The task rendered in `frame`: its args into the typed op the runner will parse, its
/// content or stdin, check mode, `--diff` and limits.
pub(super) fn render_task<'a>(
    task: &'a Task,
    engine: &Engine,
    frame: &Value,
    arch: &str,
    (check, diff): (bool, bool),
) -> Before<'a> {
    // The plan was checked as far as it could be without a host; the rendered args are
    // checked again as the runner will parse them, into the typed op that goes on the wire.
    let args = match engine.data(&wisp_plan::Data::Map(task.args.clone()), frame) {
        Ok(wisp_plan::Data::Map(args)) => args,
        Ok(_) => return Before::Fail("args did not render to a table".into()),
        Err(e) => return Before::Fail(e),
    };
    let mut op = match wisp_plan::op_of(&task.op, &args) {
        Ok(op) => op,
        Err(e) => return Before::Fail(e),
    };
    // A content_file's bytes are the plan's own, shared by every host: never copied here.
    let template = match &task.content {
        Some(Content::Inline(text)) => Some(text),
        None => task.stdin.as_ref(),
        Some(Content::File(_) | Content::FileAt(_)) => None,
    };
    let content: std::borrow::Cow<'_, [u8]> = match (&task.content, template) {
        (Some(Content::File(bytes)), _) => bytes.as_slice().into(),
        (_, Some(text)) => match engine.render(text, frame) {
            Ok(t) => t.into_bytes().into(),
            Err(e) => return Before::Fail(e),
        },
        _ => Vec::new().into(),
    };
    if check && !op.set_check() {
        return Before::Skip("check mode".into());
    }
    let mut diff_path = None;
    if let Op::FileWrite(a) = &mut op
        && diff
    {
        a.diff = true;
        diff_path = Some(a.path.clone());
    }
    let limits = if matches!(op, Op::Exec(_)) {
        match task.limits.to_limits(arch) {
            Ok(l) => l,
            Err(e) => return Before::Fail(format!("limits: {e}")),
        }
    } else {
        Limits::default()
    };
    let from_disk = match &task.content {
        Some(Content::FileAt(f)) => Some(f),
        _ => None,
    };
    Before::Send(Box::new(Rendered {
        op,
        content,
        from_disk,
        limits,
        diff_path,
        no_log: task.flow.no_log,
    }))
}

/// The unified diff of a file task that changed its file: from nothing when it `created` it,
/// from what the runner sent back when it sent its `previous` content.
pub(super) fn diff_of(
    r: &Rendered<'_>,
    path: &str,
    previous: &[u8],
    created: bool,
    had_previous: bool,
) -> String {
    let old = String::from_utf8_lossy(previous);
    // A content_file is read again for its diff only when a diff can show it.
    let content: std::borrow::Cow<'_, [u8]> = match r.from_disk {
        Some(f) if f.len <= MAX_DIFF_FILE => f.load().unwrap_or_default().into(),
        _ => r.content.clone(),
    };
    let new = String::from_utf8_lossy(&content);
    if created {
        super::diff::unified("", &new, "/dev/null", path)
    } else if had_previous {
        super::diff::unified(&old, &new, path, path)
    } else {
        String::new()
    }
}

/// The largest `content_file` shown in a diff (the runner sends back old content up to the same
/// size).
const MAX_DIFF_FILE: u64 = 1 << 20;

/// Whether a task with `targets` runs on `host`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Targeted {
    Run,
    Skip(String),
    /// `targets` was never resolved to hosts: the task fails rather than run everywhere.
    Unresolved(String),
}

pub(super) fn targeted(task: &Task, host: &str) -> Targeted {
    match (&task.targets, &task.hosts) {
        (None, _) => Targeted::Run,
        (Some(_), Some(hosts)) if hosts.contains(host) => Targeted::Run,
        (Some(pattern), Some(_)) => Targeted::Skip(format!("targets: {pattern}")),
        (Some(pattern), None) => Targeted::Unresolved(format!(
            "targets: {pattern} was not resolved to hosts; the task does not run rather than run on every host"
        )),
    }
}

#[cfg(test)]
mod targeting_tests {
    use super::*;
    use wisp_plan::Plan;

    #[test]
    fn an_unresolved_pattern_fails_the_task_instead_of_running_everywhere() {
        let plan = Plan::parse(
            "[[task]]\nop = \"exec\"\nargv = [\"true\"]\ntargets = \"web*\"\n",
            std::path::Path::new("p.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut task = plan.all_tasks()[0].clone();
        assert!(matches!(targeted(&task, "web1"), Targeted::Unresolved(_)));
        task.hosts = Some(["web1".to_owned()].into());
        assert_eq!(targeted(&task, "web1"), Targeted::Run);
        assert_eq!(
            targeted(&task, "db1"),
            Targeted::Skip("targets: web*".into())
        );
    }
}
