//! Ansible playbooks and roles run as they are: `tests/playbooks/site.yml` (two roles in
//! Ansible's layout, one a `meta` dependency of the other, with templates, files, loops,
//! includes, handlers that listen, facts, `group_vars/` and `vars_files`) applied by wisp to
//! ten sshd hosts (converged, then unchanged, then predicted by check mode after the hosts
//! drift), and by `ansible-playbook` to two of them: the files each tool makes are byte for
//! byte the same, with the same modes.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test
#![allow(clippy::print_stdout)] // what the tools said goes into the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wisp_tests::sshd::Fleet;

fn playbook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/site.yml")
}

/// The fleet's inventory, its hosts in the group the playbook names.
fn inventory(fleet: &Fleet) -> PathBuf {
    let mut text = String::from("[web]\n");
    for (i, h) in fleet.hosts.iter().enumerate() {
        text.push_str(&format!(
            "web{:02} ansible_host={} ansible_port={}\n",
            i + 1,
            h.addr,
            h.port
        ));
    }
    let path = fleet.dir.0.join("hosts");
    std::fs::write(&path, text).unwrap();
    path
}

fn wisp(fleet: &Fleet, out: &Path, release: &[String], extra: &[&str]) -> Output {
    let t = std::time::Instant::now();
    let dir = &fleet.dir.0;
    let book = playbook();
    let mut args = vec!["apply", book.to_str().unwrap(), "-e"];
    let out_var = format!("out={}", out.display());
    args.push(&out_var);
    args.extend(release.iter().map(String::as_str));
    args.extend(extra);
    let o = fleet.wisp(wisp_tests::wisp_command!(dir), dir, &args);
    println!(
        "--- wisp {extra:?} ({:?})\n{}{}",
        t.elapsed(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Each file and folder under `dir`: its path below `dir`, its mode and its text, with `dir`
/// itself (which the files name) written `OUT`.
fn tree(dir: &Path) -> Vec<(String, u32, String)> {
    let own = dir.display().to_string();
    wisp_tests::snapshot(dir)
        .into_iter()
        .map(|(p, mode, bytes)| {
            let rel = Path::new(&p)
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            // A link is compared by where it points.
            let text = match std::fs::read_link(&p) {
                Ok(to) => format!("link to {}", to.display()),
                Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
            };
            (rel, mode, text.replace(&own, "OUT"))
        })
        .collect()
}

/// A release tarball served over HTTP on a loopback port while it lives.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds `app-1.2.0.tar.gz` and serves it: the `-e` args that point the release role at it
/// (its base URL and SHA-256), and the server.
fn serve_release(dir: &Path) -> ([String; 4], Served) {
    let (src, www) = (dir.join("release-src"), dir.join("www"));
    std::fs::create_dir_all(src.join("app-1.2.0/bin")).unwrap();
    std::fs::create_dir_all(&www).unwrap();
    let app = src.join("app-1.2.0/bin/app");
    std::fs::write(&app, "#!/bin/sh\necho app 1.2.0\n").unwrap();
    std::fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let tar = www.join("app-1.2.0.tar.gz");
    let ok = Command::new("tar")
        .arg("-czf")
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg("app-1.2.0")
        .status()
        .unwrap();
    assert!(ok.success());
    let sum = Command::new("sha256sum").arg(&tar).output().unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&www)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let served = Served(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let vars = [
        "-e".to_owned(),
        format!("release_base=http://127.0.0.1:{port}"),
        "-e".to_owned(),
        format!("release_checksum=sha256:{sum}"),
    ];
    (vars, served)
}

/// The (host, task) pairs a run says changed.
fn changed(out: &Output) -> BTreeSet<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (host, rest) = l.split_once(" | ")?;
            let task = rest.strip_prefix("changed  ")?;
            Some(format!(
                "{} {}",
                host.trim(),
                task.split(" (").next().unwrap_or(task)
            ))
        })
        .collect()
}

