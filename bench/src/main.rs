//! Benchmarks (`cargo xtask bench`): prints figures and their ratio to the targets in the
//! brief. Not a test: timings on shared machines vary, so nothing here fails a build.
//!
//! - runner start: stage, exec, marker and READY, over 50 runners;
//! - warm session: CMD→DONE for `exec true` on one runner, 500 times;
//! - `wisp run localhost -- true` end to end (controller start to exit), 50 times, when
//!   `WISP_BIN` names a wisp executable;
//! - with `--ssh N` (as root, with sshd installed): N real sshd hosts on loopback; plain
//!   parallel OpenSSH `ssh host true` against `wisp run <all> -- true`, and 100 sequential
//!   `exec true` CMDs on one warm runner over SSH.

#![allow(clippy::print_stdout)] // printing figures is what a benchmark is for
#![allow(clippy::unwrap_used)] // a benchmark that cannot run has nothing to report

use std::process::Command;
use std::time::{Duration, Instant};

use wisp_protocol::message::{Cmd, Hello, Message};
use wisp_tests::{RawRunner, Received, ScratchDir};

pub(crate) const WARM_TARGET: Duration = Duration::from_millis(3);

pub(crate) fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    // Nearest rank: p is in 0..=1, so the index stays within the samples.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[i]
}

pub(crate) fn report(name: &str, samples: &mut [Duration], target: Option<Duration>) {
    let (median, p90) = (percentile(samples, 0.5), percentile(samples, 0.9));
    let ratio = target.map_or(String::new(), |t| {
        format!(
            "  target {t:?}: median is {:.2}x of it",
            median.as_secs_f64() / t.as_secs_f64()
        )
    });
    println!(
        "{name:<38} n={:<4} median {median:>10.3?}  p90 {p90:>10.3?}{ratio}",
        samples.len()
    );
}

fn ready(r: &RawRunner) {
    match r.recv(Duration::from_secs(10)) {
        Some(Received::Frame(f)) if matches!(f.message, Message::Ready(_)) => {}
        other => panic!("expected READY, got {other:?}"),
    }
}

mod ssh;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--ssh") {
        let n = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(50);
        ssh::bench(n);
        return;
    }
    let scratch = ScratchDir::new("bench");

    let mut starts = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let mut r = RawRunner::start(&scratch.0, &[]);
        ready(&r);
        starts.push(t.elapsed());
        r.stdin = None;
        let _ = r.child.wait();
    }
    report("runner start (stage, exec, READY)", &mut starts, None);

    let mut r = RawRunner::start(&scratch.0, &[]);
    ready(&r);
    r.send(Message::Hello(Hello { version: 1 }), &[]);
    let mut warm = Vec::new();
    for i in 0..500 {
        let id = format!("c{i}");
        let cmd = Cmd {
            id: id.clone(),
            op: "exec".into(),
            args: serde_json::json!({"argv": ["true"]}),
            limits: Default::default(),
        };
        let t = Instant::now();
        r.send(Message::Cmd(cmd), &[]);
        r.recv_until(
            Duration::from_secs(10),
            |m| matches!(m, Message::Done(d) if d.id == id),
        )
        .expect("DONE");
        warm.push(t.elapsed());
    }
    report("warm CMD->DONE, exec true", &mut warm, Some(WARM_TARGET));
    r.stdin = None;
    let _ = r.child.wait();

    if let Some(wisp) = std::env::var_os("WISP_BIN") {
        let mut runs = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let out = Command::new(&wisp)
                .args(["run", "localhost", "--", "true"])
                .env("TMPDIR", &scratch.0)
                .output()
                .expect("run wisp");
            runs.push(t.elapsed());
            assert!(
                out.status.success(),
                "wisp run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        report("wisp run localhost -- true (end to end)", &mut runs, None);
    } else {
        println!("wisp run end to end: skipped, WISP_BIN is not set (cargo xtask bench sets it)");
    }
}
