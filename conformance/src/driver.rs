//! Runs one case against a fresh runner process and compares what it answers.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wisp_protocol::frame::{FrameDecoder, RawFrame};
use wisp_protocol::marker::{MarkerScanner, Scan};
use wisp_protocol::message::Frame;
use wisp_transports::stage::{StagedRunner, random_token, stage, staging_base};

use super::case::{Case, Cond, Step};
use super::normalise::{diff, normalise};

/// How long an await may take. Cases only use short sleeps; this bounds a hung runner.
const AWAIT_LIMIT: Duration = Duration::from_secs(10);
/// TTL given to runners under test; it appears in READY.
pub(crate) const CASE_TTL_S: u64 = 60;

/// What one case produced.
#[derive(Debug)]
pub(crate) struct CaseRun {
    /// Normalised frames received per await step.
    pub(crate) blocks: Vec<Vec<String>>,
    /// Exit status per exit_status step.
    pub(crate) exit_statuses: Vec<i32>,
    /// Why the case failed, if it did (including a diff).
    pub(crate) failures: Vec<String>,
}

enum Recv {
    Frame(Value, Vec<u8>),
    Eof,
    Broken(String),
}

struct Runner {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Recv>,
    staged: StagedRunner,
    stderr: Arc<Mutex<Vec<u8>>>,
}

fn start(runner: &Path, interpreter: Option<&Path>) -> Result<Runner, String> {
    let staged = stage(runner, &staging_base()).map_err(|e| wisp_protocol::error::chain(&e))?;
    let nonce = random_token();
    let ttl = CASE_TTL_S.to_string();
    // An emulator (qemu-user) runs a runner built for another architecture.
    let mut cmd = match interpreter {
        Some(i) => {
            let mut c = Command::new(i);
            c.arg(&staged.exe);
            c
        }
        None => Command::new(&staged.exe),
    };
    cmd.args(["--marker", &nonce, "--ttl", &ttl, "--private-dir"])
        .arg(&staged.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = wisp_transports::stage::retry_text_busy(|| cmd.spawn()).map_err(|e| {
        staged.remove_leftovers();
        format!("cannot start {}: {e}", runner.display())
    })?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    std::thread::spawn(move || read_frames(stdout, &nonce, &tx));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut err) = child.stderr.take() {
        let keep = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            if let Ok(mut k) = keep.lock() {
                *k = buf;
            }
        });
    }
    Ok(Runner {
        stdin: child.stdin.take(),
        child,
        rx,
        staged,
        stderr,
    })
}

fn read_frames(mut stdout: impl Read, nonce: &str, tx: &mpsc::Sender<Recv>) {
    let mut scanner = Some(MarkerScanner::new(nonce));
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) | Err(_) => {
                let end = match (&scanner, decoder.is_mid_frame()) {
                    (Some(s), _) => Recv::Broken(format!(
                        "stdout ended before the start marker; it carried {:?}",
                        s.noise()
                    )),
                    (None, true) => Recv::Broken("stdout ended in the middle of a frame".into()),
                    (None, false) => Recv::Eof,
                };
                let _ = tx.send(end);
                return;
            }
            Ok(n) => n,
        };
        let mut bytes = &buf[..n];
        let rest;
        if let Some(s) = scanner.as_mut() {
            match s.push(bytes) {
                Ok(Scan::NeedMore) => continue,
                Ok(Scan::Found { rest: r }) => {
                    // The runner's own output must start with the marker: no noise allowed.
                    let noise = s.noise();
                    if !noise.is_empty() {
                        let _ = tx.send(Recv::Broken(format!(
                            "the runner wrote {noise:?} before its start marker"
                        )));
                        return;
                    }
                    scanner = None;
                    rest = r;
                    bytes = &rest;
                }
                Err(e) => {
                    let _ = tx.send(Recv::Broken(e.to_string()));
                    return;
                }
            }
        }
        decoder.push(bytes);
        loop {
            match decoder.next_frame() {
                Ok(Some(raw)) => {
                    if let Err(message) = check_frame(&raw)
                        .and_then(|v| tx.send(Recv::Frame(v, raw.data)).map_err(|e| e.to_string()))
                    {
                        let _ = tx.send(Recv::Broken(message));
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Recv::Broken(format!(
                        "the runner's stdout is not frames: {e}"
                    )));
                    return;
                }
            }
        }
    }
}

/// A frame from the runner must be JSON and match the protocol's types.
fn check_frame(raw: &RawFrame) -> Result<Value, String> {
    let value: Value = serde_json::from_slice(&raw.json).map_err(|e| {
        format!(
            "the runner sent a frame that is not JSON ({e}): {}",
            String::from_utf8_lossy(&raw.json)
        )
    })?;
    Frame::decode(raw.clone())
        .map_err(|e| format!("the runner sent a frame that breaks the protocol ({e}): {value}"))?;
    Ok(value)
}

