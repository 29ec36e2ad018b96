//! The fleet benchmark over real sshd hosts on loopback.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wisp::session::{CmdEvent, Session};
use wisp_tests::sshd::Fleet;
use wisp_transports::Launch;
use wisp_transports::ssh::{SshOptions, SshTarget, SshTransport};

use crate::cpu::Cpu;

const ROUNDS: usize = 5;

/// The login user every tool uses: an unprivileged one whose shell is `/bin/sh` and which has
/// no rc files, so a login costs what it costs on a plain host, not what this machine's root
/// `.bashrc` adds. Created when missing (the benchmark runs as root).
pub(crate) const USER: &str = "wispbench";

pub(crate) fn ensure_user() {
    let known = Command::new("id")
        .arg(USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !known {
        let made = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", USER])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            made,
            "cannot create the benchmark's login user {USER} (run as root)"
        );
    }
    // No password, but not locked: sshd refuses key logins to a locked account.
    let _ = Command::new("usermod").args(["-p", "*", USER]).status();
}
const WARM_OPS: usize = 100;

/// Where the clients connect: the hosts themselves, or the proxies in front of them.
pub(crate) struct Reach<'a> {
    pub(crate) fleet: &'a Fleet,
    pub(crate) hosts: Vec<(String, u16)>,
    pub(crate) known_hosts: std::path::PathBuf,
}

impl<'a> Reach<'a> {
    pub(crate) fn direct(fleet: &'a Fleet) -> Self {
        Reach {
            fleet,
            hosts: fleet
                .hosts
                .iter()
                .map(|h| (h.addr.clone(), h.port))
                .collect(),
            known_hosts: fleet.known_hosts.clone(),
        }
    }

