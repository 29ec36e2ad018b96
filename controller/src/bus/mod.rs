//! The jobs on the bus: the one place that knows both `wisp_bus` and the jobs. A job becomes
//! the work a signed item carries ([`work_of`]) on the controller, and the work becomes a job
//! again on the worker ([`job_of`]), run by the jobs of a local run ([`Jobs`]). A run through
//! the bus is the same fan-out as a local one, each host's part handed to
//! [`wisp_bus::dispatch::Dispatcher::host`] ([`run`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wisp_bus::dispatch::{Dispatch, Dispatcher};
use wisp_bus::item::{HostSpec, Item};
use wisp_bus::wire::{ApplySpec, PlanSpec, Work, ms};
use wisp_bus::worker::RunItem;
use wisp_events::interrupt::Interrupt;
use wisp_events::{Emit, Event, HostOutcome, HostResult, Sink};

use crate::fleet::{Fanned, Target};
use crate::jobs::Job;
use crate::jobs::apply::{ApplyOptions, Compiled};
use crate::report::Reporter;
use crate::rollout::Rollout;

/// The job as it travels; why not, for a job that reads this machine's files as it runs (a
/// seccomp file) or resumes a recorded run.
pub fn work_of(job: &Job) -> Result<Work, String> {
    Ok(match job {
        Job::Exec {
            per_arch: Some(_), ..
        } => {
            return Err(
                "a per-architecture seccomp file is read on this machine; with --nats give one \
                 compiled for the hosts' architecture"
                    .into(),
            );
        }
        Job::Exec { args, limits, .. } => Work::Exec {
            args: args.clone(),
            limits: limits.clone(),
        },
        Job::Facts => Work::Facts,
        Job::Ping => Work::Ping,
        Job::Plan {
            plan,
            options,
            resume,
            ..
        } => {
            if resume.is_some() {
                return Err("--from-failed-task does not combine with --nats yet".into());
            }
            Work::Plan {
                plan: Box::new(PlanSpec::from_plan(plan)?),
                options: ApplySpec {
                    check: options.check,
                    diff: options.diff,
                    drift: options.drift,
                    facts_ttl_ms: options.facts_ttl.map(ms),
                },
            }
        }
    })
}

/// The job to run on a worker, with the plan's secrets opened there.
pub fn job_of(work: Work, secrets: wisp_secrets::SecretValues) -> Result<Job, String> {
    Ok(match work {
        Work::Exec { args, limits } => Job::Exec {
            args,
            limits,
            per_arch: None,
        },
        Work::Facts => Job::Facts,
        Work::Ping => Job::Ping,
        Work::Plan { plan, options } => {
            let plan = plan.into_plan(secrets)?;
            let compiled = Compiled::new(&plan).map_err(|e| e.to_string())?;
            Job::Plan {
                plan: Arc::new(plan),
                compiled: Arc::new(compiled),
                once: Default::default(),
                // A worker knows only its item's host: delegate_to localhost, or to the host itself.
                peers: Default::default(),
                options: ApplyOptions {
                    check: options.check,
                    diff: options.diff,
                    drift: options.drift,
                    facts_ttl: options.facts_ttl_ms.map(Duration::from_millis),
                },
                resume: None,
            }
        }
    })
}

/// Runs every host's part through the workers, under the run's fan-out; results in target
/// order.
pub async fn run(
    d: Dispatch,
    targets: Vec<Target>,
    hosts: HashMap<String, (HostSpec, String)>,
    work: Work,
    rollout: &Rollout,
    reporter: Arc<Reporter>,
    interrupt: watch::Receiver<Interrupt>,
) -> Fanned {
    let emit: Arc<dyn Emit> = reporter.clone();
    let dispatcher = Dispatcher::start(d, hosts, work, emit, interrupt.clone()).await;
    let per_host = |target: Target, interrupt| dispatcher.host(target.name, interrupt);
    crate::fleet::run(targets, rollout, reporter, interrupt, per_host).await
}

/// Turns a host into a target this worker can reach (its own keys and known_hosts), with
/// `become_root` as the item asks.
pub type Reach = Arc<dyn Fn(&HostSpec, bool) -> Result<Target, String> + Send + Sync>;

/// A worker's jobs: how it reaches hosts and the runners it pushes (checked against its own
/// trusted keys when it started).
pub struct Jobs {
    /// The worker's name, in what it says about a host it could not start.
    pub worker: String,
    pub reach: Reach,
    pub runners: wisp_transports::RunnerBinaries,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl RunItem for Jobs {
    fn run(
        &self,
        item: &Item,
        secrets: wisp_secrets::SecretValues,
        sink: Sink,
        interrupt: watch::Receiver<Interrupt>,
    ) -> std::pin::Pin<Box<dyn Future<Output = HostResult> + Send>> {
        let name = item.host.name.clone();
        let refuse = |outcome, message: String| -> std::pin::Pin<Box<_>> {
            sink.pass(Event::unreachable(&name, &message));
            let result = HostResult::new(&name, outcome, &message);
            Box::pin(async move { result })
        };
        let target = match (self.reach)(&item.host, item.start.become_root) {
            Ok(t) => t,
            Err(e) => {
                return refuse(
                    HostOutcome::Unreachable,
                    format!("worker {}: {e}", self.worker),
                );
            }
        };
        // The reporter hides the secrets in the output streams too, before lines are cut.
        let reporter = Arc::new(Reporter::forwarding(sink.clone()).with_secrets(&secrets));
        let job = match job_of(item.work.clone(), secrets) {
            Ok(job) => job,
            Err(e) => {
                let why = format!("worker {}: the item's work does not read: {e}", self.worker);
                return refuse(HostOutcome::Failed, why);
            }
        };
        let launch = wisp_transports::Launch::new(
            self.runners.clone(),
            Duration::from_millis(item.start.ttl_ms),
            Duration::from_millis(item.start.connect_timeout_ms),
        );
        Box::pin(async move {
            let rollout = Rollout {
                forks: 1,
                ..Default::default()
            };
            let fanned = crate::jobs::run(
                vec![target],
                job,
                &launch,
                &rollout,
                crate::jobs::Keep::default(),
                reporter,
                interrupt,
            )
            .await;
            fanned
                .results
                .into_iter()
                .next()
                .unwrap_or_else(|| HostResult::new(&name, HostOutcome::Failed, "no result"))
        })
    }
}

#[cfg(test)]
mod tests;
