//! The fleet behind a WAN (50 ms round trip, 20 Mbit/s each way per host), where round trips
//! and bytes show; and what each tool starts on a host.

use std::process::{Command, Stdio};
use std::time::Duration;

use wisp_tests::sshd::Fleet;

use crate::ssh::{Reach, openssh_all, wisp_command};

const RTT: Duration = Duration::from_millis(50);
const RATE: u64 = 20_000_000;
const ROUNDS: usize = 3;

pub(crate) fn bench(fleet: &Fleet, wisp: &std::ffi::OsStr) {
    let n = fleet.hosts.len();
    let direct: Vec<(String, u16)> = fleet
        .hosts
        .iter()
        .map(|h| (h.addr.clone(), h.port))
        .collect();
    let wan = wisp_tests::wan::start(&direct, RTT, RATE);
    let known = fleet.dir.0.join("known_hosts.wan");
    wisp_tests::wan::known_hosts(&fleet.known_hosts, &known);
    let reach = Reach {
        fleet,
        hosts: wan.listen.clone(),
        known_hosts: known,
    };
    let run_wisp = || {
        let t = std::time::Instant::now();
        let out = wisp_command(&reach, wisp, &["run".as_ref()], &["--", "true"])
            .output()
            .expect("run wisp");
        assert!(
            out.status.success(),
            "wisp behind the WAN failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    };
    // Warm-up, uncounted.
    openssh_all(&reach);
    run_wisp();
    wan.take_bytes();
    let (mut ssh, mut floor, mut wisp_t) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ssh_b, mut floor_b, mut wisp_b) = ((0, 0), (0, 0), (0, 0));
    let add = |acc: &mut (u64, u64), b: (u64, u64)| {
        acc.0 += b.0;
        acc.1 += b.1;
    };
    for _ in 0..ROUNDS {
        ssh.push(openssh_all(&reach));
        add(&mut ssh_b, wan.take_bytes());
        floor.push(crate::floor::all(&reach.hosts, &fleet.client_key));
        add(&mut floor_b, wan.take_bytes());
        wisp_t.push(run_wisp());
        add(&mut wisp_b, wan.take_bytes());
    }
    let (s, f, w) = (
        crate::percentile(&mut ssh, 0.5),
        crate::percentile(&mut floor, 0.5),
        crate::percentile(&mut wisp_t, 0.5),
    );
    let per_host = |b: (u64, u64)| {
        let d = (ROUNDS * n) as u64;
        format!("{} B up, {} B down", b.0 / d, b.1 / d)
    };
    println!(
        "{n} hosts behind a WAN ({RTT:?} round trip, {} Mbit/s each way per host), median of {ROUNDS} rounds:",
        RATE / 1_000_000
    );
    println!(
        "  OpenSSH ssh host true:   {s:>10.3?}   {}",
        per_host(ssh_b)
    );
    println!(
        "  bare russh (the floor):  {f:>10.3?}   {}",
        per_host(floor_b)
    );
    println!(
        "  wisp run <all> -- true:  {w:>10.3?}   {}",
        per_host(wisp_b)
    );
    println!(
        "  ratio wisp / OpenSSH: {:.2} (target: at most 1.0); wisp / bare russh: {:.2}",
        w.as_secs_f64() / s.as_secs_f64(),
        w.as_secs_f64() / f.as_secs_f64()
    );
}

/// Programs each tool executes on a host for one `true`: every execve under one host's sshd
/// while it serves one connection, counted with strace.
pub(crate) fn processes(fleet: &Fleet, wisp: &std::ffi::OsStr) {
    let Some(pid) = fleet.hosts[0].pid() else {
        println!("processes per host: skipped, host 0's sshd is not running");
        return;
    };
    let direct = Reach::direct(fleet);
    let one = Reach {
        fleet,
        hosts: direct.hosts[..1].to_vec(),
        known_hosts: direct.known_hosts.clone(),
    };
    let count = |what: &dyn Fn()| -> Option<(usize, Vec<String>)> {
        let log = fleet.dir.0.join("strace.log");
        let mut strace = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o"])
            .arg(&log)
            .args(["-p", &pid.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // strace attaches before it traces; give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        what();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-INT", &strace.id().to_string()])
            .status();
        let _ = strace.wait();
        let text = std::fs::read_to_string(&log).ok()?;
        let programs: Vec<String> = text
            .lines()
            .filter(|l| l.contains("execve(") && !l.contains("= -1"))
            .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
            .collect();
        Some((programs.len(), programs))
    };
    let ssh = count(&|| {
        openssh_all(&one);
    });
    let wisp = count(&|| {
        let out = wisp_command(&one, wisp, &["run".as_ref()], &["--no-state", "--", "true"])
            .output()
            .expect("run wisp");
        assert!(out.status.success(), "wisp failed");
    });
    match (ssh, wisp) {
        (Some((s, sp)), Some((w, wp))) => {
            // What wisp runs beyond what the same login costs OpenSSH (the login shell and
            // its rc files run for both).
            let mut extra = wp.clone();
            for p in &sp {
                if let Some(i) = extra.iter().position(|e| e == p) {
                    extra.remove(i);
                }
            }
            let extra: Vec<&str> = extra
                .iter()
                .map(|p| p.rsplit('/').next().unwrap_or(p))
                .collect();
            println!("programs executed on a host for one `true` (strace -f on its sshd):");
            println!(
                "  OpenSSH: {s}, wisp: {w}; wisp's bootstrap beyond the login: {} ({})",
                extra.len(),
                extra.join(" ")
            );
        }
        _ => println!(
            "processes per host: skipped, strace is not installed (apt-get install strace)"
        ),
    }
}