/// Runs `case` against the runner executable at `runner`. With `update`, differences from
/// the expected frames are not failures: the caller rewrites the expectations.
pub(crate) fn run_case(
    case: &Case,
    runner: &Path,
    interpreter: Option<&Path>,
    update: bool,
) -> CaseRun {
    let mut result = CaseRun {
        blocks: Vec::new(),
        exit_statuses: Vec::new(),
        failures: Vec::new(),
    };
    let mut r = match start(runner, interpreter) {
        Ok(r) => r,
        Err(e) => {
            result.failures.push(e);
            return result;
        }
    };
    let mut eof = false;
    let mut steps = case.steps.iter().peekable();
    while let Some(step) = steps.next() {
        match step {
            Step::About(_) | Step::Recv(_) => {}
            Step::Send { bytes, .. } => {
                // A runner that already exited makes the write fail; the expected frames
                // (or their absence) tell whether that was right.
                if let Some(stdin) = r.stdin.as_mut() {
                    let _ = stdin.write_all(bytes).and_then(|()| stdin.flush());
                }
            }
            Step::CloseStdin => r.stdin = None,
            Step::Await(conds) => {
                let expected: Vec<String> = std::iter::from_fn(|| match steps.peek() {
                    Some(Step::Recv(line)) => {
                        let line = line.clone();
                        steps.next();
                        Some(line)
                    }
                    _ => None,
                })
                .collect();
                let (frames, problem) = collect(&r.rx, conds, &mut eof);
                let actual = normalise(&frames);
                let at = format!(
                    "await {}",
                    conds
                        .iter()
                        .map(super::case::cond_name)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if let Some(p) = problem {
                    result.failures.push(format!("{at}: {p}"));
                }
                if actual != expected && !update {
                    result.failures.push(format!(
                        "{at}: frames differ (- expected, + received)\n{}",
                        diff(&expected, &actual)
                    ));
                }
                result.blocks.push(actual);
            }
            Step::ExitStatus(want) => {
                let got = wait_exit(&mut r.child);
                result.exit_statuses.push(got);
                if got != *want && !update {
                    result
                        .failures
                        .push(format!("exit status {got}, expected {want}"));
                }
            }
        }
        if !result.failures.is_empty() {
            break;
        }
    }
    finish(&mut r, eof, &mut result);
    result
}

/// Reads frames until every condition holds, the stream ends, or the time limit passes.
fn collect(
    rx: &Receiver<Recv>,
    conds: &[Cond],
    eof: &mut bool,
) -> (Vec<(Value, Vec<u8>)>, Option<String>) {
    let mut frames = Vec::new();
    let mut pending: Vec<&Cond> = conds.iter().collect();
    let deadline = Instant::now() + AWAIT_LIMIT;
    while !pending.is_empty() {
        if *eof {
            pending.retain(|c| **c != Cond::Eof);
            if pending.is_empty() {
                break;
            }
            return (
                frames,
                Some(format!(
                    "the runner closed its stdout while waiting for {}",
                    names(&pending)
                )),
            );
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Recv::Frame(v, data)) => {
                pending.retain(|c| !satisfies(&v, c));
                frames.push((v, data));
            }
            Ok(Recv::Eof) | Err(RecvTimeoutError::Disconnected) => *eof = true,
            Ok(Recv::Broken(message)) => {
                *eof = true;
                return (frames, Some(message));
            }
            Err(RecvTimeoutError::Timeout) => {
                return (
                    frames,
                    Some(format!("no {} within {AWAIT_LIMIT:?}", names(&pending))),
                );
            }
        }
    }
    (frames, None)
}

fn names(conds: &[&Cond]) -> String {
    conds
        .iter()
        .map(|c| super::case::cond_name(c))
        .collect::<Vec<_>>()
        .join(", ")
}

fn satisfies(frame: &Value, cond: &Cond) -> bool {
    let t = frame.get("t").and_then(Value::as_str).unwrap_or("");
    let id = frame.get("id").and_then(Value::as_str);
    let kind = frame.get("kind").and_then(Value::as_str);
    match cond {
        Cond::Ready => t == "ready",
        Cond::Exit => t == "exit",
        Cond::Error => t == "error" && id.is_none(),
        Cond::Eof => false,
        Cond::Done(want) => (t == "done" || t == "error") && id == Some(want),
        Cond::Output(want) => {
            t == "event" && id == Some(want) && matches!(kind, Some("stdout" | "stderr"))
        }
    }
}

fn wait_exit(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                use std::os::unix::process::ExitStatusExt;
                return status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return -1;
            }
        }
    }
}

/// After the last step: no more frames may come, the runner must exit and leave nothing.
fn finish(r: &mut Runner, mut eof: bool, result: &mut CaseRun) {
    r.stdin = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut extra = Vec::new();
    while !eof {
        match r
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(Recv::Frame(v, data)) => extra.push((v, data)),
            Ok(Recv::Broken(m)) => {
                if result.failures.is_empty() {
                    result.failures.push(m);
                }
                eof = true;
            }
            Ok(Recv::Eof) | Err(RecvTimeoutError::Disconnected) => eof = true,
            Err(RecvTimeoutError::Timeout) => {
                result
                    .failures
                    .push("the runner did not exit within 5s of its stdin closing".into());
                break;
            }
        }
    }
    if !extra.is_empty() && result.failures.is_empty() {
        result.failures.push(format!(
            "unexpected frames after the last step:\n{}",
            diff(&[], &normalise(&extra))
        ));
    }
    wait_exit(&mut r.child);
    if r.staged.dir.exists() {
        result.failures.push(format!(
            "the runner left its private directory {} behind",
            r.staged.dir.display()
        ));
        r.staged.remove_leftovers();
    }
    if !result.failures.is_empty() {
        let stderr = r
            .stderr
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if !stderr.trim().is_empty() {
            result
                .failures
                .push(format!("runner stderr:\n{}", stderr.trim_end()));
        }
    }
}
