//! The attack suite: each test plays someone who wants more than wisp gives them — a command
//! that wants out of its sandbox, another user on the host, a hostile host or peer, a reader of
//! logs — against the real binaries, and checks that the attack was refused and that wisp said
//! so. SECURITY.md names the promise each test keeps.
//!
//! The sandbox attacks run as root on localhost (the strongest attacker a sandbox faces) through
//! `sandbox-probe`, which prints the errno of the one step the sandbox must refuse (0 when the
//! attack went through).

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output, Stdio};

use wisp_tests::{ScratchDir, root_or_explain};

const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-probe");

/// `wisp run localhost FLAGS -- ARGV` in `tmp`, shown on failure.
fn run_local(tmp: &ScratchDir, flags: &[&str], argv: &[&str]) -> Output {
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["run", "localhost"])
        .args(flags)
        .arg("--")
        .args(argv)
        .env("TMPDIR", &tmp.0)
        .stdin(Stdio::null());
    wisp_tests::wisp::run(&mut c, &tmp.0)
}

/// The errno a probe printed, from wisp's output line `localhost | <what> <errno>`.
fn probe_errno(out: &Output, what: &str) -> i32 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once(&format!("{what} ")).map(|(_, e)| e.trim()))
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("no answer from probe {what} in {stdout:?}"))
}

/// A DONE the runner never sent: the command c1 "succeeded" and printed FORGED.
fn forged_frames() -> Vec<u8> {
    let mut out = Vec::new();
    let event = br#"{"t":"event","id":"c1","kind":"stdout"}"#;
    wisp_protocol::frame::encode(event, b"FORGED\n", &mut out).unwrap();
    let done = br#"{"t":"done","id":"c1","status":"ok","changed":true,"duration_ms":1,"exit_code":0,"enforcement":{"complete":true,"kill":"cgroup","mode":"require","no_new_privs":true,"rlimits":{"core":0}}}"#;
    wisp_protocol::frame::encode(done, b"", &mut out).unwrap();
    out
}

/// Case: a sandboxed command writes frames into the runner's stdout (through /proc/PID/fd/1,
/// or a descriptor taken with pidfd_getfd) to report a success it did not have. In every
/// sandbox mode the runner is out of the command's reach: the forged line is never shown, and
/// the command's real exit (9) is what wisp reports.
#[test]
fn a_sandboxed_command_cannot_forge_the_runners_frames() {
    if !root_or_explain("the forging attack (a root command is the strongest attacker)") {
        return;
    }
    let tmp = ScratchDir::new("attack-forge");
    let frames = tmp.0.join("frames.bin");
    std::fs::write(&frames, forged_frames()).unwrap();
    let frames = frames.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--seccomp", "strict", "--memory", "64M"], "forge-proc"),
        (&["--seccomp", "default"], "forge-pidfd"),
        (&["--seccomp", "default"], "forge-proc"),
        (&["--memory", "64M"], "forge-proc"),
        (&["--memory", "64M"], "forge-pidfd"),
        (&["--nofile", "256"], "forge-proc"),
    ];
    for (flags, how) in cases {
        let script = format!("{PROBE} {how} {frames} $PPID; exit 9");
        let out = run_local(&tmp, flags, &["sh", "-c", &script]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stdout.contains("FORGED") && !stderr.contains("FORGED"),
            "{flags:?} {how}: the forged frame was taken as the runner's:\n{stdout}{stderr}"
        );
        assert_eq!(out.status.code(), Some(2), "{flags:?} {how}: {stderr}");
        assert!(stderr.contains("exit 9"), "{flags:?} {how}: {stderr}");
        assert_ne!(probe_errno(&out, how), 0, "{flags:?} {how}");
    }
}

/// A pseudo-terminal pair: the master, and the slave's path.
fn open_pty() -> (std::fs::File, String) {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt, grantpt, unlockpt and ptsname take the descriptor just returned;
    // ptsname's static buffer is copied before anything else can call it.
    #[allow(unsafe_code)]
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(fd))
            .to_string_lossy()
            .into_owned();
        (std::fs::File::from_raw_fd(fd), name)
    }
}

/// Case: keystroke injection into the operator's terminal. wisp runs on a terminal that is
/// its controlling terminal; the command tries TIOCSTI on /dev/tty and on the terminal's own
/// path. No command has a controlling terminal, and the default profile refuses TIOCSTI
/// wherever it is aimed.
#[test]
fn a_command_cannot_type_into_the_operators_terminal() {
    if !root_or_explain("the terminal attack (root may inject into any terminal)") {
        return;
    }
    let tmp = ScratchDir::new("attack-tty");
    let (master, slave) = open_pty();
    let script = format!("{PROBE} tiocsti /dev/tty; {PROBE} tiocsti {slave}");
    let cases: &[&[&str]] = &[&[], &["--seccomp", "default"], &["--seccomp", "strict"]];
    for flags in cases {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&slave)
            .unwrap();
        let mut c = wisp_tests::wisp_command!(&tmp.0);
        c.args(["run", "localhost"])
            .args(*flags)
            .args(["--", "sh", "-c", &script])
            .env("TMPDIR", &tmp.0)
            .stdin(tty);
        // SAFETY: setsid and TIOCSCTTY on stdin, between fork and exec; both async-signal-safe.
        #[allow(unsafe_code)]
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = wisp_tests::wisp::run(&mut c, &tmp.0);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let answers: Vec<i32> = stdout
            .lines()
            .filter_map(|l| l.split_once("tiocsti ").map(|(_, e)| e.trim()))
            .filter_map(|e| e.parse().ok())
            .collect();
        assert_eq!(answers.len(), 2, "{flags:?}: {stdout}");
        assert_ne!(
            answers[0], 0,
            "{flags:?}: /dev/tty reached the operator's terminal"
        );
        if !flags.is_empty() {
            assert_ne!(answers[1], 0, "{flags:?}: TIOCSTI went through on {slave}");
        }
    }
    drop(master);
}

/// Case: a root command under a sandbox tries what would take it out: a device node in its
/// `--rw` directory, the runner's memory, signals to unrelated processes, the hostname, and
/// io_uring (whose operations no seccomp filter sees).
#[test]
fn a_root_command_cannot_break_out_of_its_sandbox() {
    if !root_or_explain("the escape attacks (a root command is the strongest attacker)") {
        return;
    }
    let tmp = ScratchDir::new("attack-escape");
    let rw = tmp.0.join("rw");
    std::fs::create_dir(&rw).unwrap();
    let rw_flags = ["--rw", rw.to_str().unwrap(), "--exec", probe_dir()];
    let node = rw.join("kmsg");
    let out = run_local(&tmp, &rw_flags, &[PROBE, "mknod", node.to_str().unwrap()]);
    assert_ne!(probe_errno(&out, "mknod"), 0, "a device node was made");
    assert!(!node.exists());

    let mut victim = Command::new("sleep").arg("60").spawn().unwrap();
    let victim_pid = victim.id().to_string();
    let sandboxes: &[&[&str]] = &[&["--seccomp", "default"], &["--memory", "64M"], &rw_flags];
    for flags in sandboxes {
        let out = run_local(&tmp, flags, &[PROBE, "proc-mem"]);
        assert_ne!(
            probe_errno(&out, "proc-mem"),
            0,
            "{flags:?}: runner memory opened"
        );
    }
    for flags in [&["--seccomp", "default"][..], &rw_flags] {
        let out = run_local(&tmp, flags, &[PROBE, "kill", &victim_pid]);
        assert_ne!(
            probe_errno(&out, "kill"),
            0,
            "{flags:?}: killed an unrelated process"
        );
        assert!(
            victim.try_wait().unwrap().is_none(),
            "{flags:?}: the victim died"
        );
    }
    for what in ["sethostname", "io-uring"] {
        let out = run_local(&tmp, &["--seccomp", "default"], &[PROBE, what]);
        assert_ne!(
            probe_errno(&out, what),
            0,
            "{what} went through under default"
        );
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
}

/// The enforcement report is only what the command cannot lift: every limit the recap calls
/// enforced is tried from inside the command — leaving its cgroup for the parent group,
/// raising its rlimits past their hard values — and each try is refused, with the recap
/// still saying "fully enforced".
#[test]
fn no_reported_limit_can_be_lifted_from_inside() {
    if !root_or_explain("lifting limits (a root command is the strongest attacker)") {
        return;
    }
    let tmp = ScratchDir::new("attack-lift");
    let flags = [
        "--memory", "64M", "--pids", "64", "--nofile", "256", "--fsize", "1M",
    ];
    let script = format!(
        "{PROBE} cgroup-escape; {PROBE} raise-nofile; {PROBE} raise-fsize; {PROBE} raise-core"
    );
    let out = run_local(&tmp, &flags, &["sh", "-c", &script]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(probe_errno(&out, "cgroup-escape"), 0, "left its cgroup");
    assert_ne!(probe_errno(&out, "raise-nofile"), 0, "raised RLIMIT_NOFILE");
    assert_ne!(probe_errno(&out, "raise-fsize"), 0, "raised RLIMIT_FSIZE");
    assert_ne!(
        probe_errno(&out, "raise-core"),
        0,
        "raised RLIMIT_CORE from 0"
    );
    assert!(stderr.contains("sandbox fully enforced"), "{stderr}");
    assert!(stderr.contains("memory 64M, pids 64"), "{stderr}");
    // The reason the rlimits hold for root: no CAP_SYS_RESOURCE, in any set, after exec.
    let out = run_local(&tmp, &flags, &["grep", "^Cap", "/proc/self/status"]);
    let caps = String::from_utf8_lossy(&out.stdout);
    for set in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        let hex = caps
            .lines()
            .find_map(|l| l.split_once(&format!("{set}:")).map(|(_, v)| v.trim()))
            .unwrap_or_else(|| panic!("no {set} in {caps}"));
        let bits = u64::from_str_radix(hex, 16).unwrap();
        assert_eq!(bits & (1 << 24), 0, "{set} holds CAP_SYS_RESOURCE: {caps}");
    }
}

fn probe_dir() -> &'static str {
    Path::new(PROBE).parent().unwrap().to_str().unwrap()
}

