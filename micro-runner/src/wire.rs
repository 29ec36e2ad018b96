//! The runner's two ends of the protocol: a stdin reader thread that turns bytes into raw
//! frames, and the single stdout writer. Nothing else in the runner touches fd 0 or fd 1.

use std::io::{self, Read, Write};
use std::sync::mpsc::SyncSender;

use wisp_protocol::frame::{DecodeError, FrameDecoder, RawFrame};
use wisp_protocol::marker::marker_line;
use wisp_protocol::message::{Frame, Message};

use crate::input::Input;

const READ_CHUNK: usize = 64 * 1024;

/// Reads stdin until EOF, a read error or a bad magic, forwarding what it decodes.
pub(crate) fn read_stdin(tx: SyncSender<Input>) {
    let mut stdin = io::stdin().lock();
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Input::StdinClosed {
                    mid_frame: decoder.is_mid_frame(),
                });
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Input::StdinFailed(e.to_string()));
                return;
            }
        };
        decoder.push(&buf[..n]);
        loop {
            let item = match decoder.next_frame() {
                Ok(Some(raw)) => Input::Frame(raw),
                Ok(None) => break,
                Err(e) => Input::Undecodable(e),
            };
            let fatal = matches!(item, Input::Undecodable(DecodeError::BadMagic { .. }));
            if tx.send(item).is_err() || fatal {
                return;
            }
        }
    }
}

/// The protocol's stdout. Once a write fails the controller is gone: later frames are dropped
/// and the session is told through [`FrameWriter::is_broken`].
pub(crate) struct FrameWriter {
    out: io::Stdout,
    buf: Vec<u8>,
    broken: bool,
}

impl FrameWriter {
    pub(crate) fn new() -> Self {
        Self {
            out: io::stdout(),
            buf: Vec::with_capacity(4096),
            broken: false,
        }
    }

    pub(crate) fn marker(&mut self, nonce: &str) {
        self.write_bytes(marker_line(nonce).into_bytes());
    }

    pub(crate) fn send(&mut self, message: Message) {
        self.send_with_data(message, Vec::new());
    }

    pub(crate) fn send_with_data(&mut self, message: Message, data: Vec<u8>) {
        let frame = Frame { message, data };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if let Err(e) = frame.encode(&mut buf) {
            // Only a bug can get here: every producer bounds its data by the frame limits.
            crate::diag::say(&format!("dropping a frame that cannot be encoded: {e}"));
        } else {
            self.write_all(&buf);
        }
        self.buf = buf;
    }

    fn write_bytes(&mut self, bytes: Vec<u8>) {
        self.write_all(&bytes);
    }

    fn write_all(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        let mut out = self.out.lock();
        if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
            self.broken = true;
        }
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }
}

/// A raw frame as received, for errors that quote it.
pub(crate) fn preview(raw: &RawFrame) -> String {
    let text = String::from_utf8_lossy(&raw.json);
    let mut s: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        s.push('…');
    }
    s
}
