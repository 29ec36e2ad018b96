//! `wisp retry`: a recorded run again, on the hosts of it that failed, were unreachable, were
//! interrupted or were never started; for a plan, optionally from each host's failed task.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::apply::{Mode, PlanOptions, load, run_loaded};
use super::options::RunOptions;
use super::run::{ExecOptions, exec_job};
use super::{execute, state_error, usage_error};
use crate::jobs::Job;
use crate::jobs::apply::Resume;
use wisp_events::exit::ExitStatus;
use wisp_plan::Plan;
use wisp_store::{RetrySource, Store, StoreError, TaskStep};

#[derive(Debug, Args)]
pub(super) struct RetryArgs {
    /// The run to retry: its number in `wisp history`, or `last`.
    #[arg(default_value = "last")]
    run: String,
    /// For a plan: start each host that failed at the task it failed at. The tasks before it
    /// are not run again (they are recorded as skipped, done in the retried run), and the
    /// handlers they notified still run. Refused when the plan changed since that run.
    #[arg(long)]
    from_failed_task: bool,
    #[command(flatten)]
    common: RunOptions,
    #[command(flatten)]
    plan: PlanOptions,
    #[command(flatten)]
    exec: ExecOptions,
    /// Retry a plan whose file changed since the run (by default a changed plan is refused:
    /// a retry runs what was recorded, not whatever the file holds now).
    #[arg(long)]
    plan_changed_ok: bool,
    /// For a `wisp run`: the command again (its arguments are never recorded, since they may
    /// hold secrets). Its program must be the one the run ran.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// `wisp retry`.
pub(super) fn main(mut a: RetryArgs) -> ExitStatus {
    let store = match own_store(&a.common) {
        Ok(s) => s,
        Err(status) => return status,
    };
    let source = match store.retry_source(&a.run) {
        Ok(s) => s,
        Err(e @ StoreError::NoRun { .. }) => {
            return usage_error(&wisp_protocol::error::chain(&e));
        }
        Err(e) => return state_error(&e),
    };
    let run = source.id;
    let command = source.run.command.clone();
    if source.hosts.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "wisp: every host of run {run} ended ok: nothing to retry"
        );
        return ExitStatus::Ok;
    }
    if !source.ended {
        let _ = writeln!(
            std::io::stderr(),
            "wisp: run {run} did not record its end (killed, or still going): retrying the \
             hosts without an ok result"
        );
    }
    if let Err(status) = carry_options(&source, &mut a.common) {
        return status;
    }
    let spec = match retried_hosts(&source, &a.common) {
        Ok(s) => s,
        Err(status) => return status,
    };
    a.common.retry_of = Some(run);
    if a.from_failed_task && command != "apply" {
        return usage_error(&format!(
            "--from-failed-task resumes a plan applied with `wisp apply`; run {run} was `wisp \
             {command}`: retry it whole"
        ));
    }
    match command.as_str() {
        "run" => retry_command(a, &source, &spec),
        "apply" | "drift" => {
            if !a.command.is_empty() {
                return usage_error(&format!(
                    "run {run} applied a plan; a retry of it takes no command"
                ));
            }
            retry_plan(&store, &source, a, &spec)
        }
        "facts" | "ping" => {
            let job = if command == "facts" {
                Job::Facts
            } else {
                Job::Ping
            };
            execute::fleet(a.common, &spec, None, |_| Ok(job))
        }
        other => usage_error(&format!(
            "run {run} was `wisp {other}`, which wisp cannot retry"
        )),
    }
}

/// The state store a retry reads, opened; only one this user made, since a retry takes a
/// plan path, an inventory and `--become` from it (open already refused one that another user
/// owns or can write).
fn own_store(common: &RunOptions) -> Result<Store, ExitStatus> {
    let Some(path) = common.state.path() else {
        return Err(usage_error(
            "wisp retry reads the run it retries from the state store, and there is none \
             (--no-state, or no HOME): name it with --state FILE",
        ));
    };
    let store = Store::open(&path).map_err(|e| state_error(&e))?;
    let me = nix::unistd::geteuid().as_raw();
    if let Some(creator) = store.creator_uid().filter(|uid| *uid != me) {
        return Err(usage_error(&format!(
            "state store {} was made by uid {creator}, not by you (uid {me}): wisp retry takes \
             plans, inventories and --become only from a store you made; run the plan again \
             with `wisp apply`",
            store.path().display()
        )));
    }
    Ok(store)
}

/// `wisp run` again: only with the same program (its arguments are not recorded, so they are
/// given again).
fn retry_command(a: RetryArgs, source: &RetrySource, spec: &str) -> ExitStatus {
    let run = source.id;
    let program = source.run.program.as_deref().unwrap_or("");
    match a.command.first() {
        None => {
            return usage_error(&format!(
                "run {run} ran `{program} ...`, whose arguments are not recorded: give the \
                 command again, as in `wisp retry {run} -- {program} ARGS`"
            ));
        }
        Some(p) if p != program => {
            return usage_error(&format!(
                "run {run} ran {program:?}, not {p:?}: retry it with the same command, or use \
                 `wisp run` for a new one"
            ));
        }
        Some(_) => {}
    }
    let output_dir = a.exec.output_dir.clone();
    match exec_job(a.exec, a.command) {
        Ok(job) => execute::fleet(a.common, spec, output_dir, |_| Ok(job)),
        Err(status) => status,
    }
}

