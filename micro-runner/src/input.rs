//! Everything the session loop reacts to, as one type: the channel's items. A leaf: the
//! threads that produce inputs (stdin reader, pipe pumps, waiters, signals, system ops) and
//! the session that consumes them all depend on this module, and it on none of them.

use std::time::Instant;

use wisp_protocol::frame::{DecodeError, RawFrame};
use wisp_protocol::message::{EventKind, Usage};

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
        exit: Exit,
    },
    Signal(&'static str),
    /// A `pkg.ensure` or `service.*` finished on its thread.
    SystemDone(SystemDone),
}

/// How a process ended, as `wait4` reported it.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) usage: Usage,
}

/// Why a system op could not do its work.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The tool failed, or the host lacks it; the message says which and why.
    Failed(String),
    /// Another process holds a lock the op needs; the message names it.
    Locked(String),
}

/// What a system op's thread hands back: whether it changed anything and its DONE `result`.
pub(crate) type Outcome = Result<(bool, serde_json::Value), Failure>;

/// A system op finished on its thread.
#[derive(Debug)]
pub(crate) struct SystemDone {
    pub(crate) id: String,
    pub(crate) started: Instant,
    /// It was a `pkg.ensure` (one of those runs at a time).
    pub(crate) pkg: bool,
    pub(crate) outcome: Outcome,
}
