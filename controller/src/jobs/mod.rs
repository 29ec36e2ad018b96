//! Jobs: what a run does on each host (an exec, facts, ping, or a plan), from connecting to
//! saying goodbye. The fan-out over hosts is [`crate::fleet`]'s; one command's event loop is
//! `command`'s, shared by exec jobs and plan tasks.
//!
//! What this module does not know: the command line (cli builds a [`Job`]), how hosts are
//! reached (targets carry transports), how many run at once.

mod account;
pub mod apply;
mod command;
mod cron;
pub mod diff;
mod edit;
mod exec;
mod flow;
mod local;
mod op;
mod outcome;
mod output_files;
mod task;
pub mod warm;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use wisp_protocol::message::Limits;
use wisp_protocol::ops::ExecArgs;
use wisp_transports::{Launch, TransportError};

use crate::fleet::Target;
use crate::report::{Event, HostOutcome, HostResult, Reporter};
use crate::session::Session;
use wisp_events::interrupt::Interrupt;
use wisp_protocol::error::chain as error_chain;

/// Retries after a transient failure (connection dropped, or ERROR class `transient`).
const RETRIES: u32 = 2;

/// 200 ms, then 400 ms.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 << attempt.min(4))
}

/// How long a runner gets to answer EXIT before the controller stops waiting.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// What to do on each host.
#[derive(Debug, Clone)]
pub enum Job {
    /// Run a process.
    Exec {
        /// What to run.
        args: ExecArgs,
        /// Limits on it.
        limits: Box<Limits>,
        /// When the seccomp file depends on the host's architecture, the flags to build each
        /// host's limits from (after READY says what it is).
        per_arch: Option<Box<wisp_plan::limits::LimitArgs>>,
    },
    /// Collect facts.
    Facts,
    /// Start the runner, read READY, stop it.
    Ping,
    /// A plan's tasks, in one session per host.
    Plan {
        /// The plan, checked.
        plan: Arc<wisp_plan::Plan>,
        /// Its templates compiled, and the vars every host shares.
        compiled: Arc<apply::Compiled>,
        /// Its `run_once` tasks, shared by its hosts.
        once: Arc<apply::OnceTasks>,
        /// The run's hosts, for `delegate_to`.
        peers: Arc<apply::Peers>,
        /// `--check`, `--diff`.
        options: apply::ApplyOptions,
        /// Where each host starts, when retried from its failed task.
        resume: Option<Arc<apply::Resume>>,
    },
}

/// What a run keeps beyond its results: each host's output files, and its sessions.
#[derive(Debug, Clone, Default)]
pub struct Keep {
    /// Where each host's output goes, one file per stream (`--output-dir`).
    pub output_dir: Option<PathBuf>,
    /// Where sessions are taken from and parked after a command or facts (`wisp mcp`);
    /// `None`: every host's session is opened and closed by the run.
    pub warm: Option<Arc<warm::Warm>>,
}

/// Runs `job` on every target, at most `forks` at once; returns the results in target order.
pub async fn run(
    targets: Vec<Target>,
    job: Job,
    launch: &Launch,
    rollout: &crate::rollout::Rollout,
    keep: Keep,
    reporter: Arc<Reporter>,
    interrupt: watch::Receiver<Interrupt>,
) -> crate::fleet::Fanned {
    let job = Arc::new(job);
    let per_host = |target: Target, interrupt: watch::Receiver<Interrupt>| {
        let (job, reporter, keep) = (Arc::clone(&job), Arc::clone(&reporter), keep.clone());
        // Each host gets its own launch (and so its own nonce), sharing the handshake slots.
        let launch = launch.for_host();
        async move {
            let host = Host {
                target: &target,
                reporter: &reporter,
                started: Instant::now(),
            };
            host.run(&job, &launch, keep, interrupt).await
        }
    };
    crate::fleet::run(targets, rollout, Arc::clone(&reporter), interrupt, per_host).await
}

/// One host's run: its target, where it reports, when it started.
struct Host<'a> {
    target: &'a Target,
    reporter: &'a Reporter,
    started: Instant,
}

