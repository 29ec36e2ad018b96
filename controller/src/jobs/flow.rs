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
use wisp_protocol::ops::Facts;

use super::apply::{ApplyOptions, Once, OnceTasks, Peers, Resume, Stop, Tally, TaskStatus, facts};
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
    (facts, net): (Option<&Facts>, Option<Data>),
    options: ApplyOptions,
) -> Arc<HostScope> {
    let vars: DataMap = target
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), Data::from_json(v)))
        .collect();
    let mut facts = facts
        .and_then(|f| serde_json::to_value(f).ok())
        .map(|v| Data::from_json(&v));
    if let (Some(Data::Map(f)), Some(net)) = (&mut facts, net) {
        f.insert("net".into(), net);
    }
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
    (compiled, once, peers, launch): (&Compiled, &OnceTasks, &Peers, &wisp_transports::Launch),
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
    let net = if plan.needs_net {
        Some(super::edit::net_facts(session).await?)
    } else {
        None
    };
    let scope = host_scope(plan, compiled, target, (facts.as_ref(), net), options);
    let resuming = resume.and_then(|r| r.hosts.get(host).map(|h| (r.run, h.clone())));
    let mut run = HostRun {
        session,
        engine: &compiled.engine,
        scope,
        options,
        host,
        reporter,
        interrupt,
        tally: Tally::default(),
        notified: BTreeSet::new(),
        handlers: &plan.handlers,
        resuming,
        once,
        launch,
        peers,
        delegates: Default::default(),
    };
    let ended = run.nodes(&plan.tasks, &Inherited::default()).await;
    for (_, other) in run.delegates.drain() {
        other.close(std::time::Duration::from_secs(5)).await;
    }
    if ended? == Flowed::Failed {
        return Ok(run.tally);
    }
    run.flush().await?;
    Ok(run.tally)
}

