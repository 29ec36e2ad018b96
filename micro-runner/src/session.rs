//! The runner's session: one loop that owns every piece of state and is fed by a single
//! channel (stdin frames, child output, exits, signals). Only this loop writes frames, so
//! frames never interleave and "all output before DONE" holds by construction.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use wisp_protocol::error::{ErrorClass, ErrorCode};
use wisp_protocol::frame::{DecodeError, MAX_DATA_LEN, RawFrame};
use wisp_protocol::message::{
    Capabilities, Cmd, Done, ErrorFrame, Event, EventKind, Exit, ExitReason, Frame, Hello, Message,
    MessageErrorKind, Ready, Status, VersionRange,
};
use wisp_protocol::ops::{DEFAULT_MAX_OUTPUT, KNOWN_OPS, Op, OpError};
use wisp_protocol::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

use crate::exec::{self, Exit as ProcessExit, LiveGroups};
use crate::sandbox::{self, Prepared, Refusal};
use crate::wire::{FrameWriter, preview};

/// Commands in flight at once; more are refused with `too_many_commands` (throttled).
const MAX_IN_FLIGHT: usize = 64;
/// After the main process exits, how long its pipes may stay open (held by a background
/// child) before DONE is sent anyway.
const DRAIN_GRACE: Duration = Duration::from_millis(250);
/// At shutdown, how long to wait for killed commands to be reaped, for an accurate DONE.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// Everything the session loop reacts to.
#[derive(Debug)]
pub(crate) enum Input {
    Frame(RawFrame),
    Undecodable(DecodeError),
    StdinClosed {
        mid_frame: bool,
    },
    StdinFailed(String),
    Output {
        serial: u64,
        stream: EventKind,
        bytes: Vec<u8>,
    },
    OutputClosed {
        serial: u64,
    },
    Exited {
        serial: u64,
        exit: ProcessExit,
    },
    Signal(&'static str),
    /// A `pkg.ensure` or `service.*` finished on its thread.
    SystemDone(crate::system::SystemDone),
}

/// Session settings from the command line.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) ttl: Duration,
    /// How long a `file.write` may wait for its next DATA frame.
    pub(crate) upload_idle: Duration,
}

struct Running {
    id: String,
    pgid: i32,
    started: Instant,
    deadline: Option<Instant>,
    /// Set once the main process has exited: DONE goes out when both pipes close or this passes.
    drain_deadline: Option<Instant>,
    open_streams: u8,
    exit: Option<ProcessExit>,
    killed_for: Option<Status>,
    max_output: u64,
    sent: [u64; 2],
    truncated: [bool; 2],
    /// The command's protections: its cgroup (kills the whole tree) and the report so far.
    sandbox: Prepared,
}

impl Running {
    /// SIGKILLs the command's whole tree: its cgroup when it has one, its process group always.
    fn kill(&self, groups: &LiveGroups) {
        exec::kill_group(groups, self.pgid);
        self.sandbox.kill_tree();
    }
}

pub(crate) struct Session {
    config: Config,
    out: FrameWriter,
    caps: Capabilities,
    started: Instant,
    greeted: bool,
    next_serial: u64,
    running: HashMap<u64, Running>,
    /// Process groups whose leader has not been reaped yet: the only ones safe to signal
    /// (a reaped leader's number can be reused). Shared with the TTL watchdog.
    live_groups: LiveGroups,
    /// A `pkg.ensure` is running: package managers take one lock, so one at a time.
    pkg_busy: bool,
    /// `file.write`s whose content is still arriving in DATA frames, by id.
    uploads: HashMap<String, Upload>,
}

/// A `file.write` waiting for the rest of its content.
struct Upload {
    args: wisp_protocol::ops::FileWriteArgs,
    content: Vec<u8>,
    size: usize,
    started: Instant,
    /// Dropped, with an ERROR, when no DATA comes before this.
    idle_deadline: Instant,
}

impl Session {
    pub(crate) fn new(
        config: Config,
        out: FrameWriter,
        caps: Capabilities,
        live_groups: LiveGroups,
    ) -> Self {
        Self {
            config,
            out,
            caps,
            started: Instant::now(),
            greeted: false,
            next_serial: 0,
            running: HashMap::new(),
            live_groups,
            pkg_busy: false,
            uploads: HashMap::new(),
        }
    }

