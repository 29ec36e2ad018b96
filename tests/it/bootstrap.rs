//! The bootstrap across a WAN (a delaying proxy in front of real sshd hosts, which also counts
//! the bytes): a host gets the runner gzip-compressed and still verifies it by its SHA-256
//! before anything runs; a host without gzip says so and takes it uncompressed; a host of
//! another architecture says so and takes the runner built for it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use wisp_tests::sshd::Fleet;
use wisp_tests::wan::{self, Wan};
use wisp_tests::{ScratchDir, root_or_explain};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The fleet behind a 10 ms round trip at 1 Gbit/s.
fn behind_wan(fleet: &Fleet) -> (Wan, std::path::PathBuf) {
    let hosts: Vec<(String, u16)> = fleet
        .hosts
        .iter()
        .map(|h| (h.addr.clone(), h.port))
        .collect();
    let wan = wan::start(&hosts, Duration::from_millis(10), 1_000_000_000);
    let known = fleet.dir.0.join("known_hosts.wan");
    wan::known_hosts(&fleet.known_hosts, &known);
    (wan, known)
}

/// `wisp run` of `command` on the hosts behind `wan`, as root with the fleet's key.
fn run_far(
    fleet: &Fleet,
    wan: &Wan,
    known: &Path,
    env: &[(&str, &str)],
    command: &[&str],
) -> Output {
    let targets: Vec<String> = wan.listen.iter().map(|(a, p)| format!("{a}:{p}")).collect();
    let mut c: Command = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args(["run", &targets.join(","), "--known-hosts"])
        .arg(known)
        .args([
            "--ssh-config",
            "/dev/null",
            "--connect-timeout",
            "30s",
            "--user",
            "root",
            "--key",
        ])
        .arg(&fleet.client_key)
        .arg("--")
        .args(command)
        .envs(env.iter().copied());
    wisp_tests::wisp::run(&mut c, &fleet.dir.0)
}

fn runner_size() -> u64 {
    std::fs::metadata(wisp_tests::runner_path())
        .expect("the runner")
        .len()
}

