//! Inventories in Ansible's own documented forms (`tests/inventories/ansible`: INI in a file
//! with no extension, YAML, YAML with no extension, an executable inventory, with
//! `group_vars/` and `host_vars/` of files and directories beside them), read by wisp and by
//! ansible-core's `ansible-inventory` and `ansible` from PyPI: the same hosts, the same
//! hosts for each pattern, and each host's vars alike.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test
#![allow(clippy::print_stdout)] // says why the comparison did not run (libtest shows it)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wisp_tests::ScratchDir;

const INVENTORIES: [&str; 4] = ["hosts", "inventory.yml", "prod", "dynamic.py"];

/// Patterns of Ansible's documentation, over the INI and YAML inventories.
const PATTERNS: [(&str, &str); 9] = [
    ("hosts", "usa"),
    ("hosts", "webservers:dbservers"),
    ("hosts", "usa:!atlanta"),
    ("hosts", "southeast:&raleigh"),
    ("hosts", "webservers[0]"),
    ("hosts", "webservers[1:]"),
    ("hosts", "~db-[ab].*"),
    ("inventory.yml", "east,!dbservers"),
    ("inventory.yml", "web*"),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/ansible")
}

/// The venv's tool `name` (beside its python), or `None` (and why) when there is none.
pub(crate) fn ansible_tool(name: &str) -> Option<PathBuf> {
    let Some(python) = std::env::var_os("WISP_ANSIBLE_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "comparing with ansible-core needs WISP_ANSIBLE_PYTHON, and CI must run it (cargo xtask test sets it)"
        );
        println!(
            "not run: WISP_ANSIBLE_PYTHON names no python with ansible-core; `cargo xtask test` makes one"
        );
        return None;
    };
    Some(PathBuf::from(python).with_file_name(name))
}

fn ansible(tool: &Path, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir())
        .env("ANSIBLE_DEPRECATION_WARNINGS", "false")
        .env("ANSIBLE_LOCALHOST_WARNING", "false")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        tool.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn wisp(tmp: &ScratchDir, args: &[&str]) -> String {
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(args).current_dir(dir());
    let out = wisp_tests::wisp::run(&mut c, &tmp.0);
    assert_eq!(out.status.code(), Some(0), "wisp {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Every host `ansible-inventory --list` names.
fn hosts_of(list: &Value) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = list["_meta"]["hostvars"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for g in list.as_object().unwrap().values() {
        for h in g["hosts"].as_array().into_iter().flatten() {
            out.insert(h.as_str().unwrap().to_owned());
        }
    }
    out
}

#[test]
fn wisp_reads_ansible_inventories_as_ansible_does() {
    let (Some(inventory), Some(ansible_bin)) =
        (ansible_tool("ansible-inventory"), ansible_tool("ansible"))
    else {
        return;
    };
    let tmp = ScratchDir::new("ansible-inventory");
    for inv in INVENTORIES {
        let list: Value =
            serde_json::from_str(&ansible(&inventory, &["-i", inv, "--list"])).unwrap();
        let want = hosts_of(&list);
        let listed = wisp(&tmp, &["run", "-i", inv, "all", "--list-hosts"]);
        let got: BTreeSet<String> = listed.lines().map(str::to_owned).collect();
        assert_eq!(got, want, "{inv}: the hosts");
        for host in &want {
            let theirs: Value =
                serde_json::from_str(&ansible(&inventory, &["-i", inv, "--host", host])).unwrap();
            let ours: Value =
                serde_json::from_str(&wisp(&tmp, &["inventory", "-i", inv, "--host", host]))
                    .unwrap();
            assert_eq!(ours, theirs, "{inv}: the vars of {host}");
        }
    }
    for (inv, pattern) in PATTERNS {
        let theirs: Vec<String> = ansible(&ansible_bin, &["-i", inv, pattern, "--list-hosts"])
            .lines()
            .skip(1)
            .map(|l| l.trim().to_owned())
            .collect();
        let ours: Vec<String> = wisp(&tmp, &["run", "-i", inv, pattern, "--list-hosts"])
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(ours, theirs, "{inv} {pattern:?}: the hosts, in order");
    }
}
