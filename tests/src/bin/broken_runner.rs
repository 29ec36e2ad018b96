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
//! It is staged like any runner, so it removes its own private directory (the real runner
//! does not live there and would refuse to).

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use wisp_protocol::frame::{FrameDecoder, HEADER_LEN, encode};

fn main() {
    let real = std::env::var("BROKEN_RUNNER_REAL").expect("BROKEN_RUNNER_REAL is not set");
    let from = std::env::var("BROKEN_RUNNER_FROM").expect("BROKEN_RUNNER_FROM is not set");
    let to = std::env::var("BROKEN_RUNNER_TO").expect("BROKEN_RUNNER_TO is not set");
    let mute = std::env::var_os("BROKEN_RUNNER_MUTE").is_some();
    let repeat: usize = std::env::var("BROKEN_RUNNER_REPEAT")
        .ok()
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
        }
    }
    let status = child.wait().expect("wait for the real runner");
    std::process::exit(status.code().unwrap_or(1));
}
