//! Hosts unlike the test fleet, built as real ones are: every family of login shell, a
//! CIS-hardened host whose temp directories are all `noexec`, a host whose TMPDIR is full.
//! Each run starts the runner where it can, and leaves nothing anywhere.

use super::*;

/// Entries named `wisp-*` in `dir` as the host whose sshd is `pid` sees it (its mount
/// namespace: `/proc/PID/root`).
fn wisp_entries(pid: u32, dir: &str) -> Vec<String> {
    let seen = format!("/proc/{pid}/root{dir}");
    std::fs::read_dir(&seen)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("wisp-"))
                .map(|n| format!("{dir}/{n}"))
                .collect()
        })
        .unwrap_or_default()
}

/// Every place the bootstrap may stage in, as host `pid` sees them, with what is left there.
fn left_on_host(pid: u32, fleet: &Fleet, homes: &[&str]) -> Vec<String> {
    let remote_tmp = fleet.remote_tmp.display().to_string();
    let mut places = vec!["/tmp", "/var/tmp", "/dev/shm", "/run", "/root", &remote_tmp];
    places.extend(homes);
    let mut left: Vec<String> = places.iter().flat_map(|p| wisp_entries(pid, p)).collect();
    for home in homes {
        left.extend(wisp_entries(pid, &format!("{home}/.cache")));
    }
    left
}

