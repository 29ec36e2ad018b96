//! The runner's session: one loop that owns every piece of state and is fed by a single
//! channel (stdin frames, child output, exits, signals). Only this loop writes frames, so
//! frames never interleave and "all output before DONE" holds by construction.
//!
//! The loop and the session's lifecycle (HELLO, frames, deadlines, shutdown) are here;
//! [`dispatch`] turns a CMD into work, [`running`] follows exec commands to their DONE, and
//! [`upload`] reassembles `file.write` content that arrives in DATA frames.

mod dispatch;
mod running;
mod upload;

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use wisp_protocol::error::{ErrorClass, ErrorCode};
use wisp_protocol::frame::{DecodeError, MAX_DATA_LEN, RawFrame};
use wisp_protocol::message::{
    Capabilities, Cmd, Done, ErrorFrame, Event, EventKind, Exit, ExitReason, Hello, Message,
    MessageErrorKind, Ready, Status, ToRunner, VersionRange,
};
use wisp_protocol::ops::{DEFAULT_MAX_OUTPUT, KNOWN_OPS, Op, OpError};
use wisp_protocol::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

use crate::exec::{self, LiveGroups};
use crate::input::{Exit as ProcessExit, Input};
use crate::sandbox::{self, Prepared, Refusal};
use crate::wire::{FrameWriter, preview};
use running::Running;
use upload::Upload;

/// Commands in flight at once; more are refused with `too_many_commands` (throttled).
const MAX_IN_FLIGHT: usize = 64;
/// After the main process exits, how long its pipes may stay open (held by a background
/// child) before DONE is sent anyway.
const DRAIN_GRACE: Duration = Duration::from_millis(250);
/// At shutdown, how long to wait for killed commands to be reaped, for an accurate DONE.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// Session settings from the command line.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) ttl: Duration,
    /// How long a `file.write` may wait for its next DATA frame.
    pub(crate) upload_idle: Duration,
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
            machine_id: std::fs::read_to_string("/etc/machine-id")
                .map(|id| id.trim().to_owned())
                .unwrap_or_default(),
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
        crate::diag::say(&message);
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
                crate::diag::say(&format!("reading stdin failed: {e}"));
                return Some(ExitReason::StdinClosed);
            }
            Input::Signal(name) => {
                crate::diag::say(&format!("received {name}; stopping"));
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
        let (message, data) = match ToRunner::decode(raw) {
            Ok(f) => f,
            Err(e) => {
                let code = match e.kind {
                    MessageErrorKind::Malformed => ErrorCode::BadFrame,
                    MessageErrorKind::UnknownType => ErrorCode::UnknownFrame,
                    MessageErrorKind::UnsupportedLimit => ErrorCode::UnsupportedLimit,
                    MessageErrorKind::Invalid => ErrorCode::BadFrame,
                    MessageErrorKind::FromRunner => ErrorCode::OutOfSequence,
                };
                let message = match e.kind {
                    MessageErrorKind::Malformed => format!("malformed frame {quoted:?}: {e}"),
                    _ => e.to_string(),
                };
                // A runner's own frame is out of sequence, not about any command.
                let id = e.id.filter(|_| e.kind != MessageErrorKind::FromRunner);
                self.error(id, code, message);
                return None;
            }
        };
        match message {
            ToRunner::Hello(hello) => return self.on_hello(hello),
            ToRunner::Cmd(cmd) => self.on_cmd(cmd, data, tx),
            ToRunner::Cancel(c) => self.on_cancel(c.id),
            ToRunner::Data(d) => self.on_data(d.id, data),
            ToRunner::Exit(_) => return Some(ExitReason::Requested),
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

    fn on_deadlines(&mut self) -> Option<ExitReason> {
        let now = Instant::now();
        if now >= self.started + self.config.ttl {
            crate::diag::say("time to live expired; stopping");
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

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
