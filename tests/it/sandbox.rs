//! The sandbox against the real kernel: each protection is asked of the real runner, and the
//! test checks that the kernel actually refused what it should (Landlock's EACCES, seccomp's
//! EPERM and ENOSYS, the cgroup's pids and memory limits, CPU time from the cgroup's own
//! accounting), as root and as an unprivileged user.
//!
//! Probes run through `sandbox-probe`, which prints the errno of the one thing it tried, so a
//! refusal by the sandbox cannot be mistaken for some other failure.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use wisp_protocol::error::{ErrorClass, ErrorCode};
use wisp_protocol::message::Status;
use wisp_protocol::sandbox::Namespace;
use wisp_tests::session::{Answer, Session as Host};
use wisp_tests::{ScratchDir, all_processes, root_or_explain, wait_for};

const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-probe");

/// The sandbox's own helpers on top of the shared session.
trait SandboxSession {
    fn run(&mut self, argv: &[&str], limits: Value) -> Answer;
    fn probe(&mut self, args: &[&str], limits: Value) -> i32;
}

impl SandboxSession for Host {
    fn run(&mut self, argv: &[&str], limits: Value) -> Answer {
        self.cmd("exec", json!({ "argv": argv }), limits, &[])
    }

    /// Runs `sandbox-probe ARGS` and returns the errno it printed.
    fn probe(&mut self, args: &[&str], limits: Value) -> i32 {
        let mut argv = vec![PROBE];
        argv.extend_from_slice(args);
        let (done, stdout, stderr) = self.run(&argv, limits).done();
        stdout
            .split_whitespace()
            .nth(1)
            .and_then(|e| e.parse().ok())
            .unwrap_or_else(|| panic!("probe {args:?} said {stdout:?} / {stderr:?} ({done:?})"))
    }
}

/// The directory the probe lives in, which Landlock rules must let the command execute.
fn probe_dir() -> String {
    Path::new(PROBE)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// True when the kernel has `what`. Without it, CI (`CI` set) fails; elsewhere the test says
/// why it does not run.
#[allow(clippy::print_stdout)]
fn kernel_has(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "this kernel lacks {what}, which CI must cover"
        );
        println!("not run: this kernel lacks {what}");
    }
    ok
}

fn landlock_abi() -> u32 {
    // SAFETY: the version query passes no memory.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            444,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    u32::try_from(r).unwrap_or(0)
}