/// `wisp run TARGET -- true` as root against `fleet` with `known_hosts` and `extra` flags.
fn run_ssh(
    fleet: &wisp_tests::sshd::Fleet,
    known_hosts: &Path,
    extra: &[&str],
) -> (Output, String) {
    run_ssh_to(
        fleet,
        &fleet.hosts[0].target(),
        known_hosts,
        Path::new("/dev/null"),
        extra,
    )
}

/// `wisp run TARGET -- true` as root with `known_hosts`, `ssh_config` and `extra` flags.
fn run_ssh_to(
    fleet: &wisp_tests::sshd::Fleet,
    target: &str,
    known_hosts: &Path,
    ssh_config: &Path,
    extra: &[&str],
) -> (Output, String) {
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args(["run", target, "--known-hosts"])
        .arg(known_hosts)
        .args(["--connect-timeout", "30s", "--ssh-config"])
        .arg(ssh_config)
        .args(["--user", "root", "--key"])
        .arg(&fleet.client_key)
        .args(extra)
        .args(["--", "true"]);
    let out = wisp_tests::wisp::run(&mut c, &fleet.dir.0);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

/// `SHA256:...` of a public key file, as ssh-keygen prints it.
fn fingerprint_of(public: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

/// Case: a host presents a key of another type than the one recorded for it (an attacker
/// with a fresh key of a type the operator never recorded). As OpenSSH: refused, even with
/// --accept-new, naming the offered fingerprint, without advising --accept-new, and
/// known_hosts is left as it was. A host that has the recorded type among its keys is asked
/// for that one and connects. An `@cert-authority` line is not a host key.
#[test]
fn a_host_key_of_another_type_is_refused_as_changed() {
    let mut fleet = wisp_tests::sshd::Fleet::start(1);
    let name = format!("[{}]:{}", fleet.hosts[0].addr, fleet.hosts[0].port);
    let ecdsa = fleet.dir.0.join("host0_ecdsa");
    let ecdsa_pub = wisp_tests::sshd::keygen_of_type(&ecdsa, "other", "ecdsa");
    let ed25519 = fleet.dir.0.join("host0_ed25519");

    // Recorded: ECDSA. Offered: Ed25519 only.
    let recorded = fleet.dir.0.join("known_ecdsa");
    std::fs::write(&recorded, format!("{name} {ecdsa_pub}\n")).unwrap();
    // Recorded: Ed25519 (the fleet's file). Offered after the restart below: ECDSA only.
    let recorded_ed = fleet.known_hosts.clone();
    let cases = [
        (recorded.clone(), ed25519.with_extension("pub")),
        (recorded_ed.clone(), ecdsa.with_extension("pub")),
    ];
    for (i, (known, offered)) in cases.iter().enumerate() {
        if i == 1 {
            fleet.restart_with(0, &format!("HostKey {}", ecdsa.display()));
        }
        let before = std::fs::read_to_string(known).unwrap();
        for extra in [&[][..], &["--accept-new"][..]] {
            let (out, stderr) = run_ssh(&fleet, known, extra);
            assert_eq!(out.status.code(), Some(3), "case {i} {extra:?}: {stderr}");
            assert!(
                stderr.contains(&fingerprint_of(offered)),
                "case {i} {extra:?}: the offered fingerprint is not named: {stderr}"
            );
            assert!(
                stderr.contains("HAS CHANGED") && !stderr.contains("run once with --accept-new"),
                "case {i} {extra:?}: {stderr}"
            );
            assert_eq!(std::fs::read_to_string(known).unwrap(), before, "case {i}");
        }
    }

    // Both keys offered, only ECDSA recorded: wisp asks for ECDSA first, as OpenSSH does.
    fleet.restart_with(
        0,
        &format!("HostKey {}\nHostKey {}", ed25519.display(), ecdsa.display()),
    );
    let (out, stderr) = run_ssh(&fleet, &recorded, &[]);
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    // A CA line holding the host's own key vouches for certificates, not for the key.
    let ca = fleet.dir.0.join("known_ca");
    let ed_pub = std::fs::read_to_string(ed25519.with_extension("pub")).unwrap();
    std::fs::write(&ca, format!("@cert-authority {name} {ed_pub}")).unwrap();
    fleet.restart_with(0, &format!("HostKey {}", ed25519.display()));
    let (out, stderr) = run_ssh(&fleet, &ca, &[]);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("is not in"), "{stderr}");
}

/// Case: ProxyJump with IPv6 literals, `[::1]:PORT` and a bare `::1` (port 22), reaches the
/// target through the jump; the jump's own failure names it the same way.
#[test]
fn proxy_jump_takes_ipv6_literals() {
    if !root_or_explain("an sshd on [::1]:22") {
        return;
    }
    let mut fleet = wisp_tests::sshd::Fleet::start(2);
    let port = 20_000 + u16::try_from(std::process::id() % 20_000).unwrap();
    fleet.hosts[0].addr = "::1".into();
    fleet.hosts[0].port = port;
    fleet.restart_with(
        0,
        &format!("ListenAddress [::1]:{port}\nListenAddress [::1]:22"),
    );
    let key = fleet.hosts[0].host_key.clone();
    let mut known = std::fs::read_to_string(&fleet.known_hosts).unwrap();
    known.push_str(&format!("[::1]:{port} {key}\n::1 {key}\n"));
    std::fs::write(&fleet.known_hosts, known).unwrap();
    let inner = &fleet.hosts[1];
    for jump in [
        format!("[::1]:{port}"),
        "root@[::1]".into(),
        "root@::1".into(),
    ] {
        let config = fleet.dir.0.join("ssh_config");
        std::fs::write(
            &config,
            format!(
                "Host inner\n  HostName {}\n  Port {}\n  User root\n  ProxyJump {jump}\n",
                inner.addr, inner.port
            ),
        )
        .unwrap();
        let (out, stderr) = run_ssh_to(&fleet, "inner", &fleet.known_hosts, &config, &[]);
        assert_eq!(out.status.code(), Some(0), "ProxyJump {jump}: {stderr}");
    }
    fleet.hosts[0].stop();
    let config = fleet.dir.0.join("ssh_config");
    let (out, stderr) = run_ssh_to(&fleet, "inner", &fleet.known_hosts, &config, &[]);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("::1"), "the jump is not named: {stderr}");
}

/// `wisp run -i INVENTORY all -- true` in `tmp` with at most 2 GiB of address space, so a
/// parser that blows up fails here instead of taking the machine.
fn run_with_inventory(tmp: &ScratchDir, inventory: &Path) -> (Output, String) {
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["run", "-i"])
        .arg(inventory)
        .args(["all", "--", "true"]);
    // SAFETY: setrlimit between fork and exec, with a live local.
    #[allow(unsafe_code)]
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            let lim = libc::rlimit {
                rlim_cur: 2 << 30,
                rlim_max: 2 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = wisp_tests::wisp::run(&mut c, &tmp.0);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

/// Case: an inventory built to exhaust the controller — a YAML alias bomb (nine levels of nine
/// aliases: 387 million nodes from 1 KiB) and a file far larger than any inventory — is
/// refused with exit 4 and a message naming the file, before it costs memory.
#[test]
fn a_hostile_inventory_is_refused_before_it_costs_memory() {
    let tmp = ScratchDir::new("attack-inventory");
    let mut bomb = String::from(
        "x: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let aliases = vec![format!("*{}", pair[0]); 9].join(",");
        bomb.push_str(&format!("{}: &{} [{aliases}]\n", pair[1], pair[1]));
    }
    bomb.push_str("all:\n  hosts:\n    web01:\n");
    let path = tmp.0.join("bomb.yml");
    std::fs::write(&path, bomb).unwrap();
    let (out, stderr) = run_with_inventory(&tmp, &path);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("bomb.yml") && stderr.contains("alias"),
        "{stderr}"
    );

    let huge = tmp.0.join("huge.ini");
    let f = std::fs::File::create(&huge).unwrap();
    f.set_len(1 << 30).unwrap();
    let (out, stderr) = run_with_inventory(&tmp, &huge);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("huge.ini") && stderr.contains("larger"),
        "{stderr}"
    );
}

/// `wisp run localhost FLAGS -- ARGV` through `broken-runner` (the real runner behind it),
/// which turns at the first frame holding `trigger` in the way `mode` (one of its
/// `BROKEN_RUNNER_*` variables) says.
fn broken_run(
    tmp: &ScratchDir,
    flags: &[&str],
    argv: &[&str],
    trigger: &str,
    mode: (&str, &str),
) -> Command {
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["run", "localhost", "--insecure-unsigned-runner"])
        .args(flags)
        .arg("--")
        .args(argv)
        .env("WISP_RUNNER", env!("CARGO_BIN_EXE_broken-runner"))
        .env("TMPDIR", &tmp.0);
    // The local runner gets a login's environment only: the broken runner reads its
    // settings from the isolated HOME.
    let settings = format!(
        "BROKEN_RUNNER_REAL={}\nBROKEN_RUNNER_FROM={trigger}\nBROKEN_RUNNER_TO={trigger}\n{}={}\n",
        wisp_tests::runner_path().display(),
        mode.0,
        mode.1
    );
    std::fs::write(
        wisp_tests::wisp::env_dir(&tmp.0).join("home/broken-runner.env"),
        settings,
    )
    .expect("write the broken runner's settings");
    c
}

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

