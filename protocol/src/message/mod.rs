//! The typed frames. Each is the JSON section of a frame, tagged by `t`.
//!
//! Compatibility rules (PROTOCOL.md, "Evolution"): unknown fields are ignored everywhere except
//! in [`Limits`], where an unknown limit is refused because ignoring a protection would be
//! silent degradation; an unknown `t` is answered with ERROR `unknown_frame`.

use serde::{Deserialize, Serialize};

mod command;
mod session;

pub use command::{
    Cancel, Cmd, DataFrame, Done, Env, ErrorFrame, Event, EventKind, Limits, Status, Usage,
};
pub use session::{
    Capabilities, CgroupCap, Exit, ExitReason, Hello, LandlockCap, Ready, SeccompCap, VersionRange,
};

use crate::frame::{self, EncodeError, RawFrame};

/// A decoded frame: its message and its raw data section.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The message.
    pub message: Message,
    /// Raw bytes that travel with it: output for EVENT, stdin for an exec CMD.
    pub data: Vec<u8>,
}

impl Frame {
    /// A frame without a data section.
    pub fn new(message: Message) -> Self {
        Self {
            message,
            data: Vec::new(),
        }
    }

    /// Encodes this frame onto `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let json = serde_json::to_vec(&self.message).map_err(|_| EncodeError {
            json_len: usize::MAX,
            data_len: self.data.len(),
        })?;
        frame::encode(&json, &self.data, out)
    }

    /// Decodes a raw frame. On failure, the error still carries the frame's `t` and `id` when
    /// they could be read, so the answer can name the command it belongs to.
    pub fn decode(raw: RawFrame) -> Result<Self, MessageError> {
        let (message, data) = decode_as::<Message>(raw, &[])?;
        Ok(Frame { message, data })
    }
}

/// The frames a runner is sent, as it reads them: [`Message`] without the runner's own
/// frames, so the runner carries no code to read what only it writes.
#[allow(clippy::large_enum_variant)] // read once per frame and taken apart at once
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum ToRunner {
    /// See [`Message::Hello`].
    Hello(Hello),
    /// See [`Message::Cmd`].
    Cmd(Cmd),
    /// See [`Message::Cancel`].
    Cancel(Cancel),
    /// See [`Message::Data`].
    Data(DataFrame),
    /// See [`Message::Exit`].
    Exit(Exit),
}

/// The frame types only a runner sends.
const FROM_RUNNER: &[&str] = &["ready", "event", "done", "error"];

impl ToRunner {
    /// Decodes a raw frame sent to a runner, with its data section. A frame only a runner
    /// sends is refused as [`MessageErrorKind::FromRunner`].
    pub fn decode(raw: RawFrame) -> Result<(ToRunner, Vec<u8>), MessageError> {
        decode_as::<ToRunner>(raw, FROM_RUNNER)
    }
}

/// Decodes a raw frame as `T`, refusing the types in `misdirected` before reading them.
fn decode_as<T: serde::de::DeserializeOwned>(
    raw: RawFrame,
    misdirected: &[&str],
) -> Result<(T, Vec<u8>), MessageError> {
    let head: Head = serde_json::from_slice(&raw.json).map_err(|e| MessageError {
        kind: MessageErrorKind::Malformed,
        t: None,
        id: None,
        detail: e.to_string(),
    })?;
    let Some(t) = head.t else {
        return Err(MessageError {
            kind: MessageErrorKind::Malformed,
            t: None,
            id: head.id,
            detail: "missing frame type field `t`".into(),
        });
    };
    let refused = |kind, detail| MessageError {
        kind,
        detail,
        t: Some(t.clone()),
        id: head.id.clone(),
    };
    if !KNOWN_TYPES.contains(&t.as_str()) {
        return Err(refused(
            MessageErrorKind::UnknownType,
            format!("unknown frame type {t:?}"),
        ));
    }
    if misdirected.contains(&t.as_str()) {
        return Err(refused(
            MessageErrorKind::FromRunner,
            format!("{t} frames are sent by the runner, never to it"),
        ));
    }
    match serde_json::from_slice::<T>(&raw.json) {
        Ok(message) => Ok((message, raw.data)),
        Err(e) => {
            // A limit the runner does not know must be refused as such, so the controller
            // can say which protection is missing instead of "bad frame".
            let limits_err = (t == "cmd")
                .then(|| serde_json::from_slice::<LimitsOnly>(&raw.json).err())
                .flatten();
            Err(match limits_err {
                Some(le) => refused(MessageErrorKind::UnsupportedLimit, format!("limits: {le}")),
                None => refused(MessageErrorKind::Invalid, format!("invalid {t} frame: {e}")),
            })
        }
    }
}

