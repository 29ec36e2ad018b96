//! Properties of the decoder on untrusted bytes: it never panics, whatever it is fed; where
//! the input is split never changes what it decodes; and every message survives a round trip.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use proptest::prelude::*;
use wisp_protocol::error::{ErrorClass, ErrorCode};
use wisp_protocol::frame::{FrameDecoder, RawFrame, encode};
use wisp_protocol::marker::{MarkerScanner, Scan};
use wisp_protocol::message::{
    Cancel, Cmd, Done, ErrorFrame, Event, EventKind, Exit, ExitReason, Frame, Hello, Limits,
    Message, Status, Usage,
};
use wisp_protocol::sandbox::{Enforcement, FsRules, SandboxMode, Seccomp};

/// Feeds `chunks` one by one and collects everything the decoder yields.
fn decode_all(chunks: &[&[u8]]) -> Vec<Result<RawFrame, String>> {
    let mut dec = FrameDecoder::new();
    let mut out = Vec::new();
    for chunk in chunks {
        dec.push(chunk);
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => break,
                Err(e) => {
                    let fatal = matches!(e, wisp_protocol::frame::DecodeError::BadMagic { .. });
                    out.push(Err(e.to_string()));
                    if fatal {
                        return out;
                    }
                }
            }
        }
    }
    out
}

