//! A deliberately broken runner for testing the conformance suite: it runs the real runner
//! (`$BROKEN_RUNNER_REAL`) and, in the first frame whose JSON contains `$BROKEN_RUNNER_FROM`,
//! replaces that text with `$BROKEN_RUNNER_TO`. Everything else passes through unchanged.
//!
//! With `$BROKEN_RUNNER_MUTE` set it goes silent after that frame: nothing the real runner
//! writes later (DONE, the answer to a CANCEL, EXIT) reaches the controller, as from a peer
//! that hangs.
//!
//! With `$BROKEN_RUNNER_REPEAT=N` the tampered frame is sent N times, as from a runner that
//! ignores the output limit it was given.
//!
//! With `$BROKEN_RUNNER_THEN` it turns hostile right after the tampered frame:
//! - `oversize`: announces a 4 GiB frame and sends 64 MiB of it, then hangs up;
//! - `flood`: 256 MiB of stdout for the same command in 64 KiB chunks with no newline;
//! - `ready-twice`: a second READY;
//! - `unknown-id`: a DONE for a command the controller never sent;
//! - `cut`: half of the next frame, then it hangs up;
//! - `short-lines`: 100 frames (`$BROKEN_RUNNER_FRAMES`) of output for the same command, each
//!   1.6 MB of two-byte lines (800,000 lines a frame).
//!
//! Its settings come from its environment or, since wisp starts a local runner with a login's
//! environment only, from `$HOME/broken-runner.env` (`NAME=VALUE` lines), which the tests
//! write into their isolated HOME.
//!
//! It is staged like any runner, so it removes its own private directory (the real runner
//! does not live there and would refuse to).

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use wisp_protocol::frame::{FrameDecoder, HEADER_LEN, encode};

/// A setting: from the environment, else from `$HOME/broken-runner.env`.
fn setting(name: &str) -> Option<String> {
    if let Ok(v) = std::env::var(name) {
        return Some(v);
    }
    let home = std::env::var_os("HOME")?;
    let text =
        std::fs::read_to_string(std::path::Path::new(&home).join("broken-runner.env")).ok()?;
    // The last line for a name wins, as in a shell's environment.
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
}

fn main() {
    let real = setting("BROKEN_RUNNER_REAL").expect("BROKEN_RUNNER_REAL is not set");
    let from = setting("BROKEN_RUNNER_FROM").expect("BROKEN_RUNNER_FROM is not set");
    let to = setting("BROKEN_RUNNER_TO").expect("BROKEN_RUNNER_TO is not set");
    let mute = setting("BROKEN_RUNNER_MUTE").is_some();
    let then = setting("BROKEN_RUNNER_THEN").unwrap_or_default();
    let mut cut_next = false;
    let repeat: usize = setting("BROKEN_RUNNER_REPEAT")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--private-dir") {
        let dir = args.remove(i + 1);
        args.remove(i);
        std::fs::remove_dir_all(dir).expect("cannot remove the private dir");
    }
    let nonce = args
        .iter()
        .position(|a| a == "--marker")
        .map(|i| args[i + 1].clone())
        .expect("--marker missing");
    let mut child = Command::new(real)
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start the real runner");
    let mut from_runner = child.stdout.take().expect("stdout pipe");
    let mut out = std::io::stdout().lock();

    // Pass the marker through, then re-frame every frame, tampering with one.
    let marker = format!("WISP-START {nonce}\n");
    let mut head = vec![0u8; marker.len()];
    from_runner.read_exact(&mut head).expect("marker");
    out.write_all(&head)
        .and_then(|()| out.flush())
        .expect("write marker");
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 65536];
    let mut tampered = false;
    loop {
        let n = from_runner.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        decoder.push(&buf[..n]);
        while let Ok(Some(frame)) = decoder.next_frame() {
            if mute && tampered {
                continue;
            }
            if cut_next {
                let mut bytes = Vec::new();
                encode(&frame.json, &frame.data, &mut bytes).expect("encode");
                let _ = out
                    .write_all(&bytes[..bytes.len() / 2])
                    .and_then(|()| out.flush());
                std::process::exit(0);
            }
            let mut json = String::from_utf8(frame.json).expect("runner JSON is UTF-8");
            let mut times = 1;
            if !tampered && json.contains(&from) {
                json = json.replacen(&from, &to, 1);
                tampered = true;
                times = repeat;
            }
            let mut bytes = Vec::with_capacity(HEADER_LEN + json.len() + frame.data.len());
            for _ in 0..times {
                encode(json.as_bytes(), &frame.data, &mut bytes).expect("encode");
            }
            if out.write_all(&bytes).and_then(|()| out.flush()).is_err() {
                break;
            }
            if times == repeat && tampered && !then.is_empty() && !cut_next {
                if hostile(&then, &json, &mut out) {
                    cut_next = true;
                }
                if then == "oversize" {
                    std::process::exit(0);
                }
            }
        }
    }
    let status = child.wait().expect("wait for the real runner");
    std::process::exit(status.code().unwrap_or(1));
}

/// The hostile turn after the frame `json`; true when the next frame is to be cut.
fn hostile(then: &str, json: &str, out: &mut impl Write) -> bool {
    let mut bytes = Vec::new();
    match then {
        "oversize" => {
            let mut header = b"WF".to_vec();
            header.extend_from_slice(&u32::MAX.to_be_bytes());
            header.extend_from_slice(&0u32.to_be_bytes());
            let _ = out.write_all(&header);
            let chunk = vec![0u8; 1 << 20];
            for _ in 0..64 {
                if out.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = out.flush();
        }
        "flood" => {
            let chunk = vec![b'x'; 64 << 10];
            let mut frame = Vec::new();
            encode(json.as_bytes(), &chunk, &mut frame).expect("encode");
            for _ in 0..4096 {
                if out.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = out.flush();
        }
        "ready-twice" => {
            encode(json.as_bytes(), b"", &mut bytes).expect("encode");
        }
        "unknown-id" => {
            let done = br#"{"t":"done","id":"c999","status":"ok","changed":false,"duration_ms":1,"exit_code":0}"#;
            encode(done, b"", &mut bytes).expect("encode");
        }
        "cut" => return true,
        "short-lines" => {
            let lines = b"a\n".repeat(800_000);
            let mut frame = Vec::new();
            encode(json.as_bytes(), &lines, &mut frame).expect("encode");
            let frames: usize = setting("BROKEN_RUNNER_FRAMES")
                .and_then(|n| n.parse().ok())
                .unwrap_or(100);
            for _ in 0..frames {
                if out.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = out.flush();
        }
        other => panic!("unknown BROKEN_RUNNER_THEN {other:?}"),
    }
    let _ = out.write_all(&bytes).and_then(|()| out.flush());
    false
}
