//! Attacker 3: another user on the operator's machine, who can write where wisp writes (a
//! shared directory, the state store's) or read what a command run there is given.

use super::*;

/// Case: files wisp writes on the operator's machine in a directory another user can write
/// — the secrets file's replacement, `--output-dir`'s host files — never follow a link that
/// user planted; the write is refused or lands beside it, and the victim is unchanged.
#[test]
fn operator_side_files_do_not_follow_planted_links() {
    if !root_or_explain("links planted by another user") {
        return;
    }
    let tmp = ScratchDir::new("attack-links");
    let shared = SharedDir::new(&tmp);
    let wisp = |args: &[&str], stdin: &str| {
        let mut c = wisp_tests::wisp_command!(&tmp.0);
        c.args(args)
            .current_dir(&shared.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        wisp_tests::wisp::show(&c, &out, &tmp.0);
        out
    };
    let key = wisp(&["secrets", "keygen", "--out", "op.key"], "");
    let recipient = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    let init = wisp(&["secrets", "init", "s.age", "--recipient", &recipient], "");
    assert_eq!(init.status.code(), Some(0));
    // Every name the old code could have used for its replacement.
    shared.plant("s.age.tmp");
    shared.plant("s.tmp");
    let set = wisp(
        &["secrets", "set", "s.age", "db_pass", "--identity", "op.key"],
        "v\n",
    );
    assert!(
        shared.victim_untouched(),
        "secrets set wrote through a planted link"
    );
    assert_eq!(
        set.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );

    shared.plant("localhost.stdout");
    let out_dir = shared.dir.to_str().unwrap();
    let run = wisp(
        &[
            "run",
            "localhost",
            "--output-dir",
            out_dir,
            "--",
            "echo",
            "x",
        ],
        "",
    );
    assert!(
        shared.victim_untouched(),
        "--output-dir wrote through a planted link"
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("localhost.stdout") && stderr.contains("symbolic link"),
        "{stderr}"
    );
}

/// Case: `--output-dir` on a full disk. The output that could not be saved fails the host
/// with the file and the reason; nothing is reported ok while its output is lost.
#[test]
fn output_lost_to_a_full_disk_fails_the_host() {
    if !root_or_explain("mounting a small tmpfs") {
        return;
    }
    let tmp = ScratchDir::new("attack-full");
    let small = tmp.0.join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount a 64 KiB tmpfs");
    let out = run_local(
        &tmp,
        &["--output-dir", small.to_str().unwrap()],
        &["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x"],
    );
    let _ = Command::new("umount").arg(&small).status();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("localhost.stdout") && stderr.contains("No space left on device"),
        "{stderr}"
    );
}

/// Case: the controller holds secrets in its environment (`WISP_AGE_KEY`,
/// `WISP_SSH_PASSWORD`, `WISP_BECOME_PASSWORD`, an agent socket) and runs `env` on localhost
/// under a strict sandbox, and on a host over SSH. No command sees a `WISP_*` or `SSH_*`
/// variable: the local runner starts with a login's environment, and the runner drops those
/// names before it runs anything (sshd sets `SSH_CONNECTION` and friends).
#[test]
fn commands_never_see_the_controllers_secrets_in_their_environment() {
    if !root_or_explain("a real sshd host") {
        return;
    }
    let tmp = ScratchDir::new("attack-env");
    let secrets = [
        ("WISP_AGE_KEY", "AGE-SECRET-KEY-1NOTREALLYASECRET"),
        ("WISP_SSH_PASSWORD", "ssh-password-in-clear"),
        ("WISP_BECOME_PASSWORD", "become-password-in-clear"),
        ("SSH_AUTH_SOCK", "/tmp/agent-socket-of-the-operator"),
    ];
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args([
        "run",
        "localhost",
        "--seccomp",
        "strict",
        "--ro",
        "/usr",
        "--no-net",
        "--",
        "/usr/bin/env",
    ])
    .envs(secrets)
    .env("TMPDIR", &tmp.0);
    let out = wisp_tests::wisp::run(&mut c, &tmp.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("localhost | PATH="), "{stdout}");
    for (name, value) in secrets {
        assert!(
            !stdout.contains(name) && !stdout.contains(value),
            "{name} reached the command: {stdout}"
        );
    }
    let fleet = wisp_tests::sshd::Fleet::start(1);
    let mut c = wisp_tests::wisp_command!(&fleet.dir.0);
    c.args(["run", &fleet.hosts[0].target()])
        .args(fleet.root_options())
        .args(["--", "/usr/bin/env"])
        .envs(secrets);
    let out = wisp_tests::wisp::run(&mut c, &fleet.dir.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("| HOME="), "{stdout}");
    assert!(
        !stdout.contains("| SSH_") && !stdout.contains("| WISP_"),
        "a WISP_ or SSH_ variable reached the command over SSH: {stdout}"
    );
}

