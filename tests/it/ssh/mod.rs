//! The SSH transport against real OpenSSH sshd hosts on loopback: reach, push, run, leave
//! nothing behind; strict host keys; unreachable hosts; a corrupted upload.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test
#![allow(clippy::print_stdout)] // helpers print what wisp said, for the failure report

use std::process::{Command, Output};

use wisp_tests::sshd::Fleet;

mod become_root;
mod certificates;
mod client_config;
mod hosts;
mod logins;
mod reach;

/// Sets `user`'s password.
fn set_password(user: &str, password: &str) {
    let mut chpasswd = Command::new("chpasswd")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        chpasswd.stdin.as_mut().unwrap(),
        format!("{user}:{password}\n").as_bytes(),
    )
    .unwrap();
    drop(chpasswd.stdin.take());
    assert!(chpasswd.wait().unwrap().success(), "chpasswd failed");
}

/// Starts an ssh-agent on a socket in the fleet's directory, holding `keys`.
fn agent_with(
    fleet: &Fleet,
    keys: &[std::path::PathBuf],
) -> (std::process::Child, std::path::PathBuf) {
    let sock = fleet.dir.0.join("agent.sock");
    let agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = wisp_tests::wait_for(std::time::Duration::from_secs(5), || {
        sock.exists().then_some(())
    });
    assert!(up.is_some(), "ssh-agent did not start");
    for k in keys {
        let added = Command::new("ssh-add")
            .arg(k)
            .env("SSH_AUTH_SOCK", &sock)
            .output()
            .unwrap();
        assert!(
            added.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&added.stderr)
        );
    }
    (agent, sock)
}

/// Creates a login user (home, /bin/sh) unless it exists; a parallel test may race us.
fn ensure_user(name: &str) {
    ensure_user_with_shell(name, "/bin/sh");
}

/// Creates a login user with `shell` as login shell (or gives an existing one that shell),
/// unlocked for key logins: useradd leaves the account locked ("!"), and sshd refuses
/// locked accounts for every method; "*" matches no password but is not a lock.
fn ensure_user_with_shell(name: &str, shell: &str) {
    let exists = || {
        Command::new("id")
            .arg(name)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // Tests beside this one edit /etc/passwd too, and its lock makes a tool fail at once:
    // a few tries, a moment apart.
    let with_retries = |args: &[&str], tool: &str| {
        (0..20).any(|_| {
            let done = Command::new(tool).args(args).status().unwrap().success();
            if !done {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            done
        })
    };
    if !exists() {
        with_retries(&["--create-home", "--shell", shell, name], "useradd");
    }
    assert!(exists(), "cannot create the test user {name}");
    // Changed only when needed: a test beside this one may be logging in as this user with
    // a password it set.
    let entry = |db: &str| {
        Command::new("getent")
            .args([db, name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    if !entry("passwd").ends_with(&format!(":{shell}")) {
        assert!(
            with_retries(&["--shell", shell, name], "usermod"),
            "cannot set {name}'s shell to {shell}"
        );
    }
    if entry("shadow")
        .split(':')
        .nth(1)
        .is_some_and(|p| p.starts_with('!'))
    {
        assert!(
            with_retries(&["-p", "*", name], "usermod"),
            "cannot unlock {name}"
        );
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    println!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `wisp VERB TARGETS` against the fleet: its known_hosts, no agent, no ~/.ssh/config, a
/// generous connect timeout (tests about timeouts set their own; the last value wins), and no
/// key: callers add the credentials they test.
fn base(fleet: &Fleet, verb: &str, targets: &str) -> Command {
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args([verb, targets, "--known-hosts"])
        .arg(&fleet.known_hosts)
        .args(["--connect-timeout", "30s", "--ssh-config", "/dev/null"]);
    c
}

/// [`base`] as root with the fleet's client key (the hosts allow root logins by key).
fn sub(fleet: &Fleet, verb: &str, targets: &str) -> Command {
    let mut c = base(fleet, verb, targets);
    c.args(["--user", "root", "--key"]).arg(&fleet.client_key);
    c
}