fn message() -> impl Strategy<Value = Message> {
    let id = "[a-z0-9-]{1,12}";
    prop_oneof![
        (0u32..5).prop_map(|version| Message::Hello(Hello { version })),
        (
            id,
            prop::collection::vec("[ -~]{0,8}", 1..4),
            prop::option::of(1u64..100_000),
            prop::option::of(1u64..1 << 40),
            prop::collection::vec("/[a-z]{1,6}", 0..3),
        )
            .prop_map(|(id, argv, t, mem, rw)| {
                Message::Cmd(Cmd {
                    id,
                    op: "exec".into(),
                    args: serde_json::json!({ "argv": argv }),
                    limits: Limits {
                        timeout_ms: t,
                        memory_max: mem,
                        fs: (!rw.is_empty()).then(|| FsRules {
                            rw,
                            ..Default::default()
                        }),
                        seccomp: mem.map(|_| Seccomp::Strict),
                        sandbox: t.map(|_| SandboxMode::BestEffort),
                        ..Default::default()
                    },
                })
            }),
        (
            id,
            prop_oneof![Just(EventKind::Stdout), Just(EventKind::Stderr)]
        )
            .prop_map(|(id, kind)| Message::Event(Event {
                id,
                kind,
                message: None
            })),
        (id, any::<i32>(), any::<u64>(), any::<bool>()).prop_map(|(id, code, ms, changed)| {
            Message::Done(Done {
                id,
                status: Status::Failed,
                exit_code: Some(code),
                signal: None,
                changed,
                duration_ms: ms,
                usage: Some(Usage {
                    max_rss_kb: ms / 3,
                    user_ms: 1,
                    sys_ms: 2,
                }),
                truncated: vec![EventKind::Stdout],
                result: None,
                enforcement: Some(Enforcement {
                    complete: changed,
                    kill: "process-group".into(),
                    ..Default::default()
                }),
            })
        }),
        (prop::option::of(id), "\\PC{0,40}")
            .prop_map(|(id, m)| { Message::Error(ErrorFrame::new(id, ErrorCode::BadArgs, m)) }),
        id.prop_map(|id| Message::Cancel(Cancel { id })),
        prop_oneof![
            Just(None),
            Just(Some(ExitReason::Ttl)),
            Just(Some(ExitReason::Requested))
        ]
        .prop_map(|reason| Message::Exit(Exit { reason })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes, with or without a valid magic in front: no panic, and nothing decoded
    /// claims more bytes than were fed.
    #[test]
    fn decoder_never_panics(prefix_magic in any::<bool>(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut input = if prefix_magic { b"WF".to_vec() } else { Vec::new() };
        input.extend_from_slice(&bytes);
        for f in decode_all(&[&input]).into_iter().flatten() {
            prop_assert!(f.json.len() + f.data.len() <= input.len());
            // Whatever decodes as a frame must not panic as a message either.
            let _ = Frame::decode(f);
        }
    }

    /// Any byte string as a frame's JSON section: decoding it as a message never panics.
    #[test]
    fn message_decode_never_panics(json in prop::collection::vec(any::<u8>(), 0..128), text in "\\PC{0,64}") {
        let _ = Frame::decode(RawFrame { json, data: Vec::new() });
        let _ = Frame::decode(RawFrame { json: text.into_bytes(), data: Vec::new() });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Messages survive encode → decode, and splitting the stream anywhere changes nothing.
    #[test]
    fn round_trip_at_any_split(
        messages in prop::collection::vec((message(), prop::collection::vec(any::<u8>(), 0..32)), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut stream = Vec::new();
        for (m, data) in &messages {
            Frame { message: m.clone(), data: data.clone() }.encode(&mut stream).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&stream[last..p]);
            last = p;
        }
        chunks.push(&stream[last..]);
        let decoded: Vec<Frame> = decode_all(&chunks)
            .into_iter()
            .map(|r| Frame::decode(r.expect("valid stream")).expect("valid message"))
            .collect();
        let expected: Vec<Frame> = messages.into_iter().map(|(message, data)| Frame { message, data }).collect();
        prop_assert_eq!(decoded, expected);
    }

    /// A truncated stream yields the complete frames before the cut and reports the rest as
    /// mid-frame, never as a frame.
    #[test]
    fn truncation_is_visible(messages in prop::collection::vec(message(), 1..5), cut in any::<prop::sample::Index>()) {
        let mut stream = Vec::new();
        let mut ends = Vec::new();
        for m in &messages {
            Frame::new(m.clone()).encode(&mut stream).unwrap();
            ends.push(stream.len());
        }
        let at = cut.index(stream.len());
        let mut dec = FrameDecoder::new();
        dec.push(&stream[..at]);
        let mut n = 0;
        while let Ok(Some(_)) = dec.next_frame() {
            n += 1;
        }
        prop_assert_eq!(n, ends.iter().filter(|e| **e <= at).count());
        prop_assert_eq!(dec.is_mid_frame(), !ends.contains(&at) && at > 0);
    }

    /// The marker is found behind any noise that does not contain it, split anywhere.
    #[test]
    fn marker_found_behind_noise(noise in "\\PC{0,200}", cut in any::<prop::sample::Index>()) {
        prop_assume!(!noise.contains("WISP-START"));
        let mut all = noise.clone().into_bytes();
        all.extend_from_slice(b"WISP-START nonce12345\nWF");
        let at = cut.index(all.len() + 1);
        let mut s = MarkerScanner::new("nonce12345");
        let rest = match s.push(&all[..at]).unwrap() {
            Scan::Found { mut rest } => { rest.extend_from_slice(&all[at..]); rest }
            Scan::NeedMore => match s.push(&all[at..]).unwrap() {
                Scan::Found { rest } => rest,
                Scan::NeedMore => { prop_assert!(false, "marker not found"); unreachable!() }
            },
        };
        prop_assert_eq!(rest, b"WF".to_vec());
        prop_assert_eq!(s.noise(), noise);
    }
}

#[test]
fn error_classes_are_stable() {
    assert_eq!(ErrorCode::DuplicateId.class(), ErrorClass::Conflict);
    assert_eq!(ErrorCode::TooManyCommands.class(), ErrorClass::Throttled);
    assert_eq!(ErrorCode::BadArgs.class(), ErrorClass::Permanent);
    let mut out = Vec::new();
    encode(b"{}", b"", &mut out).unwrap();
    assert_eq!(out.len(), wisp_protocol::frame::HEADER_LEN + 2);
}
