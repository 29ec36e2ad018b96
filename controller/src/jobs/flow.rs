//! One host's walk through a plan: blocks (with `rescue` and `always`), conditions, loops,
//! `register`, `set_fact`, `until`/`retries`, `changed_when`/`failed_when`,
//! `creates`/`removes`, `check_mode`, and the ops the controller answers itself (`set_fact`,
//! `debug`, `assert`, `fail`). Each op that reaches the host goes through
//! [`super::apply::run_op`].

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use minijinja::value::Value;
use tokio::sync::watch;
use wisp_plan::scope::HostScope;
use wisp_plan::{Block, Compiled, Data, DataMap, Engine, Node, Plan, Task};
use wisp_protocol::ops::{Facts, Op, PathArgs};

use super::apply::{ApplyOptions, Resume, Stop, Tally, TaskStatus, facts};
use super::op::{Ran, carried_over, count, record, run_op};
use super::task::{Targeted, targeted};
use crate::fleet::Target;
use crate::report::Reporter;
use crate::session::Session;
use wisp_events::interrupt::Interrupt;

/// What a block gives the tasks inside it.
#[derive(Debug, Default, Clone)]
pub(super) struct Inherited {
    when: Vec<String>,
    vars: DataMap,
    ignore_errors: bool,
}

impl Inherited {
    fn within(&self, flow: &wisp_plan::Flow) -> Inherited {
        let mut vars = self.vars.clone();
        vars.extend(flow.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        Inherited {
            when: self.when.iter().chain(&flow.when).cloned().collect(),
            vars,
            ignore_errors: self.ignore_errors || flow.ignore_errors,
        }
    }
}

/// Whether a list of tasks ran to its end, or a failure stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flowed {
    Continue,
    Failed,
}

/// The vars one host's templates see (see [`wisp_plan::Compiled::host_scope`]).
pub(super) fn host_scope(
    plan: &Plan,
    compiled: &Compiled,
    target: &Target,
    facts: Option<&Facts>,
    options: ApplyOptions,
) -> Arc<HostScope> {
    let vars: DataMap = target
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), Data::Str(v.clone())))
        .collect();
    let facts = facts
        .and_then(|f| serde_json::to_value(f).ok())
        .map(|v| Data::from_json(&v));
    compiled.host_scope(
        plan,
        wisp_plan::HostInfo {
            name: &target.name,
            vars: &vars,
            facts: facts.as_ref(),
            check: options.check,
            diff: options.diff,
        },
    )
}

/// Runs the plan on one host. `Ok` with the tally when every task ran (or a failure stopped
/// the host, counted as failed); `Err` when the host could not be finished.
#[allow(clippy::too_many_arguments)] // one host's whole context; a struct would only rename it
pub(super) async fn run_on_host(
    session: &mut Session,
    plan: &Plan,
    compiled: &Compiled,
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
    let scope = host_scope(plan, compiled, target, facts.as_ref(), options);
    let arch = session.ready().arch.clone();
    let resuming = resume.and_then(|r| r.hosts.get(host).map(|h| (r.run, h.clone())));
    let mut run = HostRun {
        session,
        engine: &compiled.engine,
        scope,
        arch,
        options,
        host,
        reporter,
        interrupt,
        tally: Tally::default(),
        notified: BTreeSet::new(),
        resuming,
    };
    let ended = run.nodes(&plan.tasks, &Inherited::default()).await?;
    if ended == Flowed::Failed {
        return Ok(run.tally);
    }
    let notified = std::mem::take(&mut run.notified);
    for handler in plan.handlers.iter().filter(|h| notified.contains(&h.name)) {
        let node = Node::Task(Box::new(handler.clone()));
        let ended = run
            .nodes(std::slice::from_ref(&node), &Inherited::default())
            .await?;
        if ended == Flowed::Failed {
            break;
        }
    }
    Ok(run.tally)
}

