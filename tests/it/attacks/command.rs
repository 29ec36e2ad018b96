//! Attacker 1 (SECURITY.md): the command itself, run under a sandbox it wants out of, often
//! as root: it cannot speak for the runner, reach the operator's terminal, break out, or lift
//! a limit it was given.

use super::*;

const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-probe");

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

fn probe_dir() -> &'static str {
    Path::new(PROBE).parent().unwrap().to_str().unwrap()
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
