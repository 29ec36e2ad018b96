//! Fuzz target: untrusted bytes through everything a runner does with its stdin before it
//! acts: marker-free framing in arbitrary chunks, message decoding, and op parsing.
//! Run: see "Fuzzing" in README.md.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wisp_protocol::frame::FrameDecoder;
use wisp_protocol::message::{Frame, Message};
use wisp_protocol::ops::Op;

fuzz_target!(|input: &[u8]| {
    // The first byte picks a chunk size, so frame boundaries fall at varied places.
    let Some((&first, bytes)) = input.split_first() else { return };
    let chunk = usize::from(first).max(1);
    let mut decoder = FrameDecoder::new();
    for piece in bytes.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(raw)) => {
                    if let Ok(Frame { message: Message::Cmd(cmd), .. }) = Frame::decode(raw) {
                        let _ = Op::parse(&cmd.op, &cmd.args);
                    }
                }
                Ok(None) => break,
                Err(wisp_protocol::frame::DecodeError::BadMagic { .. }) => return,
                Err(_) => {}
            }
        }
    }
    let _ = decoder.is_mid_frame();
});