/// A directory like /tmp (world-writable, sticky) in `tmp`, and a root-owned victim file
/// outside it; `plant` puts a symbolic link owned by `nobody` at NAME in the directory,
/// pointing at the victim.
struct SharedDir {
    dir: std::path::PathBuf,
    victim: std::path::PathBuf,
}

impl SharedDir {
    fn new(tmp: &ScratchDir) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tmp.0.join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let victim = tmp.0.join("victim-owned-by-root");
        std::fs::write(&victim, "root's own\n").unwrap();
        Self { dir, victim }
    }

    fn plant(&self, name: &str) {
        let link = self.dir.join(name);
        std::os::unix::fs::symlink(&self.victim, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    }

    fn victim_untouched(&self) -> bool {
        std::fs::read(&self.victim).unwrap() == b"root's own\n"
    }
}

/// Case: files wisp writes on the operator's machine in a directory another user can write
/// — the secrets file's replacement, `--output-dir`'s host files — never follow a link that
/// user planted; the write is refused or lands beside it, and the victim is unchanged.
#[test]
fn operator_side_files_do_not_follow_planted_links() {
    if !root_or_explain("links planted by another user") {
        return;
    }
    let tmp = ScratchDir::new("attack-links");
    let shared = SharedDir::new(&tmp);
    let wisp = |args: &[&str], stdin: &str| {
        let mut c = wisp_tests::wisp_command!(&tmp.0);
        c.args(args)
            .current_dir(&shared.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        wisp_tests::wisp::show(&c, &out, &tmp.0);
        out
    };
    let key = wisp(&["secrets", "keygen", "--out", "op.key"], "");
    let recipient = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    let init = wisp(&["secrets", "init", "s.age", "--recipient", &recipient], "");
    assert_eq!(init.status.code(), Some(0));
    // Every name the old code could have used for its replacement.
    shared.plant("s.age.tmp");
    shared.plant("s.tmp");
    let set = wisp(
        &["secrets", "set", "s.age", "db_pass", "--identity", "op.key"],
        "v\n",
    );
    assert!(
        shared.victim_untouched(),
        "secrets set wrote through a planted link"
    );
    assert_eq!(
        set.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );

    shared.plant("localhost.stdout");
    let out_dir = shared.dir.to_str().unwrap();
    let run = wisp(
        &[
            "run",
            "localhost",
            "--output-dir",
            out_dir,
            "--",
            "echo",
            "x",
        ],
        "",
    );
    assert!(
        shared.victim_untouched(),
        "--output-dir wrote through a planted link"
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("localhost.stdout") && stderr.contains("symbolic link"),
        "{stderr}"
    );
}

/// Case: `--output-dir` on a full disk. The output that could not be saved fails the host
/// with the file and the reason; nothing is reported ok while its output is lost.
#[test]
fn output_lost_to_a_full_disk_fails_the_host() {
    if !root_or_explain("mounting a small tmpfs") {
        return;
    }
    let tmp = ScratchDir::new("attack-full");
    let small = tmp.0.join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a 64 KiB tmpfs");
    let out = run_local(
        &tmp,
        &["--output-dir", small.to_str().unwrap()],
        &["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x"],
    );
    let _ = Command::new("umount").arg(&small).status();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("localhost.stdout") && stderr.contains("No space left on device"),
        "{stderr}"
    );
}

/// `wisp ARGS` in `dir` with `stdin`, shown on failure.
fn wisp_in(tmp: &ScratchDir, dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(args)
        .current_dir(dir)
        .env("TMPDIR", &tmp.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    wisp_tests::wisp::show(&c, &out, &tmp.0);
    out
}

/// Case: secrets in every shape output takes — a multi-line key with its trailing newline
/// printed whole, a token written in two halves half a second apart, a token straddling the
/// 64 KiB line cut, both inside `--json` escapes and a `--diff` — never show on any sink:
/// live output, `--json`, `--diff`, the journal, the store. `secrets set` keeps the key
/// exactly as given (its final newline included).
#[test]
fn secrets_are_hidden_across_lines_chunks_and_cuts() {
    let tmp = ScratchDir::new("attack-redact");
    let dir = tmp.0.clone();
    let pid = std::process::id();
    let body: Vec<String> = (0..3)
        .map(|i| format!("MIIEv{i}QIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC{pid}x{i}"))
        .collect();
    let key = format!(
        "-----BEGIN TEST KEY-----\n{}\n-----END TEST KEY-----\n",
        body.join("\n")
    );
    let token = format!("tok{pid}zq9secret");
    let id = wisp_in(&tmp, &dir, &["secrets", "keygen", "--out", "op.key"], "");
    let recipient = String::from_utf8_lossy(&id.stdout).trim().to_owned();
    let init = wisp_in(
        &tmp,
        &dir,
        &["secrets", "init", "s.age", "--recipient", &recipient],
        "",
    );
    assert_eq!(init.status.code(), Some(0));
    for (name, value) in [("key", key.as_str()), ("tok", &format!("{token}\n"))] {
        let set = wisp_in(
            &tmp,
            &dir,
            &["secrets", "set", "s.age", name, "--identity", "op.key"],
            value,
        );
        assert_eq!(set.status.code(), Some(0));
    }
    let d = dir.display();
    let plan = format!(
        r#"secrets = "s.age"

[[task]]
name = "prints the key"
op = "exec"
shell = 'printf "%s" "$KEY"'
env = {{ KEY = "{{{{ secret.key }}}}" }}

[[task]]
name = "writes the token in halves"
op = "exec"
shell = 'printf "%s" "$(printf %s "$TOK" | cut -c1-7)"; sleep 0.5; printf "%s\n" "$(printf %s "$TOK" | cut -c8-)"'
env = {{ TOK = "{{{{ secret.tok }}}}" }}

[[task]]
name = "straddles the line cut"
op = "exec"
shell = 'head -c 65530 /dev/zero | tr "\0" a; printf "%s\n" "$TOK"'
env = {{ TOK = "{{{{ secret.tok }}}}" }}

[[task]]
name = "writes the key"
op = "file.write"
path = "{d}/key.pem"
content = "{{{{ secret.key }}}}"
mode = "0600"
"#
    );
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", "plan.toml", "localhost", "--identity", "op.key"];
        args.extend_from_slice(extra);
        wisp_in(&tmp, &dir, &args, "")
    };
    let human = apply(&["--diff"]);
    assert_eq!(human.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(dir.join("key.pem")).unwrap(), key);
    std::fs::remove_file(dir.join("key.pem")).unwrap();
    let json = apply(&["--json", "--diff"]);
    assert_eq!(json.status.code(), Some(0));
    let shown = wisp_in(&tmp, &dir, &["show", "last", "--json"], "");
    let mut sinks = vec![
        ("stdout", human.stdout),
        ("stderr", human.stderr),
        ("--json stdout", json.stdout),
        ("--json stderr", json.stderr),
        ("wisp show", shown.stdout),
    ];
    let env = wisp_tests::wisp::env_dir(&tmp.0);
    for e in std::fs::read_dir(env.join("journal")).unwrap() {
        sinks.push(("the journal", std::fs::read(e.unwrap().path()).unwrap()));
    }
    for suffix in ["", "-wal"] {
        if let Ok(bytes) = std::fs::read(env.join(format!("state/wisp/wisp.db{suffix}"))) {
            sinks.push(("the store", bytes));
        }
    }
    let needles: Vec<&str> = body
        .iter()
        .map(String::as_str)
        .chain([token.as_str()])
        .collect();
    for (sink, bytes) in &sinks {
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} shows in {sink}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    let stdout = String::from_utf8_lossy(&sinks[0].1);
    assert!(
        stdout.contains("[secret:key]") && stdout.contains("[secret:tok]"),
        "{stdout}"
    );
}

