//! The golden suite against the freshly built runner, and proof that it catches a runner
//! that answers one frame wrong.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use wisp_conformance::{default_golden_dir, load_dir, render_report, run_cases};
use wisp_tests::runner_path;

/// One test per golden case, so a failure names the case. The list must match golden/
/// exactly (checked below): a new case file without a test here fails the suite.
macro_rules! golden_cases {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                golden_case($name);
            }
        )*
        const LISTED: &[&str] = &[$($name),*];
    };
}

golden_cases! {
    bad_args => "bad-args",
    bad_json => "bad-json",
    bad_magic => "bad-magic",
    cancel => "cancel",
    cancel_unknown_id => "cancel-unknown-id",
    cmd_before_hello => "cmd-before-hello",
    concurrent_commands => "concurrent-commands",
    duplicate_id => "duplicate-id",
    exec_background_child => "exec-background-child",
    exec_binary_output => "exec-binary-output",
    exec_env_cwd => "exec-env-cwd",
    exec_failure => "exec-failure",
    exec_output_cap => "exec-output-cap",
    exec_signal => "exec-signal",
    exec_spawn_failure => "exec-spawn-failure",
    exec_stdin => "exec-stdin",
    exec_streamed_output => "exec-streamed-output",
    exec_success => "exec-success",
    exec_timeout => "exec-timeout",
    exec_timeout_busy_output => "exec-timeout-busy-output",
    exit_with_running => "exit-with-running",
    facts => "facts",
    file_write_in_parts => "file-write-in-parts",
    handshake => "handshake",
    oversize_frame => "oversize-frame",
    runner_only_frames => "runner-only-frames",
    sandbox_bad_limits => "sandbox-bad-limits",
    sandbox_best_effort => "sandbox-best-effort",
    sandbox_require_unavailable => "sandbox-require-unavailable",
    second_hello => "second-hello",
    stdin_eof => "stdin-eof",
    truncated_frame => "truncated-frame",
    unknown_frame => "unknown-frame",
    unknown_op => "unknown-op",
    unsupported_limit => "unsupported-limit",
    unsupported_version => "unsupported-version",
}

/// Runs the case `name` against the freshly built runner; the report says what differed.
fn golden_case(name: &str) {
    let cases = load_dir(&default_golden_dir()).expect("golden cases load");
    let case: Vec<_> = cases.into_iter().filter(|c| c.name == name).collect();
    assert_eq!(case.len(), 1, "golden/{name}.jsonl is missing");
    let outcomes = run_cases(&case, &runner_path(), false);
    let report = render_report(&outcomes);
    assert!(
        outcomes.iter().all(|o| o.passed()),
        "golden case {name} failed:\n{report}"
    );
}

#[test]
fn every_golden_case_has_its_own_test() {
    let cases = load_dir(&default_golden_dir()).expect("golden cases load");
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.len() >= 15,
        "the corpus must cover at least 15 cases, has {}",
        names.len()
    );
    let mut listed = LISTED.to_vec();
    listed.sort_unstable();
    let mut names = names;
    names.sort_unstable();
    assert_eq!(
        names, listed,
        "tests/conformance.rs lists other cases than golden/ holds: add one line per case"
    );
}

#[test]
fn a_runner_that_answers_one_frame_wrong_fails_with_a_readable_diff() {
    let scratch = wisp_tests::ScratchDir::new("conformance-broken");
    let out = wisp_tests::wisp_command!(&scratch.0)
        .args([
            "conformance",
            "--runner",
            env!("CARGO_BIN_EXE_broken-runner"),
            "--golden",
        ])
        .arg(default_golden_dir())
        .env("BROKEN_RUNNER_REAL", runner_path())
        .env("BROKEN_RUNNER_FROM", r#""exit_code":3"#)
        .env("BROKEN_RUNNER_TO", r#""exit_code":4"#)
        .output()
        .expect("run wisp conformance");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(2), "a failing suite exits 2");
    // Only the case whose DONE was tampered with fails...
    let failed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL    "))
        .collect();
    assert_eq!(failed, ["exec-failure"], "exactly the tampered case fails");
    // ...and the report shows the expected line and the received one.
    let shown = |sign: &str, code: u8| {
        let head = format!(r#"{sign} {{"recv":{{"t":"done","id":"c1","status":"failed","#);
        stdout.lines().any(|l| {
            l.trim_start().starts_with(&head) && l.contains(&format!(r#""exit_code":{code},"#))
        })
    };
    assert!(shown("-", 3), "the expected line is shown with -");
    assert!(shown("+", 4), "the received line is shown with +");
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("passed, 1 failed"))
    );
}

#[test]
fn the_suite_runs_through_the_cli_and_reports_per_case() {
    let scratch = wisp_tests::ScratchDir::new("conformance-cli");
    let out = wisp_tests::wisp_command!(&scratch.0)
        .args(["conformance", "--runner"])
        .arg(runner_path())
        .args(["--case", "exec-", "--golden"])
        .arg(default_golden_dir())
        .output()
        .expect("run wisp conformance");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok      exec-success"), "{stdout}");
    assert!(!stdout.contains("handshake"), "--case filters: {stdout}");
}
