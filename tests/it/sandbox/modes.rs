//! Require and best-effort: a protection that cannot be applied stops the command (or is
//! reported), one that fails in the child stops it too, and `wisp run` says what was enforced
//! and what is missing; seccomp files compiled for the host's architecture.

use super::*;

/// The directory the probe lives in, which Landlock rules must let the command execute.
fn probe_dir() -> String {
    Path::new(PROBE)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned()
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