/// `wisp apply PLAN localhost` (as root) with the plan's text, in `tmp`.
fn apply_local(tmp: &ScratchDir, name: &str, plan: &str) -> (Output, String) {
    let path = tmp.0.join(name);
    std::fs::write(&path, plan).unwrap();
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.arg("apply")
        .arg(&path)
        .arg("localhost")
        .env("TMPDIR", &tmp.0)
        .stdin(Stdio::null());
    let out = wisp_tests::wisp::run(&mut c, &tmp.0);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Case: another user plants links where root's file ops act — at the target, at a parent
/// directory, and swapped in between the check and the change — for `file.write` (content
/// and mode only), `dir.ensure`, `file.absent` and backups. Nothing outside the intended path
/// is written, chmod-ed, created or removed; a link owned by root on the way is followed; a
/// backup name taken in advance neither blocks the write nor loses the taker's file.
#[test]
fn file_ops_do_not_follow_links_another_user_planted() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_explain("links planted by another user") {
        return;
    }
    let tmp = ScratchDir::new("attack-fileops");
    let shared = SharedDir::new(&tmp);
    std::fs::set_permissions(&shared.victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let victim_dir = tmp.0.join("victim-dir");
    std::fs::create_dir(&victim_dir).unwrap();
    std::fs::write(victim_dir.join("keep"), "keep\n").unwrap();
    let s = shared.dir.display().to_string();

    // At the target, content and mode only.
    shared.plant("app.conf");
    for (content, what) in [("x\\n", "content"), ("root's own\\n", "mode only")] {
        let plan = format!(
            "[[task]]\nop = \"file.write\"\npath = \"{s}/app.conf\"\ncontent = \"{content}\"\nmode = \"0644\"\n"
        );
        let (out, text) = apply_local(&tmp, "target.toml", &plan);
        assert_eq!(out.status.code(), Some(2), "{what}: {text}");
        assert!(text.contains("symlink"), "{what}: {text}");
        assert!(
            shared.victim_untouched() && mode_of(&shared.victim) == 0o600,
            "{what}"
        );
    }

    // At a parent: write, mkdir and remove through it are refused, naming the link.
    let link = shared.dir.join("dir");
    std::os::unix::fs::symlink(&victim_dir, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let tasks = [
        format!("op = \"file.write\"\npath = \"{s}/dir/new.conf\"\ncontent = \"x\""),
        format!("op = \"dir.ensure\"\npath = \"{s}/dir/sub\""),
        format!("op = \"file.absent\"\npath = \"{s}/dir/keep\""),
    ];
    for task in &tasks {
        let (out, text) = apply_local(&tmp, "parent.toml", &format!("[[task]]\n{task}\n"));
        assert_eq!(out.status.code(), Some(2), "{task}: {text}");
        assert!(text.contains("owned by uid 65534"), "{task}: {text}");
    }
    let left: Vec<_> = std::fs::read_dir(&victim_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["keep"], "the victim directory changed");

    // A root-owned link on the way is followed.
    let real = tmp.0.join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, shared.dir.join("rootlink")).unwrap();
    let plan =
        format!("[[task]]\nop = \"file.write\"\npath = \"{s}/rootlink/f\"\ncontent = \"ok\"\n");
    let (out, text) = apply_local(&tmp, "rootlink.toml", &plan);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(std::fs::read_to_string(real.join("f")).unwrap(), "ok");

    // Backups: the names the next seconds would give are taken by another user first.
    let own = shared.dir.join("own.conf");
    std::fs::write(&own, "v1\n").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for secs in now..now + 30 {
        let taken = shared.dir.join(format!("own.conf.{secs}.bak"));
        std::fs::write(&taken, "theirs\n").unwrap();
        std::os::unix::fs::lchown(&taken, Some(65534), Some(65534)).unwrap();
    }
    let plan = format!(
        "[[task]]\nop = \"file.write\"\npath = \"{s}/own.conf\"\ncontent = \"v2\\n\"\nbackup = true\n"
    );
    let (out, text) = apply_local(&tmp, "backup.toml", &plan);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(std::fs::read_to_string(&own).unwrap(), "v2\n");
    let names: Vec<String> = std::fs::read_dir(&shared.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let theirs = names
        .iter()
        .filter(|n| n.starts_with("own.conf.") && n.ends_with(".bak"))
        .count();
    assert_eq!(theirs, 31, "30 taken names and one backup: {names:?}");
    let backups: Vec<_> = names
        .iter()
        .filter(|n| std::fs::read_to_string(shared.dir.join(n)).is_ok_and(|c| c == "v1\n"))
        .collect();
    assert_eq!(backups.len(), 1, "{names:?}");
    assert!(
        !names.iter().any(|n| n.ends_with(".tmp")),
        "a temp file was left: {names:?}"
    );
}

/// Case: the swap between the check and the change. While root's plan sets the mode of a
/// file 300 times, another user keeps replacing that file by a link to a root file and back.
/// The root file's mode never changes; each step either acts on the file it checked or is
/// refused. (Bounded: the swapper stops when the plan ends, or after 50 million swaps.)
#[test]
fn a_link_swapped_in_after_the_check_is_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_explain("links planted by another user") {
        return;
    }
    let tmp = ScratchDir::new("attack-swap");
    let shared = SharedDir::new(&tmp);
    std::fs::set_permissions(&shared.victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let target = shared.dir.join("race.conf");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, dir, victim) = (stop.clone(), shared.dir.clone(), shared.victim.clone());
        std::thread::spawn(move || {
            // A regular file and a link to the victim, exchanged in one step each time.
            let target = dir.join("race.conf");
            let other = dir.join("other");
            std::fs::write(&target, "root's own\n").unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::symlink(&victim, &other).unwrap();
            // Held open: its mode goes back to 0600 after every change, through the
            // descriptor (a chmod by name could land on the link and so on the victim).
            let regular = std::fs::File::open(&target).unwrap();
            let (a, b) = (
                std::ffi::CString::new(target.to_str().unwrap()).unwrap(),
                std::ffi::CString::new(other.to_str().unwrap()).unwrap(),
            );
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && swaps < 50_000_000 {
                // SAFETY: two live C strings; RENAME_EXCHANGE swaps the two names.
                #[allow(unsafe_code)]
                unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                let _ = regular.set_permissions(std::fs::Permissions::from_mode(0o600));
                swaps += 1;
            }
            swaps
        })
    };
    let task = format!(
        "[[task]]\nop = \"file.write\"\npath = \"{}\"\ncontent = \"root's own\\n\"\nmode = \"0644\"\nignore_errors = true\n",
        target.display()
    );
    let (out, text) = apply_local(&tmp, "race.toml", &task.repeat(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 0, "the swapper never ran");
    assert!(out.status.code().is_some(), "{text}");
    assert_eq!(
        mode_of(&shared.victim),
        0o600,
        "the victim's mode changed: {text}"
    );
    assert!(shared.victim_untouched());
}

/// Case: host output on the operator's terminal. A command prints an OSC 52 clipboard write,
/// a bell, and `ESC[2K\r` followed by a fake line; on a terminal each control character is
/// shown as `\xNN`, never passed through.
#[test]
fn host_output_cannot_drive_the_operators_terminal() {
    let tmp = ScratchDir::new("attack-escapes");
    let (mut master, slave) = open_pty();
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave)
        .unwrap();
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["run", "localhost", "--", "printf"])
        .arg("before\\033]52;c;ZXZpbA==\\007 bell\\007\\033[2K\\rlocalhost  ok  fake\\n")
        .env("TMPDIR", &tmp.0)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(tty)
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(c);
    let status = child.wait().unwrap();
    assert!(status.code().is_some());
    let mut seen = Vec::new();
    // The slave is closed now that wisp has exited: read what is buffered, then EIO.
    let mut buf = [0u8; 4096];
    while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    let line = text
        .lines()
        .find(|l| l.contains("before"))
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(
        !line.contains('\u{1b}') && !line.contains('\u{7}'),
        "{line:?}"
    );
    assert!(
        line.contains("before\\x1b]52;c;ZXZpbA==\\x07 bell\\x07\\x1b[2K\\x0dlocalhost  ok  fake"),
        "{line:?}"
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

/// A login user whom sudo asks for `password`, created (or reset) for the attack tests.
fn sudo_user_with_password(name: &str, password: &str) {
    let exists = |n: &str| {
        Command::new("id")
            .arg(n)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !exists(name) {
        let _ = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", name])
            .status();
    }
    assert!(exists(name), "cannot create the test user {name}");
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        chpasswd.stdin.as_mut().unwrap(),
        format!("{name}:{password}\n").as_bytes(),
    )
    .unwrap();
    drop(chpasswd.stdin.take());
    assert!(chpasswd.wait().unwrap().success(), "chpasswd failed");
    let rule = Path::new("/etc/sudoers.d/wisp-attack-test");
    std::fs::write(rule, format!("{name} ALL=(ALL) ALL\n")).unwrap();
    let _ = Command::new("chmod").arg("0440").arg(rule).status();
}

/// Case: `--ask-become-pass`, and a process of the login user replaces the runner it uploaded
/// after the check and before root starts it (while sudo checks the password). Root runs only
/// the bytes it hashed itself, from a directory of its own: the swapped-in script never runs as
/// root, and the host fails saying the runner changed.
#[test]
fn a_runner_swapped_after_its_check_never_runs_as_root() {
    const USER: &str = "wisp-attacker";
    const PASSWORD: &str = "attack at dawn, 2 horses";
    if !root_or_explain("a login user racing the bootstrap") {
        return;
    }
    sudo_user_with_password(USER, PASSWORD);
    let mut fleet = wisp_tests::sshd::Fleet::start(1);
    fleet.restart_with(0, "PasswordAuthentication yes");
    let t = fleet.remote_tmp.clone();
    let evil = t.join("evil");
    std::fs::write(
        &evil,
        format!(
            "#!/bin/sh\nid -u > {}/pwned-$(id -u)\nexit 0\n",
            t.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::chown(&evil, Some(0), Some(0)).unwrap();
    let _ = Command::new("chmod").arg("0755").arg(&evil).status();
    // The login user's process: whenever sudo runs for them (the bootstrap checks the
    // password after it checked the runner), put the script in place of every uploaded
    // runner. Bounded by a stop file and 60 seconds.
    let swapper = format!(
        r#"end=$(( $(date +%s) + 60 ))
while [ ! -e {t}/stop ] && [ $(date +%s) -lt $end ]; do
  if pgrep -U {USER} -x sudo >/dev/null 2>&1; then
    for f in {t}/wisp-*/wisp-runner; do
      [ -f "$f" ] || continue
      cp {evil} "$f.x" && mv -f "$f.x" "$f" && echo "$f" >> {t}/swapped
    done
  fi
done"#,
        t = t.display(),
        evil = evil.display()
    );
    let mut attacker = Command::new("runuser")
        .args(["-u", USER, "--", "sh", "-c", &swapper])
        .spawn()
        .unwrap();
    let home = fleet.dir.0.join("no-keys-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args([
        "run",
        &format!("{USER}@{}", fleet.hosts[0].target()),
        "--known-hosts",
    ])
    .arg(&fleet.known_hosts)
    .args([
        "--ssh-config",
        "/dev/null",
        "--ask-pass",
        "--ask-become-pass",
    ])
    .args(["--connect-timeout", "20s", "--", "id", "-u"])
    .env("HOME", &home)
    .env("WISP_SSH_PASSWORD", PASSWORD)
    .env("WISP_BECOME_PASSWORD", PASSWORD)
    .stdin(Stdio::null());
    let out = wisp_tests::wisp::run(&mut c, &fleet.dir.0);
    std::fs::write(t.join("stop"), "").unwrap();
    attacker.wait().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        t.join("swapped").exists(),
        "the swapper never caught the window; the test proved nothing: {stderr}"
    );
    assert!(
        !t.join("pwned-0").exists(),
        "the swapped-in script ran as root: {stderr}"
    );
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("changed after it was checked"), "{stderr}");
}