/// Writes outside the read-write paths fail with EACCES, inside they work, and a path that
/// was never granted cannot be read; for root (who could otherwise do all of it) and nobody.
fn check_landlock_fs(unprivileged: bool) {
    let mut host = Host::start("landlock-fs", unprivileged);
    let job = host.tmp.0.join("job");
    let secret_dir = host.tmp.0.join("secret");
    for d in [&job, &secret_dir] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::write(secret_dir.join("key"), "s3cret").unwrap();
    std::fs::set_permissions(
        secret_dir.join("key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let limits = json!({"fs": {"rw": [job.to_str().unwrap()]}});
    let script = format!(
        "echo inside > {job}/ok && cat {job}/ok; \
         echo outside > {secret}/new; echo write=$?; \
         cat {secret}/key; echo read=$?",
        job = job.display(),
        secret = secret_dir.display()
    );
    let answer = host.run(&["sh", "-c", &script], limits);
    let e = answer.enforcement().clone();
    let (done, stdout, stderr) = answer.done();
    assert_eq!(done.status, Status::Ok, "{stdout} {stderr}");
    assert!(
        stdout.contains("inside"),
        "write inside the rw path failed: {stdout} {stderr}"
    );
    assert!(
        stdout.contains("write=2"),
        "write outside was not refused: {stdout}"
    );
    assert!(
        stdout.contains("read=1"),
        "read of an ungranted path worked: {stdout}"
    );
    assert!(!stdout.contains("s3cret"), "the secret was read: {stdout}");
    assert_eq!(stderr.matches("Permission denied").count(), 2, "{stderr}");
    assert!(!secret_dir.join("new").exists());
    let ll = e.landlock.expect("no landlock report");
    assert_eq!(ll.status, "full");
    assert!(e.complete && e.no_new_privs);
    assert!(
        ll.rules.contains(&format!("rw:{}", job.display())),
        "{:?}",
        ll.rules
    );
}

#[test]
fn landlock_confines_writes_and_reads_as_root() {
    if kernel_has(landlock_abi() >= 3, "Landlock ABI 3") && root_or_explain("Landlock as root") {
        check_landlock_fs(false);
    }
}

#[test]
fn landlock_confines_writes_and_reads_as_nobody() {
    if kernel_has(landlock_abi() >= 3, "Landlock ABI 3")
        && root_or_explain("running the runner as nobody")
    {
        check_landlock_fs(true);
    }
}

#[test]
fn landlock_allows_only_the_granted_tcp_ports() {
    if !kernel_has(landlock_abi() >= 4, "Landlock ABI 4 (TCP rules)") {
        return;
    }
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let denied = TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, d) = (
        allowed.local_addr().unwrap().port(),
        denied.local_addr().unwrap().port(),
    );
    let mut host = Host::start("landlock-net", false);
    let limits = json!({"net": {"connect": [a]}});
    assert_eq!(host.probe(&["connect", &a.to_string()], limits.clone()), 0);
    assert_eq!(
        host.probe(&["connect", &d.to_string()], limits.clone()),
        libc::EACCES,
        "connect to a port not allowed"
    );
    // Binding is denied too (no bind port granted).
    assert_eq!(host.probe(&["bind", "0"], limits.clone()), libc::EACCES);
    // And without rules, both work: the refusals above were the sandbox's.
    assert_eq!(host.probe(&["connect", &d.to_string()], json!({})), 0);
}

#[test]
fn a_fork_bomb_is_capped_by_pids_and_the_host_survives() {
    if !root_or_explain("cgroup limits") {
        return;
    }
    let mut host = Host::start("pids", false);
    let bomb = "b() { b | b & }; b; sleep 5";
    let answer = host.run(
        &["sh", "-c", bomb],
        json!({"pids_max": 32, "timeout_ms": 3000}),
    );
    let cg = answer
        .enforcement()
        .cgroup
        .clone()
        .expect("no cgroup report");
    assert_eq!(cg.pids_max, Some(32));
    assert!(cg.pids_refused > 0, "no fork was refused: {cg:?}");
    let path = cg.path.clone();
    // Everything of it is gone, and the runner still answers.
    assert!(
        wait_for(Duration::from_secs(5), || {
            (!Path::new("/sys/fs/cgroup/pids")
                .join(path.trim_start_matches('/'))
                .exists())
            .then_some(())
        })
        .is_some(),
        "the command's cgroup {path} was not removed"
    );
    let (done, out, _) = host.run(&["echo", "alive"], json!({})).done();
    assert_eq!((done.status, out.as_str()), (Status::Ok, "alive\n"));
}

#[test]
fn a_memory_hog_is_oom_killed_and_reported_as_oom() {
    if !root_or_explain("cgroup limits") {
        return;
    }
    let mut host = Host::start("oom", false);
    let answer = host.run(&[PROBE, "alloc", "200"], json!({"memory_max": 64 << 20}));
    let cg = answer
        .enforcement()
        .cgroup
        .clone()
        .expect("no cgroup report");
    let (done, stdout, _) = answer.done();
    assert_eq!(done.status, Status::Oom, "{done:?} {stdout}");
    assert!(
        !stdout.contains("allocated"),
        "the allocation succeeded: {stdout}"
    );
    assert_eq!(cg.memory_max, Some(64 << 20));
    assert!(cg.oom_kills >= 1, "{cg:?}");
}

#[test]
fn a_busy_loop_under_a_fifth_of_a_cpu_uses_about_a_fifth() {
    if !root_or_explain("cgroup limits") {
        return;
    }
    let mut host = Host::start("cpu", false);
    let answer = host.run(&[PROBE, "spin", "3000"], json!({"cpu_millis": 200}));
    let cg = answer
        .enforcement()
        .cgroup
        .clone()
        .expect("no cgroup report");
    let (done, _, _) = answer.done();
    assert_eq!(done.status, Status::Ok);
    assert_eq!(cg.cpu_max.as_deref(), Some("20000 100000"));
    let wall = done.duration_ms as f64;
    let share = cg.cpu_ms as f64 / wall;
    assert!(
        (0.1..=0.3).contains(&share),
        "used {} ms of CPU in {wall} ms: a share of {share:.2}, expected about 0.2",
        cg.cpu_ms
    );
}

#[test]
fn seccomp_default_refuses_the_dangerous_families_with_eperm() {
    if !root_or_explain("seccomp probes (root could otherwise do these)") {
        return;
    }
    let mut host = Host::start("seccomp-default", false);
    let limits = json!({"seccomp": "default"});
    for probe in [
        "unshare",
        "mount",
        "bpf",
        "ptrace",
        "keyctl",
        "clone-newuser",
        "x32",
    ] {
        let without = host.probe(&[probe], json!({}));
        let with = host.probe(&[probe], limits.clone());
        assert_eq!(
            with,
            libc::EPERM,
            "{probe} under `default` (without: {without})"
        );
        assert_ne!(
            without,
            libc::EPERM,
            "{probe} is refused even without a filter"
        );
    }
    // Ordinary work still runs.
    let (done, out, _) = host
        .run(&["sh", "-c", "ls / >/dev/null && echo ok"], limits)
        .done();
    assert_eq!((done.status, out.as_str()), (Status::Ok, "ok\n"));
}

#[test]
fn seccomp_strict_runs_shells_coreutils_and_apt_and_answers_the_rest_enosys() {
    check_strict(false);
}

#[test]
fn seccomp_strict_works_for_nobody_too() {
    if root_or_explain("running the runner as nobody") {
        check_strict(true);
    }
}

fn check_strict(unprivileged: bool) {
    let mut host = Host::start("seccomp-strict", unprivileged);
    let limits = json!({"seccomp": "strict"});
    let (done, out, err) = host
        .run(
            &[
                "sh",
                "-c",
                "ls / >/dev/null; echo hi | cat; apt-get --version | head -n1; echo ok",
            ],
            limits.clone(),
        )
        .done();
    assert_eq!(done.status, Status::Ok, "{out} {err}");
    assert!(out.starts_with("hi\napt "), "{out} {err}");
    assert!(out.ends_with("ok\n"), "{out}");
    assert!(err.is_empty(), "{err}");
    assert_eq!(host.probe(&["ptrace"], limits.clone()), libc::ENOSYS);
    assert_eq!(host.probe(&["bpf"], limits), libc::ENOSYS);
}

/// Processes whose argv is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    all_processes()
        .into_iter()
        .filter(|(_, a)| a == argv)
        .map(|(pid, _)| pid)
        .collect()
}

