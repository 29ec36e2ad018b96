//! Attacker 4, speaking for the runner: a peer that stops answering, ignores its output
//! limit, breaks the protocol or floods the controller with short lines.

use super::*;

/// Case: `--run-timeout` against a peer that stops answering after the command started (no
/// DONE, no answer to CANCEL, no EXIT). The timeout is a hard bound: a short grace for the
/// cancel, then the host is disconnected and reported, and wisp exits.
#[test]
fn the_run_timeout_holds_against_a_peer_that_stops_answering() {
    let tmp = ScratchDir::new("attack-timeout");
    let mut c = broken_run(
        &tmp,
        &["--run-timeout", "2s"],
        &["sh", "-c", "echo started; exec sleep 3600"],
        r#""kind":"stdout""#,
        ("BROKEN_RUNNER_MUTE", "1"),
    );
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    // Far beyond the bound (2 s plus the cancel's grace): only a missing bound reaches it.
    let ended = wisp_tests::wait_for(std::time::Duration::from_secs(90), || {
        child.try_wait().unwrap()
    });
    if ended.is_none() {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    wisp_tests::wisp::show(&c, &out, &tmp.0);
    assert!(
        ended.is_some(),
        "wisp was still waiting 90 s into a 2 s run timeout"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("run timeout"), "{stderr}");
    assert!(
        stderr.contains("did not answer the cancel within 5s are disconnected"),
        "the host's line does not say why: {stderr}"
    );
}

/// Case: a runner that ignores the output limit it was given (each chunk sent 200 times).
/// The controller keeps `--max-output` itself: what it shows stops at the limit, with a line
/// that says why.
#[test]
fn the_controller_keeps_max_output_when_the_runner_does_not() {
    let tmp = ScratchDir::new("attack-max-output");
    let mut c = broken_run(
        &tmp,
        &["--max-output", "4096"],
        &["sh", "-c", "printf 'flood %0990d\\n' 0"],
        r#""kind":"stdout""#,
        ("BROKEN_RUNNER_REPEAT", "200"),
    );
    let out = wisp_tests::wisp::run(&mut c, &tmp.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let floods = stdout.lines().filter(|l| l.contains("flood")).count();
    assert!(
        floods <= 5,
        "{floods} lines of 1 KB shown past a 4 KiB limit"
    );
    assert!(
        stdout.contains("output past 4096 bytes dropped"),
        "{stdout}"
    );
}

/// Case: a hostile peer speaking for the runner — a second READY, a 4 GiB frame, 256 MiB of
/// output without a newline, a DONE for a command never sent, a connection cut mid-frame.
/// wisp ends by itself with the host failed and a reason, and its memory stays bounded
/// (peak RSS under 150 MiB however much the peer sends).
#[test]
fn a_hostile_runner_cannot_hang_or_bloat_the_controller() {
    let tmp = ScratchDir::new("attack-hostile");
    let cases = [
        (r#""t":"ready""#, "ready-twice"),
        (r#""t":"ready""#, "oversize"),
        (r#""kind":"stdout""#, "flood"),
        (r#""kind":"stdout""#, "unknown-id"),
        (r#""kind":"stdout""#, "cut"),
    ];
    for (trigger, then) in cases {
        let mut c = broken_run(
            &tmp,
            &["--max-output", "1M"],
            &["sh", "-c", "echo started; sleep 1; echo more"],
            trigger,
            ("BROKEN_RUNNER_THEN", then),
        );
        let (out, rss_kib, timed_out) = run_measured(&mut c, std::time::Duration::from_secs(120));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let shown: String = stderr.chars().take(4000).collect();
        assert!(
            !timed_out,
            "{then}: wisp was still running after 120 s: {shown}"
        );
        assert!(
            rss_kib < 150 * 1024,
            "{then}: peak RSS {rss_kib} KiB: {shown}"
        );
        if then == "flood" {
            assert!(
                out.stdout.len() < 4 << 20,
                "{then}: {} bytes shown",
                out.stdout.len()
            );
            continue;
        }
        assert!(
            matches!(out.status.code(), Some(2 | 3)),
            "{then}: exit {:?}: {shown}",
            out.status.code()
        );
        assert!(
            stderr.contains("localhost: "),
            "{then}: no reason given: {shown}"
        );
    }
}

/// Case: a runner sends 100 frames of output, each 1.6 MB of two-byte lines (80 million lines
/// in all), for a command that never ends. Splitting lines used to be quadratic (one such
/// frame cost 40 s of CPU, and the run timeout and SIGTERM went unheard meanwhile). Now
/// `--run-timeout 3s` ends the run on time, failed, and two SIGTERMs end another at once.
#[test]
fn a_flood_of_short_lines_cannot_hold_off_the_run_timeout_or_sigterm() {
    let tmp = ScratchDir::new("attack-short-lines");
    let flood = |flags: &[&str]| {
        let mut c = broken_run(
            &tmp,
            &[&["--max-output", "1G"], flags].concat(),
            &["sh", "-c", "echo started; exec sleep 3600"],
            r#""kind":"stdout""#,
            ("BROKEN_RUNNER_THEN", "short-lines"),
        );
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    let mut c = flood(&["--run-timeout", "3s"]);
    let started = std::time::Instant::now();
    let mut child = c.spawn().unwrap();
    // Far beyond the bound (3 s, then 5 s of grace): only a missing bound reaches it.
    let ended = wisp_tests::wait_for(std::time::Duration::from_secs(90), || {
        child.try_wait().unwrap()
    });
    if ended.is_none() {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    wisp_tests::wisp::show(&c, &out, &tmp.0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        ended.is_some(),
        "wisp was still busy with the flood 90 s into a 3 s run timeout"
    );
    println!("ended after {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("run timeout"), "{stderr}");

    // SIGTERM twice, once the flood is arriving: the second disconnects at once.
    let mut c = flood(&[]);
    let mut child = c.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    for _ in 0..2 {
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: the child this test started.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM)
        };
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let ended = wisp_tests::wait_for(std::time::Duration::from_secs(60), || {
        child.try_wait().unwrap()
    });
    if ended.is_none() {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    wisp_tests::wisp::show(&c, &out, &tmp.0);
    assert!(ended.is_some(), "two SIGTERMs did not end wisp within 60 s");
    assert_eq!(out.status.code(), Some(99));
}