impl Host<'_> {
    fn name(&self) -> &str {
        &self.target.name
    }

    /// A result for this host, timed from its start.
    fn result(&self, outcome: HostOutcome, detail: impl Into<String>) -> HostResult {
        HostResult {
            host: self.name().to_owned(),
            outcome,
            detail: detail.into(),
            elapsed: self.started.elapsed(),
            sandbox: None,
        }
    }

    /// The host could not be reached or was lost: say why, with the runner's stderr.
    fn unreachable(&self, message: &str, detail: &str) -> HostResult {
        self.reporter.emit(Event::unreachable(self.name(), message));
        self.result(HostOutcome::Unreachable, detail)
    }

    async fn run(
        &self,
        job: &Job,
        launch: &Launch,
        keep: Keep,
        mut interrupt: watch::Receiver<Interrupt>,
    ) -> HostResult {
        // Only a command or facts reuse a session: a plan's become and facts are its own.
        let warm = keep
            .warm
            .filter(|_| matches!(job, Job::Exec { .. } | Job::Facts));
        // The host and where it is: an inventory that moved a host does not get its old session.
        let key = format!("{}\0{:?}", self.name(), self.target.remote);
        let taken = warm.as_ref().and_then(|w| w.take(&key));
        let (mut session, opened) = match taken {
            Some(s) => s,
            None => match self.connect(launch, &mut interrupt).await {
                Ok(s) => (s, Instant::now()),
                Err(r) => return r,
            },
        };
        let outcome = match job {
            Job::Ping => {
                self.reporter.emit(Event::Ping {
                    host: self.name().to_owned(),
                    ready: Box::new(session.ready().clone()),
                });
                self.result(HostOutcome::Ok, "pong")
            }
            Job::Plan {
                plan,
                compiled,
                once,
                peers,
                options,
                resume,
            } => {
                let ran = flow::run_on_host(
                    &mut session,
                    plan,
                    (compiled, once, peers, launch),
                    *options,
                    resume.as_deref(),
                    self.target,
                    self.reporter,
                    &mut interrupt,
                )
                .await;
                match ran {
                    Ok(tally) if tally.failed > 0 => {
                        self.result(HostOutcome::Failed, tally.to_string())
                    }
                    Ok(tally) => self.result(HostOutcome::Ok, tally.to_string()),
                    Err(apply::Stop::Interrupted) => {
                        self.result(HostOutcome::Interrupted, "interrupted")
                    }
                    Err(apply::Stop::Lost(e)) => {
                        let note = stderr_note(&session);
                        return self.unreachable(&format!("{e}{note}"), "connection lost");
                    }
                }
            }
            Job::Facts | Job::Exec { .. } => {
                match exec::run(
                    self,
                    &mut session,
                    job,
                    keep.output_dir.as_deref(),
                    &mut interrupt,
                )
                .await
                {
                    exec::Ran::Finished(r) => r,
                    exec::Ran::Lost(r) => return r,
                    exec::Ran::Disconnected => {
                        session.disconnect().await;
                        return self.result(
                            HostOutcome::Interrupted,
                            "disconnected before it answered the cancel",
                        );
                    }
                }
            }
        };
        if let Some(w) = warm
            && *interrupt.borrow() == Interrupt::None
        {
            w.put(key, session, opened).await;
            return outcome;
        }
        // Shut the runner down; a second Ctrl-C while it says goodbye cuts the wait short.
        tokio::select! {
            _ = session.close(EXIT_GRACE) => {}
            _ = interrupt.wait_for(|i| *i == Interrupt::Disconnect) => {}
        }
        outcome
    }

    /// Starts the runner. Transient failures (the host dropped the connection mid-handshake)
    /// are retried with backoff; anything else is final at once.
    async fn connect(
        &self,
        launch: &Launch,
        interrupt: &mut watch::Receiver<Interrupt>,
    ) -> Result<Session, HostResult> {
        let mut attempt = 0;
        loop {
            let opened = tokio::select! {
                s = Session::open(self.target.transport.as_ref(), launch) => s,
                _ = interrupt.wait_for(|i| *i >= Interrupt::Cancel) => {
                    return Err(self.result(HostOutcome::Interrupted, "interrupted while connecting"));
                }
            };
            match opened {
                Ok(s) => return Ok(s),
                Err(e) if e.is_transient() && attempt < RETRIES => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    let tries = if attempt > 0 {
                        format!(" (after {} attempts)", attempt + 1)
                    } else {
                        String::new()
                    };
                    let message = format!("{}{tries}", error_chain(&e));
                    if matches!(e, TransportError::CouldNotStart { .. }) {
                        self.reporter.emit(Event::CouldNotStart {
                            host: self.name().to_owned(),
                            message,
                        });
                        return Err(self.result(HostOutcome::CouldNotStart, "could not start"));
                    }
                    return Err(self.unreachable(&message, "unreachable"));
                }
            }
        }
    }
}

fn stderr_note(session: &Session) -> String {
    let diag = session.diagnostics();
    let diag = diag.trim();
    if diag.is_empty() {
        String::new()
    } else {
        format!("; runner stderr: {diag}")
    }
}
