//! The golden suite against the freshly built runner, and proof that it catches a runner
//! that answers one frame wrong.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::process::Command;

use wisp::conformance::{default_golden_dir, load_dir, render_report, run_cases};
use wisp_tests::runner_path;

#[test]
fn every_golden_case_passes_against_the_built_runner() {
    let cases = load_dir(&default_golden_dir()).expect("golden cases load");
    assert!(
        cases.len() >= 15,
        "the corpus must cover at least 15 cases, has {}",
        cases.len()
    );
    let outcomes = run_cases(&cases, &runner_path(), false);
    let report = render_report(&outcomes);
    println!("{report}");
    assert!(
        outcomes.iter().all(|o| o.passed()),
        "conformance failures:\n{report}"
    );
}

#[test]
fn a_runner_that_answers_one_frame_wrong_fails_with_a_readable_diff() {
    let out = Command::new(env!("CARGO_BIN_EXE_wisp-under-test"))
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
    let out = Command::new(env!("CARGO_BIN_EXE_wisp-under-test"))
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
