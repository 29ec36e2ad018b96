//! The runner's lifecycle through the real CLI and the real kernel: streaming, interrupts,
//! a killed controller, TTL, SIGTERM, and nothing left behind on disk or in the process table.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wisp_protocol::message::{Cmd, ExitReason, Hello, Message, Status};
use wisp_tests::{RawRunner, Received, ScratchDir, children_of, is_dead, wait_for};

fn wisp(tmp: &ScratchDir) -> Command {
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.env("TMPDIR", &tmp.0);
    c
}

/// Starts `wisp run localhost -- sleep 30` and returns it with the runner's and sleep's pids.
fn start_sleep(tmp: &ScratchDir) -> (Child, u32, u32) {
    let child = wisp(tmp)
        .args(["run", "localhost", "--", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wisp");
    let wisp_pid = child.id();
    let (runner, sleep) = wait_for(Duration::from_secs(10), || {
        let runner = children_of(wisp_pid)
            .into_iter()
            .find(|(_, argv)| argv.iter().any(|a| a.ends_with("wisp-runner")))?;
        let sleep = children_of(runner.0)
            .into_iter()
            .find(|(_, argv)| argv == &["sleep", "30"])?;
        Some((runner.0, sleep.0))
    })
    .expect("runner and sleep did not appear within 10s");
    (child, runner, sleep)
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this test started; no memory is involved.
    #[allow(unsafe_code)]
    let r = unsafe { libc::kill(i32::try_from(pid).unwrap(), sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}) failed");
}

#[test]
fn ctrl_c_cancels_the_remote_command_and_leaves_nothing_behind() {
    let tmp = ScratchDir::new("sigint");
    let (mut child, runner, sleep) = start_sleep(&tmp);
    // The runner deleted its executable and private directory as it started.
    assert_eq!(
        tmp.entries(),
        Vec::<String>::new(),
        "runner files on disk while it runs"
    );

    signal(child.id(), libc::SIGINT);
    let status = wait_for(Duration::from_secs(10), || child.try_wait().unwrap())
        .expect("wisp did not exit within 10s");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    println!("{stderr}");
    assert_eq!(status.code(), Some(99), "interrupted runs exit 99");
    assert!(is_dead(sleep), "sleep {sleep} survived Ctrl-C");
    assert!(is_dead(runner), "runner {runner} survived Ctrl-C");
    assert_eq!(tmp.entries(), Vec::<String>::new(), "files left on disk");
    assert!(
        stderr.contains("interrupted"),
        "the recap says it was interrupted: {stderr}"
    );
}

#[test]
fn a_killed_controller_takes_the_remote_command_with_it_within_two_seconds() {
    let tmp = ScratchDir::new("sigkill");
    let (mut child, runner, sleep) = start_sleep(&tmp);
    signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
    let killed_at = Instant::now();
    let gone = wait_for(Duration::from_secs(2), || {
        (is_dead(sleep) && is_dead(runner)).then_some(())
    });
    println!(
        "runner and sleep gone {:?} after the controller was killed",
        killed_at.elapsed()
    );
    assert!(
        gone.is_some(),
        "runner (dead: {}) or sleep (dead: {}) still alive 2s after SIGKILL",
        is_dead(runner),
        is_dead(sleep)
    );
    assert_eq!(tmp.entries(), Vec::<String>::new(), "files left on disk");
}

#[test]
fn output_is_streamed_while_the_command_runs() {
    let tmp = ScratchDir::new("stream");
    let mut child = wisp(&tmp)
        .args([
            "run",
            "--json",
            "localhost",
            "--",
            "sh",
            "-c",
            "echo a; sleep 2; echo b",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start wisp");
    let started = Instant::now();
    let mut events = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        events.push((started.elapsed(), v));
    }
    assert!(child.wait().unwrap().success());
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        events.iter().find(|(_, v)| pred(v)).expect("event missing")
    };
    let (arrived_a, a) = find(&|v| v["type"] == "output" && v["line"] == "a");
    let (_, b) = find(&|v| v["type"] == "output" && v["line"] == "b");
    let (arrived_done, done) = find(&|v| v["type"] == "done");
    let ms = |v: &serde_json::Value| v["elapsed_ms"].as_u64().unwrap();
    println!(
        "a at {}ms, b at {}ms, done at {}ms (controller clock)",
        ms(a),
        ms(b),
        ms(done)
    );
    // `a` was reported before the 2 s sleep ended, not gathered up at the end.
    assert!(
        ms(b) >= ms(a) + 1500,
        "a and b arrived together: not streamed"
    );
    assert!(
        *arrived_done >= *arrived_a + Duration::from_millis(1500),
        "a reached the reader only at the end"
    );
    assert_eq!(done["exit_code"], 0);
}

#[test]
fn exit_codes_follow_the_documented_table() {
    let tmp = ScratchDir::new("exit");
    let code = |args: &[&str]| wisp(&tmp).args(args).output().unwrap().status.code();
    assert_eq!(code(&["run", "localhost", "--", "true"]), Some(0));
    assert_eq!(code(&["run", "localhost", "--", "false"]), Some(2));
    assert_eq!(
        code(&["run", "--timeout", "200ms", "localhost", "--", "sleep", "5"]),
        Some(2)
    );
    assert_eq!(
        code(&["run", "localhost", "--", "/nonexistent/program"]),
        Some(2)
    );
    assert_eq!(
        code(&["run", "localhost", "--bogus-option", "--", "true"]),
        Some(5)
    );
    assert_eq!(
        code(&["run", "localhost"]),
        Some(5),
        "a command is required"
    );
    assert_eq!(
        code(&["run", "--timeout", "soon", "localhost", "--", "true"]),
        Some(5)
    );
    assert_eq!(code(&["--help"]), Some(0));
    assert_eq!(code(&["facts", "localhost"]), Some(0));
    assert_eq!(code(&["ping", "localhost"]), Some(0));
    let missing = wisp(&tmp)
        .env("WISP_RUNNER", "/nonexistent/wisp-runner")
        .args(["ping", "localhost"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(5));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cargo xtask build-runner"),
        "the error says how to fix it"
    );
    assert_eq!(tmp.entries(), Vec::<String>::new(), "files left on disk");
}

#[test]
fn run_prints_host_prefixed_lines_and_a_recap() {
    let tmp = ScratchDir::new("human");
    let out = wisp(&tmp)
        .args([
            "run",
            "localhost",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; printf partial",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.lines().collect::<Vec<_>>().len(), 3, "{stdout}");
    assert!(stdout.contains("localhost | out\n"), "{stdout}");
    assert!(stdout.contains("localhost ! err\n"), "{stdout}");
    assert!(
        stdout.contains("localhost | partial\n"),
        "an unterminated last line is still shown: {stdout}"
    );
    assert!(stderr.contains("RECAP"), "{stderr}");
    assert!(
        stderr.contains("1 host: 1 ok, 0 failed, 0 unreachable"),
        "{stderr}"
    );
}

#[test]
fn facts_report_what_the_host_is() {
    let tmp = ScratchDir::new("facts");
    let out = wisp(&tmp)
        .args(["facts", "--json", "localhost"])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(r#""type":"facts""#))
        .map(str::to_owned)
        .expect("facts line");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let facts = &v["facts"];
    assert_eq!(facts["arch"], std::env::consts::ARCH);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(facts["kernel"], kernel.trim());
    assert!(facts["cpus"].as_u64().unwrap() >= 1);
    assert!(facts["mem_total_kb"].as_u64().unwrap() > 0);
    assert!(
        ["v1", "v2", "hybrid", "none"].contains(&facts["caps"]["cgroup"]["mode"].as_str().unwrap())
    );
}

/// Greets `r` and starts `argv` on it; returns the command's pid once it runs.
fn start_command(r: &mut RawRunner, argv: &[&str]) -> u32 {
    r.send(Message::Hello(Hello { version: 1 }), &[]);
    let args = serde_json::json!({ "argv": argv });
    r.send(
        Message::Cmd(Cmd {
            id: "c".into(),
            op: "exec".into(),
            args,
            limits: Default::default(),
        }),
        &[],
    );
    let runner = r.child.id();
    wait_for(Duration::from_secs(10), || {
        children_of(runner)
            .into_iter()
            .find(|(_, a)| a == argv)
            .map(|(p, _)| p)
    })
    .unwrap_or_else(|| panic!("{argv:?} did not start"))
}

/// Runs `sleep 30` through a raw runner and returns it with the sleep's pid.
fn raw_runner_with_sleep(tmp: &ScratchDir, extra: &[&str]) -> (RawRunner, u32) {
    let mut r = RawRunner::start(&tmp.0, extra);
    let sleep = start_command(&mut r, &["sleep", "30"]);
    (r, sleep)
}

fn expect_shutdown(r: &mut RawRunner, sleep: u32, reason: ExitReason, limit: Duration) {
    let done = r
        .recv_until(limit, |m| matches!(m, Message::Done(_)))
        .expect("DONE for the running command");
    let Message::Done(done) = done.message else {
        unreachable!()
    };
    assert_eq!(done.status, Status::Cancelled);
    let exit = r
        .recv_until(Duration::from_secs(5), |m| matches!(m, Message::Exit(_)))
        .expect("EXIT frame");
    assert!(matches!(exit.message, Message::Exit(e) if e.reason == Some(reason)));
    assert!(matches!(
        r.recv(Duration::from_secs(5)),
        Some(Received::Eof)
    ));
    assert!(r.child.wait().unwrap().success());
    assert!(is_dead(sleep), "the command outlived the runner");
}

#[test]
fn ttl_expiry_kills_commands_and_exits() {
    let tmp = ScratchDir::new("ttl");
    let (mut r, sleep) = raw_runner_with_sleep(&tmp, &["--ttl", "1"]);
    expect_shutdown(&mut r, sleep, ExitReason::Ttl, Duration::from_secs(5));
}

#[test]
fn sigterm_kills_commands_and_exits() {
    let tmp = ScratchDir::new("sigterm");
    let (mut r, sleep) = raw_runner_with_sleep(&tmp, &[]);
    signal(r.child.id(), libc::SIGTERM);
    expect_shutdown(&mut r, sleep, ExitReason::Signal, Duration::from_secs(5));
}

#[test]
fn daemonised_grandchildren_are_killed_at_shutdown() {
    let tmp = ScratchDir::new("setsid");
    let mut r = RawRunner::start(&tmp.0, &[]);
    r.send(Message::Hello(Hello { version: 1 }), &[]);
    // The grandchild leaves the process group and its parent exits: only the runner's
    // subreaper sweep can find it.
    let duration = format!("60.{}", std::process::id());
    let args = serde_json::json!({"shell": format!("setsid sleep {duration} </dev/null >/dev/null 2>&1 & echo spawned")});
    r.send(
        Message::Cmd(Cmd {
            id: "d".into(),
            op: "exec".into(),
            args,
            limits: Default::default(),
        }),
        &[],
    );
    r.recv_until(Duration::from_secs(10), |m| matches!(m, Message::Done(_)))
        .expect("DONE");
    let find = || {
        std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (cmdline == format!("sleep\0{duration}\0").as_bytes() && !is_dead(pid)).then_some(pid)
        })
    };
    let orphan =
        wait_for(Duration::from_secs(5), find).expect("the daemonised sleep did not start");
    r.stdin = None;
    assert!(
        r.recv_until(Duration::from_secs(10), |m| matches!(m, Message::Exit(_)))
            .is_some()
    );
    let _ = r.child.wait();
    assert!(
        wait_for(Duration::from_secs(2), || is_dead(orphan).then_some(())).is_some(),
        "daemonised process {orphan} survived"
    );
}

#[test]
fn the_runner_serves_an_unprivileged_user() {
    use std::os::unix::fs::{PermissionsExt, chown};
    use std::os::unix::process::CommandExt;
    // As root (CI), drop to `nobody` for real; as an ordinary user, that user is the case.
    // SAFETY: geteuid(2) has no preconditions.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    const NOBODY: u32 = 65534;
    let tmp = ScratchDir::new("unprivileged");
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut r = RawRunner::start_with(&tmp.0, &[], |cmd, staged| {
        cmd.current_dir("/");
        if root {
            chown(&staged.dir, Some(NOBODY), Some(NOBODY)).unwrap();
            chown(&staged.exe, Some(NOBODY), Some(NOBODY)).unwrap();
            // std clears the supplementary groups when root sets a uid.
            cmd.uid(NOBODY).gid(NOBODY);
        }
    });
    let Some(Received::Frame(ready)) = r.recv(Duration::from_secs(10)) else {
        panic!("no READY")
    };
    let Message::Ready(ready) = ready.message else {
        panic!("first frame is not READY")
    };
    r.send(Message::Hello(Hello { version: 1 }), &[]);
    let args = serde_json::json!({"argv": ["id", "-u"]});
    r.send(
        Message::Cmd(Cmd {
            id: "id".into(),
            op: "exec".into(),
            args,
            limits: Default::default(),
        }),
        &[],
    );
    let mut output = Vec::new();
    let done = loop {
        match r.recv(Duration::from_secs(10)) {
            Some(Received::Frame(f)) => match f.message {
                Message::Event(_) => output.extend_from_slice(&f.data),
                Message::Done(d) => break d,
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("stream ended: {other:?}"),
        }
    };
    r.stdin = None;
    assert!(r.child.wait().unwrap().success());
    assert_eq!(done.exit_code, Some(0));
    let me = String::from_utf8_lossy(&output).trim().to_owned();
    if root {
        assert_eq!(ready.uid, NOBODY);
        assert_eq!(
            me,
            NOBODY.to_string(),
            "the command runs as the runner's user"
        );
        assert!(
            !ready.caps.cgroup.writable,
            "nobody cannot create cgroups here: {}",
            ready.caps.cgroup.detail
        );
    } else {
        println!("not root: ran as uid {me} without dropping privileges");
        assert_eq!(me, ready.uid.to_string());
    }
    assert_eq!(
        tmp.entries(),
        Vec::<String>::new(),
        "the unprivileged runner removed its directory"
    );
}

#[test]
fn the_ttl_holds_even_when_the_controller_stops_reading() {
    let tmp = ScratchDir::new("watchdog");
    // The test holds the runner's stdout without reading it: once the pipe is full the
    // session loop blocks on its next frame, and only the watchdog can end the session.
    // Held open, never read, until the test ends.
    let (_unread, stdout) = std::io::pipe().unwrap();
    let mut r = RawRunner::start_with(&tmp.0, &["--ttl", "1"], |cmd, _| {
        cmd.stdout(stdout);
    });
    let flood = start_command(
        &mut r,
        &["yes", "a line of output that fills the pipe quickly"],
    );
    let started = Instant::now();
    let status = wait_for(Duration::from_secs(15), || r.child.try_wait().unwrap());
    println!(
        "runner ended {:?} after the command started (TTL 1 s, grace 5 s)",
        started.elapsed()
    );
    let status = status.expect("the runner outlived TTL + grace with a stalled controller");
    assert_eq!(status.code(), Some(3), "the watchdog's exit status");
    assert!(
        wait_for(Duration::from_secs(2), || is_dead(flood).then_some(())).is_some(),
        "the command survived the watchdog"
    );
}

#[test]
fn the_run_timeout_cancels_remote_work_and_counts_it_as_failed() {
    let tmp = ScratchDir::new("run-timeout");
    let started = Instant::now();
    let out = wisp(&tmp)
        .args([
            "run",
            "--run-timeout",
            "1s",
            "localhost",
            "--",
            "sleep",
            "30",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}\nended after {:?}", started.elapsed());
    assert_eq!(
        out.status.code(),
        Some(2),
        "hosts stopped by the run timeout failed"
    );
    assert!(stderr.contains("run timeout"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the run did not stop"
    );
    assert_eq!(tmp.entries(), Vec::<String>::new(), "files left on disk");
}