/// Runs `cmd` to its end (at most `limit`, then its process group is killed), returning its
/// output, its peak RSS in KiB (its own and its reaped children's, through `peak-rss`) and
/// whether it had to be killed.
fn run_measured(cmd: &mut Command, limit: std::time::Duration) -> (Output, i64, bool) {
    use std::os::unix::process::CommandExt;
    // Through peak-rss (see there): measured from here, the child would also be billed for
    // this test binary's memory, which other tests running beside it can fill.
    let peak = std::env::temp_dir().join(format!(
        "wisp-peak-rss-{}",
        wisp_transports::stage::random_token()
    ));
    let mut measured = Command::new(env!("CARGO_BIN_EXE_peak-rss"));
    measured
        .arg(&peak)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (name, value) in cmd.get_envs() {
        match value {
            Some(v) => measured.env(name, v),
            None => measured.env_remove(name),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        measured.current_dir(dir);
    }
    measured
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = measured.spawn().unwrap();
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut so, &mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut se, &mut v);
        v
    });
    let ended = wisp_tests::wait_for(limit, || child.try_wait().unwrap());
    let timed_out = ended.is_none();
    if timed_out {
        let group = i32::try_from(child.id()).unwrap();
        // SAFETY: the process group this test started; everything in it is ours to kill.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-group, libc::SIGKILL)
        };
    }
    let status = child.wait().unwrap();
    let rss = std::fs::read_to_string(&peak).map_or(0, |s| s.trim().parse().unwrap_or(0));
    let _ = std::fs::remove_file(&peak);
    let out = Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    };
    assert!(timed_out || rss > 0, "peak-rss reported nothing: {out:?}");
    (out, rss, timed_out)
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

/// `wisp apply` of a `mb` MiB `content_file` to every host of `fleet`: the controller's and
/// the runners' peak RSS (KiB), after checking that every host got the file whole.
#[allow(clippy::print_stdout)] // the figures, for --nocapture; libtest captures them otherwise
fn apply_large_file(fleet: &wisp_tests::sshd::Fleet, mb: usize) -> (i64, u64) {
    let dir = &fleet.dir.0;
    let big = dir.join("big.bin");
    {
        let mut f = std::fs::File::create(&big).unwrap();
        let block: Vec<u8> = (0..1u32 << 20)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        for _ in 0..mb {
            std::io::Write::write_all(&mut f, &block).unwrap();
        }
    }
    let target = fleet.remote_tmp.join("big.copy");
    std::fs::write(
        dir.join("plan.toml"),
        format!(
            "[[task]]\nop = \"file.write\"\npath = \"{}-{{{{ host.name }}}}\"\ncontent_file = \"big.bin\"\n",
            target.display()
        ),
    )
    .unwrap();
    fleet.write_inventory(&dir.join("hosts"));
    let mut c = wisp_tests::wisp_command!(dir);
    c.args(["apply", "plan.toml", "all", "-i", "hosts"])
        .args(fleet.root_options())
        .current_dir(dir);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            // Bounded: the run's own 300 s limit stops it.
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(runners_peak_rss_kib());
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            peak
        })
    };
    let (out, rss_kib, timed_out) = run_measured(&mut c, std::time::Duration::from_secs(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let runner_peak = sampler.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!timed_out, "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for i in 0..fleet.hosts.len() {
        let copy = format!("{}-web{:02}", target.display(), i + 1);
        assert_eq!(
            std::fs::metadata(&copy).unwrap().len(),
            (mb << 20) as u64,
            "{copy}"
        );
        std::fs::remove_file(&copy).unwrap();
    }
    // Shown with --nocapture: the figures behind the bounds the test checks.
    println!(
        "{mb} MiB to {} hosts: controller peak {rss_kib} KiB, runner peak {runner_peak} KiB",
        fleet.hosts.len()
    );
    assert!(runner_peak > 0, "no runner was seen while the run went");
    (rss_kib, runner_peak)
}

/// Case: a 200 MB `content_file` for three hosts. The controller reads it from disk one frame
/// at a time for each host (it used to hold about four copies per host: 2.1 GB for 3 hosts),
/// and each runner writes the parts as they come: both peaks stay flat in the file's size —
/// sending 200 MiB costs the controller less than 32 MiB more than sending 50 MiB — and no
/// runner's peak RSS reaches 64 MiB (sampled from /proc while the run goes). Every host gets the
/// file whole.
#[test]
fn a_large_content_file_is_streamed_with_flat_memory() {
    let fleet = wisp_tests::sshd::Fleet::start(3);
    let (small_ctl, small_runner) = apply_large_file(&fleet, 50);
    let (big_ctl, big_runner) = apply_large_file(&fleet, 200);
    assert!(
        big_ctl - small_ctl < 32 * 1024,
        "controller peak {small_ctl} KiB for 50 MiB, {big_ctl} KiB for 200 MiB: not flat"
    );
    for peak in [small_runner, big_runner] {
        assert!(peak < 64 * 1024, "a runner's peak RSS was {peak} KiB");
    }
}

/// The highest VmHWM (peak RSS, KiB) of any process named `wisp-runner` now.
fn runners_peak_rss_kib() -> u64 {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut peak = 0;
    for p in procs.flatten() {
        let status = std::fs::read_to_string(p.path().join("status")).unwrap_or_default();
        if !status
            .lines()
            .next()
            .is_some_and(|l| l.trim_end().ends_with("wisp-runner"))
        {
            continue;
        }
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        peak = peak.max(hwm);
    }
    peak
}

/// The names in `dir` that a write could have left behind (its temporary files).
fn temp_files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".wisp-") && n.ends_with(".tmp"))
        .collect()
}

/// Fault: the controller is SIGKILLed while a 200 MB `file.write` is on its way to a host.
/// The old file is intact (or, if the rename won the race, the new one is whole), no temporary
/// file is left beside it, and nothing is left in the host's temp directory or running there.
#[test]
fn a_controller_killed_mid_upload_leaves_the_old_file_and_nothing_else() {
    let fleet = wisp_tests::sshd::Fleet::start(1);
    let dir = &fleet.dir.0;
    let dest = dir.join("dest");
    std::fs::create_dir(&dest).unwrap();
    let target = dest.join("app.bin");
    std::fs::write(&target, "old\n").unwrap();
    let mb = 200usize;
    {
        let mut f = std::fs::File::create(dir.join("big.bin")).unwrap();
        let block = vec![b'n'; 1 << 20];
        for _ in 0..mb {
            std::io::Write::write_all(&mut f, &block).unwrap();
        }
    }
    std::fs::write(
        dir.join("plan.toml"),
        format!(
            "[[task]]\nop = \"file.write\"\npath = \"{}\"\ncontent_file = \"big.bin\"\n",
            target.display()
        ),
    )
    .unwrap();
    let mut c = wisp_tests::wisp_command!(dir);
    c.args(["apply", "plan.toml", &fleet.hosts[0].target()])
        .args(fleet.root_options())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    // Kill it once the new content has started to land beside the target.
    let landing = wisp_tests::wait_for(std::time::Duration::from_secs(60), || {
        (!temp_files_in(&dest).is_empty()).then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(landing.is_some(), "the upload never started");
    let left = wisp_tests::wait_for(std::time::Duration::from_secs(20), || {
        temp_files_in(&dest).is_empty().then_some(())
    });
    assert!(
        left.is_some(),
        "temporary files left: {:?}",
        temp_files_in(&dest)
    );
    let now = std::fs::read(&target).unwrap();
    assert!(
        now == b"old\n" || now.len() == mb << 20,
        "the file is neither the old one nor the new one whole ({} bytes)",
        now.len()
    );
    fleet.assert_clean();
}

/// Fault: the target's disk fills during the write. The old file is intact, no temporary
/// file is left, and the host fails with the reason.
#[test]
fn a_full_disk_on_the_host_leaves_the_old_file_intact() {
    if !root_or_explain("mounting a small tmpfs") {
        return;
    }
    let tmp = ScratchDir::new("attack-host-full");
    let small = tmp.0.join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a 1 MiB tmpfs");
    let target = small.join("app.conf");
    std::fs::write(&target, "old\n").unwrap();
    let big = tmp.0.join("big.bin");
    std::fs::write(&big, vec![b'n'; 4 << 20]).unwrap();
    let plan = format!(
        "[[task]]\nop = \"file.write\"\npath = \"{}\"\ncontent_file = \"{}\"\n",
        target.display(),
        big.display()
    );
    let (out, text) = apply_local(&tmp, "full.toml", &plan);
    let left = temp_files_in(&small);
    let old = std::fs::read(&target).unwrap();
    let _ = Command::new("umount").arg(&small).status();
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
    assert_eq!(old, b"old\n", "the old file changed");
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// Every descendant of `pid` whose program is sshd.
fn sshd_descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for (child, argv) in wisp_tests::children_of(p) {
            if argv.first().is_some_and(|a| a.contains("sshd")) {
                out.push(child);
                todo.push(child);
            }
        }
    }
    out
}

/// Fault: the host's sshd is stopped (SIGSTOP) for 30 s in the middle of a command, then
/// continued. The session rides it out (keepalives allow 45 s) and the command's result
/// arrives; nothing is left behind.
#[test]
fn an_sshd_stopped_for_thirty_seconds_mid_command_is_ridden_out() {
    let fleet = wisp_tests::sshd::Fleet::start(1);
    let dir = &fleet.dir.0;
    let started = dir.join("command-started");
    let mut c = wisp_tests::wisp_command!(dir);
    c.args(["run", &fleet.hosts[0].target()])
        .args(fleet.root_options())
        .args(["--", "sh", "-c"])
        .arg(format!(
            "touch {}; sleep 3; echo finished",
            started.display()
        ))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    // The command itself, not only a runner process (the bootstrap's probe is one too): the
    // stop must land mid-command, after the connect timeout stopped counting.
    let live = wisp_tests::wait_for(std::time::Duration::from_secs(30), || {
        started.exists().then_some(())
    });
    assert!(live.is_some(), "the command never started");
    let listener = fleet.hosts[0].pid().unwrap();
    let stopped = sshd_descendants(listener);
    assert!(!stopped.is_empty(), "no sshd session process to stop");
    for pid in &stopped {
        // SAFETY: signals to processes of the test's own sshd.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(i32::try_from(*pid).unwrap(), libc::SIGSTOP)
        };
    }
    std::thread::sleep(std::time::Duration::from_secs(30));
    for pid in &stopped {
        // SAFETY: as above.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(i32::try_from(*pid).unwrap(), libc::SIGCONT)
        };
    }
    let out = child.wait_with_output().unwrap();
    wisp_tests::wisp::show(&c, &out, dir);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("finished"));
    fleet.assert_clean();
}

