//! `wisp apply` against real sshd hosts: a plan over an inventory with a task for one group,
//! `--check` first (nothing on disk moves), then applied (each host gets its own files, the
//! handler runs once per host), then again (nothing changes anywhere); the journal records
//! every task on every host; nothing is left behind on the hosts.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test
#![allow(clippy::print_stdout)] // what wisp said goes into the failure report

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use wisp_tests::sshd::Fleet;
use wisp_tests::{runner_path, snapshot};

fn apply(fleet: &Fleet, plan: &Path, inventory: &Path, journal: &Path, extra: &[&str]) -> Output {
    let out = wisp_tests::wisp_command!(journal.parent().unwrap_or(journal))
        .arg("apply")
        .arg(plan)
        .arg("all")
        .arg("-i")
        .arg(inventory)
        .args(fleet.root_options())
        .args(extra)
        .env("WISP_RUNNER", runner_path())
        .env("WISP_JOURNAL_DIR", journal)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    println!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Each host's recap line holds its tally.
fn assert_recap(out: &Output, tallies: &[(&str, &str)]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (host, tally) in tallies {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(host) && l.contains(tally)),
            "{host}: expected {tally}: {stderr}"
        );
    }
}

/// The lines of the newest journal in `dir`.
fn last_journal(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let text = std::fs::read_to_string(files.last().unwrap()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_plan_over_sshd_hosts_converges_once_and_then_changes_nothing() {
    let fleet = Fleet::start(3);
    let mut ini = String::new();
    for (group, name, i) in [("web", "web1", 0), ("web", "web2", 1), ("db", "db1", 2)] {
        let h = &fleet.hosts[i];
        ini.push_str(&format!(
            "[{group}]\n{name} ansible_host={} ansible_port={} role={group}-{i}\n",
            h.addr, h.port
        ));
    }
    let inventory = fleet.dir.0.join("hosts.ini");
    std::fs::write(&inventory, ini).unwrap();
    let root = fleet.dir.0.join("www");
    let plan = fleet.dir.0.join("site.toml");
    std::fs::write(
        &plan,
        format!(
            r#"
[vars]
root = "{root}"

[[task]]
name = "host dir"
op = "dir.ensure"
path = "{{{{ root }}}}/{{{{ host.name }}}}"
make_parents = true

[[task]]
name = "page"
op = "file.write"
path = "{{{{ root }}}}/{{{{ host.name }}}}/index.html"
content = "served by {{{{ host.name }}}} as {{{{ host.role }}}}\n"
notify = ["reload"]

[[task]]
name = "database config"
op = "file.write"
targets = "db"
path = "{{{{ root }}}}/{{{{ host.name }}}}/db.conf"
content = "listen = {{{{ host.ansible_host }}}}\n"

[[handler]]
name = "reload"
op = "exec"
shell = "echo reload >> {{{{ root }}}}/{{{{ host.name }}}}/reloads"
"#,
            root = root.display()
        ),
    )
    .unwrap();
    let journal = fleet.dir.0.join("journal");

    // Check mode: every host would change; the disk does not.
    std::fs::create_dir(&root).unwrap();
    let before = snapshot(&root);
    let out = apply(&fleet, &plan, &inventory, &journal, &["--check", "--diff"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(snapshot(&root), before, "--check changed the disk");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("web1 | +served by web1 as web-0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("db1  | changed  database config (created)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("web2 | skipped  database config (targets: db)"),
        "{stdout}"
    );

    let out = apply(&fleet, &plan, &inventory, &journal, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_recap(
        &out,
        &[
            ("web1", "ok=0 changed=3 failed=0 skipped=1"),
            ("web2", "ok=0 changed=3 failed=0 skipped=1"),
            ("db1", "ok=0 changed=4 failed=0 skipped=0"),
        ],
    );
    for (host, role) in [("web1", "web-0"), ("web2", "web-1"), ("db1", "db-2")] {
        let page = std::fs::read_to_string(root.join(host).join("index.html")).unwrap();
        assert_eq!(page, format!("served by {host} as {role}\n"));
        let reloads = std::fs::read_to_string(root.join(host).join("reloads")).unwrap();
        assert_eq!(reloads, "reload\n", "{host}: the handler runs once");
    }
    assert!(root.join("db1/db.conf").exists());
    assert!(!root.join("web1/db.conf").exists(), "a db task ran on web1");

    let out = apply(&fleet, &plan, &inventory, &journal, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_recap(
        &out,
        &[
            ("web1", "ok=2 changed=0 failed=0 skipped=1"),
            ("web2", "ok=2 changed=0 failed=0 skipped=1"),
            ("db1", "ok=3 changed=0 failed=0 skipped=0"),
        ],
    );
    let reloads = std::fs::read_to_string(root.join("web1/reloads")).unwrap();
    assert_eq!(reloads, "reload\n", "the handler ran without a change");

    // The journal of that run: what was asked, each task on each host, each host's end.
    let lines = last_journal(&journal);
    assert_eq!(lines[0]["kind"], "run");
    assert_eq!(lines[0]["command"], "apply");
    let tasks: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "task").collect();
    assert_eq!(tasks.len(), 9, "three tasks on three hosts: {tasks:?}");
    assert!(tasks.iter().any(|t| t["host"] == "web2"
        && t["task"] == "database config"
        && t["status"] == "skipped"));
    assert!(tasks.iter().all(|t| t["status"] != "changed"));
    let hosts: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "host").collect();
    assert_eq!(hosts.len(), 3);
    assert_eq!(lines.last().unwrap()["kind"], "end");
    assert_eq!(lines.last().unwrap()["exit"], 0);
    // Contents stay out of the journal.
    let text = lines.iter().map(Value::to_string).collect::<String>();
    assert!(!text.contains("served by"), "file content in the journal");

    fleet.assert_clean();
}
