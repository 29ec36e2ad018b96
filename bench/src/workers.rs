//! Runs through workers on NATS JetStream against the same run from this controller:
//! `wisp run <all> -- true` on N real sshd hosts, locally and through 2 workers (`--nats`),
//! alternating, with the bus's overhead per host.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wisp_tests::nats::Nats;
use wisp_tests::sshd::Fleet;
use wisp_tests::{ScratchDir, wait_for};

use crate::ssh::{Reach, USER, wisp_command};

const ROUNDS: usize = 3;

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn timed(mut c: Command, what: &str) -> Duration {
    let started = Instant::now();
    let out = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run wisp");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

pub(crate) fn bench(n: usize) {
    let wisp = std::env::var_os("WISP_BIN")
        .expect("WISP_BIN must name a wisp executable (cargo xtask bench sets it)");
    crate::ssh::ensure_user();
    let scratch = ScratchDir::new("bench-workers");
    println!("starting {n} sshd hosts, nats-server -js and 2 workers...");
    let fleet = Fleet::start(n);
    let nats = Nats::start(&scratch.0);
    let key = scratch.0.join("jobs.key");
    let keygen = |path: &std::path::Path| {
        let made = Command::new(&wisp)
            .arg("keygen")
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "wisp keygen failed");
    };
    keygen(&key);
    // Each worker signs its events with a key of its own; the controller trusts both.
    let mut trusted = String::new();
    for i in 1..=2 {
        let worker_key = scratch.0.join(format!("w{i}.key"));
        keygen(&worker_key);
        trusted += &std::fs::read_to_string(scratch.0.join(format!("w{i}.key.pub")))
            .expect("a worker's public key");
    }
    let workers_pub = scratch.0.join("workers.pub");
    std::fs::write(&workers_pub, trusted).expect("write workers.pub");
    let forks = n.div_ceil(2).to_string();
    let workers: Vec<Worker> = (1..=2)
        .map(|i| {
            let log = scratch.0.join(format!("w{i}.log"));
            let child = Command::new(&wisp)
                .arg("worker")
                .args(nats.args(true))
                .args(["--name", &format!("w{i}")])
                .arg("--trust-jobs")
                .arg(scratch.0.join("jobs.key.pub"))
                .arg("--sign-events")
                .arg(scratch.0.join(format!("w{i}.key")))
                .arg("--trust-workers")
                .arg(&workers_pub)
                .arg("--ledger")
                .arg(scratch.0.join(format!("w{i}.ran")))
                .args(["--forks", &forks, "--user", USER, "--key"])
                .arg(&fleet.client_key)
                .arg("--known-hosts")
                .arg(&fleet.known_hosts)
                .env_remove("SSH_AUTH_SOCK")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("worker log"))
                .spawn()
                .expect("start a worker");
            let up = wait_for(Duration::from_secs(20), || {
                std::fs::read_to_string(&log)
                    .ok()
                    .filter(|l| l.contains("taking items"))
                    .map(|_| ())
            });
            assert!(up.is_some(), "worker w{i} did not start");
            Worker(child)
        })
        .collect();
    let reach = Reach::direct(&fleet);
    let local = || wisp_command(&reach, &wisp, &["run".as_ref()], &["--", "true"]);
    let bus = || {
        let key = key.display().to_string();
        let trusted = workers_pub.display().to_string();
        let mut args = nats.args(false);
        args.extend(["--sign-jobs".into(), key, "--trust-workers".into(), trusted]);
        args.extend(["--".into(), "true".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wisp_command(&reach, &wisp, &["run".as_ref()], &args)
    };
    // Warm-up: page cache, sshd's first forks, the streams and consumers made.
    timed(local(), "local warm-up");
    timed(bus(), "bus warm-up");
    let (mut here, mut through) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        here.push(timed(local(), "wisp run"));
        through.push(timed(bus(), "wisp run --nats"));
    }
    let median = |v: &mut Vec<Duration>| crate::percentile(v, 0.5);
    let (here, through) = (median(&mut here), median(&mut through));
    #[allow(clippy::cast_precision_loss)] // host counts are small
    let per_host_ms = (through.as_secs_f64() - here.as_secs_f64()) * 1000.0 / n as f64;
    println!("{n} hosts, `wisp run <all> -- true`, median of {ROUNDS} alternating rounds:");
    println!("  from this controller (--forks {n}):            {here:>10.3?}");
    println!(
        "  through 2 workers on NATS (--forks {forks} each): {through:>10.3?}   ratio {:.2}, bus overhead {per_host_ms:.2} ms per host",
        through.as_secs_f64() / here.as_secs_f64()
    );
    drop(workers);
    fleet.assert_clean();
}