/// Case: the login user's TMPDIR is a base another user could rename things in, so they
/// could put their own staging directory in place of the runner's between the check and the
/// exec: (0) world-writable without the sticky bit; (1) sticky, but owned by that user (an
/// owner renames anything in their own directory); (2) a link that user owns, to their
/// directory; (3) a root-owned 0700 directory beneath a directory that user owns (they can
/// rename the whole base). The bootstrap passes each over and stages in /tmp. Every unsafe
/// base is a full 64 KiB tmpfs: staging there could only fail, and the run would show it.
#[test]
fn a_temp_dir_others_can_rename_in_is_passed_over() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_explain("mounting small tmpfs bases") {
        return;
    }
    const NOBODY: u32 = 65534;
    let mut fleet = wisp_tests::sshd::Fleet::start(4);
    let mut mounts = Vec::new();
    let mut mount = |path: &Path, mode: u32, owner: u32| {
        std::fs::create_dir_all(path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "mount a 64 KiB tmpfs on {}",
            path.display()
        );
        std::os::unix::fs::chown(path, Some(owner), Some(owner)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        // Fill it, so that a runner staged there could not be written.
        let _ = std::fs::write(path.join("fill"), vec![0u8; 64 * 1024]);
        mounts.push(path.to_path_buf());
    };
    let open = fleet.dir.0.join("open-tmp");
    mount(&open, 0o777, NOBODY);
    let theirs = fleet.dir.0.join("their-sticky-tmp");
    mount(&theirs, 0o1777, NOBODY);
    let link = fleet.dir.0.join("their-link");
    std::os::unix::fs::symlink(&theirs, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    let parent = fleet.dir.0.join("their-parent");
    std::fs::create_dir(&parent).unwrap();
    std::os::unix::fs::chown(&parent, Some(NOBODY), Some(NOBODY)).unwrap();
    let below = parent.join("root-private");
    mount(&below, 0o700, 0);
    let bases = [&open, &theirs, &link, &below];
    for (i, base) in bases.iter().enumerate() {
        fleet.restart_with(i, &format!("SetEnv TMPDIR={}", base.display()));
    }
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args(["run", &fleet.targets()])
        .args(fleet.root_options())
        .args(["--", "true"])
        .current_dir(&fleet.dir.0);
    let out = c.output().unwrap();
    let staged: Vec<String> = mounts
        .iter()
        .flat_map(|m| std::fs::read_dir(m).unwrap().flatten())
        .map(|e| e.path().display().to_string())
        .filter(|p| !p.ends_with("/fill"))
        .collect();
    for m in &mounts {
        let _ = Command::new("umount").arg(m).status();
    }
    wisp_tests::wisp::show(&c, &out, &fleet.dir.0);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a host staged in its unsafe base"
    );
    assert!(staged.is_empty(), "staged in an unsafe base: {staged:?}");
}

/// Case: another user on the host watches `/tmp`, `/dev/shm` and `/run` for staging
/// directories and, for each one, tries to list it, write into it, plant a link in it and
/// rename it away, while two hosts (TMPDIR `/tmp` and `/dev/shm`) take the runner over a slow
/// link, so each staging directory stays there for over a second. The attacker sees them
/// (asserted, or the test proved nothing), gets none of it, and both hosts run.
#[test]
fn another_user_cannot_touch_the_staging_directory() {
    use std::os::unix::fs::PermissionsExt;
    if !root_or_explain("an attacker user beside a root login") {
        return;
    }
    let mut fleet = wisp_tests::sshd::Fleet::start(2);
    fleet.restart_with(0, "SetEnv TMPDIR=/tmp");
    fleet.restart_with(1, "SetEnv TMPDIR=/dev/shm");
    let log = ScratchDir::new("staging-attacker");
    std::os::unix::fs::chown(&log.0, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&log.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let l = log.0.display();
    let attack = format!(
        r#"end=$(( $(date +%s) + 90 ))
while [ ! -e {l}/stop ] && [ $(date +%s) -lt $end ]; do
  for d in /tmp/wisp-?????????? /dev/shm/wisp-?????????? /run/wisp-root-??????????; do
    [ -d "$d" ] || continue
    grep -qxF "$d" {l}/seen 2>/dev/null || echo "$d" >> {l}/seen
    ls "$d" >/dev/null 2>&1 && echo "listed $d" >> {l}/won
    ( echo x > "$d/planted" ) 2>/dev/null && echo "wrote into $d" >> {l}/won
    ln -s /etc/shadow "$d/wisp-runner.next" 2>/dev/null && echo "linked in $d" >> {l}/won
    mv "$d" "$d-taken" 2>/dev/null && echo "renamed $d" >> {l}/won
  done
  sleep 0.01
done"#
    );
    let mut attacker = Command::new("runuser")
        .args(["-u", "nobody", "--", "sh", "-c", &attack])
        .spawn()
        .unwrap();
    let hosts: Vec<(String, u16)> = fleet
        .hosts
        .iter()
        .map(|h| (h.addr.clone(), h.port))
        .collect();
    // About half a megabyte of compressed runner at 2.5 Mbit/s: over a second and a half.
    let wan = wisp_tests::wan::start(&hosts, std::time::Duration::from_millis(10), 2_500_000);
    let known = fleet.dir.0.join("known_hosts.wan");
    wisp_tests::wan::known_hosts(&fleet.known_hosts, &known);
    let targets: Vec<String> = wan.listen.iter().map(|(a, p)| format!("{a}:{p}")).collect();
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args(["run", &targets.join(",")])
        .args(fleet.root_options())
        .arg("--known-hosts")
        .arg(&known)
        .args(["--connect-timeout", "30s", "--", "echo", "staged-safely"])
        .current_dir(&fleet.dir.0);
    let out = wisp_tests::wisp::run(&mut c, &fleet.dir.0);
    std::fs::write(log.0.join("stop"), "").unwrap();
    attacker.wait().unwrap();
    let seen = std::fs::read_to_string(log.0.join("seen")).unwrap_or_default();
    let won = std::fs::read_to_string(log.0.join("won")).unwrap_or_default();
    assert!(
        won.is_empty(),
        "the other user got at a staging directory:\n{won}"
    );
    for base in ["/tmp/", "/dev/shm/"] {
        assert!(
            seen.lines().any(|d| d.starts_with(base)),
            "the attacker never saw a staging directory in {base}; the test proved nothing: {seen}"
        );
    }
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("staged-safely").count(), 2, "{stdout}");
    fleet.assert_clean();
}

