//! Running one job on every target, and stopping it in order on Ctrl-C.
//!
//! Interrupts come through a watch channel: the first moves every host to
//! [`Interrupt::Cancel`] (CANCEL the command, then EXIT, so the runner kills the process tree
//! and deletes itself), the second to [`Interrupt::Disconnect`] (drop the stream at once; the
//! runner sees EOF and cleans up on its own).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use wisp_protocol::message::{ErrorFrame, EventKind, Limits};
use wisp_protocol::ops::ExecArgs;
use wisp_transports::{Launch, Transport};

use crate::report::{HostOutcome, HostResult, LineSplitter, Reporter, describe};
use crate::session::{CmdEvent, Session};

/// Retries after a transient failure (connection dropped, or ERROR class `transient`).
const RETRIES: u32 = 2;

/// 200 ms, then 400 ms.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 << attempt.min(4))
}

/// How long a runner gets to answer EXIT before the controller stops waiting.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Where the operator's interrupts have got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interrupt {
    /// Keep going.
    None,
    /// Cancel remote work and shut runners down cleanly.
    Cancel,
    /// Drop every connection now.
    Disconnect,
}

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
        per_arch: Option<Box<crate::limits::LimitArgs>>,
    },
    /// Collect facts.
    Facts,
    /// Start the runner, read READY, stop it.
    Ping,
    /// A plan's tasks, in one session per host.
    Plan {
        /// The plan, checked.
        plan: Arc<crate::plan::Plan>,
        /// `--check`, `--diff`.
        options: crate::apply::ApplyOptions,
    },
}

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

/// Runs `job` on every target concurrently; returns the results in target order.
pub async fn run(
    targets: Vec<Target>,
    job: Job,
    launch: &Launch,
    forks: usize,
    output_dir: Option<PathBuf>,
    reporter: Arc<Reporter>,
    interrupt: watch::Receiver<Interrupt>,
) -> Vec<HostResult> {
    let forks = Arc::new(tokio::sync::Semaphore::new(forks.max(1)));
    let mut tasks = Vec::new();
    for target in targets {
        let (job, reporter, mut interrupt) =
            (job.clone(), Arc::clone(&reporter), interrupt.clone());
        // Each host gets its own launch (and so its own nonce).
        let launch = Launch::new(launch.runners.clone(), launch.ttl, launch.connect_timeout);
        let name = target.name.clone();
        let forks = Arc::clone(&forks);
        let output_dir = output_dir.clone();
        let task = tokio::spawn(async move {
            // At most `forks` hosts at once; hosts still waiting when Ctrl-C comes never start.
            let permit = tokio::select! {
                p = forks.acquire_owned() => p.ok(),
                _ = interrupt.wait_for(|i| *i >= Interrupt::Cancel) => None,
            };
            let Some(_permit) = permit else {
                return HostResult {
                    host: target.name.clone(),
                    outcome: HostOutcome::Interrupted,
                    detail: "not started".into(),
                    elapsed: Duration::ZERO,
                    sandbox: None,
                };
            };
            let result = run_host(
                &target,
                &job,
                &launch,
                &reporter,
                output_dir.as_deref(),
                interrupt,
            )
            .await;
            reporter.host_finished(result.outcome);
            result
        });
        tasks.push((name, task));
    }
    let mut results = Vec::new();
    for (name, task) in tasks {
        results.push(task.await.unwrap_or_else(|e| HostResult {
            host: name,
            outcome: HostOutcome::Failed,
            detail: format!("internal error: {e}"),
            elapsed: Duration::ZERO,
            sandbox: None,
        }));
    }
    results
}

