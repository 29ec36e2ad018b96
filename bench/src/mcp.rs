//! `--mcp N`: `wisp mcp` as an agent sees it, over its stdio (newline-delimited JSON-RPC, as
//! MCP's stdio transport is), against N sshd hosts (20 by default):
//!
//! - the first `run` call and the ones after it, with warm sessions (the default) and with
//!   `--warm 0` (a session per call), in one run: what a warm call saves;
//! - the size of a folded result on 10 times as many hosts (200 by default) against the output
//!   `wisp run` prints for the same command, unfolded.
//!
//! The login user is the benchmark's plain one (see [`crate::ssh::USER`]).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wisp_tests::ScratchDir;
use wisp_tests::sshd::Fleet;

/// A `wisp mcp` server and the pipes to it.
struct Server {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    next: u64,
}

impl Server {
    fn start(wisp: &std::ffi::OsStr, dir: &Path, fleet: &Fleet, extra: &[&str]) -> Server {
        let mut child = wisp_tests::wisp::isolated(Path::new(wisp), dir)
            .args(["mcp", "-i", "hosts", "--policy", "policy.toml"])
            .args(fleet.root_options())
            .args(["--user", crate::ssh::USER])
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start wisp mcp");
        let to = child.stdin.take().expect("stdin");
        let from = BufReader::new(child.stdout.take().expect("stdout"));
        let mut s = Server {
            child,
            to,
            from,
            next: 0,
        };
        s.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "wisp-bench", "version": "1"}}),
        );
        s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    fn send(&mut self, v: &Value) {
        writeln!(self.to, "{v}").expect("write to wisp mcp");
        self.to.flush().expect("flush");
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            let n = self.from.read_line(&mut line).expect("read from wisp mcp");
            assert!(n > 0, "wisp mcp went away");
            let v: Value = serde_json::from_str(&line).expect("JSON-RPC");
            if v["id"] == id {
                return v["result"].clone();
            }
        }
    }

    /// One tool call; its text, timed.
    fn call(&mut self, tool: &str, args: Value) -> (String, Duration) {
        let started = Instant::now();
        let r = self.request("tools/call", json!({"name": tool, "arguments": args}));
        let took = started.elapsed();
        assert_ne!(r["isError"], true, "{tool}: {r}");
        (
            r["content"][0]["text"].as_str().unwrap_or("").to_owned(),
            took,
        )
    }

    fn stop(mut self) {
        drop(self.to);
        let _ = self.child.wait();
    }
}

fn policy(dir: &Path, hosts: usize) {
    std::fs::write(
        dir.join("policy.toml"),
        format!(
            "[limits]\nmax_hosts = {hosts}\n\n[[rule]]\nname = \"look\"\n\
             programs = [\"/usr/bin/uptime\", \"/usr/bin/cat\"]\n[rule.sandbox]\nno_net = true\nrw = [\"/tmp\"]\n"
        ),
    )
    .expect("write the policy");
}

pub(crate) fn bench(n: usize) {
    let wisp = std::env::var_os("WISP_BIN")
        .expect("WISP_BIN must name a wisp executable (cargo xtask bench sets it)");
    crate::ssh::ensure_user();
    let scratch = ScratchDir::new("bench-mcp");
    let dir = &scratch.0;
    let fleet = Fleet::start(n);
    fleet.write_inventory(&dir.join("hosts"));
    policy(dir, n);
    let uptime = json!({"targets": "all", "argv": ["uptime"]});
    println!("wisp mcp, `run uptime` on {n} sshd hosts, one server each, 5 calls:");
    let mut firsts = Vec::new();
    for (name, extra) in [
        ("warm sessions", &[][..]),
        ("--warm 0", &["--warm", "0"][..]),
    ] {
        let mut s = Server::start(&wisp, dir, &fleet, extra);
        let times: Vec<Duration> = (0..5).map(|_| s.call("run", uptime.clone()).1).collect();
        s.stop();
        let later = times[1..].iter().sum::<Duration>() / 4;
        println!(
            "  {name:<14} first {:>9.3?}  later (mean of 4) {later:>9.3?}  first/later {:.1}x",
            times[0],
            times[0].as_secs_f64() / later.as_secs_f64()
        );
        firsts.push((times[0], later));
    }
    println!(
        "  a warm call takes {:.2}x the time of a call with --warm 0",
        firsts[0].1.as_secs_f64() / firsts[1].1.as_secs_f64()
    );
    drop(fleet);

    let big = n * 10;
    let fleet = Fleet::start(big);
    fleet.write_inventory(&dir.join("hosts"));
    policy(dir, big);
    let os_release = json!({"targets": "all", "argv": ["cat", "/etc/os-release"]});
    // 50 logins at a time: 200 at once on a small machine time out.
    let out = wisp_tests::wisp::isolated(Path::new(&wisp), dir)
        .args(["run", "all", "-i", "hosts"])
        .args(fleet.root_options())
        .args([
            "--user",
            crate::ssh::USER,
            "--forks",
            "50",
            "--connect-timeout",
            "120s",
        ])
        .args(["--", "cat", "/etc/os-release"])
        .current_dir(dir)
        .output()
        .expect("run wisp");
    let mut s = Server::start(
        &wisp,
        dir,
        &fleet,
        &["--forks", "50", "--connect-timeout", "120s"],
    );
    let (folded, _) = s.call("run", os_release);
    s.stop();
    assert!(out.status.success(), "wisp run failed");
    assert!(
        !folded.contains("unreachable") && !folded.contains("failed"),
        "{folded}"
    );
    println!(
        "`cat /etc/os-release` on {big} hosts: folded MCP result {} bytes, `wisp run` output {} \
         bytes ({:.0}x smaller folded)",
        folded.len(),
        out.stdout.len(),
        out.stdout.len() as f64 / folded.len() as f64
    );
    println!("  folded: {}", folded.lines().nth(1).unwrap_or(""));
    fleet.assert_clean();
}