/// One host's run of a plan.
pub(super) struct HostRun<'a> {
    pub(super) session: &'a mut Session,
    pub(super) engine: &'a Engine,
    pub(super) scope: Arc<HostScope>,
    pub(super) arch: String,
    pub(super) options: ApplyOptions,
    pub(super) host: &'a str,
    pub(super) reporter: &'a Reporter,
    pub(super) interrupt: &'a mut watch::Receiver<Interrupt>,
    pub(super) tally: Tally,
    pub(super) notified: BTreeSet<String>,
    /// A resumed host: the run retried, the line it failed at, the lines that had changed it.
    pub(super) resuming: Option<(i64, (usize, BTreeSet<usize>))>,
}

type Step<'s> = Pin<Box<dyn Future<Output = Result<Flowed, Stop>> + Send + 's>>;

impl HostRun<'_> {
    /// Runs a list of tasks in order; stops at a failure that is not ignored.
    pub(super) fn nodes<'s>(&'s mut self, nodes: &'s [Node], inherited: &'s Inherited) -> Step<'s> {
        Box::pin(async move {
            for n in nodes {
                let ended = match n {
                    Node::Task(t) => self.task(t, inherited).await?,
                    Node::Block(b) => self.block(b, inherited).await?,
                };
                if ended == Flowed::Failed {
                    return Ok(Flowed::Failed);
                }
            }
            Ok(Flowed::Continue)
        })
    }

    /// A block: its tasks; on a failure, its `rescue` (which clears the failure when it ends
    /// well); then its `always`, whatever happened.
    async fn block(&mut self, b: &Block, inherited: &Inherited) -> Result<Flowed, Stop> {
        let inner = inherited.within(&b.flow);
        let failed_before = self.tally.failed;
        let mut ended = self.nodes(&b.body, &inner).await?;
        if ended == Flowed::Failed && !b.rescue.is_empty() {
            let rescued = self.tally.failed - failed_before;
            ended = self.nodes(&b.rescue, &inner).await?;
            if ended == Flowed::Continue {
                self.tally.failed -= rescued;
                self.tally.rescued += rescued;
            }
        }
        if !b.always.is_empty() && self.nodes(&b.always, &inner).await? == Flowed::Failed {
            ended = Flowed::Failed;
        }
        Ok(ended)
    }

    /// A resumed host passes the tasks before the one it failed at: recorded as done in the
    /// run retried. `true` when `t` is one of them.
    fn carried(&mut self, t: &Task) -> bool {
        let Some((run, (from_line, changed))) = &self.resuming else {
            return false;
        };
        if t.line == *from_line {
            self.resuming = None;
            return false;
        }
        let changed = changed.contains(&t.line);
        carried_over(t, self.host, *run, changed, self.reporter);
        self.tally.skipped += 1;
        if changed {
            self.notified.extend(t.notify.iter().cloned());
        }
        true
    }

    /// One task: once, or once per loop item; its result registered; its handlers notified
    /// when it changed the host.
    async fn task(&mut self, t: &Task, inherited: &Inherited) -> Result<Flowed, Stop> {
        if self.carried(t) {
            return Ok(Flowed::Continue);
        }
        let ignore = inherited.ignore_errors || t.flow.ignore_errors;
        let check = self.options.check;
        let skipped = match targeted(t, self.host) {
            Targeted::Run => None,
            Targeted::Skip(why) => Some((TaskStatus::Skipped, why)),
            Targeted::Unresolved(why) => Some((TaskStatus::Failed, why)),
        };
        if let Some((status, why)) = skipped {
            record(
                self.reporter,
                self.host,
                (t, None),
                check,
                (status, &why, None),
            );
            count(&mut self.tally, status, ignore);
            return Ok(self.after(status, ignore));
        }
        let task_vars = wisp_plan::expand::task_vars(&inherited.vars, t);
        let items = match wisp_plan::expand::loop_items(self.engine, &self.scope, t, &task_vars) {
            Ok(items) => items,
            Err(e) => {
                let why = format!("loop: {e}");
                record(
                    self.reporter,
                    self.host,
                    (t, None),
                    check,
                    (TaskStatus::Failed, &why, None),
                );
                count(&mut self.tally, TaskStatus::Failed, ignore);
                return Ok(self.after(TaskStatus::Failed, ignore));
            }
        };
        let looped = t.flow.loop_over.is_some();
        let mut results = Vec::new();
        let mut statuses = Vec::new();
        for item in items {
            let frame = self
                .scope
                .frame(Arc::clone(&task_vars), Arc::clone(&item.vars));
            let ran = self.one(t, &inherited.when, &frame).await?;
            let done = ran.done.as_ref();
            record(
                self.reporter,
                self.host,
                (t, item.label.as_deref()),
                check && t.flow.check_mode != Some(false),
                (ran.status, &ran.detail, done),
            );
            statuses.push(ran.status);
            results.push(Data::Map(ran.result));
        }
        let status = overall(&statuses, looped);
        if let Some(name) = &t.flow.register {
            let value = if looped {
                let mut all = DataMap::new();
                all.insert("changed".into(), Data::Bool(status == TaskStatus::Changed));
                all.insert("failed".into(), Data::Bool(status == TaskStatus::Failed));
                all.insert("skipped".into(), Data::Bool(status == TaskStatus::Skipped));
                all.insert("results".into(), Data::List(results));
                Data::Map(all)
            } else {
                results.pop().unwrap_or(Data::Null)
            };
            self.scope.register(name, value.to_value());
        }
        count(&mut self.tally, status, ignore);
        if status == TaskStatus::Changed {
            self.notified.extend(t.notify.iter().cloned());
        }
        Ok(self.after(status, ignore))
    }

    fn after(&self, status: TaskStatus, ignore: bool) -> Flowed {
        if status == TaskStatus::Failed && !ignore {
            Flowed::Failed
        } else {
            Flowed::Continue
        }
    }

    /// The task once, in `frame`: its conditions, then the op (again, while `until` does not
    /// hold), then `changed_when` and `failed_when`.
    async fn one(
        &mut self,
        t: &Task,
        inherited_when: &[String],
        frame: &Value,
    ) -> Result<Ran, Stop> {
        for c in inherited_when.iter().chain(&t.flow.when) {
            match self.engine.condition(c, frame) {
                Ok(true) => {}
                Ok(false) => {
                    return Ok(Ran::without_running(
                        TaskStatus::Skipped,
                        format!("when: {c}"),
                    ));
                }
                Err(e) => {
                    return Ok(Ran::without_running(
                        TaskStatus::Failed,
                        format!("when: {e}"),
                    ));
                }
            }
        }
        if wisp_plan::CONTROLLER_OPS.contains(&t.op.as_str()) {
            return Ok(super::local::answer(self.engine, &self.scope, t, frame));
        }
        if let Some(ran) = self.creates_or_removes(t, frame).await? {
            return Ok(ran);
        }
        let check = t.flow.check_mode.unwrap_or(self.options.check);
        // An exec with `creates` or `removes` knows it would run: check mode says so (as
        // Ansible's command module does) rather than skip it.
        if check && (t.flow.creates.is_some() || t.flow.removes.is_some()) {
            let mut ran = Ran::without_running(TaskStatus::Changed, "would run".into());
            ran.result.insert("changed".into(), Data::Bool(true));
            return Ok(ran);
        }
        let attempts = if t.flow.until.is_empty() {
            1
        } else {
            t.flow.retries + 1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ran = run_op(
                self.session,
                t,
                self.engine,
                frame,
                &self.arch,
                (check, self.options.diff),
                self.host,
                self.reporter,
                self.interrupt,
            )
            .await?;
            let ran = self.judged(t, ran, frame);
            let done = ran.done.is_none()
                || attempt >= attempts
                || self.holds(&t.flow.until, t, &ran, frame);
            if done {
                return Ok(ran);
            }
            let pause = std::time::Duration::from_secs_f64(t.flow.delay_s.clamp(0.0, 3600.0));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = self.interrupt.changed() => return Err(Stop::Interrupted),
            }
        }
    }

    /// Whether every `until` condition holds for this result.
    fn holds(&self, until: &[String], t: &Task, ran: &Ran, frame: &Value) -> bool {
        if let Some(name) = &t.flow.register {
            self.scope
                .register(name, Data::Map(ran.result.clone()).to_value());
        }
        until
            .iter()
            .all(|c| self.engine.condition(c, frame).unwrap_or(false))
    }

    /// `changed_when` and `failed_when`, read with the result registered, over the op's own
    /// answer (an exec task is changed unless `changed_when` says otherwise).
    fn judged(&self, t: &Task, mut ran: Ran, frame: &Value) -> Ran {
        if ran.done.is_none() || (t.flow.changed_when.is_empty() && t.flow.failed_when.is_empty()) {
            return ran;
        }
        if let Some(name) = &t.flow.register {
            self.scope
                .register(name, Data::Map(ran.result.clone()).to_value());
        }
        let all = |conds: &[String]| -> Result<Option<bool>, String> {
            if conds.is_empty() {
                return Ok(None);
            }
            for c in conds {
                if !self.engine.condition(c, frame)? {
                    return Ok(Some(false));
                }
            }
            Ok(Some(true))
        };
        let failed = match all(&t.flow.failed_when) {
            Ok(f) => f,
            Err(e) => return Ran::without_running(TaskStatus::Failed, format!("failed_when: {e}")),
        };
        let changed = match all(&t.flow.changed_when) {
            Ok(c) => c,
            Err(e) => {
                return Ran::without_running(TaskStatus::Failed, format!("changed_when: {e}"));
            }
        };
        let was_failed = ran.status == TaskStatus::Failed;
        let is_failed = failed.unwrap_or(was_failed);
        let is_changed = changed.unwrap_or(ran.done.as_ref().is_some_and(|d| d.changed));
        ran.status = match (is_failed, is_changed) {
            (true, _) => TaskStatus::Failed,
            (false, true) => TaskStatus::Changed,
            (false, false) => TaskStatus::Ok,
        };
        if was_failed && !is_failed {
            ran.detail = format!("not failed (failed_when): {}", ran.detail);
        } else if is_failed && !was_failed {
            ran.detail = "failed_when holds".to_owned();
        }
        ran.result
            .insert("changed".into(), Data::Bool(is_changed && !is_failed));
        ran.result.insert("failed".into(), Data::Bool(is_failed));
        ran
    }

    /// `creates`/`removes`: an exec task that does not run because the path is (or is not)
    /// there.
    async fn creates_or_removes(&mut self, t: &Task, frame: &Value) -> Result<Option<Ran>, Stop> {
        for (key, path, skip_when_there) in [
            ("creates", &t.flow.creates, true),
            ("removes", &t.flow.removes, false),
        ] {
            let Some(path) = path else { continue };
            let path = match self.engine.render(path, frame) {
                Ok(p) => p,
                Err(e) => {
                    return Ok(Some(Ran::without_running(
                        TaskStatus::Failed,
                        format!("{key}: {e}"),
                    )));
                }
            };
            let stat = Op::FileStat(PathArgs { path: path.clone() });
            let there = super::op::stat_exists(self.session, &stat).await?;
            if there == Some(skip_when_there) {
                let why = if skip_when_there {
                    "exists"
                } else {
                    "does not exist"
                };
                let mut ran =
                    Ran::without_running(TaskStatus::Ok, format!("not run: {path} {why} ({key})"));
                ran.result.shift_remove("skipped");
                return Ok(Some(ran));
            }
        }
        Ok(None)
    }
}

/// A task's status from its items': failed if one failed, changed if one changed, skipped
/// if all were skipped, else ok.
fn overall(statuses: &[TaskStatus], looped: bool) -> TaskStatus {
    if statuses.contains(&TaskStatus::Failed) {
        TaskStatus::Failed
    } else if statuses.contains(&TaskStatus::Changed) {
        TaskStatus::Changed
    } else if statuses.iter().all(|s| *s == TaskStatus::Skipped) && (!statuses.is_empty() || looped)
    {
        TaskStatus::Skipped
    } else {
        TaskStatus::Ok
    }
}
