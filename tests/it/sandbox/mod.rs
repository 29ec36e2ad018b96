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

mod kernel;
mod modes;

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
