//! The real runner binary against random input: random, malformed and truncated frames never
//! make it panic, hang or write anything but frames, and it always ends with EXIT and leaves
//! nothing on disk. 200 sessions of up to 60 frames each: over 10,000 frames per run.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use proptest::prelude::*;
use wisp_protocol::frame::{MAGIC, encode};
use wisp_tests::{Received, ScratchDir, runner_path, wait_for};

#[derive(Debug, Clone)]
enum Piece {
    /// A well-formed frame (commands limited to harmless programs).
    Valid(String, Vec<u8>),
    /// A good header around random JSON-ish text.
    JunkJson(String),
    /// A good header around arbitrary bytes, with or without a data section.
    JunkBytes(Vec<u8>, Vec<u8>),
    /// A header announcing more than the limits.
    Oversize(u32),
    /// Bytes that are not a frame at all.
    Raw(Vec<u8>),
}

fn valid_json() -> impl Strategy<Value = String> {
    let id = "[a-c]{1,2}";
    prop_oneof![
        Just(r#"{"t":"hello","version":1}"#.to_owned()),
        (0u32..4).prop_map(|v| format!(r#"{{"t":"hello","version":{v}}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"exec","args":{{"argv":["true"]}}}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"exec","args":{{"shell":"echo hi; echo err >&2"}},"limits":{{"timeout_ms":500}}}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"exec","args":{{"argv":["sleep","0.05"]}}}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"facts"}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"nope"}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"exec","args":{{"argv":[]}},"limits":{{"x":1}}}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cancel","id":"{id}"}}"#)),
        Just(r#"{"t":"done","id":"a","status":"ok","changed":false,"duration_ms":0}"#.to_owned()),
        Just(r#"{"t":"exit"}"#.to_owned()),
    ]
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => (valid_json(), proptest::collection::vec(any::<u8>(), 0..8)).prop_map(|(j, d)| Piece::Valid(j, d)),
        3 => "[{}\\[\\]\":,a-z0-9 ]{0,40}".prop_map(Piece::JunkJson),
        2 => (proptest::collection::vec(any::<u8>(), 0..64), proptest::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(j, d)| Piece::JunkBytes(j, d)),
        1 => (wisp_protocol::frame::MAX_JSON_LEN + 1..wisp_protocol::frame::MAX_JSON_LEN + 64).prop_map(Piece::Oversize),
        1 => proptest::collection::vec(any::<u8>(), 1..16).prop_map(Piece::Raw),
    ]
}

fn bytes_of(p: &Piece) -> Vec<u8> {
    let mut out = Vec::new();
    match p {
        Piece::Valid(j, d) => encode(j.as_bytes(), d, &mut out).expect("small frames encode"),
        Piece::JunkJson(j) => encode(j.as_bytes(), &[], &mut out).expect("small frames encode"),
        Piece::JunkBytes(j, d) => encode(j, d, &mut out).expect("small frames encode"),
        Piece::Oversize(n) => {
            out.extend_from_slice(&MAGIC);
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            out.resize(out.len() + *n as usize, b' ');
        }
        Piece::Raw(b) => out.extend_from_slice(b),
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_sessions_never_break_the_runner(
        pieces in proptest::collection::vec(piece(), 1..60),
        truncate_last in any::<bool>(),
        cut in 1usize..9,
    ) {
        let tmp = ScratchDir::new("fuzz");
        let staged = wisp_transports::stage::stage(&runner_path(), &tmp.0).unwrap();
        let nonce = wisp_transports::stage::random_token();
        let mut child = Command::new(&staged.exe)
            .args(["--marker", &nonce, "--ttl", "30", "--private-dir"])
            .arg(&staged.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut input: Vec<u8> = pieces.iter().flat_map(bytes_of).collect();
        if truncate_last {
            let last = bytes_of(pieces.last().unwrap());
            input.extend_from_slice(&last[..cut.min(last.len() - 1).max(1)]);
        }
        // Write from a thread: the runner may stop reading (EXIT, bad magic) or fill its
        // stdout while we write.
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || { let _ = stdin.write_all(&input); });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = std::io::Read::read_to_end(&mut { stdout }, &mut all);
            let _ = tx.send(all);
        });
        let out = rx.recv_timeout(Duration::from_secs(20));
        let status = wait_for(Duration::from_secs(5), || child.try_wait().unwrap());
        if out.is_err() || status.is_none() {
            // Fail below, but never leave a hung runner behind.
            let _ = child.kill();
        }
        let _ = child.wait();
        prop_assert!(out.is_ok(), "runner hung: stdout still open after 20s");
        prop_assert!(status.is_some(), "runner did not exit within 5s of closing stdout");
        let status = status.unwrap();
        let _ = writer.join();
        let _ = reader.join();
        prop_assert!(matches!(status.code(), Some(0 | 2)), "runner ended with {status:?} (a panic aborts with a signal)");

        // stdout: the marker, then whole frames, the last of them EXIT.
        let (tx, rx2) = std::sync::mpsc::channel();
        let all = out.unwrap();
        std::thread::spawn(move || wisp_tests::decode_capture(&all, &nonce, &tx));
        let mut last = None;
        while let Ok(item) = rx2.recv_timeout(Duration::from_secs(5)) {
            match item {
                Received::Frame(f) => last = Some(f.message),
                Received::Eof => break,
                Received::Garbage(g) => prop_assert!(false, "runner wrote something that is not a frame: {g}"),
            }
        }
        prop_assert!(matches!(last, Some(wisp_protocol::message::Message::Exit(_))), "last frame was {last:?}, not EXIT");
        prop_assert!(tmp.entries().is_empty(), "left on disk: {:?}", tmp.entries());
    }
}
