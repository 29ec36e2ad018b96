//! `wisp apply`: a plan's tasks on one host, in order, over one runner session; then the
//! handlers that a changing task notified. Each task ends ok, changed, failed or skipped.
//!
//! What this module does not know: how the host was reached (it gets a session), other hosts.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tokio::sync::watch;
use wisp_protocol::message::{EventKind, Limits, Status};

use crate::fleet::{Interrupt, Target};
use crate::plan::{Content, Context, Plan, Task, condition, render, render_json};
use crate::report::{LineSplitter, Reporter};
use crate::session::{CmdEvent, Session};

/// `--check` and `--diff`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Report what would change; change nothing (exec tasks are skipped).
    pub check: bool,
    /// Show a unified diff for each file whose content changes.
    pub diff: bool,
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

/// Runs the plan on one host. `Ok` with the tally when every task ran (or a failure stopped
/// the host, counted as failed); `Err` when the host could not be finished.
pub async fn run_on_host(
    session: &mut Session,
    plan: &Plan,
    options: ApplyOptions,
    target: &Target,
    reporter: &Reporter,
    interrupt: &mut watch::Receiver<Interrupt>,
) -> Result<Tally, Stop> {
    let host = target.name.as_str();
    let facts = if plan.needs_facts {
        let id = session
            .start("facts", json!({}), Limits::default(), Vec::new())
            .await
            .map_err(|e| Stop::Lost(e.to_string()))?;
        match session.next_for(&id).await {
            Ok(CmdEvent::Done(done, _)) => done.result,
            Ok(other) => return Err(Stop::Lost(format!("facts: {other:?}"))),
            Err(e) => return Err(Stop::Lost(e.to_string())),
        }
    } else {
        None
    };
    let ctx = Context::for_host(&plan.vars, host, &target.vars, facts.as_ref())
        .with_secrets(&plan.secrets);
    let arch = session.ready().arch.clone();
    let mut tally = Tally::default();
    let mut notified = BTreeSet::new();
    for task in &plan.tasks {
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

fn count(t: &mut Tally, s: TaskStatus, ignore_errors: bool) {
    match s {
        TaskStatus::Ok => t.ok += 1,
        TaskStatus::Changed => t.changed += 1,
        TaskStatus::Failed if ignore_errors => t.ignored += 1,
        TaskStatus::Failed => t.failed += 1,
        TaskStatus::Skipped => t.skipped += 1,
    }
}

/// Ops that take `check` (and change nothing with it).
fn checkable(op: &str) -> bool {
    ["file.write", "file.absent", "dir.ensure", "pkg.ensure"].contains(&op)
        || op.starts_with("service.")
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
    let record = |status: TaskStatus, detail: &str, done: Option<&wisp_protocol::message::Done>| {
        reporter.task(host, &task.name, status.label(), detail);
        reporter.journal().record(json!({
            "kind": "task", "host": host, "task": task.name, "op": task.op, "line": task.line,
            "status": status.label(), "detail": detail, "check": options.check,
            "duration_ms": done.map(|d| d.duration_ms),
            "enforcement": done.and_then(|d| d.enforcement.as_ref()),
        }));
        status
    };
    let report = |status: TaskStatus, detail: &str| record(status, detail, None);
    if let (Some(hosts), Some(pattern)) = (&task.hosts, &task.targets)
        && !hosts.contains(host)
    {
        return Ok(report(TaskStatus::Skipped, &format!("targets: {pattern}")));
    }
    let mut refs = Vec::new();
    if let Some(w) = &task.when {
        match condition(w, ctx, &mut refs) {
            Ok(true) => {}
            Ok(false) => return Ok(report(TaskStatus::Skipped, &format!("when: {w}"))),
            Err(e) => return Ok(report(TaskStatus::Failed, &format!("when: {e}"))),
        }
    }
    let mut args = match render_json(&task.args, ctx, &mut refs) {
        Ok(a) => a,
        Err(e) => return Ok(report(TaskStatus::Failed, &e)),
    };
    let content = match &task.content {
        Some(Content::Inline(text)) => match render(text, ctx, &mut refs) {
            Ok(t) => t.into_bytes(),
            Err(e) => return Ok(report(TaskStatus::Failed, &e)),
        },
        Some(Content::File(bytes)) => bytes.clone(),
        // An exec's stdin travels in the CMD's data section.
        None => match &task.stdin {
            Some(text) => match render(text, ctx, &mut refs) {
                Ok(t) => t.into_bytes(),
                Err(e) => return Ok(report(TaskStatus::Failed, &e)),
            },
            None => Vec::new(),
        },
    };
    if options.check {
        if checkable(&task.op) {
            args["check"] = Value::Bool(true);
        } else if task.op != "file.stat" {
            return Ok(report(TaskStatus::Skipped, "check mode"));
        }
    }
    let diff = options.diff && task.op == "file.write";
    if diff {
        args["diff"] = Value::Bool(true);
    }
    let limits = if task.op == "exec" {
        match task.limits.to_limits(arch) {
            Ok(l) => l,
            Err(e) => return Ok(report(TaskStatus::Failed, &format!("limits: {e}"))),
        }
    } else {
        Limits::default()
    };
    let id = match session
        .start(&task.op, args.clone(), limits, content.clone())
        .await
    {
        Ok(id) => id,
        Err(crate::session::SessionError::TooLarge(e)) => {
            return Ok(report(TaskStatus::Failed, &e));
        }
        Err(e) => return Err(Stop::Lost(e.to_string())),
    };
    let mut lines = [LineSplitter::default(), LineSplitter::default()];
    let mut cancelled = false;
    loop {
        let event = tokio::select! {
            ev = session.next_for(&id) => ev,
            _ = interrupt.changed() => {
                let level = *interrupt.borrow();
                if level == Interrupt::Disconnect {
                    return Err(Stop::Interrupted);
                }
                if level == Interrupt::Cancel && !cancelled {
                    cancelled = true;
                    let _ = session.cancel(&id).await;
                }
                continue;
            }
        };
        match event {
            Ok(CmdEvent::Output(stream, bytes)) => {
                let i = usize::from(stream == EventKind::Stderr);
                for line in lines[i].push(&bytes) {
                    reporter.line(host, stream, &line);
                }
            }
            Ok(CmdEvent::Done(done, previous)) => {
                for (i, stream) in [EventKind::Stdout, EventKind::Stderr]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(line) = lines[i].finish() {
                        reporter.line(host, stream, &line);
                    }
                }
                if cancelled {
                    return Err(Stop::Interrupted);
                }
                let changes = done
                    .result
                    .as_ref()
                    .and_then(|r| r.get("changes"))
                    .and_then(Value::as_array)
                    .map(|c| {
                        c.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                if done.status != Status::Ok {
                    let detail = crate::report::describe(&done);
                    return Ok(record(TaskStatus::Failed, &detail, Some(&done)));
                }
                if diff && done.changed {
                    let old = String::from_utf8_lossy(&previous);
                    let new = String::from_utf8_lossy(&content);
                    let path = args["path"].as_str().unwrap_or("");
                    let created = changes.contains("created");
                    let text = if created {
                        unified_diff("", &new, "/dev/null", path)
                    } else if done
                        .result
                        .as_ref()
                        .is_some_and(|r| r["previous_content"] == Value::Bool(true))
                    {
                        unified_diff(&old, &new, path, path)
                    } else {
                        String::new()
                    };
                    if !text.is_empty() {
                        reporter.diff(host, &text);
                    }
                }
                let changed =
                    done.changed && !(task.op == "exec" && task.changed_when == Some(false));
                let status = if changed {
                    TaskStatus::Changed
                } else {
                    TaskStatus::Ok
                };
                return Ok(record(status, &changes, Some(&done)));
            }
            Ok(CmdEvent::Refused(e)) => {
                return Ok(report(TaskStatus::Failed, &e.message));
            }
            Err(e) => return Err(Stop::Lost(e.to_string())),
        }
    }
}

/// A unified diff of two texts, three lines of context, `--- a` / `+++ b` headers.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence by dynamic programming; large files fall back to "all
    // removed, all added", which is still a correct diff.
    let ops: Vec<(char, &str)> = if a.len().saturating_mul(b.len()) > 4_000_000 {
        a.iter()
            .map(|l| ('-', *l))
            .chain(b.iter().map(|l| ('+', *l)))
            .collect()
    } else {
        let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i][j] = if a[i] == b[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        let (mut i, mut j, mut ops) = (0, 0, Vec::new());
        while i < a.len() || j < b.len() {
            if i < a.len() && j < b.len() && a[i] == b[j] {
                ops.push((' ', a[i]));
                i += 1;
                j += 1;
            } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
                // Removals before additions, as diff(1) prints them.
                ops.push(('-', a[i]));
                i += 1;
            } else {
                ops.push(('+', b[j]));
                j += 1;
            }
        }
        ops
    };
    if ops.iter().all(|(k, _)| *k == ' ') {
        return String::new();
    }
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| *k != ' ')
        .map(|(i, _)| i)
        .collect();
    let mut start = 0;
    while start < changed.len() {
        // A hunk: changes closer than twice the context join.
        let mut end = start;
        while end + 1 < changed.len() && changed[end + 1] - changed[end] <= 2 * CONTEXT {
            end += 1;
        }
        let from = changed[start].saturating_sub(CONTEXT);
        let to = (changed[end] + CONTEXT + 1).min(ops.len());
        let line_a = ops[..from].iter().filter(|(k, _)| *k != '+').count();
        let line_b = ops[..from].iter().filter(|(k, _)| *k != '-').count();
        let len_a = ops[from..to].iter().filter(|(k, _)| *k != '+').count();
        let len_b = ops[from..to].iter().filter(|(k, _)| *k != '-').count();
        let pos = |line: usize, len: usize| if len == 0 { line } else { line + 1 };
        out.push_str(&format!(
            "@@ -{},{len_a} +{},{len_b} @@\n",
            pos(line_a, len_a),
            pos(line_b, len_b)
        ));
        for (k, l) in &ops[from..to] {
            out.push(*k);
            out.push_str(l);
            out.push('\n');
        }
        start = end + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unified_diff_has_hunks_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\n";
        assert_eq!(
            unified_diff(old, new, "x", "x"),
            "--- x\n+++ x\n@@ -1,7 +1,7 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n@@ -8,3 +8,4 @@\n h\n i\n j\n+k\n"
        );
        assert_eq!(unified_diff("same\n", "same\n", "x", "x"), "");
        assert_eq!(
            unified_diff("", "new\n", "/dev/null", "f"),
            "--- /dev/null\n+++ f\n@@ -0,0 +1,1 @@\n+new\n"
        );
    }
}
