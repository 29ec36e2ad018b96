//! Reaching hosts: every host run and left clean, strict host keys and `--accept-new`,
//! unreachable, silent and flaky hosts, a corrupted upload, Ctrl-C, a noexec temp dir.

use super::*;

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ssh-keygen -lf`'s SHA256 fingerprint of a host's key.
fn fingerprint(fleet: &Fleet, i: usize) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(fleet.dir.0.join(format!("host{i}_ed25519.pub")))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

#[test]
fn run_reaches_every_host_and_leaves_nothing() {
    let fleet = Fleet::start(3);
    let saved = fleet.dir.0.join("saved");
    let out = run(sub(&fleet, "run", &fleet.targets())
        .arg("--output-dir")
        .arg(&saved)
        .args(["--", "sh", "-c", "echo hello from $(id -un); echo err >&2"]));
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for h in &fleet.hosts {
        assert!(
            stdout.contains(&format!("{} | hello from root", h.target())),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("{} ! err", h.target())),
            "{stdout}"
        );
    }
    for h in &fleet.hosts {
        let out = std::fs::read_to_string(saved.join(format!("{}.stdout", h.target()))).unwrap();
        assert_eq!(
            out, "hello from root\n",
            "--output-dir keeps each host's stdout"
        );
        let err = std::fs::read_to_string(saved.join(format!("{}.stderr", h.target()))).unwrap();
        assert_eq!(err, "err\n");
    }
    fleet.assert_clean();
}

#[test]
fn unknown_host_key_is_refused_with_its_fingerprint() {
    let fleet = Fleet::start(1);
    std::fs::write(&fleet.known_hosts, "").unwrap();
    let out = run(sub(&fleet, "run", &fleet.targets()).args(["--", "touch", "/nonexistent-dir/x"]));
    assert_eq!(out.status.code(), Some(3), "an unknown host is unreachable");
    let err = stderr_of(&out);
    assert!(
        err.contains(&fingerprint(&fleet, 0)),
        "the fingerprint is shown: {err}"
    );
    assert!(
        err.contains("--accept-new"),
        "the way forward is shown: {err}"
    );
    fleet.assert_clean();
}

#[test]
fn changed_host_key_is_refused_even_with_accept_new() {
    let fleet = Fleet::start(1);
    // Record another key for the host, as after a reinstall (or an attack).
    let other = Fleet::start(1);
    let host = &fleet.hosts[0];
    std::fs::write(
        &fleet.known_hosts,
        format!(
            "[{}]:{} {}\n",
            host.addr, host.port, other.hosts[0].host_key
        ),
    )
    .unwrap();
    for extra in [&[][..], &["--accept-new"][..]] {
        let out = run(sub(&fleet, "run", &fleet.targets())
            .args(extra)
            .args(["--", "true"]));
        assert_eq!(out.status.code(), Some(3));
        let err = stderr_of(&out);
        assert!(err.contains("HAS CHANGED"), "loudly: {err}");
        assert!(
            err.contains(&fingerprint(&fleet, 0)),
            "the offered fingerprint is shown: {err}"
        );
    }
    let recorded = std::fs::read_to_string(&fleet.known_hosts).unwrap();
    assert_eq!(
        recorded.lines().count(),
        1,
        "--accept-new never rewrites a changed key: {recorded}"
    );
    fleet.assert_clean();
}

#[test]
fn accept_new_records_twenty_hosts_at_once_exactly_once() {
    let fleet = Fleet::start(20);
    std::fs::write(&fleet.known_hosts, "").unwrap();
    for _ in 0..2 {
        let out = run(sub(&fleet, "run", &fleet.targets()).args(["--accept-new", "--", "true"]));
        assert_eq!(out.status.code(), Some(0));
    }
    let recorded = std::fs::read_to_string(&fleet.known_hosts).unwrap();
    let lines: Vec<&str> = recorded.lines().collect();
    assert_eq!(
        lines.len(),
        20,
        "one line per host, no duplicates: {recorded}"
    );
    for h in &fleet.hosts {
        let line = format!("[{}]:{} {}", h.addr, h.port, h.host_key);
        assert_eq!(
            lines.iter().filter(|l| **l == line).count(),
            1,
            "{line} missing or repeated"
        );
    }
    // ssh-keygen agrees the file is well formed.
    let check = Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[{}]:{}", fleet.hosts[7].addr, fleet.hosts[7].port))
        .arg("-f")
        .arg(&fleet.known_hosts)
        .output()
        .unwrap();
    assert!(check.status.success(), "ssh-keygen -F finds the host");
    fleet.assert_clean();
}

#[test]
fn a_stopped_host_is_unreachable_and_the_others_succeed() {
    let mut fleet = Fleet::start(3);
    fleet.hosts[1].stop();
    let out = run(sub(&fleet, "run", &fleet.targets()).args(["--", "hostname"]));
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("{}: UNREACHABLE", fleet.hosts[1].target())),
        "{err}"
    );
    for i in [0, 2] {
        assert!(
            stdout.contains(&format!("{} | ", fleet.hosts[i].target())),
            "{stdout}"
        );
    }
    fleet.assert_clean();
}

#[test]
fn a_host_that_never_answers_is_bounded_by_the_connect_timeout() {
    let fleet = Fleet::start(1);
    // Accepts TCP connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    let started = std::time::Instant::now();
    let out = run(sub(
        &fleet,
        "run",
        &format!("{target},{}", fleet.hosts[0].target()),
    )
    .args(["--connect-timeout", "1s", "--", "true"]));
    let took = started.elapsed();
    println!("took {took:?} with --connect-timeout 1s");
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr_of(&out).contains(&format!("{target}: UNREACHABLE")));
    drop(silent);
    fleet.assert_clean();
}

#[test]
fn a_corrupted_upload_is_refused_and_nothing_runs() {
    let fleet = Fleet::start(1);
    let marker = fleet.dir.0.join("ran");
    let out = run(sub(&fleet, "run", &fleet.targets())
        .env(wisp_transports::ssh::CORRUPT_UPLOAD_ENV, "1")
        .arg("--")
        .arg("touch")
        .arg(&marker));
    // The host answered, and refused what it got: it could not start the runner (7), which
    // is not a network problem (3).
    assert_eq!(out.status.code(), Some(7));
    let err = stderr_of(&out);
    assert!(err.contains("COULD NOT START"), "{err}");
    assert!(
        err.contains("does not match the announced"),
        "the host says why: {err}"
    );
    assert!(!marker.exists(), "the command ran from a corrupted runner");
    fleet.assert_clean();
}

#[test]
fn ping_and_facts_work_over_ssh() {
    let fleet = Fleet::start(2);
    let out = run(&mut sub(&fleet, "ping", &fleet.targets()));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("pong: runner")
            .count(),
        2
    );
    let out = run(sub(&fleet, "facts", &fleet.targets()).arg("--json"));
    assert_eq!(out.status.code(), Some(0));
    let facts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(r#""type":"facts""#))
        .count();
    assert_eq!(facts, 2);
    fleet.assert_clean();
}

#[test]
fn ctrl_c_stops_every_remote_command_within_three_seconds() {
    use std::time::{Duration, Instant};
    let fleet = Fleet::start(10);
    let duration = format!("60.{}", std::process::id());
    let mut child = sub(&fleet, "run", &fleet.targets())
        .args(["--", "sleep", &duration])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sleeps = || {
        wisp_tests::all_processes()
            .into_iter()
            .filter(|(_, argv)| argv == &["sleep".to_owned(), duration.clone()])
            .map(|(p, _)| p)
            .collect::<Vec<_>>()
    };
    let started = wisp_tests::wait_for(Duration::from_secs(30), || {
        (sleeps().len() == 10).then_some(())
    });
    assert!(started.is_some(), "10 sleeps did not start: {:?}", sleeps());
    // SAFETY: kill(2) on the child this test started.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT);
    }
    let sent = Instant::now();
    let gone = wisp_tests::wait_for(Duration::from_secs(3), || sleeps().is_empty().then_some(()));
    println!("all sleeps gone {:?} after Ctrl-C", sent.elapsed());
    assert!(
        gone.is_some(),
        "sleeps still alive 3 s after Ctrl-C: {:?}",
        sleeps()
    );
    let status = wisp_tests::wait_for(Duration::from_secs(10), || child.try_wait().unwrap())
        .expect("wisp exits");
    assert_eq!(status.code(), Some(99));
    fleet.assert_clean();
}

#[test]
fn an_inventory_of_twenty_hosts_and_one_of_them_down() {
    let mut fleet = Fleet::start(20);
    // An Ansible INI inventory naming the hosts node01..node20, split into two groups.
    let mut ini = String::from("[even]\n");
    for (i, h) in fleet.hosts.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        ini.push_str(&format!(
            "node{:02} ansible_host={} ansible_port={}\n",
            i + 1,
            h.addr,
            h.port
        ));
    }
    ini.push_str("[odd]\n");
    for (i, h) in fleet.hosts.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        ini.push_str(&format!(
            "node{:02} ansible_host={} ansible_port={}\n",
            i + 1,
            h.addr,
            h.port
        ));
    }
    ini.push_str("[all:vars]\nansible_user=root\n");
    let inventory = fleet.dir.0.join("hosts.ini");
    std::fs::write(&inventory, ini).unwrap();
    let wisp_i = |fleet: &Fleet, pattern: &str| {
        let mut c = sub(fleet, "run", pattern);
        c.arg("-i").arg(&inventory);
        c
    };
    let out = run(wisp_i(&fleet, "all").args(["--", "hostname"]));
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 20, "one line per host: {stdout}");
    for i in 1..=20 {
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.starts_with(&format!("node{i:02} ")))
                .count(),
            1,
            "node{i:02}: {stdout}"
        );
    }
    let out = run(wisp_i(&fleet, "all").args(["--limit", "even,!node02", "--", "true"]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("9 hosts: 9 ok"),
        "--limit narrows the pattern"
    );

    fleet.hosts[4].stop();
    let started = std::time::Instant::now();
    let out = run(wisp_i(&fleet, "all").args(["--", "hostname"]));
    println!("with one host down: {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 19, "the others succeed: {stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("node05: UNREACHABLE"));
    fleet.assert_clean();
}

#[test]
fn a_connection_dropped_mid_handshake_is_retried_and_a_refused_one_is_not() {
    use std::net::{Shutdown, TcpListener, TcpStream};
    let fleet = Fleet::start(1);
    let backend = fleet.hosts[0].target();
    // A front door that hangs up on the first connection (as sshd does past MaxStartups)
    // and forwards the next ones to the real sshd.
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = front.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&accepted);
    std::thread::spawn(move || {
        for (i, conn) in front.incoming().take(3).enumerate() {
            let Ok(conn) = conn else { return };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if i == 0 {
                let _ = conn.shutdown(Shutdown::Both);
                continue;
            }
            let Ok(up) = TcpStream::connect(&backend) else {
                return;
            };
            let (mut from_client, mut to_server) =
                (conn.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
                let _ = to_server.shutdown(Shutdown::Write);
            });
            let (mut from_server, mut to_client) = (up, conn);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(Shutdown::Write);
            });
        }
    });
    // The proxy presents the real host's key under its own address.
    let known = fleet.dir.0.join("known_hosts_front");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{port} {}\n", fleet.hosts[0].host_key),
    )
    .unwrap();
    let out = run(sub(&fleet, "run", &format!("127.0.0.1:{port}"))
        .arg("--known-hosts")
        .arg(&known)
        .args(["--", "echo", "second try"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the dropped connection was not retried"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| second try"));
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "exactly one retry"
    );
    fleet.assert_clean();

    // A refused connection is final at once: no retries.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let started = std::time::Instant::now();
    let out = run(sub(&fleet, "run", &format!("127.0.0.1:{closed_port}")).args(["--", "true"]));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("attempts"),
        "refused connections are not retried"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_noexec_temp_dir_falls_back_to_one_that_can_execute() {
    if !wisp_tests::root_or_explain("the noexec fallback test (it mounts a noexec tmpfs)") {
        return;
    }
    let fleet = Fleet::start(1);
    // The hosts' TMPDIR becomes a noexec mount: the bootstrap must move on to /tmp.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "noexec,mode=1777,size=16m", "tmpfs"])
        .arg(&fleet.remote_tmp)
        .status()
        .unwrap();
    assert!(mounted.success(), "cannot mount a noexec tmpfs");
    let out = run(sub(&fleet, "run", &fleet.targets()).args(["--", "echo", "ran"]));
    let leftovers = fleet.leftovers();
    let _ = Command::new("umount").arg(&fleet.remote_tmp).status();
    assert_eq!(
        out.status.code(),
        Some(0),
        "no fallback past the noexec TMPDIR"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| ran"));
    assert!(
        leftovers.is_empty(),
        "the noexec copy was not removed: {leftovers:?}"
    );
    fleet.assert_clean();
}
