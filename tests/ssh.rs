//! The SSH transport against real OpenSSH sshd hosts on loopback: reach, push, run, leave
//! nothing behind; strict host keys; unreachable hosts; a corrupted upload.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test
#![allow(clippy::print_stdout)] // helpers print what wisp said, for the failure report

use std::process::{Command, Output};

use wisp_tests::runner_path;
use wisp_tests::sshd::Fleet;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    println!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `wisp VERB TARGETS` with the fleet's key and known_hosts, as root (the hosts allow root
/// logins by key), with no agent.
fn sub(fleet: &Fleet, verb: &str, targets: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wisp-under-test"));
    c.env("WISP_RUNNER", runner_path())
        .env_remove("SSH_AUTH_SOCK")
        .args([verb, targets, "--user", "root", "--key"])
        .arg(&fleet.client_key)
        .arg("--known-hosts")
        .arg(&fleet.known_hosts)
        .args(["--connect-timeout", "5s"]);
    c
}

#[test]
fn run_reaches_every_host_and_leaves_nothing() {
    let fleet = Fleet::start(3);
    let out = run(sub(&fleet, "run", &fleet.targets()).args([
        "--",
        "sh",
        "-c",
        "echo hello from $(id -un); echo err >&2",
    ]));
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for h in &fleet.hosts {
        assert!(
            stdout.contains(&format!("{} | hello from root", h.target())),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("{} ! err", h.target())),
            "{stdout}"
        );
    }
    fleet.assert_clean();
}
