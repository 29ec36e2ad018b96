//! The SSH transport against real OpenSSH sshd hosts on loopback: reach, push, run, leave
//! nothing behind; strict host keys; unreachable hosts; a corrupted upload.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test
#![allow(clippy::print_stdout)] // helpers print what wisp said, for the failure report

use std::process::{Command, Output};

use wisp_tests::sshd::Fleet;

mod logins;
mod reach;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    println!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `wisp VERB TARGETS` against the fleet: its known_hosts, no agent, no ~/.ssh/config, a
/// generous connect timeout (tests about timeouts set their own; the last value wins), and no
/// key: callers add the credentials they test.
fn base(fleet: &Fleet, verb: &str, targets: &str) -> Command {
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args([verb, targets, "--known-hosts"])
        .arg(&fleet.known_hosts)
        .args(["--connect-timeout", "30s", "--ssh-config", "/dev/null"]);
    c
}

/// [`base`] as root with the fleet's client key (the hosts allow root logins by key).
fn sub(fleet: &Fleet, verb: &str, targets: &str) -> Command {
    let mut c = base(fleet, verb, targets);
    c.args(["--user", "root", "--key"]).arg(&fleet.client_key);
    c
}
