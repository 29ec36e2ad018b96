//! Ansible playbooks and roles run as they are: `tests/playbooks/site.yml` (two roles in
//! Ansible's layout, one a `meta` dependency of the other, with templates, files, loops,
//! includes, handlers that listen, facts, `group_vars/` and `vars_files`) applied by wisp to
//! ten sshd hosts, then by `ansible-playbook` to the same hosts: the files each tool makes are
//! byte for byte the same, with the same modes.

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

fn wisp(fleet: &Fleet, out: &Path, extra: &[&str]) -> Output {
    let t = std::time::Instant::now();
    let dir = &fleet.dir.0;
    let book = playbook();
    let mut args = vec!["apply", book.to_str().unwrap(), "-e"];
    let out_var = format!("out={}", out.display());
    args.push(&out_var);
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
            (
                rel,
                mode,
                String::from_utf8_lossy(&bytes).replace(&own, "OUT"),
            )
        })
        .collect()
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

    // Check mode on an empty folder: what would change, and nothing made.
    let check_out = dir.join("by-check");
    let check = wisp(&fleet, &check_out, &["--check", "--diff"]);
    assert_eq!(check.status.code(), Some(0));
    assert!(!check_out.exists(), "--check made {}", check_out.display());
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("web03 | +<h1>Welcome to web03</h1>"),
        "{stdout}"
    );

    let wisp_out = dir.join("by-wisp");
    let first = wisp(&fleet, &wisp_out, &[]);
    assert_eq!(first.status.code(), Some(0));
    let done = changed(&first);
    assert!(done.contains("web07 Site configurations"), "{done:?}");
    assert!(done.contains("web07 restart web"), "{done:?}");
    // What check mode said would change is what the run changed, handlers and the command
    // it could not run aside (check mode does not run them).
    let said: BTreeSet<String> = changed(&check);
    let ran: BTreeSet<String> = done
        .iter()
        .filter(|t| !t.ends_with("restart web") && !t.ends_with("Log the configuration change"))
        .cloned()
        .collect();
    assert_eq!(said, ran, "check mode and the run disagree");

    let second = wisp(&fleet, &wisp_out, &[]);
    assert_eq!(second.status.code(), Some(0));
    assert!(
        changed(&second).is_empty(),
        "the second run changed something"
    );
    let recap = String::from_utf8_lossy(&second.stderr);
    assert_eq!(recap.matches("changed=0").count(), 10, "{recap}");
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
        .args(["-i", "hosts", "-u", "root", "--private-key"])
        .arg(&fleet.client_key)
        .arg("--ssh-common-args")
        .arg(format!(
            "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -F /dev/null",
            fleet.known_hosts.display()
        ))
        .arg("-e")
        .arg(format!("out={}", ansible_out.display()))
        .args(["-e", "ansible_python_interpreter=/usr/bin/python3"])
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
    let (ours, theirs) = (tree(&wisp_out), tree(&ansible_out));
    for (a, b) in ours.iter().zip(theirs.iter()) {
        assert_eq!(
            a, b,
            "wisp's file (left) differs from ansible-playbook's (right)"
        );
    }
    assert_eq!(ours.len(), theirs.len(), "{ours:?}\n{theirs:?}");
}