/// One host's run of a plan.
pub(super) struct HostRun<'a> {
    pub(super) session: &'a mut Session,
    pub(super) engine: &'a Engine,
    pub(super) scope: Arc<HostScope>,
    pub(super) options: ApplyOptions,
    pub(super) host: &'a str,
    pub(super) reporter: &'a Reporter,
    pub(super) interrupt: &'a mut watch::Receiver<Interrupt>,
    pub(super) tally: Tally,
    pub(super) notified: BTreeSet<String>,
    /// The plan's handlers, run when notified: at the end, or at a `flush_handlers` task.
    pub(super) handlers: &'a [Task],
    /// A resumed host: the run retried, the line it failed at, the lines that had changed it.
    pub(super) resuming: Option<(i64, (usize, BTreeSet<usize>))>,
    /// The run's `run_once` tasks, shared by its hosts.
    pub(super) once: &'a OnceTasks,
    /// How runners start (for a `delegate_to` session).
    pub(super) launch: &'a wisp_transports::Launch,
    /// The run's other hosts, by name, for `delegate_to`.
    pub(super) peers: &'a Peers,
    /// The sessions `delegate_to` tasks run in (`localhost`, or a host's name), each opened
    /// the first time a task is delegated there.
    pub(super) delegates: std::collections::HashMap<String, Session>,
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

    /// The handlers notified so far, each once, in the order they are declared.
    async fn flush(&mut self) -> Result<Flowed, Stop> {
        let notified = std::mem::take(&mut self.notified);
        let handlers = self.handlers;
        for handler in handlers.iter().filter(|h| notified.contains(&h.name)) {
            let node = Node::Task(Box::new(handler.clone()));
            let ended = self
                .nodes(std::slice::from_ref(&node), &Inherited::default())
                .await?;
            if ended == Flowed::Failed {
                return Ok(Flowed::Failed);
            }
        }
        Ok(Flowed::Continue)
    }

    /// One task: once, or once per loop item; its result registered; its handlers notified
    /// when it changed the host.
    async fn task(&mut self, t: &Task, inherited: &Inherited) -> Result<Flowed, Stop> {
        if self.carried(t) {
            return Ok(Flowed::Continue);
        }
        if t.op == "flush_handlers" {
            return Box::pin(self.flush()).await;
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
        let (status, registered) = if t.flow.run_once {
            self.once(t, inherited).await?
        } else {
            self.items(t, inherited).await?
        };
        if let Some(name) = &t.flow.register {
            self.scope.register(name, registered.to_value());
        }
        count(&mut self.tally, status, ignore);
        if status == TaskStatus::Changed {
            self.notified.extend(t.notify.iter().cloned());
        }
        Ok(self.after(status, ignore))
    }

    /// The task's items, each run and recorded: its status, and what it registers.
    async fn items(&mut self, t: &Task, inherited: &Inherited) -> Result<(TaskStatus, Data), Stop> {
        let check = self.options.check;
        let task_vars = wisp_plan::expand::task_vars(&inherited.vars, t);
        let items = match wisp_plan::expand::loop_items(self.engine, &self.scope, t, &task_vars) {
            Ok(items) => items,
            Err(e) => {
                let ran = Ran::without_running(TaskStatus::Failed, format!("loop: {e}"));
                let status = (TaskStatus::Failed, ran.detail.as_str(), None);
                record(self.reporter, self.host, (t, None), check, status);
                return Ok((TaskStatus::Failed, Data::Map(ran.result)));
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
            record(
                self.reporter,
                self.host,
                (t, item.label.as_deref()),
                check && t.flow.check_mode != Some(false),
                (ran.status, &ran.detail, ran.done.as_ref()),
            );
            statuses.push(ran.status);
            results.push(Data::Map(ran.result));
        }
        let status = overall(&statuses, looped);
        let registered = if looped {
            let mut all = DataMap::new();
            all.insert("changed".into(), Data::Bool(status == TaskStatus::Changed));
            all.insert("failed".into(), Data::Bool(status == TaskStatus::Failed));
            all.insert("skipped".into(), Data::Bool(status == TaskStatus::Skipped));
            all.insert("results".into(), Data::List(results));
            Data::Map(all)
        } else {
            results.pop().unwrap_or(Data::Null)
        };
        Ok((status, registered))
    }

    /// `run_once`: the first host to reach the task runs it; every other host waits for
    /// that and takes its status and result as its own (a host that is lost while running
    /// it leaves it to the next one).
    async fn once(&mut self, t: &Task, inherited: &Inherited) -> Result<(TaskStatus, Data), Stop> {
        let cell = self.once.cell(t);
        let mut ran_here = false;
        let shared = cell
            .get_or_try_init(|| async {
                ran_here = true;
                let (status, registered) = self.items(t, inherited).await?;
                Ok::<_, Stop>(Once {
                    host: self.host.to_owned(),
                    status,
                    registered,
                })
            })
            .await?;
        if !ran_here {
            let detail = format!("run once, on {}", shared.host);
            let check = self.options.check;
            record(
                self.reporter,
                self.host,
                (t, None),
                check,
                (shared.status, &detail, None),
            );
        }
        Ok((shared.status, shared.registered.clone()))
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
        let delegated = match self.delegated(t, frame).await {
            Ok(d) => d,
            Err(ran) => return Ok(*ran),
        };
        let delegated = delegated.as_deref();
        if let Some(ran) = self.creates_or_removes(t, frame, delegated).await? {
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
            let session: &mut Session = match delegated.and_then(|k| self.delegates.get_mut(k)) {
                Some(other) => other,
                None => &mut *self.session,
            };
            let arch = session.ready().arch.clone();
            let modes = (check, self.options.diff);
            let (host, reporter) = (self.host, self.reporter);
            let ran = send(
                session,
                t,
                self.engine,
                frame,
                &arch,
                modes,
                (host, reporter),
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
}

/// Sends the op of `t` (an account, an edit, or a runner op) and follows it to its end.
#[allow(clippy::too_many_arguments)] // run_op's context, passed on
async fn send(
    session: &mut Session,
    t: &Task,
    engine: &Engine,
    frame: &Value,
    arch: &str,
    modes: (bool, bool),
    (host, reporter): (&str, &Reporter),
    interrupt: &mut watch::Receiver<Interrupt>,
) -> Result<Ran, Stop> {
    let op = t.op.as_str();
    if wisp_plan::edit::account::ACCOUNT_OPS.contains(&op) {
        super::account::run_account(
            session, t, engine, frame, arch, modes, host, reporter, interrupt,
        )
        .await
    } else if op == wisp_plan::edit::cron::CRON {
        super::cron::run_cron(
            session, t, engine, frame, arch, modes, host, reporter, interrupt,
        )
        .await
    } else if wisp_plan::edit::EDIT_OPS.contains(&op) {
        super::edit::run_edit(
            session, t, engine, frame, arch, modes, host, reporter, interrupt,
        )
        .await
    } else {
        run_op(
            session, t, engine, frame, arch, modes, host, reporter, interrupt,
        )
        .await
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
