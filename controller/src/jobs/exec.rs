//! The single-command jobs, `exec` and `facts`, on one host's session: build the host's
//! limits, start the command (again, after a transient refusal), follow it, and turn its end
//! into the host's result.

use std::path::Path;

use tokio::sync::watch;
use wisp_protocol::error::{ErrorClass, ErrorCode};
use wisp_protocol::message::{ErrorFrame, Limits, Status};
use wisp_protocol::ops::Op;

use super::command::Streams;
use super::command::{Ended, follow};
use super::output_files::OutputFiles;
use super::{Host, Job, RETRIES, backoff, stderr_note};
use crate::report::{Event, HostOutcome, HostResult, describe};
use crate::session::Session;
use wisp_events::interrupt::Interrupt;
use wisp_protocol::error::chain as error_chain;

/// How the job ended on this host.
pub(super) enum Ran {
    /// With a result; the session is still up and should be closed.
    Finished(HostResult),
    /// The session broke: the host is unreachable.
    Lost(HostResult),
    /// A second Ctrl-C: cut the connection.
    Disconnected,
}

/// The op and limits of a job on a host of `arch` (a per-architecture seccomp file is
/// compiled for it); the refusal when that file does not compile.
fn op_and_limits(job: &Job, arch: &str) -> Result<(Op, Limits), ErrorFrame> {
    match job {
        Job::Exec {
            args,
            limits,
            per_arch,
        } => {
            let limits = match per_arch {
                None => (**limits).clone(),
                Some(flags) => flags
                    .to_limits(arch)
                    .map_err(|e| ErrorFrame::new(None, ErrorCode::BadArgs, e))?,
            };
            Ok((Op::Exec(args.clone()), limits))
        }
        _ => Ok((Op::Facts, Limits::default())),
    }
}

/// A command's DONE, told (the facts it read, when it read some, and the DONE itself) and
/// turned into the host's result; the saved output files closed.
fn finished(
    host: &Host<'_>,
    session: &Session,
    done: &wisp_protocol::message::Done,
    saved: Option<OutputFiles>,
    cancelled: bool,
) -> Ran {
    let name = host.name();
    if let Some(facts) = &done.result {
        host.reporter.emit(Event::FactsRead {
            host: name.to_owned(),
            host_key: session.facts_key(),
            facts: facts.clone(),
        });
        host.reporter.emit(Event::Facts {
            host: name.to_owned(),
            facts: facts.clone(),
        });
    }
    host.reporter.emit(Event::CommandDone {
        host: name.to_owned(),
        done: Box::new(done.clone()),
    });
    if let Some(Err(e)) = saved.map(OutputFiles::finish) {
        let error = ErrorFrame::new(None, ErrorCode::Internal, error_chain(&e));
        host.reporter.emit(Event::refused(name, &error));
        return Ran::Finished(host.result(HostOutcome::Failed, "output lost"));
    }
    let outcome = match done.status {
        Status::Ok => HostOutcome::Ok,
        // Cancelled at our request is an interrupt; cancelled by the runner (its TTL passed,
        // it got SIGTERM) is a failure of this host.
        Status::Cancelled if cancelled => HostOutcome::Interrupted,
        _ => HostOutcome::Failed,
    };
    let mut r = host.result(outcome, describe(done));
    r.sandbox = done
        .enforcement
        .as_ref()
        .filter(|e| wisp_plan::limits::is_sandboxed(e))
        .map(wisp_plan::limits::summary);
    Ran::Finished(r)
}

pub(super) async fn run(
    host: &Host<'_>,
    session: &mut Session,
    job: &Job,
    output_dir: Option<&Path>,
    interrupt: &mut watch::Receiver<Interrupt>,
) -> Ran {
    let name = host.name();
    let lost = |session: &Session, e: &dyn std::error::Error| {
        let message = format!("{}{}", error_chain(e), stderr_note(session));
        Ran::Lost(host.unreachable(&message, "connection lost"))
    };
    let (op, limits) = match op_and_limits(job, &session.ready().arch) {
        Ok(pair) => pair,
        Err(error) => {
            host.reporter.emit(Event::refused(name, &error));
            return Ran::Finished(host.result(HostOutcome::Failed, "seccomp file"));
        }
    };
    let max_output = match &op {
        Op::Exec(a) => a
            .max_output
            .unwrap_or(wisp_protocol::ops::DEFAULT_MAX_OUTPUT),
        _ => wisp_protocol::ops::DEFAULT_MAX_OUTPUT,
    };
    let mut id = match session.start(&op, limits.clone(), &[]).await {
        Ok(id) => id,
        Err(e) => return lost(session, &e),
    };
    let mut saved = match output_dir
        .map(|dir| OutputFiles::create(dir, name))
        .transpose()
    {
        Ok(files) => files,
        Err(e) => {
            let error = ErrorFrame::new(None, ErrorCode::Internal, error_chain(&e));
            host.reporter.emit(Event::refused(name, &error));
            return Ran::Finished(host.result(HostOutcome::Failed, "output dir"));
        }
    };
    let mut tee = |stream: usize, bytes: &[u8]| {
        if let Some(files) = saved.as_mut() {
            files.write(stream, bytes);
        }
    };
    // The command gets its own retry budget.
    let mut attempt = 0;
    let mut cancelled = false;
    loop {
        let ended = follow(
            session,
            &id,
            name,
            host.reporter,
            interrupt,
            &mut cancelled,
            Streams {
                tee: &mut tee,
                max_output,
                quiet: false,
            },
        )
        .await;
        match ended {
            Ended::Done(done, _) => {
                return finished(host, session, &done, saved.take(), cancelled);
            }
            // The command did not run (a refused CMD has no output): when the runner says the
            // failure is transient (fork failed for want of memory, say), try again.
            Ended::Refused(e) if e.class == ErrorClass::Transient && attempt < RETRIES => {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                match session.start(&op, limits.clone(), &[]).await {
                    Ok(next) => id = next,
                    Err(e) => return lost(session, &e),
                }
            }
            Ended::Refused(e) => {
                host.reporter.emit(Event::refused(name, &e));
                let code = serde_json::to_value(e.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                return Ran::Finished(host.result(HostOutcome::Failed, code.unwrap_or_default()));
            }
            Ended::Disconnected => return Ran::Disconnected,
            Ended::Lost(e) => return lost(session, &e),
        }
    }
}
