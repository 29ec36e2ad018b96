//! Error codes carried by ERROR frames, and the retry class of each.

use serde::{Deserialize, Serialize};

/// What a controller may do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// A passing fault (resources, IO): the same request may succeed if retried.
    Transient,
    /// The runner is at a limit of its own (too many commands in flight): retry later.
    Throttled,
    /// The request clashes with the session's state (duplicate id, unknown id, wrong order).
    Conflict,
    /// The request is wrong and will fail the same way every time.
    Permanent,
}

/// Machine-readable reason for an ERROR frame.
///
/// A controller must accept codes it does not know ([`ErrorCode::Other`]) and act on the
/// class sent beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame's JSON is malformed, not an object, or lacks a valid `t`.
    BadFrame,
    /// The header announced more bytes than the limits allow; the frame was skipped.
    OversizeFrame,
    /// The stream lost frame alignment (bad magic). Always fatal.
    BadMagic,
    /// A frame ended early because the stream closed. Always fatal.
    TruncatedFrame,
    /// The `t` names no frame type this runner knows.
    UnknownFrame,
    /// The frame is valid but not allowed now: a CMD before HELLO, a second HELLO, a frame
    /// type that only the runner sends.
    OutOfSequence,
    /// HELLO asked for a protocol version this runner does not speak. Always fatal.
    UnsupportedVersion,
    /// The CMD's op is not one this runner implements.
    UnknownOp,
    /// The CMD's args do not fit its op.
    BadArgs,
    /// The CMD asks for a limit this runner does not know; it is refused rather than ignored.
    UnsupportedLimit,
    /// A CMD reused the id of a command still in flight.
    DuplicateId,
    /// A CANCEL named no command in flight.
    UnknownId,
    /// Too many commands are in flight.
    TooManyCommands,
    /// The command could not be started (no such program, cwd missing, fork failed).
    SpawnFailed,
    /// Under `sandbox: require`, a requested protection cannot be applied on this host; the
    /// command did not run. `missing` names each gap.
    SandboxUnavailable,
    /// The op ran and could not do its work (a file system full, a permission refused); the
    /// message names the path and the reason. Nothing was half-applied.
    OpFailed,
    /// A lock the op needs is held by another process (a package manager running); the
    /// message names the holder when it can be found. Retry later.
    Locked,
    /// The runner hit an internal failure.
    Internal,
    /// A code this side does not know (sent by a newer peer).
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// Every code a runner of this version may send.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BadFrame,
        ErrorCode::OversizeFrame,
        ErrorCode::BadMagic,
        ErrorCode::TruncatedFrame,
        ErrorCode::UnknownFrame,
        ErrorCode::OutOfSequence,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownOp,
        ErrorCode::BadArgs,
        ErrorCode::UnsupportedLimit,
        ErrorCode::DuplicateId,
        ErrorCode::UnknownId,
        ErrorCode::TooManyCommands,
        ErrorCode::SpawnFailed,
        ErrorCode::SandboxUnavailable,
        ErrorCode::OpFailed,
        ErrorCode::Locked,
        ErrorCode::Internal,
    ];

    /// The class a runner sends with this code.
    pub fn class(self) -> ErrorClass {
        match self {
            ErrorCode::TooManyCommands => ErrorClass::Throttled,
            ErrorCode::DuplicateId
            | ErrorCode::UnknownId
            | ErrorCode::OutOfSequence
            | ErrorCode::Locked => ErrorClass::Conflict,
            ErrorCode::Internal => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

/// An error and its causes, `: `-separated, on one line: how every wisp program shows an
/// error to the operator (error types themselves live where they fail).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