#[test]
fn roles_converge_under_wisp_as_under_ansible_playbook_on_sshd_hosts() {
    let fleet = Fleet::start(10);
    inventory(&fleet);
    let dir = fleet.dir.0.clone();
    let (release, _served) = serve_release(&dir);

    let wisp_out = dir.join("by-wisp");
    let first = wisp(&fleet, &wisp_out, &release, &[]);
    assert_eq!(first.status.code(), Some(0));
    let done = changed(&first);
    assert!(done.contains("web07 Site configurations"), "{done:?}");
    assert!(done.contains("web07 SSH daemon settings"), "{done:?}");
    assert!(done.contains("web07 restart web"), "{done:?}");
    assert!(done.contains("web07 Unpack the release"), "{done:?}");
    assert!(
        wisp_out.join("web07/opt/app-1.2.0/bin/app").is_file(),
        "the release was not unpacked"
    );
    let ini = std::fs::read_to_string(wisp_out.join("web07/srv/etc/app.ini")).unwrap();
    assert!(
        ini.contains("groups = web\npeers = 10\naddress = 127."),
        "{ini}"
    );
    assert!(done.contains("web07 Current release"), "{done:?}");

    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(!shown.contains("sekrit-value"), "no_log output shown");
    assert!(shown.contains("'no_log: true' was specified"), "{shown}");
    let converged = tree(&wisp_out);

    let second = wisp(&fleet, &wisp_out, &release, &[]);
    assert_eq!(second.status.code(), Some(0));
    assert!(
        changed(&second).is_empty(),
        "the second run changed something"
    );
    let recap = String::from_utf8_lossy(&second.stderr);
    assert_eq!(recap.matches("changed=0").count(), 10, "{recap}");

    // Hosts drift: one gets its distribution's sshd_config back, another loses its index
    // page and has a setting edited by hand. Check mode says what a run would change, and
    // changes nothing; the run then changes exactly that.
    let original =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/roles/hardening/files/sshd_config");
    std::fs::copy(&original, wisp_out.join("web03/etc/ssh/sshd_config")).unwrap();
    std::fs::remove_file(wisp_out.join("web05/www/index.html")).unwrap();
    let sysctl = wisp_out.join("web05/etc/sysctl.conf");
    let text = std::fs::read_to_string(&sysctl).unwrap();
    std::fs::write(
        &sysctl,
        text.replace("randomize_va_space = 2", "randomize_va_space = 0"),
    )
    .unwrap();
    let before = tree(&wisp_out);
    let check = wisp(&fleet, &wisp_out, &release, &["--check", "--diff"]);
    assert_eq!(check.status.code(), Some(0));
    assert_eq!(tree(&wisp_out), before, "--check changed files");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("web03 | -PasswordAuthentication yes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("web05 | +<h1>Welcome to web05</h1>"),
        "{stdout}"
    );
    let said = changed(&check);
    let third = wisp(&fleet, &wisp_out, &release, &[]);
    assert_eq!(third.status.code(), Some(0));
    let ran: BTreeSet<String> = changed(&third)
        .into_iter()
        .filter(|t| !t.ends_with("reload sshd"))
        .collect();
    assert_eq!(said, ran, "check mode and the run disagree");
    assert!(
        ran.contains("web03 SSH daemon settings") && ran.contains("web05 Index page"),
        "{ran:?}"
    );
    fleet.assert_clean();

    let Some(ansible) = super::inventory_ansible::ansible_tool("ansible-playbook") else {
        return;
    };
    let ansible_out = dir.join("by-ansible");
    let home = dir.join("ansible-home");
    std::fs::create_dir_all(&home).unwrap();
    let t = std::time::Instant::now();
    let o = Command::new(ansible)
        .arg(playbook())
        // Two of the hosts (ansible-playbook takes a minute per ten): the same kind of host.
        .args([
            "-i",
            "hosts",
            "--limit",
            "web01,web02",
            "-u",
            "root",
            "--private-key",
        ])
        .arg(&fleet.client_key)
        .arg("--ssh-common-args")
        .arg(format!(
            "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -F /dev/null",
            fleet.known_hosts.display()
        ))
        .arg("-e")
        .arg(format!("out={}", ansible_out.display()))
        .args(["-e", "ansible_python_interpreter=/usr/bin/python3"])
        .args(&release)
        .current_dir(&dir)
        .env("HOME", &home)
        .env("ANSIBLE_PIPELINING", "true")
        .env("ANSIBLE_SSH_TRANSFER_METHOD", "piped")
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_REMOTE_TMP", home.join("remote-tmp"))
        .env("ANSIBLE_SSH_CONTROL_PATH_DIR", home.join("cp"))
        .env("ANSIBLE_DEPRECATION_WARNINGS", "false")
        .env("ANSIBLE_FORKS", "10")
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    println!(
        "--- ansible-playbook ({:?})\n{}{}",
        t.elapsed(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "ansible-playbook failed");
    let compared = |t: Vec<(String, u32, String)>| -> Vec<(String, u32, String)> {
        t.into_iter()
            .filter(|(p, _, _)| p.starts_with("web01") || p.starts_with("web02"))
            .collect()
    };
    let (ours, theirs) = (compared(converged), compared(tree(&ansible_out)));
    assert!(ours.len() > 40, "{ours:?}");
    for (a, b) in ours.iter().zip(theirs.iter()) {
        assert_eq!(
            a, b,
            "wisp's file (left) differs from ansible-playbook's (right)"
        );
    }
    assert_eq!(ours.len(), theirs.len(), "{ours:?}\n{theirs:?}");
}

/// The accounts the users role makes, as `/etc/passwd` and `/etc/group` say, and their homes.
fn accounts() -> (Vec<String>, Vec<(String, u32, String)>) {
    let mut lines: Vec<String> = ["/etc/passwd", "/etc/group"]
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| {
            ["wisp-alice:", "wisp-bob:", "wisp-devs:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    lines.sort();
    let homes = ["wisp-alice", "wisp-bob"]
        .iter()
        .flat_map(|u| tree(&Path::new("/home").join(u)))
        .collect();
    (lines, homes)
}

/// Removes the role's accounts and homes, before and after.
struct Accounts;

impl Accounts {
    fn remove() {
        for u in ["wisp-alice", "wisp-bob"] {
            let _ = Command::new("userdel").args(["-r", u]).output();
        }
        let _ = Command::new("groupdel").arg("wisp-devs").output();
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        Accounts::remove();
    }
}

/// Case: a users role (`group`, `user` with groups and a shell, `.ssh` folders, authorized
/// keys) run by wisp makes the same accounts, the same `/etc/passwd` and `/etc/group` lines and
/// the same homes as `ansible-playbook` makes from it; a second run changes nothing.
#[test]
fn a_users_role_makes_the_accounts_ansible_playbook_makes() {
    if !wisp_tests::root_or_explain("adding users") {
        return;
    }
    let _accounts = Accounts;
    Accounts::remove();
    let tmp = wisp_tests::ScratchDir::new("playbook-users");
    let book = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/users.yml");
    let run = |extra: &[&str]| {
        let out = wisp_tests::wisp_command!(&tmp.0)
            .arg("apply")
            .arg(&book)
            .arg("localhost")
            .args(extra)
            .env("WISP_RUNNER", wisp_tests::runner_path())
            .output()
            .unwrap();
        println!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let check = run(&["--check"]);
    assert_eq!(check.status.code(), Some(0));
    assert!(accounts().0.is_empty(), "--check made accounts");
    let first = run(&[]);
    assert_eq!(first.status.code(), Some(0));
    let ours = accounts();
    assert_eq!(ours.0.len(), 5, "{:?}", ours.0);
    assert!(
        ours.0
            .iter()
            .any(|l| l.starts_with("wisp-devs:") && l.ends_with(":wisp-alice")),
        "{:?}",
        ours.0
    );
    let second = run(&[]);
    assert!(String::from_utf8_lossy(&second.stderr).contains("changed=0"));

    let Some(ansible) = super::inventory_ansible::ansible_tool("ansible-playbook") else {
        return;
    };
    Accounts::remove();
    let o = Command::new(ansible)
        .arg(&book)
        .args([
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=/usr/bin/python3",
        ])
        .env("HOME", &tmp.0)
        .env("ANSIBLE_LOCAL_TEMP", tmp.0.join("ansible-tmp"))
        .env("ANSIBLE_REMOTE_TMP", tmp.0.join("ansible-remote"))
        .output()
        .unwrap();
    println!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "ansible-playbook failed");
    assert_eq!(
        ours,
        accounts(),
        "wisp's accounts (left) differ from ansible-playbook's (right)"
    );
}

/// Case: a playbook that uses what wisp does not implement is refused before any host is
/// contacted, naming the file, the line and the module (or keyword, or arg); `--check-support`
/// lists every use in the playbook and its roles, and exits 4 (0 for a playbook it runs whole).
#[test]
fn what_wisp_does_not_implement_is_refused_with_file_line_and_name() {
    let tmp = wisp_tests::ScratchDir::new("playbook-unsupported");
    let role = tmp.0.join("roles/db/tasks");
    std::fs::create_dir_all(&role).unwrap();
    std::fs::write(
        role.join("main.yml"),
        "- name: a database user\n  community.mysql.mysql_user:\n    name: app\n",
    )
    .unwrap();
    let book = tmp.0.join("site.yml");
    std::fs::write(
        &book,
        "- hosts: all\n  roles: [db]\n  tasks:\n    - copy:\n        dest: /tmp/x\n        content: x\n        validate: visudo -cf %s\n    - command: sleep 1\n      async: 10\n",
    )
    .unwrap();
    let wisp = |args: &[&str]| {
        wisp_tests::wisp_command!(&tmp.0)
            .args(args)
            .env("WISP_RUNNER", wisp_tests::runner_path())
            .output()
            .unwrap()
    };
    let out = wisp(&["apply", book.to_str().unwrap(), "nosuchhost.invalid"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("site.yml:7: copy: the arg validate is not supported by wisp"),
        "{err}"
    );
    assert!(!err.contains("nosuchhost"), "a host was contacted: {err}");

    let out = wisp(&["apply", book.to_str().unwrap(), "--check-support"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{said}");
    for want in [
        "roles/db/tasks/main.yml:1: community.mysql.mysql_user is not supported",
        "site.yml:7: copy: the arg validate is not supported by wisp",
        "site.yml:9: the keyword async",
        "3 use(s) of what wisp does not implement",
    ] {
        assert!(said.contains(want), "{want:?} not in:\n{said}");
    }
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/site.yml");
    let out = wisp(&["apply", good.to_str().unwrap(), "--check-support"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
