//! The bootstrap across a WAN (a delaying proxy in front of real sshd hosts, which also counts
//! the bytes): a host gets the runner gzip-compressed and still verifies it by its SHA-256
//! before anything runs; a host without gzip says so and takes it uncompressed.

use std::process::{Command, Output};
use std::time::Duration;

use wisp_tests::ScratchDir;
use wisp_tests::sshd::Fleet;
use wisp_tests::wan::{self, Wan};

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
    known: &std::path::Path,
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
    assert_eq!(corrupt.status.code(), Some(3));
    assert!(
        text(&corrupt.stderr).contains("does not match the announced"),
        "{}",
        text(&corrupt.stderr)
    );
    assert!(
        !std::path::Path::new(&marker).exists(),
        "a corrupted runner ran"
    );
    fleet.assert_clean();
}

/// A directory of links to every program in /usr/bin and /usr/sbin but gzip's.
fn path_without_gzip(dir: &std::path::Path) -> std::path::PathBuf {
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
