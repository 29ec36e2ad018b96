//! Logging in: an unprivileged user, an agent's key, a jump host from ssh_config, passwords
//! for login and for sudo, RSA, ECDSA and encrypted keys.

use super::*;

/// A login user without privileges, created once.
const PLAIN_USER: &str = "wisp-test";

/// A login user with a real password, whom sudo asks for it.
const PASSWORD_USER: &str = "wisp-become";

const PASSWORD: &str = "correct horse battery staple";

fn password_user() {
    ensure_user(PASSWORD_USER);
    set_password(PASSWORD_USER, PASSWORD);
    // sudo asks this user for the password (no NOPASSWD).
    let rule = std::path::Path::new("/etc/sudoers.d/wisp-become-test");
    std::fs::write(rule, format!("{PASSWORD_USER} ALL=(ALL) ALL\n")).unwrap();
    let _ = Command::new("chmod").arg("0440").arg(rule).status();
}

/// Generates a client key of `kind` (optionally encrypted) and authorizes it on the fleet.
fn authorize_new_key(
    fleet: &Fleet,
    kind: &str,
    bits: Option<&str>,
    passphrase: &str,
) -> std::path::PathBuf {
    let path = fleet.dir.0.join(format!(
        "client_{kind}{}",
        if passphrase.is_empty() { "" } else { "_enc" }
    ));
    let mut keygen = Command::new("ssh-keygen");
    keygen
        .args(["-q", "-t", kind, "-N", passphrase, "-f"])
        .arg(&path);
    if let Some(bits) = bits {
        keygen.args(["-b", bits]);
    }
    assert!(keygen.status().unwrap().success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    let authorized = fleet.dir.0.join("authorized_keys");
    let mut all = std::fs::read_to_string(&authorized).unwrap();
    all.push_str(&public);
    std::fs::write(&authorized, all).unwrap();
    path
}

/// `wisp run` with only `key` to offer (no agent, no default keys).
fn with_only_key(fleet: &Fleet, key: &std::path::Path) -> Command {
    let mut c = base(fleet, "run", &fleet.targets());
    c.args(["--user", "root", "--key"]).arg(key);
    c
}

#[test]
fn an_unprivileged_login_user_works_and_leaves_nothing() {
    if !wisp_tests::root_or_explain("the unprivileged-login test") {
        return;
    }
    ensure_user(PLAIN_USER);
    // useradd leaves the account locked ("!"), and sshd refuses locked accounts for every
    // method; "*" matches no password but is not a lock.
    assert!(
        Command::new("usermod")
            .args(["-p", "*", PLAIN_USER])
            .status()
            .unwrap()
            .success()
    );
    let fleet = Fleet::start(2);
    let targets: Vec<String> = fleet
        .hosts
        .iter()
        .map(|h| format!("{PLAIN_USER}@{}", h.target()))
        .collect();
    let out = run(sub(&fleet, "run", &targets.join(",")).args(["--", "sh", "-c", "id -un; id -u"]));
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches(&format!("| {PLAIN_USER}")).count(),
        2,
        "{stdout}"
    );
    assert!(!stdout.contains("| 0\n"), "ran as root: {stdout}");
    let out = run(sub(&fleet, "ping", &targets.join(",")).arg("--json"));
    let pings = String::from_utf8_lossy(&out.stdout);
    assert!(
        pings
            .lines()
            .filter(|l| l.contains(r#""type":"ping""#))
            .all(|l| !l.contains(r#""uid":0"#)),
        "{pings}"
    );
    fleet.assert_clean();
}

#[test]
fn an_ssh_agent_key_works_without_key_files() {
    let fleet = Fleet::start(1);
    let (mut agent, sock) = agent_with(&fleet, std::slice::from_ref(&fleet.client_key));
    // No --key and a HOME without ~/.ssh: the agent is the only way in.
    let home = fleet.dir.0.join("empty-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = run(base(&fleet, "run", &fleet.targets())
        .env("SSH_AUTH_SOCK", &sock)
        .env("HOME", &home)
        .args(["--user", "root", "--", "true"]));
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(out.status.code(), Some(0), "the agent's key was not used");
    fleet.assert_clean();
}

#[test]
fn proxy_jump_through_two_hosts_from_ssh_config() {
    let mut fleet = Fleet::start(3);
    let (a, b, c) = (&fleet.hosts[0], &fleet.hosts[1], &fleet.hosts[2]);
    let config = fleet.dir.0.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host inner-target\n  HostName {}\n  Port {}\n  User root\n  ProxyJump {}:{},root@{}:{}\nHost *\n  User root\n",
            c.addr, c.port, a.addr, a.port, b.addr, b.port
        ),
    )
    .unwrap();
    let jump = |fleet: &Fleet| {
        let mut cmd = sub(fleet, "run", "inner-target");
        cmd.arg("--ssh-config")
            .arg(&config)
            .args(["--", "sh", "-c", "echo via jumps"]);
        cmd
    };
    let out = run(&mut jump(&fleet));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("inner-target | via jumps"));
    fleet.assert_clean();

    // Proof that the traffic went through the jumps: the second one may no longer forward.
    fleet.restart_with(1, "AllowTcpForwarding no");
    let out = run(&mut jump(&fleet));
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "jump host root@{}:{} could not reach",
            fleet.hosts[1].addr, fleet.hosts[1].port
        )),
        "{err}"
    );
    fleet.assert_clean();
}

