//! The real runner binary against random input: random, malformed and truncated frames never
//! make it panic, hang or write anything but frames, and it always ends with EXIT and leaves
//! nothing on disk. 200 sessions of 20 to 100 frames, each ending in EOF, EXIT, garbage or a
//! truncated frame: over 10,000 frames per run, every one of them read and answered.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use proptest::prelude::*;
use wisp_protocol::frame::{MAGIC, encode};
use wisp_tests::{Received, ScratchDir, runner_path, wait_for};

/// A frame in the body of a session: none of them ends it.
#[derive(Debug, Clone)]
enum Piece {
    /// A well-formed frame (commands limited to harmless programs).
    Valid(String, Vec<u8>),
    /// A good header around random JSON-ish text.
    JunkJson(String),
    /// A good header around arbitrary bytes, with or without a data section.
    JunkBytes(Vec<u8>, Vec<u8>),
    /// A header announcing more than the limits (skipped by the runner).
    Oversize(u32),
}

/// How a session's input ends.
#[derive(Debug, Clone)]
enum Ending {
    /// Plain EOF.
    Eof,
    /// An EXIT frame.
    Exit,
    /// Bytes that are not a frame (fatal: bad magic).
    Garbage(Vec<u8>),
    /// The first bytes of a frame, then EOF (fatal: truncated frame).
    Truncated(usize),
}

fn valid_json() -> impl Strategy<Value = String> {
    let id = "[a-c]{1,2}";
    prop_oneof![
        Just(r#"{"t":"hello","version":1}"#.to_owned()),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"exec","args":{{"argv":["true"]}}}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"exec","args":{{"shell":"echo hi; echo err >&2"}},"limits":{{"timeout_ms":500}}}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"exec","args":{{"argv":["sleep","0.05"]}}}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"exec","args":{{"argv":["cat"]}}}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"facts"}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"nope"}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cmd","id":"{id}","op":"exec","args":{{"argv":[]}},"limits":{{"x":1}}}}"#)),
        id.prop_map(|id| format!(r#"{{"t":"cancel","id":"{id}"}}"#)),
        Just(r#"{"t":"done","id":"a","status":"ok","changed":false,"duration_ms":0}"#.to_owned()),
    ]
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => (valid_json(), proptest::collection::vec(any::<u8>(), 0..8)).prop_map(|(j, d)| Piece::Valid(j, d)),
        3 => "[{}\\[\\]\":,a-z0-9 ]{0,40}".prop_map(Piece::JunkJson),
        2 => (proptest::collection::vec(any::<u8>(), 0..64), proptest::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(j, d)| Piece::JunkBytes(j, d)),
        1 => (wisp_protocol::frame::MAX_JSON_LEN + 1..wisp_protocol::frame::MAX_JSON_LEN + 64).prop_map(Piece::Oversize),
    ]
}

fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![
        Just(Ending::Eof),
        Just(Ending::Exit),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(Ending::Garbage),
        (1usize..30).prop_map(Ending::Truncated),
    ]
}

fn frame(json: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode(json, data, &mut out).expect("small frames encode");
    out
}

fn bytes_of(p: &Piece) -> Vec<u8> {
    match p {
        Piece::Valid(j, d) => frame(j.as_bytes(), d),
        Piece::JunkJson(j) => frame(j.as_bytes(), &[]),
        Piece::JunkBytes(j, d) => frame(j, d),
        Piece::Oversize(n) => {
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            out.resize(out.len() + *n as usize, b' ');
            out
        }
    }
}

fn session_input(pieces: &[Piece], end: &Ending) -> Vec<u8> {
    let mut input = frame(br#"{"t":"hello","version":1}"#, &[]);
    input.extend(pieces.iter().flat_map(bytes_of));
    match end {
        Ending::Eof => {}
        Ending::Exit => input.extend(frame(br#"{"t":"exit"}"#, &[])),
        Ending::Garbage(g) => {
            // A first byte other than 'W' guarantees a bad magic.
            input.push(b'!');
            input.extend_from_slice(g);
        }
        Ending::Truncated(n) => {
            let whole = frame(br#"{"t":"cmd","id":"z","op":"facts"}"#, &[]);
            input.extend_from_slice(&whole[..(*n).min(whole.len() - 1)]);
        }
    }
    input
}

const SESSIONS: u32 = 200;
const MIN_FRAMES: usize = 10_000;

#[test]
fn random_sessions_never_break_the_runner() {
    let config = ProptestConfig {
        cases: SESSIONS,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let frames = std::cell::Cell::new(0usize);
    let strategy = (proptest::collection::vec(piece(), 20..100), ending());
    let result = runner.run(&strategy, |(pieces, end)| {
        // Every frame counted here is read and answered: nothing before the ending stops
        // the session.
        frames.set(frames.get() + pieces.len() + 2);
        one_session(&session_input(&pieces, &end))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!(
        "fed {} frames (valid, malformed, oversize, raw, truncated) to {SESSIONS} runner sessions",
        frames.get()
    );
    assert!(
        frames.get() >= MIN_FRAMES,
        "only {} frames fed",
        frames.get()
    );
}

/// One runner process fed `input`, then EOF.
fn one_session(input: &[u8]) -> Result<(), TestCaseError> {
    let tmp = ScratchDir::new("fuzz");
    let staged = wisp_transports::stage::stage(&runner_path(), &tmp.0).unwrap();
    let nonce = wisp_transports::stage::random_token();
    let mut cmd = Command::new(&staged.exe);
    cmd.args(["--marker", &nonce, "--ttl", "30", "--private-dir"])
        .arg(&staged.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = wisp_transports::stage::retry_text_busy(|| cmd.spawn()).unwrap();
    let input = input.to_vec();
    // Write from a thread: the runner may stop reading (EXIT, bad magic) or fill its
    // stdout while we write.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
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
    prop_assert!(
        status.is_some(),
        "runner did not exit within 5s of closing stdout"
    );
    let status = status.unwrap();
    let _ = writer.join();
    let _ = reader.join();
    prop_assert!(
        matches!(status.code(), Some(0 | 2)),
        "runner ended with {status:?} (a panic aborts with a signal)"
    );

    // stdout: the marker, then whole frames, the last of them EXIT.
    let (tx, rx2) = std::sync::mpsc::channel();
    let all = out.unwrap();
    std::thread::spawn(move || wisp_tests::decode_capture(&all, &nonce, &tx));
    let mut last = None;
    while let Ok(item) = rx2.recv_timeout(Duration::from_secs(5)) {
        match item {
            Received::Frame(f) => last = Some(f.message),
            Received::Eof => break,
            Received::Garbage(g) => {
                prop_assert!(false, "runner wrote something that is not a frame: {g}")
            }
        }
    }
    prop_assert!(
        matches!(last, Some(wisp_protocol::message::Message::Exit(_))),
        "last frame was {last:?}, not EXIT"
    );
    prop_assert!(
        tmp.entries().is_empty(),
        "left on disk: {:?}",
        tmp.entries()
    );
    Ok(())
}