/// The frame types of this protocol version.
pub const KNOWN_TYPES: &[&str] = &[
    "ready", "hello", "cmd", "event", "done", "error", "cancel", "data", "exit",
];

/// Just enough of any frame to route an error about it.
#[derive(Deserialize)]
struct Head {
    t: Option<String>,
    #[serde(default, deserialize_with = "lenient_id")]
    id: Option<String>,
}

#[derive(Deserialize)]
struct LimitsOnly {
    #[serde(default)]
    #[allow(dead_code)] // parsed only to find out whether it parses
    limits: Limits,
}

fn lenient_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

/// A raw frame that is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError {
    /// What is wrong.
    pub kind: MessageErrorKind,
    /// The frame's type, when it could be read.
    pub t: Option<String>,
    /// The frame's id, when it could be read.
    pub id: Option<String>,
    /// A human-readable detail.
    pub detail: String,
}

/// The kinds of [`MessageError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageErrorKind {
    /// Not a JSON object with a string `t`.
    Malformed,
    /// A `t` this version does not define.
    UnknownType,
    /// A known `t` whose fields do not fit it.
    Invalid,
    /// A CMD whose `limits` name a limit this version does not know, or give it a bad value.
    UnsupportedLimit,
    /// A frame only a runner sends, sent to a runner.
    FromRunner,
}

impl std::fmt::Display for MessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for MessageError {}

/// Every frame type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum Message {
    /// Runner → controller, once, right after the marker.
    Ready(Ready),
    /// Controller → runner, once, before any CMD: the chosen protocol version.
    Hello(Hello),
    /// Controller → runner: run an op.
    Cmd(Cmd),
    /// Runner → controller: output or progress of a command in flight.
    Event(Event),
    /// Runner → controller: a command finished. The last frame for its id.
    Done(Done),
    /// Runner → controller: a request failed, or the session did.
    Error(ErrorFrame),
    /// Controller → runner: stop a command in flight.
    Cancel(Cancel),
    /// Controller → runner: more of a CMD's data section, for content larger than one frame.
    Data(DataFrame),
    /// Both ways: controller asks for a clean shutdown; the runner's last frame.
    Exit(Exit),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorClass, ErrorCode};

    fn raw(json: &str) -> RawFrame {
        RawFrame {
            json: json.as_bytes().to_vec(),
            data: Vec::new(),
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let f = Frame::decode(raw(r#"{"t":"cancel","id":"a","future":1}"#)).unwrap();
        assert_eq!(f.message, Message::Cancel(Cancel { id: "a".into() }));
    }

    #[test]
    fn unknown_limits_are_refused() {
        let e = Frame::decode(raw(
            r#"{"t":"cmd","id":"a","op":"exec","limits":{"memory":1}}"#,
        ))
        .unwrap_err();
        assert_eq!(e.kind, MessageErrorKind::UnsupportedLimit);
        assert_eq!(e.id.as_deref(), Some("a"));
        assert!(e.detail.contains("memory"), "{}", e.detail);
    }

    #[test]
    fn unknown_type_keeps_its_name_and_id() {
        let e = Frame::decode(raw(r#"{"t":"teleport","id":"x"}"#)).unwrap_err();
        assert_eq!(e.kind, MessageErrorKind::UnknownType);
        assert_eq!(e.t.as_deref(), Some("teleport"));
        assert_eq!(e.id.as_deref(), Some("x"));
    }

    #[test]
    fn malformed_json_and_missing_type() {
        assert_eq!(
            Frame::decode(raw("{nope")).unwrap_err().kind,
            MessageErrorKind::Malformed
        );
        assert_eq!(
            Frame::decode(raw("[1,2]")).unwrap_err().kind,
            MessageErrorKind::Malformed
        );
        assert_eq!(
            Frame::decode(raw(r#"{"id":"a"}"#)).unwrap_err().kind,
            MessageErrorKind::Malformed
        );
        assert_eq!(
            Frame::decode(raw(r#"{"t":5}"#)).unwrap_err().kind,
            MessageErrorKind::Malformed
        );
    }

    #[test]
    fn unknown_error_codes_decode_as_other() {
        let f = Frame::decode(raw(
            r#"{"t":"error","code":"quantum_flux","class":"transient","message":"m"}"#,
        ))
        .unwrap();
        let Message::Error(e) = f.message else {
            panic!("not an error")
        };
        assert_eq!(e.code, ErrorCode::Other);
        assert_eq!(e.class, ErrorClass::Transient);
    }
}
