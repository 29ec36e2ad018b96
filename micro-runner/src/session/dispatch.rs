//! A CMD turned into work: checked against the session's state, parsed into an op, and
//! dispatched with one exhaustive match (an op added to the protocol does not compile until
//! it is handled here). Ops that finish at once answer DONE or ERROR here; exec and system
//! ops start and answer later.

use super::*;

impl Session {
    pub(super) fn on_cmd(&mut self, cmd: Cmd, data: Vec<u8>, tx: &SyncSender<Input>) {
        let id = Some(cmd.id.clone());
        if !self.greeted {
            return self.error(
                id,
                ErrorCode::OutOfSequence,
                "CMD before HELLO: send HELLO first",
            );
        }
        if cmd.id.is_empty() {
            return self.error(None, ErrorCode::BadFrame, "CMD with an empty id");
        }
        if self.running.values().any(|r| r.id == cmd.id) || self.uploads.contains_key(&cmd.id) {
            return self.error(
                id,
                ErrorCode::DuplicateId,
                format!("a command with id {:?} is already in flight", cmd.id),
            );
        }
        if self.running.len() >= MAX_IN_FLIGHT {
            return self.error(
                id,
                ErrorCode::TooManyCommands,
                format!("{MAX_IN_FLIGHT} commands are already in flight; retry after one finishes"),
            );
        }
        let op = match Op::parse(&cmd.op, &cmd.args) {
            Ok(op) => op,
            Err(e @ OpError::Unknown(_)) => {
                return self.error(id, ErrorCode::UnknownOp, e.to_string());
            }
            Err(e @ OpError::BadArgs(_)) => {
                return self.error(id, ErrorCode::BadArgs, e.to_string());
            }
        };
        let started = Instant::now();
        match op {
            Op::Facts => {
                let facts = crate::probe::facts(&self.caps);
                let result = serde_json::to_value(facts).ok();
                self.out.send(Message::Done(Done {
                    id: cmd.id,
                    status: Status::Ok,
                    exit_code: None,
                    signal: None,
                    changed: false,
                    duration_ms: millis(started.elapsed()),
                    usage: None,
                    truncated: Vec::new(),
                    result,
                    enforcement: None,
                }));
            }
            Op::Exec(args) => self.start_exec(cmd.id, &args, &cmd.limits, data, started, tx),
            Op::FileWrite(_)
            | Op::FileAbsent(_)
            | Op::FileStat(_)
            | Op::DirEnsure(_)
            | Op::PkgEnsure(_)
            | Op::Service(..)
                if !cmd.limits.is_empty() =>
            {
                self.error(
                    id,
                    ErrorCode::UnsupportedLimit,
                    format!(
                        "{} runs in the runner itself: limits apply to exec only",
                        cmd.op
                    ),
                );
            }
            Op::FileWrite(args) => {
                let size = args
                    .size
                    .map_or(data.len(), |s| usize::try_from(s).unwrap_or(usize::MAX));
                if size < data.len() {
                    return self.error(
                        id,
                        ErrorCode::BadArgs,
                        format!(
                            "file.write: size {size} is less than the {} bytes sent",
                            data.len()
                        ),
                    );
                }
                let mut writing = crate::ops::Writing::begin(&args, size as u64);
                if let Ok(w) = &mut writing
                    && let Err(e) = w.push(&data)
                {
                    writing = Err(e);
                }
                let upload = Upload {
                    writing,
                    received: data.len(),
                    size,
                    started,
                    idle_deadline: started + self.config.upload_idle,
                };
                if upload.received < size {
                    self.uploads.insert(cmd.id, upload);
                } else {
                    self.write_file(cmd.id, upload);
                }
            }
            Op::PkgEnsure(_) if self.pkg_busy => {
                self.error(
                    id,
                    ErrorCode::TooManyCommands,
                    "a pkg.ensure is already running on this host; send the next one after it",
                );
            }
            Op::PkgEnsure(args) => {
                self.pkg_busy = true;
                self.start_system(cmd.id, started, true, tx, move || {
                    let r = crate::pkg::ensure(&args, crate::probe::pkg_manager())?;
                    crate::system::outcome(!r.changes.is_empty(), serde_json::to_value(&r))
                });
            }
            Op::Service(action, args) => {
                self.start_system(cmd.id, started, false, tx, move || {
                    let r = crate::service::act(action, &args, crate::probe::init_system())?;
                    crate::system::outcome(!r.changes.is_empty(), serde_json::to_value(&r))
                });
            }
            Op::FileAbsent(args) => {
                let outcome = crate::ops::absent(&args);
                self.finish_file_op(cmd.id, started, outcome);
            }
            Op::DirEnsure(args) => {
                let outcome = crate::ops::dir_ensure(&args);
                self.finish_file_op(cmd.id, started, outcome);
            }
            Op::FileStat(args) => self.stat(cmd.id, &args, started),
        }
    }

    /// `file.stat` (with the content, when asked to read it).
    fn stat(&mut self, id: String, args: &wisp_protocol::ops::PathArgs, started: Instant) {
        match crate::ops::stat(&args.path, args.read) {
            Ok(stat) => self.out.send_with_data(
                Message::Done(Done {
                    id: id.clone(),
                    status: Status::Ok,
                    exit_code: None,
                    signal: None,
                    changed: false,
                    duration_ms: millis(started.elapsed()),
                    usage: None,
                    truncated: Vec::new(),
                    result: serde_json::to_value(stat.result).ok(),
                    enforcement: None,
                }),
                stat.data,
            ),
            Err(e) => self.error(Some(id), ErrorCode::OpFailed, e),
        }
    }