    /// Sends READY, then serves until the session ends. Returns the process exit code.
    pub(crate) fn run(mut self, rx: &Receiver<Input>, tx: &SyncSender<Input>) -> i32 {
        self.send_ready();
        loop {
            let now = Instant::now();
            let wait = self.next_deadline().saturating_duration_since(now);
            let outcome = match rx.recv_timeout(wait) {
                Ok(input) => self.handle(input, tx),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(ExitReason::StdinClosed),
            };
            // Checked after every input, not only when the channel is idle: a command that
            // floods its output keeps the channel busy and must still meet its deadline.
            let outcome = outcome.or_else(|| {
                (Instant::now() >= self.next_deadline())
                    .then(|| self.on_deadlines())
                    .flatten()
            });
            let outcome = outcome.or(self.out.is_broken().then_some(ExitReason::StdinClosed));
            if let Some(reason) = outcome {
                return self.shutdown(reason, rx);
            }
        }
    }

    fn send_ready(&mut self) {
        let ready = Ready {
            protocol: VersionRange {
                min: MIN_PROTOCOL_VERSION,
                max: PROTOCOL_VERSION,
            },
            runner_version: env!("CARGO_PKG_VERSION").into(),
            arch: std::env::consts::ARCH.into(),
            kernel: crate::probe::kernel_release(),
            uid: nix::unistd::getuid().as_raw(),
            euid: nix::unistd::geteuid().as_raw(),
            pid: std::process::id(),
            ttl_s: self.config.ttl.as_secs(),
            ops: KNOWN_OPS.iter().map(|s| (*s).to_owned()).collect(),
            caps: self.caps.clone(),
        };
        self.out.send(Message::Ready(ready));
    }

    fn next_deadline(&self) -> Instant {
        let ttl = self.started + self.config.ttl;
        self.running
            .values()
            .flat_map(|r| [r.deadline, r.drain_deadline])
            .flatten()
            .chain(self.uploads.values().map(|u| u.idle_deadline))
            .fold(ttl, Instant::min)
    }

    fn error(&mut self, id: Option<String>, code: ErrorCode, message: impl Into<String>) {
        self.out
            .send(Message::Error(ErrorFrame::new(id, code, message)));
    }

    fn fatal(&mut self, code: ErrorCode, message: impl Into<String>) -> Option<ExitReason> {
        let message = message.into();
        crate::diag(&message);
        let mut e = ErrorFrame::new(None, code, message);
        e.fatal = true;
        self.out.send(Message::Error(e));
        Some(ExitReason::Error)
    }

    fn handle(&mut self, input: Input, tx: &SyncSender<Input>) -> Option<ExitReason> {
        match input {
            Input::Frame(raw) => return self.on_frame(raw, tx),
            Input::Undecodable(e @ DecodeError::Oversize { .. }) => {
                self.error(
                    None,
                    ErrorCode::OversizeFrame,
                    format!("{e}; the frame was skipped"),
                );
            }
            Input::Undecodable(e) => return self.fatal(ErrorCode::BadMagic, e.to_string()),
            Input::StdinClosed { mid_frame: true } => {
                return self.fatal(
                    ErrorCode::TruncatedFrame,
                    "stdin closed in the middle of a frame",
                );
            }
            Input::StdinClosed { mid_frame: false } => return Some(ExitReason::StdinClosed),
            Input::StdinFailed(e) => {
                crate::diag(&format!("reading stdin failed: {e}"));
                return Some(ExitReason::StdinClosed);
            }
            Input::Signal(name) => {
                crate::diag(&format!("received {name}; stopping"));
                return Some(ExitReason::Signal);
            }
            Input::Output {
                serial,
                stream,
                bytes,
            } => self.on_output(serial, stream, bytes),
            Input::OutputClosed { serial } => {
                if let Some(r) = self.running.get_mut(&serial) {
                    r.open_streams = r.open_streams.saturating_sub(1);
                }
                self.finish_if_complete(serial);
            }
            Input::SystemDone(done) => {
                if done.pkg {
                    self.pkg_busy = false;
                }
                self.finish_system(done);
            }
            Input::Exited { serial, exit } => {
                if let Some(r) = self.running.get_mut(&serial) {
                    r.exit = Some(exit);
                    r.drain_deadline = Some(Instant::now() + DRAIN_GRACE);
                }
                self.finish_if_complete(serial);
            }
        }
        None
    }

    fn on_frame(&mut self, raw: RawFrame, tx: &SyncSender<Input>) -> Option<ExitReason> {
        let quoted = preview(&raw);
        let frame = match Frame::decode(raw) {
            Ok(f) => f,
            Err(e) => {
                let code = match e.kind {
                    MessageErrorKind::Malformed => ErrorCode::BadFrame,
                    MessageErrorKind::UnknownType => ErrorCode::UnknownFrame,
                    MessageErrorKind::UnsupportedLimit => ErrorCode::UnsupportedLimit,
                    MessageErrorKind::Invalid => ErrorCode::BadFrame,
                };
                let message = match e.kind {
                    MessageErrorKind::Malformed => format!("malformed frame {quoted:?}: {e}"),
                    _ => e.to_string(),
                };
                self.error(e.id, code, message);
                return None;
            }
        };
        match frame.message {
            Message::Hello(hello) => return self.on_hello(hello),
            Message::Cmd(cmd) => self.on_cmd(cmd, frame.data, tx),
            Message::Cancel(c) => self.on_cancel(c.id),
            Message::Data(d) => self.on_data(d.id, frame.data),
            Message::Exit(_) => return Some(ExitReason::Requested),
            Message::Ready(_) | Message::Event(_) | Message::Done(_) | Message::Error(_) => {
                let t = quoted.split('"').nth(3).unwrap_or("?").to_owned();
                self.error(
                    None,
                    ErrorCode::OutOfSequence,
                    format!("{t} frames are sent by the runner, never to it"),
                );
            }
        }
        None
    }

