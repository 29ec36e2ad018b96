//! Benchmarks (`cargo xtask bench`): prints figures and their ratio to the targets in the
//! brief. Not a test: timings on shared machines vary, so nothing here fails a build.
//!
//! - runner start: stage, exec, marker and READY, over 50 runners;
//! - warm session: CMD→DONE for `exec true` on one runner, 500 times;
//! - sandbox overhead: the same, alternating no limits with a full sandbox (Landlock rules,
//!   seccomp `default`, memory, pids and CPU cgroup limits, an rlimit) and with Landlock and
//!   seccomp alone, 300 times each; the overhead is the difference of the medians;
//! - the state store: recording a 50-host run's journal lines (run, 50 commands, 50 hosts,
//!   end) into a fresh store, 20 times, each on a store already holding earlier runs;
//! - `wisp run localhost -- true` end to end (controller start to exit), 50 times alternating
//!   with 50 `--no-state` runs (the state store's cost), when
//!   `WISP_BIN` names a wisp executable;
//! - inventory parsing: 10,000 and 100,000 hosts in INI, YAML and TOML, loaded, selected and
//!   resolved;
//! - plan rendering: a 100-task plan of loops, conditions and templates for 1,000 hosts, its
//!   CPU and peak RSS per host, beside the same plan without templates (alone: `--render`);
//! - with `--apply-vs N`: the 21-op plan on N sshd hosts, this build beside a baseline wisp
//!   (`WISP_BASE_BIN`, `WISP_BASE_ARGS`), alternating;
//! - with `--mcp N` (20 by default): `wisp mcp`'s first `run` call on N sshd hosts and the
//!   ones after it, with warm sessions and with `--warm 0`; the size of a folded result on
//!   10N hosts beside `wisp run`'s unfolded output;
//! - with `--playbook-vs N`: the web role of `tests/playbooks` converged on N sshd hosts by
//!   `wisp apply`, `ansible-playbook` (`WISP_ANSIBLE_PYTHON`) and a pyinfra deploy
//!   (`WISP_PYINFRA_PYTHON`), from nothing and again;
//! - with `--ssh N` (as root, with sshd installed): N real sshd hosts on loopback; plain
//!   parallel OpenSSH `ssh host true`, a bare russh client (the floor) and the same client
//!   pushing the runner through the least verify pipeline (the pushing floor) against
//!   `wisp run <all> -- true`, and 100 sequential `exec true` CMDs on one warm runner over
//!   SSH; then the same behind a latency proxy (50 ms round trip, 20 Mbit/s per host) with
//!   bytes per host, and the programs each tool executes on a host (strace);
//! - with `--scale N`: N sshd hosts across 127.x.y.z, every host at once: wall time, hosts
//!   per second, the controller's peak RSS per host, reachability, beside OpenSSH;
//! - with `--workers N`: N sshd hosts, `wisp run <all> -- true` from the controller and
//!   through 2 workers on a real `nats-server -js`, alternating: the bus's overhead per host.

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
    let (median, p90, p95) = (
        percentile(samples, 0.5),
        percentile(samples, 0.9),
        percentile(samples, 0.95),
    );
    let ratio = target.map_or(String::new(), |t| {
        format!(
            "  target {t:?}: median is {:.2}x of it",
            median.as_secs_f64() / t.as_secs_f64()
        )
    });
    println!(
        "{name:<38} n={:<4} median {median:>10.3?}  p90 {p90:>10.3?}  p95 {p95:>10.3?}{ratio}",
        samples.len()
    );
}

/// One `exec true` CMD→DONE under `limits`; panics unless it ran fine.
fn exec_true(r: &mut RawRunner, id: &str, limits: &serde_json::Value) -> Duration {
    let cmd = Cmd {
        id: id.to_owned(),
        op: "exec".into(),
        args: serde_json::json!({"argv": ["true"]}),
        limits: serde_json::from_value(limits.clone()).unwrap(),
    };
    let t = Instant::now();
    r.send(Message::Cmd(cmd), &[]);
    let done = r
        .recv_until(Duration::from_secs(10), |m| {
            matches!(m, Message::Done(d) if d.id == id) || matches!(m, Message::Error(_))
        })
        .expect("DONE");
    let elapsed = t.elapsed();
    match done.message {
        Message::Done(d) if d.status == wisp_protocol::message::Status::Ok => elapsed,
        other => panic!("exec true under {limits} did not succeed: {other:?}"),
    }
}

/// Sandbox setup cost: alternates plain and sandboxed runs so drift hits both alike.
fn sandbox_overhead(scratch: &ScratchDir) {
    let mut r = RawRunner::start(&scratch.0, &[]);
    ready(&r);
    r.send(Message::Hello(Hello { version: 1 }), &[]);
    let rw = scratch.0.to_string_lossy().into_owned();
    let plain = serde_json::json!({});
    let no_cgroup = serde_json::json!({"fs": {"rw": [rw]}, "seccomp": "default"});
    let full = serde_json::json!({
        "fs": {"rw": [rw]}, "seccomp": "default", "memory_max": 256 << 20, "pids_max": 128,
        "cpu_millis": 1000, "rlimits": {"nofile": 1024},
    });
    let root = std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..300 {
        a.push(exec_true(&mut r, &format!("p{i}"), &plain));
        b.push(exec_true(&mut r, &format!("l{i}"), &no_cgroup));
        if root {
            c.push(exec_true(&mut r, &format!("f{i}"), &full));
        }
    }
    let base = percentile(&mut a, 0.5);
    report("exec true, no limits", &mut a, None);
    report("exec true, landlock + seccomp", &mut b, None);
    let over = |s: &mut [Duration]| percentile(s, 0.5).saturating_sub(base);
    println!("  landlock + seccomp overhead: median {:.3?}", over(&mut b));
    if root {
        report("exec true, full sandbox", &mut c, None);
        let o = over(&mut c);
        println!(
            "  full sandbox overhead: median {o:.3?} (target 2 ms: {:.2}x of it)",
            o.as_secs_f64() / 0.002
        );
    } else {
        println!("  full sandbox: skipped, cgroup limits need root here");
    }
    r.stdin = None;
    let _ = r.child.wait();
}