/// Case: a host whose login shell is hostile (a ForceCommand that plays the bootstrap, then
/// pours out 100 MB with no frame in it) beside a well-behaved host in the same run. The
/// hostile host fails with the reason, the other one's result arrives as usual, and wisp's
/// memory stays bounded.
#[test]
fn a_hostile_host_fails_alone_and_the_others_are_unaffected() {
    let mut fleet = wisp_tests::sshd::Fleet::start(2);
    let script = fleet.dir.0.join("hostile.sh");
    std::fs::write(
        &script,
        r#"#!/bin/sh
nonce=$(printf '%s' "$SSH_ORIGINAL_COMMAND" | sed -n 's/.*wisp-bootstrap \([A-Za-z0-9_-]*\) .*/\1/p')
read -r arch enc size want
head -c "$size" > /dev/null
printf 'WISP-ARCH %s %s %s take\n' "$nonce" "$arch" "$enc"
printf 'WISP-START %s\n' "$nonce"
head -c 100000000 /dev/zero | tr '\0' G
"#,
    )
    .unwrap();
    let _ = Command::new("chmod").arg("0755").arg(&script).status();
    fleet.restart_with(0, &format!("ForceCommand {}", script.display()));
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args(["run", &fleet.targets()])
        .args(fleet.root_options())
        .args(["--", "echo", "fine"])
        .current_dir(&fleet.dir.0);
    let (out, rss_kib, timed_out) = run_measured(&mut c, std::time::Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown: String = stderr.chars().take(4000).collect();
    assert!(!timed_out, "{shown}");
    assert!(rss_kib < 150 * 1024, "peak RSS {rss_kib} KiB: {shown}");
    let (bad, good) = (fleet.hosts[0].target(), fleet.hosts[1].target());
    assert!(
        stdout.contains(&format!("{good} | fine")),
        "{stdout}{shown}"
    );
    assert!(
        stderr.contains(&format!("{bad}: UNREACHABLE")) && stderr.contains("frame magic"),
        "{shown}"
    );
    assert_eq!(out.status.code(), Some(3), "{shown}");
}

/// The OSC 52 clipboard write (the clipboard set to `evil`) that the terminal tests inject,
/// as it travels in a frame's JSON, and as wisp must show it: escaped.
const OSC52_JSON: &str = r"\u001b]52;c;ZXZpbA==\u0007";
const OSC52_RAW: &str = "\x1b]52;c;ZXZpbA==\x07";
const OSC52_SHOWN: &str = r"\x1b]52;c;ZXZpbA==\x07";

/// Runs `c` with stdout and stderr on a fresh pseudo-terminal, as an operator does: its exit
/// code and everything the terminal received.
#[allow(clippy::print_stdout)] // shown only when the test fails
fn on_terminal(mut c: Command, tmp: &ScratchDir) -> (Option<i32>, String) {
    let (mut master, slave) = open_pty();
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave)
        .unwrap();
    c.stdin(Stdio::null())
        .stdout(tty.try_clone().unwrap())
        .stderr(tty)
        .env("NO_COLOR", "1");
    let mut child = c.spawn().unwrap();
    let shown = format!("{c:?}");
    drop(c);
    // Read while it runs (a terminal's buffer is small); ends with EIO once it has exited.
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    let status = child.wait().unwrap();
    let seen = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    println!(
        "--- on a terminal: {shown}\n--- exit {status}\n{seen}\n--- scratch {}",
        tmp.0.display()
    );
    (status.code(), seen)
}

/// Asserts that what a terminal received shows the injected OSC 52 escaped, never raw.
fn assert_escaped(seen: &str, path: &str) {
    assert!(
        !seen.contains(OSC52_RAW) && !seen.contains('\u{7}'),
        "{path}: the terminal got the raw sequence: {seen:?}"
    );
    assert!(
        seen.contains(OSC52_SHOWN),
        "{path}: the sequence is not shown escaped: {seen:?}"
    );
}