/// The plan again, from its file: checked against the hash it had, each failed host resumed
/// at its failed task when asked.
fn retry_plan(store: &Store, source: &RetrySource, mut a: RetryArgs, spec: &str) -> ExitStatus {
    let run = source.id;
    let recorded = source.run.plan.clone().unwrap_or_default();
    let file = [&recorded.plan_file, &recorded.plan]
        .into_iter()
        .find(|f| !f.is_empty());
    let Some(file) = file.map(PathBuf::from) else {
        return usage_error(&format!("run {run} recorded no plan file"));
    };
    let plan = match load(&file, &a.plan) {
        Ok(p) => p,
        Err(status) => return status,
    };
    a.common.playbook_dir = Some(super::apply::plan_dir(&file));
    let changed = recorded.plan_hash != plan.hash;
    if changed && a.from_failed_task {
        return usage_error(&format!(
            "{} changed since run {run}: its tasks no longer match the ones recorded, so a host \
             cannot resume at its failed task; retry without --from-failed-task",
            file.display()
        ));
    }
    if changed && !a.plan_changed_ok {
        return usage_error(&format!(
            "{} changed since run {run} (SHA-256 {} then, {} now): a retry runs the plan that \
             was recorded; read the change, then pass --plan-changed-ok to retry with the plan \
             as it is now",
            file.display(),
            if recorded.plan_hash.is_empty() {
                "not recorded"
            } else {
                &recorded.plan_hash
            },
            plan.hash
        ));
    }
    if changed {
        let _ = writeln!(
            std::io::stderr(),
            "wisp: {} changed since run {run}: retrying with the plan as it is now \
             (--plan-changed-ok)",
            file.display()
        );
    }
    let resume = if a.from_failed_task {
        match resume(store, source, &plan) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => return state_error(&e),
        }
    } else {
        None
    };
    let mode = Mode {
        check: recorded.check,
        diff: recorded.diff,
        drift: source.run.command == "drift",
    };
    run_loaded(plan, spec, a.common, &a.plan, mode, resume)
}

/// Where each host that failed a task starts again.
fn resume(store: &Store, source: &RetrySource, plan: &Plan) -> Result<Resume, StoreError> {
    let mut out = Resume {
        run: source.id,
        ..Resume::default()
    };
    for (host, outcome) in &source.hosts {
        if outcome.as_deref() != Some("failed") {
            continue;
        }
        if let Some(point) = resume_point(&store.steps(source.id, host)?, plan) {
            out.hosts.insert(host.clone(), point);
        }
    }
    Ok(out)
}

/// The line of the first task that failed and stopped the host, and the lines of the tasks
/// before it that changed the host (in that run, or in one it carried over). `None` when no
/// task stopped it (it failed before its tasks, or was cut off): it starts from the top.
fn resume_point(steps: &[TaskStep], plan: &Plan) -> Option<(usize, BTreeSet<usize>)> {
    let mut changed = BTreeSet::new();
    for step in steps {
        let Some(line) = step.line.and_then(|l| usize::try_from(l).ok()) else {
            continue;
        };
        let ignored = plan
            .all_tasks()
            .iter()
            .any(|t| t.line == line && t.flow.ignore_errors);
        if step.status == "failed" && !ignored {
            return Some((line, changed));
        }
        if step.changed || step.done_in.is_some_and(|(_, c)| c) {
            changed.insert(line);
        }
    }
    None
}

/// What the retried run had that the hosts need again: its inventory (unless `-i` names
/// one) and becoming root.
fn carry_options(source: &RetrySource, common: &mut RunOptions) -> Result<(), ExitStatus> {
    if common.inventory.is_none() {
        common.inventory = source.run.inventory.as_deref().map(PathBuf::from);
    }
    if source.run.r#become && !common.become_root && !common.ask_become_pass {
        if source.run.become_pass {
            return Err(usage_error(&format!(
                "run {} became root with a sudo password: give --ask-become-pass again",
                source.id
            )));
        }
        common.become_root = true;
    }
    Ok(())
}

/// The targets for the hosts to retry: their names over the inventory, or, without one, the
/// retried run's own targets that name them.
fn retried_hosts(source: &RetrySource, common: &RunOptions) -> Result<String, ExitStatus> {
    let hosts = source.hosts.iter().map(|(h, _)| h.as_str());
    if common.inventory.is_some() {
        return Ok(hosts.collect::<Vec<_>>().join(","));
    }
    let names: BTreeSet<&str> = hosts.collect();
    let spec = source.run.targets.as_str();
    let kept: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|item| {
            wisp_inventory::hostlist::parse(item).is_ok_and(|t| names.contains(t.name.as_str()))
        })
        .collect();
    if kept.is_empty() {
        return Err(usage_error(&format!(
            "run {} named its hosts through an inventory that is not recorded: give it with -i FILE",
            source.id
        )));
    }
    Ok(kept.join(","))
}