fn ready(r: &RawRunner) {
    match r.recv(Duration::from_secs(10)) {
        Some(Received::Frame(f)) if matches!(f.message, Message::Ready(_)) => {}
        other => panic!("expected READY, got {other:?}"),
    }
}

mod cpu;
mod floor;
mod inventory;
mod mcp;
mod playbook;
mod render;
mod scale;
mod ssh;
mod wan;
mod workers;

/// A benchmark asked for alone (`--ssh N`, `--workers N`, `--scale N`, `--render`): run it;
/// `true` when one was.
fn alone() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let count = |flag: &str| {
        let i = args.iter().position(|a| a == flag)?;
        Some(args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(50))
    };
    if let Some(n) = count("--ssh") {
        ssh::bench(n);
        return true;
    }
    if let Some(n) = count("--workers") {
        workers::bench(n);
        return true;
    }
    if let Some(n) = count("--scale") {
        scale::bench(n);
        return true;
    }
    if let Some(n) = count("--playbook-vs") {
        playbook::bench(n);
        return true;
    }
    if let Some(i) = args.iter().position(|a| a == "--mcp") {
        mcp::bench(args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(20));
        return true;
    }
    if let Some(n) = count("--apply-vs") {
        ssh::apply_against_base(n);
        return true;
    }
    if args.iter().any(|a| a == "--render") {
        render::bench();
        return true;
    }
    false
}

/// As in the shipped `wisp`: renders are timed with the allocator that bounds them.
#[global_allocator]
static ALLOCATOR: wisp_plan::jinja::Metered = wisp_plan::jinja::Metered;

fn main() {
    // Every wisp the bench starts records into a state directory of its own: the runs it
    // times never land in the operator's store.
    let state = ScratchDir::new("bench-state");
    // SAFETY: no thread has started yet; nothing reads the environment meanwhile.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("XDG_STATE_HOME", &state.0);
        std::env::set_var("WISP_JOURNAL_DIR", state.0.join("journal"));
        std::env::remove_var("WISP_STATE");
    }
    if alone() {
        return;
    }
    let scratch = ScratchDir::new("bench");
    inventory::bench(&scratch.0);
    render::bench();

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

    sandbox_overhead(&scratch);
    store_cost(&scratch);

    if let Some(wisp) = std::env::var_os("WISP_BIN") {
        // Alternating with and without the state store, so both see the same machine.
        let (mut runs, mut unrecorded) = (Vec::new(), Vec::new());
        for i in 0..100 {
            let no_state = i % 2 == 1;
            let t = Instant::now();
            let out = Command::new(&wisp)
                .args(["run", "localhost"])
                .args(no_state.then_some("--no-state"))
                .args(["--", "true"])
                .env("TMPDIR", &scratch.0)
                .output()
                .expect("run wisp");
            if no_state {
                unrecorded.push(t.elapsed());
            } else {
                runs.push(t.elapsed());
            }
            assert!(
                out.status.success(),
                "wisp run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (with, without) = (percentile(&mut runs, 0.5), percentile(&mut unrecorded, 0.5));
        report("wisp run localhost -- true (end to end)", &mut runs, None);
        report("  the same, --no-state", &mut unrecorded, None);
        println!(
            "  the state store's cost per run: median {:.3?} ({:+.1}%)",
            with.saturating_sub(without),
            (with.as_secs_f64() / without.as_secs_f64() - 1.0) * 100.0
        );
    } else {
        println!("wisp run end to end: skipped, WISP_BIN is not set (cargo xtask bench sets it)");
    }
}

/// What the state store adds to a 50-host run: its journal lines recorded, in process.
fn store_cost(scratch: &ScratchDir) {
    use wisp_store::Store;
    use wisp_store::journal::Journal;
    use wisp_store::record::{CommandLine, HostLine, Record, RunStart};
    let db = scratch.0.join("bench-store/wisp.db");
    let hosts: Vec<String> = (1..=50).map(|i| format!("web{i:02}")).collect();
    let mut samples = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let journal = Journal::disabled().with_store(Store::open(&db).expect("open the store"));
        let run = RunStart {
            command: "run".into(),
            program: Some("true".into()),
            targets: "all".into(),
            hosts: hosts.clone(),
            ..RunStart::default()
        };
        journal.begin(&run).expect("record the run");
        for h in &hosts {
            journal.record(Record::Command(CommandLine {
                host: h.clone(),
                status: "ok".into(),
                exit_code: Some(0),
                signal: None,
                changed: true,
                duration_ms: 3,
                enforcement: Some(serde_json::json!({"complete": true, "mode": "require"})),
            }));
        }
        for h in &hosts {
            journal.record(Record::Host(HostLine {
                host: h.clone(),
                outcome: "ok".into(),
                detail: "exit 0".into(),
                elapsed_ms: 40,
                sandbox: None,
            }));
        }
        journal.record(Record::End {
            exit: 0,
            elapsed_ms: 900,
        });
        drop(journal);
        samples.push(t.elapsed());
    }
    report("state store: a 50-host run's lines", &mut samples, None);
}