#[test]
fn the_runner_travels_compressed_and_is_verified() {
    let fleet = Fleet::start(3);
    let (wan, known) = behind_wan(&fleet);
    let out = run_far(&fleet, &wan, &known, &[], &["true"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (up, _) = wan.take_bytes();
    let per_host = up / 3;
    assert!(
        per_host < runner_size() * 2 / 3,
        "{per_host} bytes went up per host for a runner of {} bytes: not compressed",
        runner_size()
    );

    // A compressed upload that decompresses to other bytes than the runner's is refused.
    let marker = fleet.dir.0.join("ran");
    let marker = marker.display().to_string();
    let corrupt = run_far(
        &fleet,
        &wan,
        &known,
        &[(wisp_transports::ssh::CORRUPT_UPLOAD_ENV, "1")],
        &["touch", &marker],
    );
    // The host answered and refused what it got: it could not start the runner (7).
    assert_eq!(corrupt.status.code(), Some(7));
    assert!(
        text(&corrupt.stderr).contains("does not match the announced"),
        "{}",
        text(&corrupt.stderr)
    );
    assert!(!Path::new(&marker).exists(), "a corrupted runner ran");
    fleet.assert_clean();
}

/// A directory of links to every program in /usr/bin and /usr/sbin but gzip's.
fn path_without_gzip(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("no-gzip-bin");
    std::fs::create_dir_all(&bin).expect("create the PATH dir");
    for from in ["/usr/bin", "/usr/sbin"] {
        for entry in std::fs::read_dir(from).expect("list a bin dir").flatten() {
            let name = entry.file_name();
            let skip = ["gzip", "gunzip", "zcat"].iter().any(|g| name == *g);
            if !skip && !bin.join(&name).exists() {
                let _ = std::os::unix::fs::symlink(entry.path(), bin.join(&name));
            }
        }
    }
    bin
}

#[test]
fn a_host_without_gzip_takes_the_runner_uncompressed() {
    let tmp = ScratchDir::new("no-gzip");
    let bin = path_without_gzip(&tmp.0);
    let mut fleet = Fleet::start(1);
    let setenv = format!(
        "SetEnv TMPDIR={} PATH={}",
        fleet.remote_tmp.display(),
        bin.display()
    );
    fleet.restart_with(0, &setenv);
    let (wan, known) = behind_wan(&fleet);
    let out = run_far(
        &fleet,
        &wan,
        &known,
        &[],
        &["sh", "-c", "command -v gzip || echo no gzip"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("no gzip"),
        "{}",
        text(&out.stdout)
    );
    let (up, _) = wan.take_bytes();
    assert!(
        up > runner_size(),
        "{up} bytes went up for a runner of {} bytes: the uncompressed one was not sent",
        runner_size()
    );
    fleet.assert_clean();
}

/// The runner built for `arch` in this build tree, and its size gzip-compressed.
fn runner_gz_len(arch: &str) -> u64 {
    let native = wisp_tests::runner_path();
    let target = native.ancestors().nth(3).expect("the build tree");
    let path = target.join(format!("{arch}-unknown-linux-musl/runner/wisp-runner"));
    assert!(
        path.is_file(),
        "{} is missing: `cargo xtask build-runner` builds both",
        path.display()
    );
    let gz = Command::new("gzip")
        .args(["-1", "-c"])
        .arg(&path)
        .output()
        .expect("run gzip");
    gz.stdout.len() as u64
}

/// Two hosts, one at a time. The first says it is aarch64 (its /proc/sys/kernel/arch is
/// replaced in a mount namespace of its own), so the x86_64 runner wisp sends first is
/// refused and the aarch64 one is sent after it; it is verified, and runs under qemu-user where
/// binfmt_misc has it (else this x86_64 machine cannot execute it: exit 66). The second host, a real x86_64 one, is sent the aarch64 runner
/// first, since that is what this run's hosts have shown, says so, gets the x86_64 one and
/// runs. Each host sits behind its own proxy, which counts its bytes: two runners each.
#[test]
fn a_host_of_another_arch_says_so_and_is_sent_its_runner() {
    if !root_or_explain("a mount namespace that changes a host's architecture") {
        return;
    }
    let mut fleet = Fleet::start(2);
    let fake = fleet.dir.0.join("fake-arch");
    std::fs::write(&fake, "aarch64\n").unwrap();
    let shell = fleet.dir.0.join("aarch64-host.sh");
    std::fs::write(
        &shell,
        format!(
            "#!/bin/sh\nexec unshare -m sh -c 'mount --bind {} /proc/sys/kernel/arch && exec sh -c \"$SSH_ORIGINAL_COMMAND\"'\n",
            fake.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shell, std::fs::Permissions::from_mode(0o755)).unwrap();
    fleet.restart_with(0, &format!("ForceCommand {}", shell.display()));
    let proxies: Vec<Wan> = fleet
        .hosts
        .iter()
        .map(|h| {
            wan::start(
                &[(h.addr.clone(), h.port)],
                Duration::from_millis(10),
                1_000_000_000,
            )
        })
        .collect();
    let known = fleet.dir.0.join("known_hosts.wan");
    wan::known_hosts(&fleet.known_hosts, &known);
    let targets: Vec<String> = proxies
        .iter()
        .map(|w| format!("{}:{}", w.listen[0].0, w.listen[0].1))
        .collect();
    let mut c: Command = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args(["run", &targets.join(","), "--forks", "1", "--known-hosts"])
        .arg(&known)
        .args(["--ssh-config", "/dev/null", "--connect-timeout", "30s"])
        .args(["--user", "root", "--key"])
        .arg(&fleet.client_key)
        .args(["--", "echo", "ran-natively"])
        // Found in the build tree, both architectures (WISP_RUNNER names one file only).
        .env_remove("WISP_RUNNER");
    let out = wisp_tests::wisp::run(&mut c, &fleet.dir.0);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // With qemu-user registered for aarch64 (qemu-user-static's install does it where it
    // can), this machine runs the aarch64 runner too; without, it cannot execute it.
    let qemu = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists();
    if qemu {
        assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
        assert!(
            stdout.contains(&format!("{} | ran-natively", targets[0])),
            "the aarch64 host did not run under qemu: {stdout}{stderr}"
        );
    } else {
        assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
        let first = stderr
            .lines()
            .find(|l| l.starts_with(&targets[0]) && l.contains("UNREACHABLE"))
            .unwrap_or_else(|| panic!("the aarch64 host is not reported: {stderr}"));
        assert!(
            first.contains("bootstrap exit status 66") && !first.contains("does not match"),
            "the aarch64 runner was not the one verified there: {first}"
        );
    }
    let both = runner_gz_len("x86_64") + runner_gz_len("aarch64");
    for (i, w) in proxies.iter().enumerate() {
        let (up, _) = w.take_bytes();
        assert!(
            up * 10 > both * 9,
            "host {i}: {up} bytes went up, less than the two runners ({both} bytes compressed)"
        );
    }
    fleet.assert_clean();
}
