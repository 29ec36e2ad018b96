//! Shared harness for the end-to-end tests: where the built runner is, a scratch directory
//! per test, a small synchronous protocol client, and process inspection through /proc.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use wisp_protocol::frame::FrameDecoder;
use wisp_protocol::marker::{MarkerScanner, Scan};
use wisp_protocol::message::{Frame, Message};
use wisp_transports::stage::StagedRunner;

pub mod nats;
pub mod session;
pub mod sshd;
pub mod wan;
pub mod wisp;

/// The static musl runner built by `cargo xtask build-runner`. Panics with instructions when
/// it is missing: these tests must fail loudly, never skip, without it.
pub fn runner_path() -> PathBuf {
    if let Some(p) = std::env::var_os("WISP_RUNNER") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let path = target.join(format!(
        "{}-unknown-linux-musl/runner/wisp-runner",
        std::env::consts::ARCH
    ));
    assert!(
        path.is_file(),
        "the runner is not built at {}: run `cargo xtask build-runner` (or `cargo xtask test`), or set WISP_RUNNER",
        path.display()
    );
    path
}

/// A fresh, empty directory, removed when dropped.
#[derive(Debug)]
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    /// Creates it under the system temp directory.
    pub fn new(label: &str) -> Self {
        Self::new_in(&std::env::temp_dir(), label)
    }

    /// Creates it under `base`.
    pub fn new_in(base: &Path, label: &str) -> Self {
        let dir = base.join(format!(
            "wisp-test-{label}-{}",
            wisp_transports::stage::random_token()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }

    /// The names of the entries in it.
    pub fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name() != wisp::ENV_DIR)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process's state letter and parent pid from /proc, or `None` when it is gone.
pub fn proc_state(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = stat.rsplit_once(')')?.1.split_whitespace();
    Some((f.next()?.chars().next()?, f.next()?.parse().ok()?))
}

/// True when the process no longer runs (gone, or a zombie nobody has reaped yet: where
/// PID 1 does not reap, orphans linger as zombies, dead all the same).
pub fn is_dead(pid: u32) -> bool {
    !matches!(proc_state(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// Live processes whose parent is `parent`, with their command lines.
pub fn children_of(parent: u32) -> Vec<(u32, Vec<String>)> {
    all_processes()
        .into_iter()
        .filter(|(pid, _)| matches!(proc_state(*pid), Some((_, ppid)) if ppid == parent))
        .collect()
}

/// Every live process with its command line.
pub fn all_processes() -> Vec<(u32, Vec<String>)> {
    let pids = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()));
    pids.filter(|pid| !is_dead(*pid))
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (pid, argv)
        })
        .collect()
}

/// Polls `check` every 10 ms until it returns `Some` or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the runner's stdout produced.
#[derive(Debug)]
pub enum Received {
    /// A decoded frame.
    Frame(Box<Frame>),
    /// Clean end of stream.
    Eof,
    /// Anything that is not marker + frames.
    Garbage(String),
}

/// A runner started directly (staged like the local transport does), for tests that speak
/// the protocol themselves.
#[derive(Debug)]
pub struct RawRunner {
    /// The runner process.
    pub child: Child,
    /// Its stdin; `None` once closed.
    pub stdin: Option<ChildStdin>,
    /// Frames from its stdout.
    pub rx: Receiver<Received>,
    /// Its private directory (gone once it has started).
    pub dir: PathBuf,
}

impl RawRunner {
    /// Stages the runner under `base` and starts it with `extra` arguments.
    pub fn start(base: &Path, extra: &[&str]) -> Self {
        Self::start_with(base, extra, |_, _| {})
    }