#[test]
fn ask_pass_logs_in_with_a_password_and_ask_become_pass_runs_as_root() {
    if !wisp_tests::root_or_explain("the password and sudo-password test") {
        return;
    }
    assert!(
        std::path::Path::new("/usr/bin/sudo").exists(),
        "sudo is missing: cargo xtask test installs it"
    );
    password_user();
    let mut fleet = Fleet::start(1);
    fleet.restart_with(0, "PasswordAuthentication yes");
    let target = format!("{PASSWORD_USER}@{}", fleet.hosts[0].target());
    let home = fleet.dir.0.join("no-keys-home");
    std::fs::create_dir_all(&home).unwrap();
    // No agent, no key files: only the password can log in.
    let wisp = |extra: &[&str], become_password: &str| {
        let mut c = base(&fleet, "run", &target);
        c.env("HOME", &home)
            .env("WISP_SSH_PASSWORD", PASSWORD)
            .env("WISP_BECOME_PASSWORD", become_password)
            .args(["--ask-pass", "--connect-timeout", "10s"])
            .args(extra)
            .args(["--", "id", "-u"]);
        c
    };
    let out = run(&mut wisp(&[], ""));
    assert_eq!(out.status.code(), Some(0), "password login");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("| 0\n"),
        "logged in as the user, not root"
    );

    let out = run(&mut wisp(&["--ask-become-pass"], PASSWORD));
    assert_eq!(out.status.code(), Some(0), "sudo with the password");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("| 0\n"),
        "ran as root"
    );

    // The password is never in an argument list, on either side: nothing running carries it.
    let leaked = wisp_tests::all_processes()
        .into_iter()
        .any(|(_, argv)| argv.iter().any(|a| a.contains(PASSWORD)));
    assert!(!leaked);

    let out = run(&mut wisp(
        &["--ask-become-pass", "--connect-timeout", "5s"],
        "wrong password",
    ));
    assert_eq!(
        out.status.code(),
        Some(7),
        "a wrong sudo password starts nothing, and the host could not start it"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("wrong password"),
        "secrets never reach messages"
    );
    fleet.assert_clean();
}

#[test]
fn rsa_and_ecdsa_keys_work_and_encrypted_keys_take_their_passphrase() {
    let fleet = Fleet::start(1);
    for (kind, bits) in [("rsa", Some("2048")), ("ecdsa", None)] {
        let key = authorize_new_key(&fleet, kind, bits, "");
        let out = run(with_only_key(&fleet, &key).args(["--", "true"]));
        assert_eq!(out.status.code(), Some(0), "{kind} key");
    }
    let encrypted = authorize_new_key(&fleet, "ed25519", None, "key passphrase");
    // Without a passphrase (and no terminal to ask on), the error says how to give one.
    let out = run(with_only_key(&fleet, &encrypted)
        .stdin(std::process::Stdio::null())
        .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("WISP_SSH_PASSPHRASE"),
        "the way forward is named"
    );
    let out = run(with_only_key(&fleet, &encrypted)
        .env("WISP_SSH_PASSPHRASE", "key passphrase")
        .args(["--", "true"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the passphrase from the environment opens the key"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("key passphrase"));
    fleet.assert_clean();
}

/// A host where sshd takes passwords only through PAM's keyboard-interactive prompt
/// (`PasswordAuthentication no`): `--ask-pass` answers it.
#[test]
fn ask_pass_answers_a_keyboard_interactive_prompt() {
    if !wisp_tests::root_or_explain("the keyboard-interactive test") {
        return;
    }
    password_user();
    let mut fleet = Fleet::start(1);
    fleet.restart_with(0, "UsePAM yes");
    fleet.restart_with(0, "PasswordAuthentication no");
    fleet.restart_with(0, "KbdInteractiveAuthentication yes");
    let target = format!("{PASSWORD_USER}@{}", fleet.hosts[0].target());
    let home = fleet.dir.0.join("no-keys-home");
    std::fs::create_dir_all(&home).unwrap();
    let attempt = |password: &str| {
        let mut c = base(&fleet, "run", &target);
        c.env("HOME", &home)
            .env("WISP_SSH_PASSWORD", password)
            .args(["--ask-pass", "--", "id", "-un"]);
        run(&mut c)
    };
    let out = attempt(PASSWORD);
    assert_eq!(out.status.code(), Some(0), "the prompt was answered");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("| {PASSWORD_USER}")));
    let out = attempt("not the password");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keyboard-interactive"));
    fleet.assert_clean();
}