async fn run_host(
    target: &Target,
    job: &Job,
    launch: &Launch,
    reporter: &Reporter,
    output_dir: Option<&Path>,
    mut interrupt: watch::Receiver<Interrupt>,
) -> HostResult {
    let started = Instant::now();
    let host = target.name.as_str();
    let result = |outcome, detail: String| HostResult {
        host: host.to_owned(),
        outcome,
        detail,
        elapsed: started.elapsed(),
        sandbox: None,
    };

    // Transient failures (the host dropped the connection mid-handshake) are retried with
    // backoff; anything else is final at once.
    let mut attempt = 0;
    let mut session = loop {
        let opened = tokio::select! {
            s = Session::open(target.transport.as_ref(), launch) => s,
            _ = interrupt.wait_for(|i| *i >= Interrupt::Cancel) => {
                return result(HostOutcome::Interrupted, "interrupted while connecting".into());
            }
        };
        match opened {
            Ok(s) => break s,
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
                reporter.unreachable(host, &format!("{}{tries}", error_chain(&e)));
                return result(HostOutcome::Unreachable, "unreachable".into());
            }
        }
    };

    let (op, args, limits) = match job {
        Job::Ping => {
            reporter.ping(host, session.ready());
            session.close(EXIT_GRACE).await;
            return result(HostOutcome::Ok, "pong".into());
        }
        Job::Facts => ("facts", serde_json::json!({}), Limits::default()),
        Job::Plan { plan, options } => {
            let ran = crate::apply::run_on_host(
                &mut session,
                plan,
                *options,
                target,
                reporter,
                &mut interrupt,
            )
            .await;
            let outcome = match ran {
                Ok(tally) => {
                    let status = if tally.failed > 0 {
                        HostOutcome::Failed
                    } else {
                        HostOutcome::Ok
                    };
                    result(status, tally.to_string())
                }
                Err(crate::apply::Stop::Interrupted) => {
                    result(HostOutcome::Interrupted, "interrupted".into())
                }
                Err(crate::apply::Stop::Lost(e)) => {
                    reporter.unreachable(host, &format!("{e}{}", stderr_note(&session)));
                    return result(HostOutcome::Unreachable, "connection lost".into());
                }
            };
            tokio::select! {
                _ = session.close(EXIT_GRACE) => {}
                _ = interrupt.wait_for(|i| *i == Interrupt::Disconnect) => {}
            }
            return outcome;
        }
        Job::Exec {
            args,
            limits,
            per_arch,
        } => {
            let limits = match per_arch {
                None => (**limits).clone(),
                Some(flags) => match flags.to_limits(&session.ready().arch) {
                    Ok(l) => l,
                    Err(e) => {
                        reporter.refused(
                            host,
                            &ErrorFrame::new(None, wisp_protocol::error::ErrorCode::BadArgs, e),
                        );
                        session.close(EXIT_GRACE).await;
                        return result(HostOutcome::Failed, "seccomp file".into());
                    }
                },
            };
            (
                "exec",
                serde_json::to_value(args).unwrap_or_default(),
                limits,
            )
        }
    };
    // The command gets its own retry budget.
    attempt = 0;
    let mut id = match session
        .start(op, args.clone(), limits.clone(), Vec::new())
        .await
    {
        Ok(id) => id,
        Err(e) => {
            reporter.unreachable(
                host,
                &format!("{}{}", error_chain(&e), stderr_note(&session)),
            );
            return result(HostOutcome::Unreachable, "connection lost".into());
        }
    };

    let mut lines = [LineSplitter::default(), LineSplitter::default()];
    let mut saved = match output_dir
        .map(|dir| OutputFiles::create(dir, host))
        .transpose()
    {
        Ok(files) => files,
        Err(e) => {
            reporter.refused(
                host,
                &ErrorFrame::new(None, wisp_protocol::error::ErrorCode::Internal, e),
            );
            session.close(EXIT_GRACE).await;
            return result(HostOutcome::Failed, "output dir".into());
        }
    };
    let mut cancelled = false;
    let outcome = loop {
        let event = tokio::select! {
            ev = session.next_for(&id) => ev,
            _ = interrupt.changed() => {
                let level = *interrupt.borrow();
                if level == Interrupt::Disconnect {
                    session.disconnect().await;
                    return result(HostOutcome::Interrupted, "disconnected".into());
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
                if let Some(files) = saved.as_mut() {
                    files.write(i, &bytes);
                }
                for line in lines[i].push(&bytes) {
                    reporter.line(host, stream, &line);
                }
            }
            Ok(CmdEvent::Done(done, _)) => {
                for (i, stream) in [EventKind::Stdout, EventKind::Stderr]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(line) = lines[i].finish() {
                        reporter.line(host, stream, &line);
                    }
                }
                if let Some(facts) = &done.result {
                    reporter.facts(host, facts);
                }
                reporter.done(host, &done);
                let outcome = match done.status {
                    wisp_protocol::message::Status::Ok => HostOutcome::Ok,
                    // Cancelled at our request is an interrupt; cancelled by the runner (its
                    // TTL passed, it got SIGTERM) is a failure of this host.
                    wisp_protocol::message::Status::Cancelled if cancelled => {
                        HostOutcome::Interrupted
                    }
                    _ => HostOutcome::Failed,
                };
                let mut r = result(outcome, describe(&done));
                r.sandbox = done
                    .enforcement
                    .as_ref()
                    .filter(|e| crate::limits::is_sandboxed(e))
                    .map(crate::limits::summary);
                break r;
            }
            // The command did not run (a refused CMD has no output): when the runner says the
            // failure is transient (fork failed for want of memory, say), try again.
            Ok(CmdEvent::Refused(e))
                if e.class == wisp_protocol::error::ErrorClass::Transient && attempt < RETRIES =>
            {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                match session
                    .start(op, args.clone(), limits.clone(), Vec::new())
                    .await
                {
                    Ok(next) => id = next,
                    Err(e) => {
                        reporter.unreachable(
                            host,
                            &format!("{}{}", error_chain(&e), stderr_note(&session)),
                        );
                        return result(HostOutcome::Unreachable, "connection lost".into());
                    }
                }
            }
            Ok(CmdEvent::Refused(e)) => {
                reporter.refused(host, &e);
                let code = serde_json::to_value(e.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                break result(HostOutcome::Failed, code.unwrap_or_default());
            }
            Err(e) => {
                reporter.unreachable(
                    host,
                    &format!("{}{}", error_chain(&e), stderr_note(&session)),
                );
                return result(HostOutcome::Unreachable, "connection lost".into());
            }
        }
    };
    // Shut the runner down; a second Ctrl-C while it says goodbye cuts the wait short.
    tokio::select! {
        _ = session.close(EXIT_GRACE) => {}
        _ = interrupt.wait_for(|i| *i == Interrupt::Disconnect) => {}
    }
    outcome
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

/// `--output-dir`: each host's stdout and stderr, byte for byte, in `<host>.stdout` and
/// `<host>.stderr`.
struct OutputFiles {
    files: [std::fs::File; 2],
}

impl OutputFiles {
    fn create(dir: &Path, host: &str) -> Result<Self, String> {
        // Host names may hold ':' (ports) and '@' but never '/'; keep them readable.
        let safe: String = host
            .chars()
            .map(|c| if c == '/' || c == '\0' { '_' } else { c })
            .collect();
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let open = |ext: &str| {
            let path = dir.join(format!("{safe}.{ext}"));
            std::fs::File::create(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))
        };
        Ok(Self {
            files: [open("stdout")?, open("stderr")?],
        })
    }

    fn write(&mut self, stream: usize, bytes: &[u8]) {
        use std::io::Write;
        let _ = self.files[stream].write_all(bytes);
    }
}

/// An error and its causes, `: `-separated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