    fn on_hello(&mut self, hello: Hello) -> Option<ExitReason> {
        if self.greeted {
            self.error(
                None,
                ErrorCode::OutOfSequence,
                format!("second HELLO: the session already speaks version {PROTOCOL_VERSION}"),
            );
            return None;
        }
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&hello.version) {
            return self.fatal(
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {} is not supported; this runner speaks {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}",
                    hello.version
                ),
            );
        }
        self.greeted = true;
        None
    }

    fn on_cmd(&mut self, cmd: Cmd, data: Vec<u8>, tx: &SyncSender<Input>) {
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
                let upload = Upload {
                    args,
                    content: data,
                    size,
                    started,
                    idle_deadline: started + self.config.upload_idle,
                };
                if upload.content.len() < size {
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
            Op::FileStat(args) => match crate::ops::stat(&args.path) {
                Ok(stat) => self.out.send(Message::Done(Done {
                    id: cmd.id,
                    status: Status::Ok,
                    exit_code: None,
                    signal: None,
                    changed: false,
                    duration_ms: millis(started.elapsed()),
                    usage: None,
                    truncated: Vec::new(),
                    result: serde_json::to_value(stat).ok(),
                    enforcement: None,
                })),
                Err(e) => self.error(id, ErrorCode::OpFailed, e),
            },
            _ => self.error(
                id,
                ErrorCode::UnknownOp,
                format!("op {:?} is not implemented", cmd.op),
            ),
        }
    }

    fn start_exec(
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
    fn start_system(
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
    fn finish_system(&mut self, done: crate::system::SystemDone) {
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
    fn finish_file_op(
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
    fn unavailable(&mut self, id: String, missing: Vec<String>) {
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

    /// More content for a `file.write`; the file is written once all of it has come.
    fn on_data(&mut self, id: String, bytes: Vec<u8>) {
        let Some(upload) = self.uploads.get_mut(&id) else {
            return self.error(
                Some(id),
                ErrorCode::UnknownId,
                "DATA for no file.write waiting for content",
            );
        };
        if upload.content.len() + bytes.len() > upload.size {
            let size = upload.size;
            self.uploads.remove(&id);
            return self.error(
                Some(id),
                ErrorCode::BadFrame,
                format!("DATA beyond the announced size of {size} bytes; nothing was written"),
            );
        }
        upload.content.extend_from_slice(&bytes);
        upload.idle_deadline = Instant::now() + self.config.upload_idle;
        if upload.content.len() == upload.size
            && let Some(upload) = self.uploads.remove(&id)
        {
            self.write_file(id, upload);
        }
    }

    fn write_file(&mut self, id: String, upload: Upload) {
        self.next_serial += 1;
        let unique = format!("{}-{}", std::process::id(), self.next_serial);
        let outcome = crate::ops::write(&upload.args, &upload.content, &unique);
        self.finish_file_op(id, upload.started, outcome);
    }

    fn on_cancel(&mut self, id: String) {
        if self.uploads.remove(&id).is_some() {
            return self.error(
                Some(id),
                ErrorCode::OpFailed,
                "file.write cancelled before all its content came; nothing was written",
            );
        }
        let Some(r) = self.running.values_mut().find(|r| r.id == id) else {
            return self.error(
                Some(id),
                ErrorCode::UnknownId,
                "CANCEL for a command that is not in flight (never sent, or already done)",
            );
        };
        if r.killed_for.is_none() {
            r.killed_for = Some(Status::Cancelled);
        }
        r.kill(&self.live_groups);
    }

    fn on_output(&mut self, serial: u64, stream: EventKind, bytes: Vec<u8>) {
        let Some(r) = self.running.get_mut(&serial) else {
            return;
        };
        let i = usize::from(stream == EventKind::Stderr);
        let room = r.max_output.saturating_sub(r.sent[i]);
        let keep = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        if keep < bytes.len() {
            r.truncated[i] = true;
        }
        if keep == 0 {
            return;
        }
        r.sent[i] += keep as u64;
        let id = r.id.clone();
        let mut bytes = bytes;
        bytes.truncate(keep.min(MAX_DATA_LEN as usize));
        self.out.send_with_data(
            Message::Event(Event {
                id,
                kind: stream,
                message: None,
            }),
            bytes,
        );
    }

    fn on_deadlines(&mut self) -> Option<ExitReason> {
        let now = Instant::now();
        if now >= self.started + self.config.ttl {
            crate::diag("time to live expired; stopping");
            return Some(ExitReason::Ttl);
        }
        let mut drained = Vec::new();
        for (serial, r) in &mut self.running {
            if r.deadline.is_some_and(|d| now >= d) {
                r.deadline = None;
                if r.exit.is_none() {
                    r.killed_for = Some(Status::Timeout);
                    r.kill(&self.live_groups);
                }
            }
            if r.drain_deadline.is_some_and(|d| now >= d) {
                drained.push(*serial);
            }
        }
        let stalled: Vec<String> = self
            .uploads
            .iter()
            .filter(|(_, u)| now >= u.idle_deadline)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stalled {
            self.uploads.remove(&id);
            let idle = self.config.upload_idle.as_secs();
            self.error(
                Some(id),
                ErrorCode::OpFailed,
                format!("file.write: no DATA for {idle} s; the content stopped coming and nothing was written"),
            );
        }
        for serial in drained {
            // Whatever still holds the pipes is an orphan of ours by now (the main process
            // has exited); the shutdown sweep finds it by parent pid.
            if let Some(r) = self.running.get_mut(&serial) {
                r.open_streams = 0;
            }
            self.finish_if_complete(serial);
        }
        None
    }

    fn finish_if_complete(&mut self, serial: u64) {
        let complete = self
            .running
            .get(&serial)
            .is_some_and(|r| r.open_streams == 0 && r.exit.is_some());
        if complete && let Some(r) = self.running.remove(&serial) {
            self.send_done(r);
        }
    }

    fn send_done(&mut self, r: Running) {
        let exit = r.exit.unwrap_or(ProcessExit {
            code: None,
            signal: None,
            usage: Default::default(),
        });
        let enforcement = r.sandbox.finish();
        let oom = enforcement.cgroup.as_ref().is_some_and(|c| c.oom_kills > 0);
        let status = match (r.killed_for, exit.code) {
            (Some(status), _) => status,
            // The kernel killed something for memory: say so, not "signal 9".
            (None, _) if oom => Status::Oom,
            (None, Some(0)) => Status::Ok,
            (None, _) => Status::Failed,
        };
        let truncated = [EventKind::Stdout, EventKind::Stderr]
            .into_iter()
            .zip(r.truncated)
            .filter_map(|(k, t)| t.then_some(k))
            .collect();
        self.out.send(Message::Done(Done {
            id: r.id,
            status,
            exit_code: exit.code,
            signal: exit.signal.map(crate::signals::name),
            changed: true,
            duration_ms: millis(r.started.elapsed()),
            usage: Some(exit.usage),
            truncated,
            result: None,
            enforcement: Some(enforcement),
        }));
    }

    /// Kills everything still running, reports each command, says EXIT and returns the code.
    fn shutdown(mut self, reason: ExitReason, rx: &Receiver<Input>) -> i32 {
        for r in self.running.values_mut() {
            r.killed_for.get_or_insert(Status::Cancelled);
        }
        exec::kill_live_groups(&self.live_groups);
        for r in self.running.values() {
            r.sandbox.kill_tree();
        }
        // Everything else the commands left (background children of finished commands,
        // daemonised grandchildren) has been reparented to the runner.
        exec::kill_orphans();
        // Collect the exits so each DONE carries real status and usage; output that arrives
        // meanwhile is still forwarded. Bounded: SIGKILL cannot be ignored, but a process in
        // uninterruptible sleep can take its time.
        let until = Instant::now() + REAP_GRACE;
        while self.running.values().any(|r| r.exit.is_none()) {
            let Some(wait) = until.checked_duration_since(Instant::now()) else {
                break;
            };
            match rx.recv_timeout(wait) {
                Ok(Input::Exited { serial, exit }) => {
                    if let Some(r) = self.running.get_mut(&serial) {
                        r.exit = Some(exit);
                    }
                }
                Ok(Input::Output {
                    serial,
                    stream,
                    bytes,
                }) => self.on_output(serial, stream, bytes),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let mut left: Vec<Running> = self.running.drain().map(|(_, r)| r).collect();
        left.sort_by(|a, b| a.id.cmp(&b.id));
        for r in left {
            self.send_done(r);
        }
        // Orphans are dead by now: groups they kept busy can go.
        sandbox::remove_stale();
        self.out.send(Message::Exit(Exit {
            reason: Some(reason),
        }));
        i32::from(reason == ExitReason::Error) * 2
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