#[test]
fn a_timeout_leaves_no_process_behind() {
    let mut host = Host::start("timeout-tree", false);
    let (done, _, _) = host
        .run(
            &["sh", "-c", "sleep 100.123 & sleep 100.123"],
            json!({"timeout_ms": 1000}),
        )
        .done();
    assert_eq!(done.status, Status::Timeout);
    assert!(
        wait_for(Duration::from_secs(2), || processes_running(&[
            "sleep", "100.123"
        ])
        .is_empty()
        .then_some(()))
        .is_some(),
        "sleeps survived the timeout: {:?}",
        processes_running(&["sleep", "100.123"])
    );
}

#[test]
fn a_timeout_kills_through_the_cgroup_what_left_the_process_group() {
    if !root_or_explain("cgroup limits") {
        return;
    }
    let mut host = Host::start("timeout-cgroup", false);
    // `setsid` puts the sleep in a session and group of its own: only the cgroup finds it.
    let answer = host.run(
        &["sh", "-c", "setsid sleep 100.456 & sleep 100.456"],
        json!({"timeout_ms": 1000, "pids_max": 100}),
    );
    let e = answer.enforcement().clone();
    let (done, _, _) = answer.done();
    assert_eq!(done.status, Status::Timeout);
    assert!(
        wait_for(Duration::from_millis(500), || processes_running(&[
            "sleep", "100.456"
        ])
        .is_empty()
        .then_some(()))
        .is_some(),
        "a sleep outside the process group survived: {:?} (kill: {})",
        processes_running(&["sleep", "100.456"]),
        e.kill
    );
    let v2 = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - cgroup2 ");
    if v2 {
        assert_eq!(e.kill, "cgroup.kill", "a writable cgroup2 is mounted");
    }
    #[allow(clippy::print_stdout)]
    {
        println!(
            "tree killed with {} (cgroup {:?})",
            e.kill,
            e.cgroup.map(|c| c.version)
        );
    }
}