/// Case: text from a hostile runner or host reaches the operator's terminal by every path
/// that is not live output: a refusal's message and its list of gaps, the recap's sandbox
/// line, a failed task's detail (live and in `wisp show`), and `wisp drift`'s diff of a file
/// someone changed on the host. Each is fed an OSC 52 clipboard write; the terminal sees it
/// escaped every time.
#[test]
fn peer_text_cannot_drive_the_terminal_on_any_path() {
    let tmp = ScratchDir::new("attack-escape-paths");
    // The refusal's message: the runner's ERROR for a program that does not exist.
    let c = broken_run(
        &tmp,
        &[],
        &["/nonexistent-EVIL"],
        "EVIL",
        ("BROKEN_RUNNER_TO", &format!("EVIL{OSC52_JSON}")),
    );
    let (code, seen) = on_terminal(c, &tmp);
    assert_eq!(code, Some(2));
    assert_escaped(&seen, "refusal message");
    // The refusal's gaps: an ERROR that lists a missing protection.
    let c = broken_run(
        &tmp,
        &[],
        &["/nonexistent-EVIL"],
        r#""message":""#,
        (
            "BROKEN_RUNNER_TO",
            &format!(r#""missing":["gap{OSC52_JSON}"],"message":""#),
        ),
    );
    let (code, seen) = on_terminal(c, &tmp);
    assert_eq!(code, Some(2));
    assert!(seen.contains("cannot apply"), "{seen}");
    assert_escaped(&seen, "refusal gaps");
    // The recap's sandbox line, from the enforcement report of a DONE.
    let c = broken_run(
        &tmp,
        &["--seccomp", "default"],
        &["true"],
        r#""profile":"default""#,
        (
            "BROKEN_RUNNER_TO",
            &format!(r#""profile":"default{OSC52_JSON}""#),
        ),
    );
    let (code, seen) = on_terminal(c, &tmp);
    assert_eq!(code, Some(0));
    assert!(seen.contains("RECAP"), "{seen}");
    assert_escaped(&seen, "recap sandbox line");
    // A failed task's detail, live and then in `wisp show`.
    std::fs::write(
        tmp.0.join("fails.toml"),
        "[[task]]\nname = \"run it\"\nop = \"exec\"\nargv = [\"/nonexistent-EVIL\"]\n",
    )
    .unwrap();
    let mut c = broken_run(
        &tmp,
        &[],
        &["unused"],
        "EVIL",
        ("BROKEN_RUNNER_TO", &format!("EVIL{OSC52_JSON}")),
    );
    let args: Vec<_> = c.get_args().map(std::ffi::OsStr::to_owned).collect();
    let mut apply = wisp_tests::wisp_command!(&tmp.0);
    apply
        .args(["apply", "fails.toml", "localhost"])
        .args(args.iter().skip(2).take_while(|a| *a != "--"))
        .envs(
            c.get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .current_dir(&tmp.0);
    c = apply;
    let (code, seen) = on_terminal(c, &tmp);
    assert_eq!(code, Some(2));
    assert_escaped(&seen, "live task detail");
    let mut show = wisp_tests::wisp_command!(&tmp.0);
    show.args(["show", "last"]);
    let (code, seen) = on_terminal(show, &tmp);
    assert_eq!(code, Some(0));
    assert_escaped(&seen, "task detail in wisp show");
    // `wisp drift`'s diff of a file someone changed on the host.
    let conf = tmp.0.join("app.conf");
    std::fs::write(
        tmp.0.join("drift.toml"),
        format!(
            "[[task]]\nname = \"conf\"\nop = \"file.write\"\npath = \"{}\"\ncontent = \"port = 80\\n\"\n",
            conf.display()
        ),
    )
    .unwrap();
    std::fs::write(&conf, format!("port = 80{OSC52_RAW}\n")).unwrap();
    let mut drift = wisp_tests::wisp_command!(&tmp.0);
    drift
        .args(["drift", "drift.toml", "localhost"])
        .env("TMPDIR", &tmp.0)
        .current_dir(&tmp.0);
    let (code, seen) = on_terminal(drift, &tmp);
    assert_eq!(code, Some(2), "a drifted host exits 2");
    assert!(seen.contains("DRIFTED"), "{seen}");
    assert_escaped(&seen, "drift diff");
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

/// Case: INI inventories built to cost the controller: 2,000 lines of `xN-[0:10000]` (30 KB,
/// 20 million hosts; it used to reach 3.3 GB and abort) and a `children` graph shaped as 40 stacked diamonds (each level's two
/// groups both children of the level above: 2^40 paths through 80 groups). The first is
/// refused with exit 4 and the reason; the second parses and runs, its groups resolved once
/// each. Both within the 2 GiB address space `run_with_inventory` allows.
#[test]
fn hostile_ini_ranges_and_diamonds_cost_what_their_size_does() {
    let tmp = ScratchDir::new("attack-ini");
    let ranges = tmp.0.join("ranges.ini");
    let lines: String = (0..2000).map(|i| format!("x{i}-[0:10000]\n")).collect();
    std::fs::write(&ranges, lines).unwrap();
    let started = std::time::Instant::now();
    let (out, stderr) = run_with_inventory(&tmp, &ranges);
    println!("ranges: {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("ranges.ini") && stderr.contains("more than 100000 hosts"),
        "{stderr}"
    );

    let mut diamond = String::new();
    for level in 0..40 {
        for side in ["a", "b"] {
            diamond.push_str(&format!(
                "[g{level}{side}:children]\ng{next}a\ng{next}b\n",
                next = level + 1
            ));
        }
    }
    diamond.push_str("[g40a]\nlocalhost\n[g40b]\nlocalhost\n[g0a:vars]\ndepth=top\n");
    let path = tmp.0.join("diamond.ini");
    std::fs::write(&path, diamond).unwrap();
    let started = std::time::Instant::now();
    let (out, stderr) = run_with_inventory(&tmp, &path);
    println!("diamond: {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // A cycle in such a graph is still found, and named.
    let cyclic = tmp.0.join("cyclic.ini");
    std::fs::write(
        &cyclic,
        std::fs::read_to_string(&path).unwrap() + "[g40a:children]\ng3b\n",
    )
    .unwrap();
    let (out, stderr) = run_with_inventory(&tmp, &cyclic);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("is its own descendant"), "{stderr}");
}

/// Case: plan conditions and templates built to exhaust the controller: `when` with 300,000
/// `not`s (it used to overflow the stack) and a 1 MB var used 2,000 times in one template (it
/// used to render 2 GB per host). Both are refused with exit 4 and the plan's file and line,
/// before any host is contacted.
#[test]
fn a_hostile_condition_or_template_is_refused_before_it_costs() {
    let tmp = ScratchDir::new("attack-plan");
    let nots = format!(
        "[vars]\nx = \"1\"\n\n[[task]]\nop = \"exec\"\nargv = [\"true\"]\nwhen = \"{}x\"\n",
        "not ".repeat(300_000)
    );
    std::fs::write(tmp.0.join("nots.toml"), nots).unwrap();
    let big = format!(
        "[vars]\nbig = \"{}\"\n\n[[task]]\nop = \"file.write\"\npath = \"{}/out\"\ncontent = \"{}\"\n",
        "x".repeat(1 << 20),
        tmp.0.display(),
        "{{ big }}".repeat(2000)
    );
    std::fs::write(tmp.0.join("big.toml"), big).unwrap();
    for (plan, why) in [
        ("nots.toml", None),
        ("big.toml", Some("renders to more than")),
    ] {
        let mut c = wisp_tests::wisp_command!(&tmp.0);
        c.args(["apply", plan, "localhost"]).current_dir(&tmp.0);
        let (out, rss, timed_out) = run_measured(&mut c, std::time::Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!timed_out, "{plan}: still running after 60 s");
        println!("{plan}: peak RSS {rss} KiB");
        assert!(rss < 200 * 1024, "{plan}: peak RSS {rss} KiB");
        match why {
            // 300,000 `not`s of a true var: the condition holds, the task runs.
            None => assert_eq!(out.status.code(), Some(0), "{stderr}"),
            Some(why) => {
                assert_eq!(out.status.code(), Some(4), "{stderr}");
                assert!(stderr.contains(&format!("{plan}:4")), "{stderr}");
                assert!(stderr.contains(why), "{stderr}");
            }
        }
    }
    assert!(!tmp.0.join("out").exists(), "a host was written to");
}

/// Case: the controller holds secrets in its environment (`WISP_AGE_KEY`,
/// `WISP_SSH_PASSWORD`, `WISP_BECOME_PASSWORD`, an agent socket) and runs `env` on localhost
/// under a strict sandbox, and on a host over SSH. No command sees a `WISP_*` or `SSH_*`
/// variable: the local runner starts with a login's environment, and the runner drops those
/// names before it runs anything (sshd sets `SSH_CONNECTION` and friends).
#[test]
fn commands_never_see_the_controllers_secrets_in_their_environment() {
    if !root_or_explain("a real sshd host") {
        return;
    }
    let tmp = ScratchDir::new("attack-env");
    let secrets = [
        ("WISP_AGE_KEY", "AGE-SECRET-KEY-1NOTREALLYASECRET"),
        ("WISP_SSH_PASSWORD", "ssh-password-in-clear"),
        ("WISP_BECOME_PASSWORD", "become-password-in-clear"),
        ("SSH_AUTH_SOCK", "/tmp/agent-socket-of-the-operator"),
    ];
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args([
        "run",
        "localhost",
        "--seccomp",
        "strict",
        "--ro",
        "/usr",
        "--no-net",
        "--",
        "/usr/bin/env",
    ])
    .envs(secrets)
    .env("TMPDIR", &tmp.0);
    let out = wisp_tests::wisp::run(&mut c, &tmp.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("localhost | PATH="), "{stdout}");
    for (name, value) in secrets {
        assert!(
            !stdout.contains(name) && !stdout.contains(value),
            "{name} reached the command: {stdout}"
        );
    }
    let fleet = wisp_tests::sshd::Fleet::start(1);
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args(["run", &fleet.hosts[0].target()])
        .args(fleet.root_options())
        .args(["--", "/usr/bin/env"])
        .envs(secrets);
    let out = wisp_tests::wisp::run(&mut c, &fleet.dir.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("| HOME="), "{stdout}");
    assert!(
        !stdout.contains("| SSH_") && !stdout.contains("| WISP_"),
        "a WISP_ or SSH_ variable reached the command over SSH: {stdout}"
    );
}

/// Case: another user (`nobody`) where the operator keeps the state store: a link planted at
/// the store's path in a shared directory, a store that user made world-writable (to rewrite
/// its run rows into a plan and `--become` of theirs for root's `wisp retry`). Every one is
/// refused with exit 6, naming the file and the fix, and root writes nothing through the link.
/// A retry of a plan whose file changed since the run is refused unless `--plan-changed-ok`.
#[test]
fn another_user_cannot_plant_or_rewrite_the_state_store() {
    if !root_or_explain("files planted by another user") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tmp = ScratchDir::new("attack-store");
    let shared = SharedDir::new(&tmp);
    let run = |state: &Path, args: &[&str]| {
        let mut c = wisp_tests::wisp_command!(&tmp.0);
        c.arg(args[0])
            .arg("--state")
            .arg(state)
            .args(&args[1..])
            .current_dir(&tmp.0);
        let out = wisp_tests::wisp::run(&mut c, &tmp.0);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    // A link at the path, in a directory everyone can write (as /tmp).
    shared.plant("wisp.db");
    let (code, stderr) = run(
        &shared.dir.join("wisp.db"),
        &["run", "localhost", "--", "true"],
    );
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("writable by other users"), "{stderr}");
    assert!(shared.victim_untouched(), "root wrote through the link");
    // A link at the path in root's own directory: never followed either.
    let own = tmp.0.join("own");
    std::fs::create_dir(&own).unwrap();
    std::os::unix::fs::symlink(&shared.victim, own.join("wisp.db")).unwrap();
    let (code, stderr) = run(&own.join("wisp.db"), &["run", "localhost", "--", "true"]);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert!(shared.victim_untouched(), "root wrote through the link");
    // A store another user made, world-writable, in a directory of theirs.
    let theirs = tmp.0.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let planted = theirs.join("wisp.db");
    std::fs::write(&planted, "").unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, stderr) = run(&planted, &["run", "localhost", "--", "true"]);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
    assert_eq!(
        std::fs::metadata(&planted).unwrap().len(),
        0,
        "root wrote into it"
    );
    // Root's own store, left writable by everyone.
    let store = own.join("mine.db");
    let (code, stderr) = run(&store, &["run", "localhost", "--", "true"]);
    assert_eq!(code, Some(0), "{stderr}");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, stderr) = run(&store, &["history"]);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(
        stderr.contains("writable by other users") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A plan that changed since its run is not retried unless the operator says so.
    let plan = tmp.0.join("plan.toml");
    std::fs::write(
        &plan,
        "[[task]]\nname = \"fail\"\nop = \"exec\"\nargv = [\"false\"]\n",
    )
    .unwrap();
    let (code, stderr) = run(&store, &["apply", "plan.toml", "localhost"]);
    assert_eq!(code, Some(2), "{stderr}");
    std::fs::write(
        &plan,
        "[[task]]\nname = \"now passes\"\nop = \"exec\"\nargv = [\"true\"]\n",
    )
    .unwrap();
    let (code, stderr) = run(&store, &["retry"]);
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains("changed since run") && stderr.contains("--plan-changed-ok"),
        "{stderr}"
    );
    let (code, stderr) = run(&store, &["retry", "--plan-changed-ok"]);
    assert_eq!(code, Some(0), "{stderr}");
}

/// Case: a host reports a hostname that is shell code (`vm; touch FILE #`: here a UTS
/// namespace's, set as root on the host could) and a plan puts `{{ facts.hostname }}` into a
/// command. The plan is refused at plan time with exit 4, the line and the fix; with the
/// `quote` filter it runs, and the name is only echoed.
#[test]
fn a_hosts_facts_cannot_inject_code_into_its_commands() {
    if !root_or_explain("a UTS namespace with a hostile hostname") {
        return;
    }
    let tmp = ScratchDir::new("attack-facts");
    // Short enough for a hostname (64 bytes), and outside anything the run touches.
    let touched = std::path::PathBuf::from(format!("/tmp/wi{}", std::process::id()));
    let _ = std::fs::remove_file(&touched);
    let hostile = format!("vm; touch {} #", touched.display());
    assert!(hostile.len() <= 64, "a hostname holds 64 bytes");
    let apply = |plan: &str| {
        std::fs::write(tmp.0.join("plan.toml"), plan).unwrap();
        let mut wisp = wisp_tests::wisp_command!(&tmp.0);
        wisp.args(["apply", "plan.toml", "localhost"])
            .env("TMPDIR", &tmp.0)
            .current_dir(&tmp.0);
        // wisp, and so its local runner, in a UTS namespace whose hostname is `hostile`.
        let mut c = Command::new("unshare");
        c.args([
            "--uts",
            "sh",
            "-c",
            "printf %s \"$0\" > /proc/sys/kernel/hostname && exec \"$@\"",
        ])
        .arg(&hostile)
        .arg(wisp.get_program())
        .args(wisp.get_args())
        .envs(wisp.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env_remove("SSH_AUTH_SOCK")
        .current_dir(&tmp.0);
        for (k, v) in wisp.get_envs() {
            if v.is_none() {
                c.env_remove(k);
            }
        }
        let out = wisp_tests::wisp::run(&mut c, &tmp.0);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stdout, stderr)
    };
    let (code, _, stderr) = apply(
        "[[task]]\nname = \"deploy\"\nop = \"exec\"\nshell = \"echo deploying to {{ facts.hostname }}\"\n",
    );
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("plan.toml:1") && stderr.contains("{{ facts.hostname | quote }}"),
        "{stderr}"
    );
    assert!(!touched.exists(), "the host's name ran as code");
    let (code, stdout, stderr) = apply(
        "[[task]]\nname = \"deploy\"\nop = \"exec\"\nshell = \"echo deploying to {{ facts.hostname | quote }}\"\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("deploying to {hostile}")),
        "{stdout}"
    );
    assert!(!touched.exists(), "the host's name ran as code");
}