/// Case: another user (`nobody`) where the operator keeps the state store: a link planted at
/// the store's path in a shared directory, a store that user made world-writable (to rewrite
/// its run rows into a plan and `--become` of theirs for root's `wisp retry`). Every one is
/// refused with exit 6, naming the file and the fix, and root writes nothing through the link.
/// A retry of a plan whose file changed since the run is refused unless `--plan-changed-ok`.
#[test]
fn another_user_cannot_plant_or_rewrite_the_state_store() {
    if !root_or_explain("files planted by another user") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tmp = ScratchDir::new("attack-store");
    let shared = SharedDir::new(&tmp);
    let run = |state: &Path, args: &[&str]| {
        let mut c = wisp_tests::wisp_command!(&tmp.0);
        c.arg(args[0])
            .arg("--state")
            .arg(state)
            .args(&args[1..])
            .current_dir(&tmp.0);
        let out = wisp_tests::wisp::run(&mut c, &tmp.0);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    // A link at the path, in a directory everyone can write (as /tmp).
    shared.plant("wisp.db");
    let (code, stderr) = run(
        &shared.dir.join("wisp.db"),
        &["run", "localhost", "--", "true"],
    );
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("writable by other users"), "{stderr}");
    assert!(shared.victim_untouched(), "root wrote through the link");
    // A link at the path in root's own directory: never followed either.
    let own = tmp.0.join("own");
    std::fs::create_dir(&own).unwrap();
    std::os::unix::fs::symlink(&shared.victim, own.join("wisp.db")).unwrap();
    let (code, stderr) = run(&own.join("wisp.db"), &["run", "localhost", "--", "true"]);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert!(shared.victim_untouched(), "root wrote through the link");
    // A store another user made, world-writable, in a directory of theirs.
    let theirs = tmp.0.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let planted = theirs.join("wisp.db");
    std::fs::write(&planted, "").unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, stderr) = run(&planted, &["run", "localhost", "--", "true"]);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
    assert_eq!(
        std::fs::metadata(&planted).unwrap().len(),
        0,
        "root wrote into it"
    );
    // Root's own store, left writable by everyone.
    let store = own.join("mine.db");
    let (code, stderr) = run(&store, &["run", "localhost", "--", "true"]);
    assert_eq!(code, Some(0), "{stderr}");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, stderr) = run(&store, &["history"]);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(
        stderr.contains("writable by other users") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A plan that changed since its run is not retried unless the operator says so.
    let plan = tmp.0.join("plan.toml");
    std::fs::write(
        &plan,
        "[[task]]\nname = \"fail\"\nop = \"exec\"\nargv = [\"false\"]\n",
    )
    .unwrap();
    let (code, stderr) = run(&store, &["apply", "plan.toml", "localhost"]);
    assert_eq!(code, Some(2), "{stderr}");
    std::fs::write(
        &plan,
        "[[task]]\nname = \"now passes\"\nop = \"exec\"\nargv = [\"true\"]\n",
    )
    .unwrap();
    let (code, stderr) = run(&store, &["retry"]);
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains("changed since run") && stderr.contains("--plan-changed-ok"),
        "{stderr}"
    );
    let (code, stderr) = run(&store, &["retry", "--plan-changed-ok"]);
    assert_eq!(code, Some(0), "{stderr}");
}
