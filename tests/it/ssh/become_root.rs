//! Becoming root on hosts set up as real ones are: users sudo refuses, sudo that wants a
//! password, sudo that wants a terminal (`requiretty`), su with root's password, STIG's `timestamp_timeout=0`, doas. A refusal is its own outcome
//! (exit 7, "could not start", sudo's words), and no attempt leaves a file or a process.

use super::*;

/// A sudoers rule for the test, in its own file (removed when dropped).
struct Sudoers(std::path::PathBuf);

impl Sudoers {
    fn new(name: &str, rules: &str) -> Sudoers {
        let path = std::path::PathBuf::from(format!("/etc/sudoers.d/{name}"));
        std::fs::write(&path, rules).unwrap();
        let _ = Command::new("chmod").arg("0440").arg(&path).status();
        Sudoers(path)
    }
}

impl Drop for Sudoers {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `wisp run USER@HOST --json FLAGS -- id -u` with the fleet's key.
fn id_as(fleet: &Fleet, user: &str, flags: &[&str]) -> Output {
    let target = format!("{user}@{}", fleet.hosts[0].target());
    run(sub(fleet, "run", &target).arg("--json").args(flags).args([
        "--connect-timeout",
        "15s",
        "--",
        "id",
        "-u",
    ]))
}

/// The run could not start on its one host: exit 7, a `could_not_start` line whose message
/// holds `words`, and the summary counts it.
fn assert_could_not_start(out: &Output, words: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains(r#""type":"could_not_start""#))
        .unwrap_or_else(|| panic!("no could_not_start line: {stdout}"));
    assert!(line.contains(words), "{words:?} not in {line}");
    assert!(stdout.contains(r#""could_not_start":1"#), "{stdout}");
}

/// Nothing of the attempt stays on the host: not in TMPDIR, not in the user's home.
fn assert_nothing_left(fleet: &Fleet, user: &str) {
    fleet.assert_clean();
    let home = format!("/home/{user}");
    let left: Vec<String> = std::fs::read_dir(&home)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("wisp-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {home}: {left:?}");
}

#[test]
fn sudo_that_refuses_leaves_nothing_and_says_why() {
    if !wisp_tests::root_or_explain("the sudo refusal test (it creates users)") {
        return;
    }
    let (stranger, asks) = ("wisp-nosudo", "wisp-sudo-asks");
    for u in [stranger, asks] {
        ensure_user_with_shell(u, "/bin/sh");
    }
    set_password(asks, "a password sudo wants");
    let _rules = Sudoers::new("wisp-become-refusals", &format!("{asks} ALL=(ALL) ALL\n"));
    let fleet = Fleet::start(1);

    // Not in sudoers at all: sudo's own words, and nothing written.
    let out = id_as(&fleet, stranger, &["--become"]);
    assert_could_not_start(&out, "sudo -n refused");
    assert_nothing_left(&fleet, stranger);

    // sudo wants a password and none was given.
    let out = id_as(&fleet, asks, &["--become"]);
    assert_could_not_start(&out, "a password is required");
    assert_nothing_left(&fleet, asks);

    // A wrong password: refused once, at once.
    let target = format!("{asks}@{}", fleet.hosts[0].target());
    let out = run(sub(&fleet, "run", &target)
        .env("WISP_BECOME_PASSWORD", "not the password")
        .args(["--json", "--ask-become-pass", "--", "id", "-u"]));
    assert_could_not_start(&out, "sudo refused");
    assert_nothing_left(&fleet, asks);
}

/// sudo with `requiretty` (RHEL's old default, and CIS's advice): sudo is given a terminal
/// of its own, with or without a password, and the runner as root keeps the channel; a
/// password wanted and not given, or a wrong one, is refused in those words, and nothing
/// stays.
#[test]
fn sudo_with_requiretty_gets_a_terminal() {
    if !wisp_tests::root_or_explain("the requiretty test (it creates users)") {
        return;
    }
    let (nopass, pass) = ("wisp-sudo-tty", "wisp-sudo-tty-pw");
    let password = "a tty password";
    for u in [nopass, pass] {
        ensure_user_with_shell(u, "/bin/sh");
    }
    set_password(pass, password);
    let _rules = Sudoers::new(
        "wisp-become-tty",
        &format!(
            "Defaults:{nopass} requiretty\n{nopass} ALL=(ALL) NOPASSWD: ALL\n\
             Defaults:{pass} requiretty\n{pass} ALL=(ALL) ALL\n"
        ),
    );
    let fleet = Fleet::start(1);
    let out = id_as(&fleet, nopass, &["--become"]);
    assert_eq!(out.status.code(), Some(0), "requiretty, NOPASSWD");
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""line":"0""#));
    assert_nothing_left(&fleet, nopass);

    let out = id_as(&fleet, pass, &["--become"]);
    assert_could_not_start(&out, "--ask-become-pass");
    assert_nothing_left(&fleet, pass);

    let target = format!("{pass}@{}", fleet.hosts[0].target());
    let with = |pw: &str| {
        run(sub(&fleet, "run", &target)
            .env("WISP_BECOME_PASSWORD", pw)
            .args(["--json", "--ask-become-pass", "--", "id", "-u"]))
    };
    let out = with(password);
    assert_eq!(out.status.code(), Some(0), "requiretty with a password");
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""line":"0""#));
    assert_nothing_left(&fleet, pass);
    let out = with("not it");
    assert_could_not_start(&out, "a wrong password?");
    assert_nothing_left(&fleet, pass);
}

/// STIG's `timestamp_timeout=0`: sudo keeps no credentials from one call to the next, so the
/// password checked once must also be given to the call that starts the runner.
#[test]
fn sudo_with_timestamp_timeout_zero_takes_the_password_for_the_runner_itself() {
    if !wisp_tests::root_or_explain("the timestamp_timeout=0 test (it creates a user)") {
        return;
    }
    let user = "wisp-sudo-stig";
    let password = "a stig password";
    ensure_user_with_shell(user, "/bin/sh");
    set_password(user, password);
    let _rules = Sudoers::new(
        "wisp-become-stig",
        &format!("Defaults:{user} timestamp_timeout=0\n{user} ALL=(ALL) ALL\n"),
    );
    let fleet = Fleet::start(1);
    let mut c = sub(
        &fleet,
        "run",
        &format!("{user}@{}", fleet.hosts[0].target()),
    );
    c.env("WISP_BECOME_PASSWORD", password)
        .args(["--ask-become-pass", "--", "id", "-u"]);
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("| 0\n"));
    assert_nothing_left(&fleet, user);
}

/// doas with a `nopass` rule runs the runner as root; a user doas has no rule for is refused
/// in doas's words.
#[test]
fn doas_becomes_root_where_it_is_the_way() {
    if !wisp_tests::root_or_explain("the doas test (it writes /etc/doas.conf)") {
        return;
    }
    assert!(
        std::path::Path::new("/usr/bin/doas").exists(),
        "doas is missing: cargo xtask test installs it"
    );
    let (allowed, stranger) = ("wisp-doas", "wisp-nodoas");
    for u in [allowed, stranger] {
        ensure_user_with_shell(u, "/bin/sh");
    }
    std::fs::write(
        "/etc/doas.conf",
        format!("permit nopass {allowed} as root\n"),
    )
    .unwrap();
    let _ = Command::new("chmod")
        .args(["0400", "/etc/doas.conf"])
        .status();
    let fleet = Fleet::start(1);
    let out = id_as(&fleet, allowed, &["--become", "--become-method", "doas"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""line":"0""#));
    assert_nothing_left(&fleet, allowed);

    let out = id_as(&fleet, stranger, &["--become", "--become-method", "doas"]);
    assert_could_not_start(&out, "doas -n refused");
    assert_nothing_left(&fleet, stranger);
    let _ = std::fs::remove_file("/etc/doas.conf");
}

/// `--become-method su`: root's password, given to su on a terminal of its own once it asks;
/// a wrong one is refused and nothing stays. The host has a root password of its own (its
/// /etc/shadow, in its mount namespace, is a copy with one set).
#[test]
fn su_becomes_root_with_roots_password() {
    if !wisp_tests::root_or_explain("the su test (it creates a user)") {
        return;
    }
    let user = "wisp-su";
    ensure_user_with_shell(user, "/bin/sh");
    let setup = "shadow=\"$REMOTE_TMP/../shadow\"\ncp /etc/shadow \"$shadow\"\n\
                 hash=$(openssl passwd -6 'the root password')\n\
                 sed -i \"s|^root:[^:]*:|root:$hash:|\" \"$shadow\"\n\
                 mount --bind \"$shadow\" /etc/shadow";
    let fleet = Fleet::start_in_namespace(1, setup);
    let target = format!("{user}@{}", fleet.hosts[0].target());
    let with = |pw: &str| {
        run(sub(&fleet, "run", &target)
            .env("WISP_BECOME_PASSWORD", pw)
            .args([
                "--json",
                "--become-method",
                "su",
                "--ask-become-pass",
                "--",
                "id",
                "-u",
            ]))
    };
    let out = with("the root password");
    assert_eq!(out.status.code(), Some(0), "su with root's password");
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""line":"0""#));
    assert_nothing_left(&fleet, user);
    let out = with("not it");
    assert_could_not_start(&out, "Authentication failure");
    assert_nothing_left(&fleet, user);
    let out =
        run(sub(&fleet, "run", &target).args(["--become", "--become-method", "su", "--", "true"]));
    assert_eq!(
        out.status.code(),
        Some(5),
        "su without a password is refused up front"
    );
}