    pub(super) fn start_exec(
        &mut self,
        id: String,
        args: &wisp_protocol::ops::ExecArgs,
        limits: &wisp_protocol::message::Limits,
        stdin: Vec<u8>,
        started: Instant,
        tx: &SyncSender<Input>,
    ) {
        if let Err(e) = limits.validate() {
            return self.error(
                Some(id),
                ErrorCode::UnsupportedLimit,
                format!("limits: {e}"),
            );
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        let name = format!("wisp-{}-{serial}", std::process::id());
        let mut prepared = match sandbox::prepare(limits, &self.caps, &name) {
            Ok(p) => p,
            Err(Refusal::Invalid(e)) => {
                return self.error(Some(id), ErrorCode::UnsupportedLimit, e);
            }
            Err(Refusal::Unavailable(missing)) => return self.unavailable(id, missing),
        };
        let steps = std::mem::take(&mut prepared.steps);
        let spawned = exec::spawn(serial, args, stdin, tx, &self.live_groups, steps);
        let failed = prepared.after_spawn();
        match spawned {
            Ok(pgid) => {
                let deadline = limits
                    .timeout_ms
                    .map(|ms| started + Duration::from_millis(ms));
                self.running.insert(
                    serial,
                    Running {
                        id,
                        pgid,
                        started,
                        deadline,
                        drain_deadline: None,
                        open_streams: 2,
                        exit: None,
                        killed_for: None,
                        max_output: args.max_output.unwrap_or(DEFAULT_MAX_OUTPUT),
                        sent: [0, 0],
                        truncated: [false, false],
                        sandbox: prepared,
                    },
                );
            }
            // A protection failed in the child and stopped the exec: fail closed, by name.
            Err(_) if !failed.is_empty() => {
                drop(prepared.finish());
                self.unavailable(id, failed);
            }
            Err(e) => {
                drop(prepared.finish());
                let mut frame = ErrorFrame::new(Some(id), ErrorCode::SpawnFailed, e.message);
                if e.transient {
                    frame.class = ErrorClass::Transient;
                }
                self.out.send(Message::Error(frame));
            }
        }
    }

    /// Runs a system op on a thread of its own; its outcome comes back as an input.
    pub(super) fn start_system(
        &mut self,
        id: String,
        started: Instant,
        pkg: bool,
        tx: &SyncSender<Input>,
        work: impl FnOnce() -> crate::system::Outcome + Send + 'static,
    ) {
        let tx = tx.clone();
        let thread_id = id.clone();
        let spawned = std::thread::Builder::new()
            .name("system-op".into())
            .spawn(move || {
                let outcome = work();
                let _ = tx.send(Input::SystemDone(crate::system::SystemDone {
                    id: thread_id,
                    started,
                    pkg,
                    outcome,
                }));
            });
        if let Err(e) = spawned {
            if pkg {
                self.pkg_busy = false;
            }
            self.error(
                Some(id),
                ErrorCode::Internal,
                format!("cannot start a thread for the op: {e}"),
            );
        }
    }

    /// DONE, or ERROR `op_failed` / `locked`, for a system op.
    pub(super) fn finish_system(&mut self, done: crate::system::SystemDone) {
        use crate::system::Failure;
        let crate::system::SystemDone {
            id,
            started,
            outcome,
            ..
        } = done;
        match outcome {
            Ok((changed, result)) => {
                let done = Done {
                    id,
                    status: Status::Ok,
                    exit_code: None,
                    signal: None,
                    changed,
                    duration_ms: millis(started.elapsed()),
                    usage: None,
                    truncated: Vec::new(),
                    result: Some(result),
                    enforcement: None,
                };
                self.out.send(Message::Done(done));
            }
            Err(Failure::Locked(m)) => self.error(Some(id), ErrorCode::Locked, m),
            Err(Failure::Failed(m)) => self.error(Some(id), ErrorCode::OpFailed, m),
        }
    }

    /// DONE (or ERROR `op_failed`) for a file op.
    pub(super) fn finish_file_op(
        &mut self,
        id: String,
        started: Instant,
        outcome: Result<crate::ops::Outcome, String>,
    ) {
        match outcome {
            Ok(o) => {
                let done = Done {
                    id,
                    status: Status::Ok,
                    exit_code: None,
                    signal: None,
                    changed: o.changed(),
                    duration_ms: millis(started.elapsed()),
                    usage: None,
                    truncated: Vec::new(),
                    result: serde_json::to_value(&o.result).ok(),
                    enforcement: None,
                };
                self.out.send_with_data(Message::Done(done), o.data);
            }
            Err(e) => self.error(Some(id), ErrorCode::OpFailed, e),
        }
    }

    /// ERROR `sandbox_unavailable`: the command did not run because of these gaps.
    pub(super) fn unavailable(&mut self, id: String, missing: Vec<String>) {
        let mut frame = ErrorFrame::new(
            Some(id),
            ErrorCode::SandboxUnavailable,
            format!(
                "the command did not run: {} requested protection{} cannot be applied on this \
                 host (sandbox mode `require`): {}. Fix the host, drop the limit, or use \
                 best-effort mode to run with a report of the gaps",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                missing.join("; ")
            ),
        );
        frame.missing = missing;
        self.out.send(Message::Error(frame));
    }
}
