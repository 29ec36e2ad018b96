//! A runner session for tests that speak the protocol directly: start the real runner (as
//! root or as `nobody`), say HELLO, send one CMD at a time and collect everything it answers.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::Value;
use wisp_protocol::message::{Cmd, Done, ErrorFrame, EventKind, Hello, Limits, Message};
use wisp_protocol::sandbox::Enforcement;

use crate::{RawRunner, Received, ScratchDir};

/// The `nobody` user and group.
pub const NOBODY: u32 = 65534;

/// One runner and its scratch directory (world-writable, so `nobody` can use it too).
#[derive(Debug)]
pub struct Session {
    /// The runner.
    pub runner: RawRunner,
    /// Its scratch directory.
    pub tmp: ScratchDir,
    next: u32,
}

/// What the runner answered to one command.
#[derive(Debug)]
pub enum Answer {
    /// DONE, with the command's output and DONE's own data section.
    Done {
        /// The DONE frame.
        done: Box<Done>,
        /// Output, stdout.
        stdout: String,
        /// Output, stderr.
        stderr: String,
        /// DONE's data section.
        data: Vec<u8>,
    },
    /// An ERROR for the command.
    Refused(ErrorFrame),
}

impl Answer {
    /// DONE and the output; panics on a refusal.
    pub fn done(self) -> (Done, String, String) {
        match self {
            Answer::Done {
                done,
                stdout,
                stderr,
                ..
            } => (*done, stdout, stderr),
            Answer::Refused(e) => panic!("refused: {e:?}"),
        }
    }

    /// The enforcement report; panics on a refusal or without one.
    pub fn enforcement(&self) -> &Enforcement {
        match self {
            Answer::Done { done, .. } => done.enforcement.as_ref().expect("no enforcement report"),
            Answer::Refused(e) => panic!("refused: {e:?}"),
        }
    }

    /// DONE's `changed` and its `result` as `T`; panics on a refusal.
    pub fn changed_and<T: serde::de::DeserializeOwned>(self) -> (bool, T) {
        match self {
            Answer::Done { done, .. } => (
                done.changed,
                serde_json::from_value(done.result.expect("DONE without a result"))
                    .expect("a result of the expected shape"),
            ),
            Answer::Refused(e) => panic!("refused: {e:?}"),
        }
    }

    /// The ERROR; panics on DONE.
    pub fn refused(self) -> ErrorFrame {
        match self {
            Answer::Refused(e) => e,
            Answer::Done { done, .. } => panic!("expected an ERROR, got {done:?}"),
        }
    }
}

impl Session {
    /// Starts a runner and says HELLO.
    pub fn start(label: &str, unprivileged: bool) -> Session {
        use std::os::unix::fs::chown;
        use std::os::unix::process::CommandExt;
        let tmp = ScratchDir::new(label);
        std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o777))
            .expect("chmod scratch");
        let runner = RawRunner::start_with(&tmp.0, &[], |cmd, staged| {
            cmd.current_dir("/");
            if unprivileged {
                chown(&staged.dir, Some(NOBODY), Some(NOBODY)).expect("chown");
                chown(&staged.exe, Some(NOBODY), Some(NOBODY)).expect("chown");
                cmd.uid(NOBODY).gid(NOBODY);
            }
        });
        let mut session = Session {
            runner,
            tmp,
            next: 0,
        };
        match session.runner.recv(Duration::from_secs(10)) {
            Some(Received::Frame(f)) if matches!(f.message, Message::Ready(_)) => {}
            other => panic!("no READY: {other:?}"),
        }
        session
            .runner
            .send(Message::Hello(Hello { version: 1 }), &[]);
        session
    }

    /// Sends one CMD and collects its output until its DONE or ERROR.
    pub fn cmd(&mut self, op: &str, args: Value, limits: Value, data: &[u8]) -> Answer {
        self.next += 1;
        let id = format!("c{}", self.next);
        let limits: Limits = serde_json::from_value(limits).expect("limits");
        self.runner.send(
            Message::Cmd(Cmd {
                id: id.clone(),
                op: op.into(),
                args,
                limits,
            }),
            data,
        );
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        loop {
            match self.runner.recv(Duration::from_secs(30)) {
                Some(Received::Frame(f)) => match f.message {
                    Message::Event(e) if e.id == id => match e.kind {
                        EventKind::Stderr => stderr.extend_from_slice(&f.data),
                        _ => stdout.extend_from_slice(&f.data),
                    },
                    Message::Done(done) if done.id == id => {
                        return Answer::Done {
                            done: Box::new(done),
                            stdout: String::from_utf8_lossy(&stdout).into_owned(),
                            stderr: String::from_utf8_lossy(&stderr).into_owned(),
                            data: f.data,
                        };
                    }
                    Message::Error(e) if e.id.as_deref() == Some(id.as_str()) => {
                        return Answer::Refused(e);
                    }
                    other => panic!("unexpected frame {other:?}"),
                },
                other => panic!("stream ended: {other:?}"),
            }
        }
    }
}
