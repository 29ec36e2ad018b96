//! Attacker 4, at the connection: a host that presents another key, a jump host, a host
//! that pours out garbage, a host whose facts are shell code.

use super::*;

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

    // A CA line holding the host's own key vouches for certificates, not for the key: a
    // host a CA speaks for that offers a plain key is refused.
    let ca = fleet.dir.0.join("known_ca");
    let ed_pub = std::fs::read_to_string(ed25519.with_extension("pub")).unwrap();
    std::fs::write(&ca, format!("@cert-authority {name} {ed_pub}")).unwrap();
    fleet.restart_with(0, &format!("HostKey {}", ed25519.display()));
    let (out, stderr) = run_ssh(&fleet, &ca, &[]);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("offered a plain host key"), "{stderr}");
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
script=$(printf '%s' "$SSH_ORIGINAL_COMMAND" | sed -n 's/.*head -c \([0-9]*\).*/\1/p')
head -c "$script" > /dev/null
read -r arch enc size want raw
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