    fn targets(&self) -> String {
        self.hosts
            .iter()
            .map(|(a, p)| format!("{a}:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

pub(crate) fn openssh_all(reach: &Reach<'_>) -> Duration {
    let started = Instant::now();
    let children: Vec<_> = reach
        .hosts
        .iter()
        .map(|(addr, port)| {
            Command::new("ssh")
                .args([
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "StrictHostKeyChecking=yes",
                    "-o",
                ])
                .arg(format!(
                    "UserKnownHostsFile={}",
                    reach.known_hosts.display()
                ))
                .arg("-i")
                .arg(&reach.fleet.client_key)
                .args(["-p", &port.to_string(), &format!("{USER}@{addr}"), "true"])
                .stdin(Stdio::null())
                .spawn()
                .expect("start ssh")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait for ssh").success(), "ssh failed");
    }
    started.elapsed()
}

/// Runs `wisp HEAD TARGETS --forks N (credentials) TAIL` on every host at once; its output.
pub(crate) fn wisp_command(
    reach: &Reach<'_>,
    wisp: &std::ffi::OsStr,
    head: &[&std::ffi::OsStr],
    tail: &[&str],
) -> Command {
    let mut c = Command::new(wisp);
    c.args(head)
        .args([
            &reach.targets(),
            "--forks",
            &reach.hosts.len().to_string(),
            "--user",
            USER,
            "--key",
        ])
        .arg(&reach.fleet.client_key)
        .arg("--known-hosts")
        .arg(&reach.known_hosts)
        .args(tail)
        .env_remove("SSH_AUTH_SOCK");
    c
}

/// Times `wisp HEAD TARGETS ... TAIL` on every host at once; panics unless it succeeded.
fn wisp_timed(
    reach: &Reach<'_>,
    wisp: &std::ffi::OsStr,
    head: &[&std::ffi::OsStr],
    tail: &[&str],
) -> Duration {
    let started = Instant::now();
    let out = wisp_command(reach, wisp, head, tail)
        .output()
        .expect("run wisp");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "wisp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn wisp_all(reach: &Reach<'_>, wisp: &std::ffi::OsStr) -> Duration {
    wisp_timed(reach, wisp, &["run".as_ref()], &["--", "true"])
}

fn wisp_all_unrecorded(reach: &Reach<'_>, wisp: &std::ffi::OsStr) -> Duration {
    wisp_timed(
        reach,
        wisp,
        &["run".as_ref()],
        &["--no-state", "--", "true"],
    )
}

fn wisp_apply(reach: &Reach<'_>, wisp: &std::ffi::OsStr, plan: &std::path::Path) -> Duration {
    wisp_timed(reach, wisp, &["apply".as_ref(), plan.as_os_str()], &[])
}

/// The 21-op plan: one `dir.ensure`, ten `file.write`, ten `exec true`, per host under the
/// fleet's directory.
fn write_plan(fleet: &Fleet) -> std::path::PathBuf {
    let mut plan = format!(
        "[vars]\nroot = \"{}\"\n\n[[task]]\nop = \"dir.ensure\"\npath = \"{{{{ root }}}}/{{{{ host.name }}}}\"\nmake_parents = true\n",
        fleet.dir.0.join("plan-out").display()
    );
    for i in 0..10 {
        plan.push_str(&format!(
            "\n[[task]]\nop = \"file.write\"\npath = \"{{{{ root }}}}/{{{{ host.name }}}}/file{i}.conf\"\ncontent = \"setting{i} = {{{{ host.name }}}}\\n\"\nmode = \"0644\"\n"
        ));
    }
    for _ in 0..10 {
        plan.push_str("\n[[task]]\nop = \"exec\"\nargv = [\"true\"]\n");
    }
    // Where the unprivileged login user writes.
    let out = fleet.dir.0.join("plan-out");
    std::fs::create_dir_all(&out).expect("create the plan's folder");
    let _ = Command::new("chmod").arg("1777").arg(&out).status();
    let path = fleet.dir.0.join("bench-plan.toml");
    std::fs::write(&path, plan).expect("write the plan");
    path
}

/// The runners wisp pushes, found and checked as `wisp run` finds and checks them.
fn own_runners() -> wisp_transports::RunnerBinaries {
    let trust = wisp_runners::Trust::load(&[], false).expect("trusted keys");
    wisp_runners::locate(None, &trust, false)
        .expect("runner")
        .binaries
}

/// The runner wisp pushes to a host of this machine's architecture.
pub(crate) fn own_runner() -> Arc<Vec<u8>> {
    let all = own_runners();
    let runner = all
        .for_arch(std::env::consts::ARCH)
        .expect("a runner for this machine");
    Arc::clone(&runner.bytes)
}

fn warm_session(fleet: &Fleet) -> Vec<Duration> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let options = Arc::new(SshOptions::new(
            vec![fleet.client_key.clone()],
            false,
            fleet.known_hosts.clone(),
            false,
            false,
        ));
        let h = &fleet.hosts[0];
        let transport = SshTransport::new(
            SshTarget {
                alias: h.addr.clone(),
                host: None,
                port: Some(h.port),
                user: Some(USER.into()),
                key: None,
                become_root: None,
                become_method: None,
            },
            options,
        );
        let launch = Launch::new(
            own_runners(),
            Duration::from_secs(60),
            Duration::from_secs(10),
        );
        let mut session = Session::open(&transport, &launch).await.expect("session");
        let mut samples = Vec::new();
        let exec_true = wisp_protocol::ops::Op::Exec(wisp_protocol::ops::ExecArgs {
            argv: Some(vec!["true".into()]),
            ..Default::default()
        });
        for _ in 0..WARM_OPS {
            let t = Instant::now();
            let id = session
                .start(&exec_true, Default::default(), &[])
                .await
                .expect("start");
            loop {
                match session.next_for(&id).await.expect("event") {
                    CmdEvent::Done(..) => break,
                    CmdEvent::Refused(e) => panic!("refused: {e:?}"),
                    CmdEvent::Output(..) => {}
                }
            }
            samples.push(t.elapsed());
        }
        session.close(Duration::from_secs(5)).await;
        samples
    })
}

pub(crate) fn bench(n: usize) {
    let wisp = std::env::var_os("WISP_BIN")
        .expect("WISP_BIN must name a wisp executable (cargo xtask bench sets it)");
    println!("starting {n} sshd hosts on loopback (login user {USER}, shell /bin/sh)...");
    ensure_user();
    let fleet = Fleet::start(n);
    let direct = Reach::direct(&fleet);
    // One untimed round of each warms caches (page cache, sshd's first fork).
    openssh_all(&direct);
    wisp_all(&direct, &wisp);
    crate::floor::all(&direct.hosts, &fleet.client_key);
    let push = crate::floor::Push::runner(own_runner());
    crate::floor::all_with(&direct.hosts, &fleet.client_key, &push);
    let plan = write_plan(&fleet);
    // The first apply creates every file; the timed ones find them converged.
    let first_apply = wisp_apply(&direct, &wisp, &plan);
    let (mut ssh_times, mut wisp_times, mut floor_times) = (Vec::new(), Vec::new(), Vec::new());
    let mut apply_times = Vec::new();
    let mut unrecorded_times = Vec::new();
    // CPU per round: OpenSSH's and wisp's clients are reaped children; the floor runs here.
    let (mut ssh_cpu, mut floor_cpu, mut wisp_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let (mut push_times, mut push_cpu) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let at = Cpu::now();
        ssh_times.push(openssh_all(&direct));
        let spent = at.since();
        ssh_cpu.push((spent.machine, spent.reaped));
        let at = Cpu::now();
        floor_times.push(crate::floor::all(&direct.hosts, &fleet.client_key));
        let spent = at.since();
        floor_cpu.push((spent.machine, spent.own));
        let at = Cpu::now();
        push_times.push(crate::floor::all_with(
            &direct.hosts,
            &fleet.client_key,
            &push,
        ));
        let spent = at.since();
        push_cpu.push((spent.machine, spent.own));
        let at = Cpu::now();
        wisp_times.push(wisp_all(&direct, &wisp));
        let spent = at.since();
        wisp_cpu.push((spent.machine, spent.reaped));
        unrecorded_times.push(wisp_all_unrecorded(&direct, &wisp));
        apply_times.push(wisp_apply(&direct, &wisp, &plan));
    }
    let u = crate::percentile(&mut unrecorded_times, 0.5);
    let a = crate::percentile(&mut apply_times, 0.5);
    let (s, w, f, p) = (
        crate::percentile(&mut ssh_times, 0.5),
        crate::percentile(&mut wisp_times, 0.5),
        crate::percentile(&mut floor_times, 0.5),
        crate::percentile(&mut push_times, 0.5),
    );
    println!("{n} hosts, median of {ROUNDS} rounds:");
    println!(
        "  OpenSSH, ssh host true for every host at once: {s:>10.3?}   (rounds {ssh_times:.3?})"
    );
    println!(
        "  bare russh connect+auth+exec true (the floor): {f:>10.3?}   (rounds {floor_times:.3?})"
    );
    println!(
        "  bare russh pushing the runner (gz, sha256, run): {p:>10.3?}   (rounds {push_times:.3?})"
    );
    println!(
        "  wisp run <all> -- true:                         {w:>10.3?}   (rounds {wisp_times:.3?})"
    );
    println!(
        "  ratio wisp / OpenSSH: {:.2} (target: below 1.0); wisp / bare russh: {:.2} (target: at most 1.1, \
         out of reach for any tool that pushes its runner: pushing alone is {:.2}); \
         wisp / pushing floor: {:.2} (what wisp adds to a push; at most 1.1)",
        w.as_secs_f64() / s.as_secs_f64(),
        w.as_secs_f64() / f.as_secs_f64(),
        p.as_secs_f64() / f.as_secs_f64(),
        w.as_secs_f64() / p.as_secs_f64()
    );
    let median = |v: &[(Duration, Duration)], pick: fn(&(Duration, Duration)) -> Duration| {
        let mut picked: Vec<Duration> = v.iter().map(pick).collect();
        crate::cpu::per_host_ms(crate::percentile(&mut picked, 0.5), n)
    };
    let (sm, fm, pm, wm) = (
        median(&ssh_cpu, |c| c.0),
        median(&floor_cpu, |c| c.0),
        median(&push_cpu, |c| c.0),
        median(&wisp_cpu, |c| c.0),
    );
    let (sc, fc, pc, wc) = (
        median(&ssh_cpu, |c| c.1),
        median(&floor_cpu, |c| c.1),
        median(&push_cpu, |c| c.1),
        median(&wisp_cpu, |c| c.1),
    );
    println!(
        "  CPU per host, whole machine (client, sshd, all the host ran): OpenSSH {sm:.1} ms, bare russh {fm:.1} ms, pushing {pm:.1} ms, wisp {wm:.1} ms"
    );
    println!(
        "  CPU per host, the client alone: OpenSSH {sc:.1} ms, bare russh {fc:.1} ms, pushing {pc:.1} ms, wisp {wc:.1} ms (wisp / bare russh {:.2}); the rest ran on the hosts' side",
        wc / fc.max(0.01)
    );
    println!(
        "  wisp run <all> --no-state -- true:              {u:>10.3?}   (rounds {unrecorded_times:.3?})"
    );
    println!(
        "  the state store's cost: {:+.1}% (target: at most +3%)",
        (w.as_secs_f64() / u.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "  wisp apply, 21 ops (1 dir.ensure, 10 file.write, 10 exec true), converged: {a:>10.3?}   (rounds {apply_times:.3?})"
    );
    println!("  the same plan's first run, creating everything: {first_apply:.3?}");
    println!(
        "  ratio apply / run: {:.2} (target: at most 1.5)",
        a.as_secs_f64() / w.as_secs_f64()
    );
    let mut warm = warm_session(&fleet);
    let p95 = crate::percentile(&mut warm, 0.95);
    crate::report(
        "warm CMD->DONE over SSH, exec true",
        &mut warm,
        Some(crate::WARM_TARGET),
    );
    println!("  p95 {p95:.3?}");
    crate::wan::bench(&fleet, &wisp);
    crate::wan::processes(&fleet, &wisp);
    fleet.assert_clean();
}

/// `--apply-vs N`: the 21-op plan, converged, on N sshd hosts, timed with `WISP_BIN` and with
/// a baseline wisp (`WISP_BASE_BIN`, with `WISP_BASE_ARGS` added to its command line, e.g.
/// the key that signed the runner it is given), alternating round by round.
pub(crate) fn apply_against_base(n: usize) {
    let wisp = std::env::var_os("WISP_BIN").expect("WISP_BIN must name a wisp executable");
    let base =
        std::env::var_os("WISP_BASE_BIN").expect("WISP_BASE_BIN must name the baseline wisp");
    let base_args = std::env::var("WISP_BASE_ARGS").unwrap_or_default();
    let base_tail: Vec<&str> = base_args.split_whitespace().collect();
    println!("starting {n} sshd hosts on loopback (login user {USER}, shell /bin/sh)...");
    ensure_user();
    let fleet = Fleet::start(n);
    let direct = Reach::direct(&fleet);
    let plan = write_plan(&fleet);
    let apply = |bin: &std::ffi::OsStr, tail: &[&str]| {
        wisp_timed(&direct, bin, &["apply".as_ref(), plan.as_os_str()], tail)
    };
    // The first applies create every file; the timed ones find them converged.
    apply(&wisp, &[]);
    apply(&base, &base_tail);
    let (mut new, mut old) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        new.push(apply(&wisp, &[]));
        old.push(apply(&base, &base_tail));
    }
    let (a, b) = (
        crate::percentile(&mut new, 0.5),
        crate::percentile(&mut old, 0.5),
    );
    println!(
        "wisp apply, 21 ops, converged, {n} hosts: this build {a:>10.3?} (rounds {new:.3?})\n\
         \x20 baseline {b:>10.3?} (rounds {old:.3?}); this build / baseline {:.3}x",
        a.as_secs_f64() / b.as_secs_f64()
    );
}