    /// Like [`Self::start`], letting `prepare` adjust the command (user, directory) and the
    /// staged files before the runner starts.
    pub fn start_with(
        base: &Path,
        extra: &[&str],
        prepare: impl FnOnce(&mut Command, &StagedRunner),
    ) -> Self {
        let staged = wisp_transports::stage::stage(&runner_path(), base).expect("stage runner");
        let nonce = wisp_transports::stage::random_token();
        let mut cmd = Command::new(&staged.exe);
        cmd.args(["--marker", &nonce, "--private-dir"])
            .arg(&staged.dir)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        prepare(&mut cmd, &staged);
        let mut child =
            wisp_transports::stage::retry_text_busy(|| cmd.spawn()).expect("start runner");
        let (tx, rx) = mpsc::channel();
        // `prepare` may have pointed stdout elsewhere; then nothing here reads it.
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || read_all(stdout, &nonce, &tx));
        }
        Self {
            stdin: child.stdin.take(),
            child,
            rx,
            dir: staged.dir.clone(),
        }
    }

    /// Sends one frame (ignores a closed pipe: the runner may have exited on purpose).
    pub fn send(&mut self, message: Message, data: &[u8]) {
        let mut bytes = Vec::new();
        Frame {
            message,
            data: data.to_vec(),
        }
        .encode(&mut bytes)
        .expect("encode");
        self.send_bytes(&bytes);
    }

    /// Writes raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(bytes).and_then(|()| s.flush());
        }
    }

    /// The next item from stdout, within `limit`.
    pub fn recv(&self, limit: Duration) -> Option<Received> {
        self.rx.recv_timeout(limit).ok()
    }

    /// Reads until a frame matches `pred` (returning it) or `limit` passes.
    pub fn recv_until(
        &self,
        limit: Duration,
        mut pred: impl FnMut(&Message) -> bool,
    ) -> Option<Frame> {
        let deadline = Instant::now() + limit;
        loop {
            match self.recv(deadline.saturating_duration_since(Instant::now()))? {
                Received::Frame(f) if pred(&f.message) => return Some(*f),
                Received::Frame(_) => {}
                Received::Eof | Received::Garbage(_) => return None,
            }
        }
    }
}

/// Decodes a whole captured stdout (marker, then frames) into `tx`.
pub fn decode_capture(bytes: &[u8], nonce: &str, tx: &mpsc::Sender<Received>) {
    read_all(bytes, nonce, tx);
}

fn read_all(mut stdout: impl Read, nonce: &str, tx: &mpsc::Sender<Received>) {
    let mut scanner = MarkerScanner::new(nonce);
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 65536];
    let mut started = false;
    loop {
        let n = stdout.read(&mut buf).unwrap_or(0);
        if n == 0 {
            let end = if !started {
                Received::Garbage(format!("no marker; stdout was {:?}", scanner.noise()))
            } else if decoder.is_mid_frame() {
                Received::Garbage("stdout ended mid-frame".into())
            } else {
                Received::Eof
            };
            let _ = tx.send(end);
            return;
        }
        let mut chunk = buf[..n].to_vec();
        if !started {
            match scanner.push(&chunk) {
                Ok(Scan::Found { rest }) if scanner.noise().is_empty() => {
                    started = true;
                    chunk = rest;
                }
                Ok(Scan::NeedMore) => continue,
                other => {
                    let _ = tx.send(Received::Garbage(format!(
                        "bad start: {other:?}, noise {:?}",
                        scanner.noise()
                    )));
                    return;
                }
            }
        }
        decoder.push(&chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(raw)) => match Frame::decode(raw.clone()) {
                    Ok(f) => {
                        let _ = tx.send(Received::Frame(Box::new(f)));
                    }
                    Err(e) => {
                        let _ =
                            tx.send(Received::Garbage(format!("undecodable frame {raw:?}: {e}")));
                        return;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Received::Garbage(format!("not frames: {e}")));
                    return;
                }
            }
        }
    }
}

/// True when running as root. Without root, a test that needs it fails under CI (`CI` set)
/// and otherwise prints why it does not run and returns `false`.
#[allow(clippy::print_stdout)] // a test that does not run must say why, in the test output
pub fn root_or_explain(what: &str) -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} needs root, and CI must run it"
        );
        println!(
            "not run: {what} needs root (to create a login user); run the tests as root to cover it"
        );
    }
    root
}

/// Everything beneath `dir` (recursively), as (path, mode, content) sorted by path: equal
/// snapshots prove nothing on disk moved.
pub fn snapshot(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten().filter(|e| e.file_name() != wisp::ENV_DIR) {
        let Ok(m) = e.metadata() else { continue };
        let content = if m.is_file() {
            std::fs::read(e.path()).unwrap_or_default()
        } else {
            Vec::new()
        };
        out.push((e.path().display().to_string(), m.mode(), content));
        if m.is_dir() {
            out.extend(snapshot(&e.path()));
        }
    }
    out.sort();
    out
}

/// Every file beneath `dir` (recursively) whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_containing(&path, needle));
        } else if std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            out.push(path);
        }
    }
    out
}
