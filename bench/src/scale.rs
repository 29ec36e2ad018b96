//! A thousand real sshd hosts on loopback (addresses across 127.x.y.z): wall time, hosts per
//! second, the controller's peak RSS per host and how many hosts were reachable, beside
//! parallel OpenSSH on the same hosts.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use wisp_tests::sshd::Fleet;

use crate::ssh::{Reach, openssh_all, wisp_command};

/// The controller's peak RSS so far (kB), from /proc.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `wisp run --json <all> -- true`: its wall time, peak RSS (kB) and summary line.
fn measured(reach: &Reach<'_>, wisp: &std::ffi::OsStr) -> (Duration, u64, serde_json::Value) {
    let started = Instant::now();
    let mut child = wisp_command(reach, wisp, &["run".as_ref()], &["--json", "--", "true"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run wisp");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let mut peak = 0;
    while child.try_wait().expect("wait for wisp").is_none() {
        if let Some(kb) = peak_rss_kb(child.id()) {
            peak = peak.max(kb);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let text = reader.join().expect("stdout reader");
    let summary = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .unwrap_or_default();
    (took, peak, summary)
}

pub(crate) fn bench(n: usize) {
    let wisp = std::env::var_os("WISP_BIN")
        .expect("WISP_BIN must name a wisp executable (cargo xtask bench sets it)");
    println!(
        "starting {n} sshd hosts on loopback (127.x.y.z), login user {}...",
        crate::ssh::USER
    );
    crate::ssh::ensure_user();
    let t = Instant::now();
    let fleet = Fleet::start(n);
    println!("  {n} sshd up in {:.1?}", t.elapsed());
    let direct = Reach::direct(&fleet);
    let one = Reach {
        fleet: &fleet,
        hosts: direct.hosts[..1].to_vec(),
        known_hosts: direct.known_hosts.clone(),
    };
    // Warm-up (page cache, sshd's first fork) and the one-host baseline of the RSS.
    let (_, _, _) = measured(&one, &wisp);
    let (_, rss_one, _) = measured(&one, &wisp);
    let ssh = openssh_all(&direct);
    let (took, rss, summary) = measured(&direct, &wisp);
    let ok = summary["ok"].as_u64().unwrap_or(0);
    let unreachable = summary["unreachable"].as_u64().unwrap_or(0);
    #[allow(clippy::cast_precision_loss)] // host counts are small
    let per_s = n as f64 / took.as_secs_f64();
    let per_host = rss.saturating_sub(rss_one) / (n as u64 - 1).max(1);
    println!("{n} hosts, one round each, every host at once (--forks {n}):");
    println!("  OpenSSH, ssh host true for every host at once: {ssh:>10.3?}");
    println!(
        "  wisp run <all> -- true:                         {took:>10.3?}   {per_s:.0} hosts/s, ratio to OpenSSH {:.2}",
        took.as_secs_f64() / ssh.as_secs_f64()
    );
    println!("  hosts ok: {ok} of {n}, unreachable: {unreachable} (target: all {n} reachable)");
    println!(
        "  controller peak RSS: {rss} kB at {n} hosts, {rss_one} kB at 1: {per_host} kB per host (target: under 100 kB)"
    );
    fleet.assert_clean();
}