/// The unprivileged user has no delegated cgroup on this host: a memory limit cannot be
/// applied. `require` refuses and the command provably does not run; `best-effort` runs it
/// and reports the gap.
#[test]
fn require_refuses_what_cannot_be_applied_and_best_effort_reports_it() {
    if !root_or_explain("running the runner as nobody") {
        return;
    }
    let mut host = Host::start("require", true);
    let marker = host.tmp.0.join("ran");
    let touch = ["touch", marker.to_str().unwrap()];
    let answer = host.run(&touch, json!({"memory_max": 64 << 20}));
    let Answer::Refused(e) = answer else {
        panic!("ran without its memory limit: {answer:?}")
    };
    assert_eq!(e.code, ErrorCode::SandboxUnavailable);
    assert_eq!(e.class, ErrorClass::Permanent);
    assert_eq!(e.missing.len(), 1, "{:?}", e.missing);
    assert!(e.missing[0].starts_with("cgroup: "), "{:?}", e.missing);
    assert!(e.message.contains(&e.missing[0]), "{}", e.message);
    assert!(!marker.exists(), "the command ran although it was refused");

    let answer = host.run(
        &touch,
        json!({"memory_max": 64 << 20, "sandbox": "best-effort", "seccomp": "default"}),
    );
    let e = answer.enforcement().clone();
    let (done, _, _) = answer.done();
    assert_eq!(done.status, Status::Ok);
    assert!(marker.exists(), "best-effort did not run the command");
    assert!(!e.complete);
    assert_eq!(e.missing.len(), 1, "{:?}", e.missing);
    assert!(e.missing[0].starts_with("cgroup: "), "{:?}", e.missing);
    assert!(e.cgroup.is_none());
    assert_eq!(e.seccomp.map(|s| s.profile).as_deref(), Some("default"));
}

/// A gap found only in the child (the kernel refuses an rlimit above `fs.nr_open`) stops the
/// exec under `require`, by name, before the program runs; `best-effort` runs and reports it.
#[test]
fn a_protection_that_fails_in_the_child_stops_the_exec() {
    let mut host = Host::start("child-gap", false);
    let marker = host.tmp.0.join("ran");
    let touch = ["touch", marker.to_str().unwrap()];
    let too_many = 1u64 << 40;
    let answer = host.run(&touch, json!({"rlimits": {"nofile": too_many}}));
    let Answer::Refused(e) = answer else {
        panic!("ran although its rlimit failed: {answer:?}")
    };
    assert_eq!(e.code, ErrorCode::SandboxUnavailable);
    assert_eq!(e.missing.len(), 1, "{:?}", e.missing);
    assert!(
        e.missing[0].starts_with(&format!("rlimits: setrlimit nofile {too_many} failed")),
        "{:?}",
        e.missing
    );
    assert!(!marker.exists(), "the command ran although it was refused");

    let answer = host.run(
        &touch,
        json!({"rlimits": {"nofile": too_many}, "sandbox": "best-effort"}),
    );
    let e = answer.enforcement().clone();
    assert_eq!(answer.done().0.status, Status::Ok);
    assert!(marker.exists());
    assert!(!e.complete);
    assert!(!e.rlimits.contains_key("nofile"), "{:?}", e.rlimits);
    assert!(
        e.missing[0].starts_with("rlimits: setrlimit nofile"),
        "{:?}",
        e.missing
    );
}

#[test]
fn everything_at_once_applies_completely() {
    if !root_or_explain("cgroup limits") {
        return;
    }
    let mut host = Host::start("complete", false);
    let limits = json!({
        "memory_max": 128 << 20, "pids_max": 64, "seccomp": "default",
        "fs": {"rw": [host.tmp.0.to_str().unwrap()], "exec": [probe_dir()]},
        "rlimits": {"nofile": 256},
    });
    let answer = host.run(&["sh", "-c", "ulimit -n"], limits);
    let e = answer.enforcement().clone();
    let (done, out, err) = answer.done();
    assert_eq!(done.status, Status::Ok, "{out} {err}");
    assert_eq!(out, "256\n", "the rlimit is in force");
    assert!(e.complete, "{:?}", e.missing);
    assert_eq!(e.rlimits.get("nofile"), Some(&256));
    assert_eq!(e.rlimits.get("core"), Some(&0));
    assert_eq!(e.landlock.unwrap().status, "full");
    let cg = e.cgroup.unwrap();
    assert_eq!((cg.memory_max, cg.pids_max), (Some(128 << 20), Some(64)));
}

