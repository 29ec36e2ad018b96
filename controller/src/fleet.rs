//! Fan-out: one piece of work per target, at most `--forks` at once, results in target order;
//! in batches, when the rollout asks for them, stopping before the next batch once the
//! failure budget is spent (see [`crate::rollout`]). Hosts still waiting for a slot or a batch
//! when Ctrl-C comes, or when the run stops, never start.
//!
//! What this module does not know: what the work is (jobs hand it a closure), how a host is
//! reached (a target carries its transport), or what the operator sees beyond the progress
//! count.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wisp_transports::Transport;

use crate::report::{Event, HostOutcome, HostResult, Reporter};
use crate::rollout::Rollout;
use wisp_events::interrupt::Interrupt;

/// A host to run on and the way to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name shown in output.
    pub name: String,
    /// How to reach it.
    pub transport: Arc<dyn Transport>,
    /// Its inventory vars (templates' `host.VAR`).
    pub vars: wisp_inventory::Vars,
    /// Where it is, for a remote host (what a worker on the bus is told); `None` for a local
    /// one.
    pub remote: Option<wisp_transports::remote::RemoteHost>,
}

/// What a fan-out did: every target's result, in target order, and why it stopped early.
#[derive(Debug)]
pub struct Fanned {
    /// One result per target.
    pub results: Vec<HostResult>,
    /// Why the run started no more hosts, when a budget or the canary stopped it.
    pub stopped: Option<String>,
}

/// Runs `work` for every target, batch after batch as `rollout` says, each batch concurrently
/// with at most `rollout.forks` at once.
pub async fn run<W, F>(
    targets: Vec<Target>,
    rollout: &Rollout,
    reporter: Arc<Reporter>,
    interrupt: watch::Receiver<Interrupt>,
    work: W,
) -> Fanned
where
    W: Fn(Target, watch::Receiver<Interrupt>) -> F,
    F: Future<Output = HostResult> + Send + 'static,
{
    let total = targets.len();
    let forks = Arc::new(tokio::sync::Semaphore::new(rollout.forks.max(1)));
    let mut results = Vec::with_capacity(total);
    let mut stopped = None;
    let mut left = targets.into_iter();
    let mut failed_total = 0;
    let batches = rollout.batches(total);
    let last = batches.len().saturating_sub(1);
    for (index, size) in batches.into_iter().enumerate() {
        let batch: Vec<Target> = left.by_ref().take(size).collect();
        if stopped.is_some() || *interrupt.borrow() >= Interrupt::Cancel {
            for t in batch {
                let (outcome, detail) = match &stopped {
                    Some(_) => (HostOutcome::NotStarted, "not started"),
                    None => (HostOutcome::Interrupted, "not started"),
                };
                let result = HostResult::new(&t.name, outcome, detail);
                reporter.emit(Event::host_ended(&result, false));
                results.push(result);
            }
            continue;
        }
        let done = run_batch(batch, &forks, &reporter, &interrupt, &work).await;
        let failed = done.iter().filter(|r| r.outcome.is_failure()).count();
        failed_total += failed;
        results.extend(done);
        // After the last batch there is nothing left to stop.
        if index < last {
            stopped = rollout.stop_after(index, failed, size, failed_total, total);
        }
        if let Some(why) = &stopped {
            reporter.emit(Event::Stopping { why: why.clone() });
        }
    }
    Fanned { results, stopped }
}

/// One batch: every target at once, at most `forks` running.
async fn run_batch<W, F>(
    targets: Vec<Target>,
    forks: &Arc<tokio::sync::Semaphore>,
    reporter: &Arc<Reporter>,
    interrupt: &watch::Receiver<Interrupt>,
    work: &W,
) -> Vec<HostResult>
where
    W: Fn(Target, watch::Receiver<Interrupt>) -> F,
    F: Future<Output = HostResult> + Send + 'static,
{
    let mut tasks = Vec::new();
    for target in targets {
        let (reporter, mut interrupt) = (Arc::clone(reporter), interrupt.clone());
        let name = target.name.clone();
        let key = name.clone();
        let forks = Arc::clone(forks);
        let host_work = work(target, interrupt.clone());
        let task = tokio::spawn(async move {
            let permit = tokio::select! {
                p = forks.acquire_owned() => p.ok(),
                _ = interrupt.wait_for(|i| *i >= Interrupt::Cancel) => None,
            };
            let Some(_permit) = permit else {
                let result = HostResult::new(&name, HostOutcome::Interrupted, "not started");
                reporter.emit(Event::host_ended(&result, false));
                return result;
            };
            let result = host_work.await;
            reporter.emit(Event::host_ended(&result, false));
            result
        });
        tasks.push((key, task));
    }
    let mut results = Vec::new();
    for (name, task) in tasks {
        results.push(task.await.unwrap_or_else(|e| {
            let result = HostResult {
                host: name,
                outcome: HostOutcome::Failed,
                detail: format!("internal error: {e}"),
                elapsed: Duration::ZERO,
                sandbox: None,
            };
            reporter.emit(Event::host_ended(&result, false));
            result
        }));
    }
    results
}
