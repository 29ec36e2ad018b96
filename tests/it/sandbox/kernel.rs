//! Each protection against the real kernel: Landlock's filesystem and TCP rules, seccomp's
//! profiles, the cgroup's pids, memory and CPU limits, timeouts and namespaces, as root and
//! as an unprivileged user.

use super::*;

/// True when the kernel has `what`. Without it, CI (`CI` set) fails; elsewhere the test says
/// why it does not run.
#[allow(clippy::print_stdout)]
fn kernel_has(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "this kernel lacks {what}, which CI must cover"
        );
        println!("not run: this kernel lacks {what}");
    }
    ok
}

fn landlock_abi() -> u32 {
    // SAFETY: the version query passes no memory.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            444,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    u32::try_from(r).unwrap_or(0)
}

/// Writes outside the read-write paths fail with EACCES, inside they work, and a path that
/// was never granted cannot be read; for root (who could otherwise do all of it) and nobody.
fn check_landlock_fs(unprivileged: bool) {
    let mut host = Host::start("landlock-fs", unprivileged);
    let job = host.tmp.0.join("job");
    let secret_dir = host.tmp.0.join("secret");
    for d in [&job, &secret_dir] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::write(secret_dir.join("key"), "s3cret").unwrap();
    std::fs::set_permissions(
        secret_dir.join("key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let limits = json!({"fs": {"rw": [job.to_str().unwrap()]}});
    let script = format!(
        "echo inside > {job}/ok && cat {job}/ok; \
         echo outside > {secret}/new; echo write=$?; \
         cat {secret}/key; echo read=$?",
        job = job.display(),
        secret = secret_dir.display()
    );
    let answer = host.run(&["sh", "-c", &script], limits);
    let e = answer.enforcement().clone();
    let (done, stdout, stderr) = answer.done();
    assert_eq!(done.status, Status::Ok, "{stdout} {stderr}");
    assert!(
        stdout.contains("inside"),
        "write inside the rw path failed: {stdout} {stderr}"
    );
    assert!(
        stdout.contains("write=2"),
        "write outside was not refused: {stdout}"
    );
    assert!(
        stdout.contains("read=1"),
        "read of an ungranted path worked: {stdout}"
    );
    assert!(!stdout.contains("s3cret"), "the secret was read: {stdout}");
    assert_eq!(stderr.matches("Permission denied").count(), 2, "{stderr}");
    assert!(!secret_dir.join("new").exists());
    let ll = e.landlock.expect("no landlock report");
    assert_eq!(ll.status, "full");
    assert!(e.complete && e.no_new_privs);
    assert!(
        ll.rules.contains(&format!("rw:{}", job.display())),
        "{:?}",
        ll.rules
    );
}

fn check_strict(unprivileged: bool) {
    let mut host = Host::start("seccomp-strict", unprivileged);
    let limits = json!({"seccomp": "strict"});
    let (done, out, err) = host
        .run(
            &[
                "sh",
                "-c",
                "ls / >/dev/null; echo hi | cat; apt-get --version | head -n1; echo ok",
            ],
            limits.clone(),
        )
        .done();
    assert_eq!(done.status, Status::Ok, "{out} {err}");
    assert!(out.starts_with("hi\napt "), "{out} {err}");
    assert!(out.ends_with("ok\n"), "{out}");
    assert!(err.is_empty(), "{err}");
    assert_eq!(host.probe(&["ptrace"], limits.clone()), libc::ENOSYS);
    assert_eq!(host.probe(&["bpf"], limits), libc::ENOSYS);
}

/// Processes whose argv is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    all_processes()
        .into_iter()
        .filter(|(_, a)| a == argv)
        .map(|(pid, _)| pid)
        .collect()
}

/// `net`: no network at all (loopback is down, so even 127.0.0.1 is unreachable); `mount`: a
/// private, empty /tmp whose files never reach the host's; `pid`: PID 1 of its own namespace. As root and as nobody (through a
/// user namespace), where the kernel allows unprivileged user namespaces.
fn check_namespaces(unprivileged: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut host = Host::start("namespaces", unprivileged);
    let limits = json!({"namespaces": ["net"]});
    assert_eq!(host.probe(&["connect", &port], json!({})), 0);
    assert_eq!(
        host.probe(&["connect", &port], limits),
        libc::ENETUNREACH,
        "loopback reachable from a new network namespace"
    );
    let name = format!("wisp-private-tmp-{}", std::process::id());
    let script = format!("touch /tmp/{name} && ls -A /tmp");
    let answer = host.run(&["sh", "-c", &script], json!({"namespaces": ["mount"]}));
    let e = answer.enforcement().clone();
    let (done, out, err) = answer.done();
    assert_eq!(done.status, Status::Ok, "{out} {err}");
    assert_eq!(out.trim(), name, "/tmp was not private and empty");
    assert!(
        !Path::new("/tmp").join(&name).exists(),
        "the file reached the host's /tmp"
    );
    assert!(e.complete && e.no_new_privs, "{e:?}");

    // pid: PID 1, its own /proc showing only its own processes (sh, ls, grep).
    let answer = host.run(
        &["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"],
        json!({"namespaces": ["pid"]}),
    );
    let e = answer.enforcement().clone();
    let (done, out, err) = answer.done();
    assert_eq!(done.status, Status::Ok, "{out} {err}");
    // ls may read /proc before sh has forked grep: 2 or 3.
    assert!(
        out == "1\n3\n" || out == "1\n2\n",
        "not PID 1 of a fresh namespace: {out:?} {err}"
    );
    assert_eq!(e.namespaces, [Namespace::Pid]);
    // Everything in it dies with it, even what left the process group, without a cgroup.
    // (A marker of its own per variant: the root and nobody tests run at the same time.)
    let marker = if unprivileged { "100.7891" } else { "100.7892" };
    let script = format!("setsid sleep {marker} & sleep {marker}");
    let (done, _, _) = host
        .run(
            &["sh", "-c", &script],
            json!({"namespaces": ["pid"], "timeout_ms": 1000}),
        )
        .done();
    assert_eq!(done.status, Status::Timeout);
    let gone = wait_for(Duration::from_millis(500), || {
        processes_running(&["sleep", marker])
            .is_empty()
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "a process of the PID namespace survived its PID 1"
    );
    // The exit code of PID 1 is the command's.
    let (done, _, _) = host
        .run(&["sh", "-c", "exit 7"], json!({"namespaces": ["pid"]}))
        .done();
    assert_eq!(done.exit_code, Some(7));
}

#[test]
fn landlock_confines_writes_and_reads_as_root() {
    if kernel_has(landlock_abi() >= 3, "Landlock ABI 3") && root_or_explain("Landlock as root") {
        check_landlock_fs(false);
    }
}

#[test]
fn landlock_confines_writes_and_reads_as_nobody() {
    if kernel_has(landlock_abi() >= 3, "Landlock ABI 3")
        && root_or_explain("running the runner as nobody")
    {
        check_landlock_fs(true);
    }
}

#[test]
fn landlock_allows_only_the_granted_tcp_ports() {
    if !kernel_has(landlock_abi() >= 4, "Landlock ABI 4 (TCP rules)") {
        return;
    }
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let denied = TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, d) = (
        allowed.local_addr().unwrap().port(),
        denied.local_addr().unwrap().port(),
    );
    let mut host = Host::start("landlock-net", false);
    let limits = json!({"net": {"connect": [a]}});
    assert_eq!(host.probe(&["connect", &a.to_string()], limits.clone()), 0);
    assert_eq!(
        host.probe(&["connect", &d.to_string()], limits.clone()),
        libc::EACCES,
        "connect to a port not allowed"
    );
    // Binding is denied too (no bind port granted).
    assert_eq!(host.probe(&["bind", "0"], limits.clone()), libc::EACCES);
    // And without rules, both work: the refusals above were the sandbox's.
    assert_eq!(host.probe(&["connect", &d.to_string()], json!({})), 0);
}

#[test]
fn a_fork_bomb_is_capped_by_pids_and_the_host_survives() {
    if !root_or_explain("cgroup limits") {
        return;
    }
    let mut host = Host::start("pids", false);
    let bomb = "b() { b | b & }; b; sleep 5";
    let answer = host.run(
        &["sh", "-c", bomb],
        json!({"pids_max": 32, "timeout_ms": 3000}),
    );
    let cg = answer
        .enforcement()
        .cgroup
        .clone()
        .expect("no cgroup report");
    assert_eq!(cg.pids_max, Some(32));
    assert!(cg.pids_refused > 0, "no fork was refused: {cg:?}");
    let path = cg.path.clone();
    // Everything of it is gone, and the runner still answers.
    assert!(
        wait_for(Duration::from_secs(5), || {
            (!Path::new("/sys/fs/cgroup/pids")
                .join(path.trim_start_matches('/'))
                .exists())
            .then_some(())
        })
        .is_some(),
        "the command's cgroup {path} was not removed"
    );
    let (done, out, _) = host.run(&["echo", "alive"], json!({})).done();
    assert_eq!((done.status, out.as_str()), (Status::Ok, "alive\n"));
}

#[test]
fn a_memory_hog_is_oom_killed_and_reported_as_oom() {
    if !root_or_explain("cgroup limits") {
        return;
    }
    let mut host = Host::start("oom", false);
    let answer = host.run(&[PROBE, "alloc", "200"], json!({"memory_max": 64 << 20}));
    let cg = answer
        .enforcement()
        .cgroup
        .clone()
        .expect("no cgroup report");
    let (done, stdout, _) = answer.done();
    assert_eq!(done.status, Status::Oom, "{done:?} {stdout}");
    assert!(
        !stdout.contains("allocated"),
        "the allocation succeeded: {stdout}"
    );
    assert_eq!(cg.memory_max, Some(64 << 20));
    assert!(cg.oom_kills >= 1, "{cg:?}");
}

#[test]
fn a_busy_loop_under_a_fifth_of_a_cpu_uses_about_a_fifth() {
    if !root_or_explain("cgroup limits") {
        return;
    }
    let mut host = Host::start("cpu", false);
    let answer = host.run(&[PROBE, "spin", "3000"], json!({"cpu_millis": 200}));
    let cg = answer
        .enforcement()
        .cgroup
        .clone()
        .expect("no cgroup report");
    let (done, _, _) = answer.done();
    assert_eq!(done.status, Status::Ok);
    assert_eq!(cg.cpu_max.as_deref(), Some("20000 100000"));
    let wall = done.duration_ms as f64;
    let share = cg.cpu_ms as f64 / wall;
    assert!(
        (0.1..=0.3).contains(&share),
        "used {} ms of CPU in {wall} ms: a share of {share:.2}, expected about 0.2",
        cg.cpu_ms
    );
}

#[test]
fn seccomp_default_refuses_the_dangerous_families_with_eperm() {
    if !root_or_explain("seccomp probes (root could otherwise do these)") {
        return;
    }
    let mut host = Host::start("seccomp-default", false);
    let limits = json!({"seccomp": "default"});
    for probe in [
        "unshare",
        "mount",
        "bpf",
        "ptrace",
        "keyctl",
        "clone-newuser",
        "x32",
    ] {
        let without = host.probe(&[probe], json!({}));
        let with = host.probe(&[probe], limits.clone());
        assert_eq!(
            with,
            libc::EPERM,
            "{probe} under `default` (without: {without})"
        );
        assert_ne!(
            without,
            libc::EPERM,
            "{probe} is refused even without a filter"
        );
    }
    // Ordinary work still runs.
    let (done, out, _) = host
        .run(&["sh", "-c", "ls / >/dev/null && echo ok"], limits)
        .done();
    assert_eq!((done.status, out.as_str()), (Status::Ok, "ok\n"));
}

#[test]
fn seccomp_strict_runs_shells_coreutils_and_apt_and_answers_the_rest_enosys() {
    check_strict(false);
}

#[test]
fn seccomp_strict_works_for_nobody_too() {
    if root_or_explain("running the runner as nobody") {
        check_strict(true);
    }
}

#[test]
fn a_timeout_leaves_no_process_behind() {
    let mut host = Host::start("timeout-tree", false);
    let (done, _, _) = host
        .run(
            &["sh", "-c", "sleep 100.123 & sleep 100.123"],
            json!({"timeout_ms": 1000}),
        )
        .done();
    assert_eq!(done.status, Status::Timeout);
    assert!(
        wait_for(Duration::from_secs(2), || processes_running(&[
            "sleep", "100.123"
        ])
        .is_empty()
        .then_some(()))
        .is_some(),
        "sleeps survived the timeout: {:?}",
        processes_running(&["sleep", "100.123"])
    );
}

#[test]
fn a_timeout_kills_through_the_cgroup_what_left_the_process_group() {
    if !root_or_explain("cgroup limits") {
        return;
    }
    let mut host = Host::start("timeout-cgroup", false);
    // `setsid` puts the sleep in a session and group of its own: only the cgroup finds it.
    let answer = host.run(
        &["sh", "-c", "setsid sleep 100.456 & sleep 100.456"],
        json!({"timeout_ms": 1000, "pids_max": 100}),
    );
    let e = answer.enforcement().clone();
    let (done, _, _) = answer.done();
    assert_eq!(done.status, Status::Timeout);
    assert!(
        wait_for(Duration::from_millis(500), || processes_running(&[
            "sleep", "100.456"
        ])
        .is_empty()
        .then_some(()))
        .is_some(),
        "a sleep outside the process group survived: {:?} (kill: {})",
        processes_running(&["sleep", "100.456"]),
        e.kill
    );
    let v2 = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - cgroup2 ");
    if v2 {
        assert_eq!(e.kill, "cgroup.kill", "a writable cgroup2 is mounted");
    }
    #[allow(clippy::print_stdout)]
    {
        println!(
            "tree killed with {} (cgroup {:?})",
            e.kill,
            e.cgroup.map(|c| c.version)
        );
    }
}

#[test]
fn namespaces_cut_the_network_give_a_private_tmp_and_a_pid_namespace_as_root() {
    if root_or_explain("namespaces as root") {
        check_namespaces(false);
    }
}

#[test]
fn namespaces_cut_the_network_give_a_private_tmp_and_a_pid_namespace_as_nobody() {
    let userns = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        .map_or(true, |v| v.trim() == "1");
    if kernel_has(userns, "unprivileged user namespaces") && root_or_explain("running as nobody") {
        check_namespaces(true);
    }
}
