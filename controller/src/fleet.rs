//! Fan-out: one piece of work per target, at most `--forks` at once, results in target order.
//! Hosts still waiting for a slot when Ctrl-C comes never start.
//!
//! What this module does not know: what the work is (jobs hand it a closure), how a host is
//! reached (a target carries its transport), or what the operator sees beyond the progress
//! count.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wisp_transports::Transport;

use crate::interrupt::Interrupt;
use crate::report::{HostOutcome, HostResult, Reporter};

/// A host to run on and the way to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name shown in output.
    pub name: String,
    /// How to reach it.
    pub transport: Arc<dyn Transport>,
    /// Its inventory vars (templates' `host.VAR`).
    pub vars: crate::inventory::Vars,
}

/// Runs `work` for every target concurrently, at most `forks` at once; returns the results in
/// target order.
pub async fn run<W, F>(
    targets: Vec<Target>,
    forks: usize,
    reporter: Arc<Reporter>,
    interrupt: watch::Receiver<Interrupt>,
    work: W,
) -> Vec<HostResult>
where
    W: Fn(Target, watch::Receiver<Interrupt>) -> F,
    F: Future<Output = HostResult> + Send + 'static,
{
    let forks = Arc::new(tokio::sync::Semaphore::new(forks.max(1)));
    let mut tasks = Vec::new();
    for target in targets {
        let (reporter, mut interrupt) = (Arc::clone(&reporter), interrupt.clone());
        let name = target.name.clone();
        let key = name.clone();
        let forks = Arc::clone(&forks);
        let host_work = work(target, interrupt.clone());
        let task = tokio::spawn(async move {
            let permit = tokio::select! {
                p = forks.acquire_owned() => p.ok(),
                _ = interrupt.wait_for(|i| *i >= Interrupt::Cancel) => None,
            };
            let Some(_permit) = permit else {
                let result = HostResult::new(&name, HostOutcome::Interrupted, "not started");
                reporter.journal_host(&result);
                return result;
            };
            let result = host_work.await;
            reporter.host_finished(&result);
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
            reporter.journal_host(&result);
            result
        }));
    }
    results
}