/// The login shells of real fleets, each a user of its own: the bootstrap's exec request
/// must pass through every one of them unchanged. csh and tcsh cannot take a newline inside
/// single quotes, which is what the request was before it became one line.
#[test]
fn every_family_of_login_shell_starts_the_runner() {
    if !wisp_tests::root_or_explain("the login-shell test (it creates users)") {
        return;
    }
    // busybox picks its applet by the name it was started as.
    let ash = "/usr/local/bin/ash";
    if !std::path::Path::new(ash).exists() {
        let _ = std::os::unix::fs::symlink("/usr/bin/busybox", ash);
    }
    let shells = [
        ("wisp-sh-bash", "/bin/bash"),
        ("wisp-sh-zsh", "/usr/bin/zsh"),
        ("wisp-sh-fish", "/usr/bin/fish"),
        ("wisp-sh-tcsh", "/usr/bin/tcsh"),
        ("wisp-sh-csh", "/usr/bin/bsd-csh"),
        ("wisp-sh-ash", ash),
    ];
    for (user, shell) in shells {
        assert!(
            std::path::Path::new(shell).exists(),
            "{shell} is missing: cargo xtask test installs it"
        );
        ensure_user_with_shell(user, shell);
    }
    let fleet = Fleet::start(1);
    let host = fleet.hosts[0].target();
    let targets: Vec<String> = shells.iter().map(|(u, _)| format!("{u}@{host}")).collect();
    let out = run(sub(&fleet, "run", &targets.join(",")).arg("--json").args([
        "--",
        "sh",
        "-c",
        "echo \"$(id -un) ran\"",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (user, shell) in shells {
        assert!(
            stdout.contains(&format!("{user} ran")),
            "{shell}: the runner did not start: {stdout}"
        );
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    fleet.assert_clean();
}

/// A CIS-hardened host: `/tmp`, `/var/tmp`, `/dev/shm` and TMPDIR are all `noexec`. An
/// unprivileged user with no `~/.cache` stages in their home; root stages in `/run`; a user
/// who becomes root through sudo has root's copy in `/run` too. Nothing stays anywhere.
#[test]
fn a_host_with_every_temp_dir_noexec_stages_in_home_and_run() {
    if !wisp_tests::root_or_explain("the hardened-host test (it mounts noexec tmpfs)") {
        return;
    }
    let user = "wisp-hardened";
    ensure_user_with_shell(user, "/bin/sh");
    let home = format!("/home/{user}");
    let _ = std::fs::remove_dir_all(format!("{home}/.cache"));
    std::fs::write(
        "/etc/sudoers.d/wisp-hardened-test",
        format!("{user} ALL=(ALL) NOPASSWD: ALL\n"),
    )
    .unwrap();
    let fleet = Fleet::start_hardened(1, "");
    let pid = fleet.hosts[0].pid().unwrap();
    let host = fleet.hosts[0].target();
    let as_user = format!("{user}@{host}");
    let whoami = ["--", "sh", "-c", "id -u; pwd"];

    let out = run(sub(&fleet, "run", &as_user).args(whoami));
    assert_eq!(out.status.code(), Some(0), "the user's run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("| 1"));
    assert_eq!(left_on_host(pid, &fleet, &[&home]), Vec::<String>::new());

    let out = run(sub(&fleet, "run", &host).args(whoami));
    assert_eq!(out.status.code(), Some(0), "root's run");
    assert_eq!(left_on_host(pid, &fleet, &[&home]), Vec::<String>::new());

    let out = run(sub(&fleet, "run", &as_user).arg("--become").args(whoami));
    assert_eq!(out.status.code(), Some(0), "the user's run as root");
    assert!(String::from_utf8_lossy(&out.stdout).contains("| 0\n"));
    assert_eq!(left_on_host(pid, &fleet, &[&home]), Vec::<String>::new());
    assert!(
        !std::path::Path::new(&format!("{home}/.cache")).exists(),
        "a ~/.cache was made and left"
    );
    let _ = std::fs::remove_file("/etc/sudoers.d/wisp-hardened-test");
    fleet.assert_clean();
}

/// TMPDIR is a full filesystem: the bootstrap sees it has no room before it reads the upload,
/// and stages in the next base (here a `/tmp` that allows execution).
#[test]
fn a_full_temp_dir_is_passed_over() {
    if !wisp_tests::root_or_explain("the full-TMPDIR test (it mounts a tiny tmpfs)") {
        return;
    }
    let fill = "mount -t tmpfs -o size=512k,mode=1777 tmpfs \"$REMOTE_TMP\"\n\
                head -c 600000 /dev/zero > \"$REMOTE_TMP/filler\" || true\n\
                mount -t tmpfs -o mode=1777 tmpfs /tmp";
    let fleet = Fleet::start_in_namespace(1, fill);
    let pid = fleet.hosts[0].pid().unwrap();
    let out = run(sub(&fleet, "run", &fleet.targets()).args(["--", "echo", "ran"]));
    assert_eq!(out.status.code(), Some(0), "no fallback past a full TMPDIR");
    assert!(String::from_utf8_lossy(&out.stdout).contains("| ran"));
    assert_eq!(left_on_host(pid, &fleet, &[]), Vec::<String>::new());
}

/// Two hosts cloned from one image: the same host key, each its own machine id (and name).
/// Facts cached for one under `--facts-ttl` are not the other's.
#[test]
fn cloned_hosts_sharing_a_host_key_do_not_share_cached_facts() {
    if !wisp_tests::root_or_explain("the cloned-hosts test (it bind-mounts /etc/machine-id)") {
        return;
    }
    let setup = "id=\"$REMOTE_TMP/../machine-id-$HOST_NO\"\n\
                 printf '%032x\\n' $((HOST_NO + 7)) > \"$id\"\n\
                 mount --bind \"$id\" /etc/machine-id\n\
                 hostname \"clone$HOST_NO\"";
    let mut fleet = Fleet::start_in_namespace(2, setup);
    // Host 1 is a clone of host 0: it presents host 0's key, and known_hosts says so.
    let key0 = fleet.hosts[0].config.with_file_name("host0_ed25519");
    fleet.restart_with(1, &format!("HostKey {}", key0.display()));
    let known = format!(
        "[{}]:{} {}\n[{}]:{} {}\n",
        fleet.hosts[0].addr,
        fleet.hosts[0].port,
        fleet.hosts[0].host_key,
        fleet.hosts[1].addr,
        fleet.hosts[1].port,
        fleet.hosts[0].host_key
    );
    std::fs::write(&fleet.known_hosts, known).unwrap();
    let plan = fleet.dir.0.join("name.toml");
    std::fs::write(
        &plan,
        "[[task]]\nop = \"exec\"\nargv = [\"echo\", \"named {{ facts.hostname | quote }}\"]\n",
    )
    .unwrap();
    let mut names = Vec::new();
    for h in 0..2 {
        let out = run(sub(&fleet, "apply", &plan.display().to_string())
            .arg(fleet.hosts[h].target())
            .args(["--facts-ttl", "1h"]));
        assert_eq!(out.status.code(), Some(0));
        names.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    assert!(names[0].contains("named clone0"), "{}", names[0]);
    assert!(
        names[1].contains("named clone1"),
        "the clone got the first host's cached facts: {}",
        names[1]
    );
}

/// A host whose SSH server is dropbear (as on routers and small images), with a private /tmp:
/// the runner starts, and nothing stays in its /tmp.
#[test]
fn a_dropbear_host_starts_the_runner() {
    if !wisp_tests::root_or_explain("the dropbear test (it mounts over /root and /tmp)") {
        return;
    }
    assert!(
        std::path::Path::new("/usr/sbin/dropbear").exists(),
        "dropbear is missing: cargo xtask test installs it (dropbear-bin)"
    );
    let dir = wisp_tests::ScratchDir::new_in(
        std::path::Path::new(wisp_tests::sshd::NAMESPACED_FLEETS),
        "dropbear",
    );
    let host_key = dir.0.join("host_key");
    let made = Command::new("dropbearkey")
        .args(["-t", "ed25519", "-f"])
        .arg(&host_key)
        .output()
        .unwrap();
    assert!(made.status.success(), "dropbearkey failed");
    let shown = Command::new("dropbearkey")
        .arg("-y")
        .arg("-f")
        .arg(&host_key)
        .output()
        .unwrap();
    let public = String::from_utf8_lossy(&shown.stdout)
        .lines()
        .find(|l| l.starts_with("ssh-"))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .unwrap();
    let client = dir.0.join("client");
    wisp_tests::sshd::keygen_of_type(&client, "dropbear-client", "ed25519");
    let (addr, port) = (format!("127.{}.251.1", 10 + std::process::id() % 200), 2299);
    std::fs::write(
        dir.0.join("known_hosts"),
        format!("[{addr}]:{port} {public}\n"),
    )
    .unwrap();
    let setup = format!(
        "mount -t tmpfs -o mode=0700 tmpfs /root\nmkdir -m 700 /root/.ssh\n\
         cp '{pub_key}' /root/.ssh/authorized_keys\nmount -t tmpfs -o mode=1777 tmpfs /tmp\n\
         exec dropbear -F -E -s -p {addr}:{port} -r '{key}'",
        pub_key = client.with_extension("pub").display(),
        key = host_key.display()
    );
    let mut server = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-ec", &setup])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = wisp_tests::wait_for(std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect((addr.as_str(), port)).ok()
    });
    assert!(up.is_some(), "dropbear did not come up");
    let mut c = wisp_tests::wisp_command!(&dir.0);
    c.args(["run", &format!("{addr}:{port}"), "--user", "root", "--key"])
        .arg(&client)
        .arg("--known-hosts")
        .arg(dir.0.join("known_hosts"))
        .args(["--ssh-config", "/dev/null", "--", "echo", "via dropbear"]);
    let out = wisp_tests::wisp::run(&mut c, &dir.0);
    let pid = server.id();
    let clean = wisp_tests::wait_for(std::time::Duration::from_secs(3), || {
        wisp_entries(pid, "/tmp").is_empty().then_some(())
    });
    let left = if clean.is_some() {
        Vec::new()
    } else {
        wisp_entries(pid, "/tmp")
    };
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("| via dropbear"));
    assert_eq!(left, Vec::<String>::new(), "left in dropbear's /tmp");
}