/// `net`: no network at all (loopback is down, so even 127.0.0.1 is unreachable); `mount`: a
/// private, empty /tmp whose files never reach the host's; `pid`: PID 1 of its own namespace. As root and as nobody (through a
/// user namespace), where the kernel allows unprivileged user namespaces.
fn check_namespaces(unprivileged: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut host = Host::start("namespaces", unprivileged);
    let limits = json!({"namespaces": ["net"]});
    assert_eq!(host.probe(&["connect", &port], json!({})), 0);
    assert_eq!(
        host.probe(&["connect", &port], limits),
        libc::ENETUNREACH,
        "loopback reachable from a new network namespace"
    );
    let name = format!("wisp-private-tmp-{}", std::process::id());
    let script = format!("touch /tmp/{name} && ls -A /tmp");
    let answer = host.run(&["sh", "-c", &script], json!({"namespaces": ["mount"]}));
    let e = answer.enforcement().clone();
    let (done, out, err) = answer.done();
    assert_eq!(done.status, Status::Ok, "{out} {err}");
    assert_eq!(out.trim(), name, "/tmp was not private and empty");
    assert!(
        !Path::new("/tmp").join(&name).exists(),
        "the file reached the host's /tmp"
    );
    assert!(e.complete && e.no_new_privs, "{e:?}");

    // pid: PID 1, its own /proc showing only its own processes (sh, ls, grep).
    let answer = host.run(
        &["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"],
        json!({"namespaces": ["pid"]}),
    );
    let e = answer.enforcement().clone();
    let (done, out, err) = answer.done();
    assert_eq!(done.status, Status::Ok, "{out} {err}");
    // ls may read /proc before sh has forked grep: 2 or 3.
    assert!(
        out == "1\n3\n" || out == "1\n2\n",
        "not PID 1 of a fresh namespace: {out:?} {err}"
    );
    assert_eq!(e.namespaces, [Namespace::Pid]);
    // Everything in it dies with it, even what left the process group, without a cgroup.
    // (A marker of its own per variant: the root and nobody tests run at the same time.)
    let marker = if unprivileged { "100.7891" } else { "100.7892" };
    let script = format!("setsid sleep {marker} & sleep {marker}");
    let (done, _, _) = host
        .run(
            &["sh", "-c", &script],
            json!({"namespaces": ["pid"], "timeout_ms": 1000}),
        )
        .done();
    assert_eq!(done.status, Status::Timeout);
    let gone = wait_for(Duration::from_millis(500), || {
        processes_running(&["sleep", marker])
            .is_empty()
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "a process of the PID namespace survived its PID 1"
    );
    // The exit code of PID 1 is the command's.
    let (done, _, _) = host
        .run(&["sh", "-c", "exit 7"], json!({"namespaces": ["pid"]}))
        .done();
    assert_eq!(done.exit_code, Some(7));
}

#[test]
fn namespaces_cut_the_network_give_a_private_tmp_and_a_pid_namespace_as_root() {
    if root_or_explain("namespaces as root") {
        check_namespaces(false);
    }
}

#[test]
fn namespaces_cut_the_network_give_a_private_tmp_and_a_pid_namespace_as_nobody() {
    let userns = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        .map_or(true, |v| v.trim() == "1");
    if kernel_has(userns, "unprivileged user namespaces") && root_or_explain("running as nobody") {
        check_namespaces(true);
    }
}

/// The operator's view: `wisp run` with limits, a write to /etc refused by the kernel, and
/// the recap saying the sandbox was fully enforced with the limits the kernel read back.
#[test]
fn wisp_run_reports_a_fully_enforced_sandbox_in_the_recap() {
    if !root_or_explain("cgroup limits") {
        return;
    }
    let tmp = ScratchDir::new("cli");
    let job = tmp.0.join("job");
    std::fs::create_dir(&job).unwrap();
    let target = format!("/etc/wisp-test-{}", std::process::id());
    let out = wisp_tests::wisp_command!(&tmp.0)
        .args(["run", "localhost", "--rw"])
        .arg(&job)
        .args([
            "--memory",
            "128M",
            "--pids",
            "64",
            "--seccomp",
            "default",
            "--",
        ])
        .args(["sh", "-c", &format!("echo x > {target}")])
        .env("WISP_RUNNER", wisp_tests::runner_path())
        .env("TMPDIR", &tmp.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !Path::new(&target).exists(),
        "the write to /etc went through"
    );
    assert_eq!(
        stdout,
        format!("localhost ! sh: 1: cannot create {target}: Permission denied\n")
    );
    let recap = stderr.split("RECAP").nth(1).expect("no recap");
    assert!(
        recap.contains("sandbox fully enforced: landlock abi ")
            && recap.contains(" full (")
            && recap.contains("seccomp default")
            && recap.contains("[memory 128M, pids 64]")
            && recap.contains("no_new_privs"),
        "{recap}"
    );
}

/// `wisp` with a protection that cannot be applied: under `require` the host fails, the
/// command did not run, and each gap is named with the way out; under `best-effort` it runs
/// and the recap says the sandbox was partial, and why. `wisp facts` says what a host can
/// enforce.
#[test]
fn wisp_names_each_gap_and_how_to_proceed() {
    let tmp = ScratchDir::new("cli-gap");
    let marker = tmp.0.join("ran");
    let wisp = |extra: &[&str]| {
        wisp_tests::wisp_command!(&tmp.0)
            .args(["run", "localhost", "--rw", "/nonexistent/wisp-gap", "--rw"])
            .arg(&tmp.0)
            .args(extra)
            .args(["--", "touch"])
            .arg(&marker)
            .env("WISP_RUNNER", wisp_tests::runner_path())
            .env("TMPDIR", &tmp.0)
            .output()
            .unwrap()
    };
    let out = wisp(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!marker.exists(), "the command ran under require");
    assert!(
        stderr.contains(
            "localhost: FAILED: the command did not run: the sandbox (require mode) cannot apply:\n\
             localhost:   - landlock: cannot grant rw on /nonexistent/wisp-gap: No such file or directory"
        ) && stderr.contains("pass --sandbox best-effort"),
        "{stderr}"
    );
    assert!(stderr.contains("sandbox_unavailable"), "{stderr}");

    let out = wisp(&["--sandbox", "best-effort"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(marker.exists(), "best-effort did not run the command");
    assert!(
        stderr.contains("sandbox PARTIAL (best-effort): landlock abi ")
            && stderr.contains("missing: landlock: cannot grant rw on /nonexistent/wisp-gap"),
        "{stderr}"
    );

    let out = wisp_tests::wisp_command!(&tmp.0)
        .args(["facts", "localhost"])
        .env("WISP_RUNNER", wisp_tests::runner_path())
        .env("TMPDIR", &tmp.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("localhost | sandbox: landlock "))
        .unwrap_or_else(|| panic!("no sandbox line in {stdout}"));
    assert!(line.contains(", seccomp yes, cgroup "), "{line}");
}

/// `--seccomp FILE`: a seccompiler JSON filter compiled by the controller for the host's
/// architecture (`{arch}` picks the file) and enforced by the runner.
#[test]
fn a_seccomp_file_is_compiled_for_the_host_and_enforced() {
    let tmp = ScratchDir::new("seccomp-file");
    // Everything allowed except uname(2), which fails with EACCES (13).
    let filter = json!({"main": {
        "default_action": "allow",
        "filter_action": {"errno": 13},
        "filter": [{"syscall": "uname"}],
    }});
    let file = tmp
        .0
        .join(format!("deny-uname-{}.json", std::env::consts::ARCH));
    std::fs::write(&file, filter.to_string()).unwrap();
    let pattern = tmp.0.join("deny-uname-{arch}.json");
    let run = |seccomp: &Path| {
        wisp_tests::wisp_command!(&tmp.0)
            .args(["run", "--json", "localhost", "--seccomp"])
            .arg(seccomp)
            .args(["--", "uname", "-s"])
            .env("WISP_RUNNER", wisp_tests::runner_path())
            .env("TMPDIR", &tmp.0)
            .output()
            .unwrap()
    };
    for path in [&file, &pattern] {
        let out = run(path);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{stdout}");
        assert!(
            stdout.contains("Permission denied"),
            "uname was not refused: {stdout}"
        );
        let done: Value = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["type"] == "done")
            .unwrap();
        assert_eq!(
            done["enforcement"]["seccomp"]["profile"],
            format!("deny-uname-{}.json", std::env::consts::ARCH)
        );
    }
    // A name the architecture does not have is an error before anything runs.
    let bad = tmp.0.join("bad.json");
    std::fs::write(
        &bad,
        json!({"main": {"default_action": "allow", "filter_action": "kill_process",
                        "filter": [{"syscall": "no_such_call"}]}})
        .to_string(),
    )
    .unwrap();
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.json"));
}
