//! The inventory files in tests/inventories: one fleet written as an Ansible INI inventory,
//! an Ansible YAML inventory and a native TOML inventory resolves to the same hosts, users,
//! ports, keys and groups; patterns select from it as Ansible would.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use wisp_inventory::{Inventory, select};

fn load(name: &str) -> Inventory {
    Inventory::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("inventories")
            .join(name),
    )
    .unwrap()
}

/// A host as the tests compare it: (name, address, user, port, key).
type Summary = (String, String, Option<String>, Option<u16>, Option<PathBuf>);

/// Every host's summary, in a stable order.
fn summary(inv: &Inventory) -> Vec<Summary> {
    let mut hosts: Vec<_> = inv
        .host_names()
        .into_iter()
        .map(|h| {
            let r = inv.resolve(h).unwrap();
            (r.name, r.address, r.user, r.port, r.key)
        })
        .collect();
    hosts.sort();
    hosts
}

#[test]
fn the_three_formats_resolve_alike() {
    let home = PathBuf::from(std::env::var("HOME").unwrap());
    let ini = load("fleet.ini");
    let expected = vec![
        (
            "bastion".into(),
            "10.0.0.1".into(),
            Some("jump".into()),
            None,
            None,
        ),
        (
            "canary.example.org".into(),
            "canary.example.org".into(),
            Some("canary user".into()),
            Some(2200),
            None,
        ),
        (
            "db1".into(),
            "10.0.1.1".into(),
            Some("deploy".into()),
            None,
            Some(home.join(".ssh/db_key")),
        ),
        (
            "web01".into(),
            "web01".into(),
            Some("www".into()),
            Some(2222),
            None,
        ),
        (
            "web02".into(),
            "web02".into(),
            Some("www".into()),
            Some(2222),
            None,
        ),
        (
            "web03".into(),
            "web03".into(),
            Some("www".into()),
            Some(2222),
            None,
        ),
    ];
    assert_eq!(summary(&ini), expected, "INI");
    assert_eq!(summary(&load("fleet.yml")), expected, "YAML");
    assert_eq!(summary(&load("fleet.toml")), expected, "TOML");
    for inv in [&ini, &load("fleet.yml"), &load("fleet.toml")] {
        assert_eq!(
            inv.resolve("db1")
                .unwrap()
                .vars
                .get("tier")
                .and_then(|v| v.as_str()),
            Some("prod")
        );
        assert_eq!(inv.resolve("bastion").unwrap().vars.get("tier"), None);
    }
}

#[test]
fn patterns_select_as_ansible_does() {
    for file in ["fleet.ini", "fleet.yml", "fleet.toml"] {
        let inv = load(file);
        let s = |p: &str| select(&inv, p).unwrap();
        assert_eq!(s("all").len(), 6, "{file}");
        assert_eq!(s("prod").len(), 5, "{file}: children count");
        assert_eq!(s("web0*").len(), 3, "{file}: globs");
        assert_eq!(s("prod,!web"), ["db1"], "{file}: exclusion");
        assert_eq!(
            s("prod,&web,!web02").len(),
            3,
            "{file}: intersection then exclusion"
        );
        assert_eq!(
            s("bastion,db1"),
            ["bastion", "db1"],
            "{file}: hosts by name, inventory order"
        );
        assert_eq!(
            s("!prod"),
            ["bastion"],
            "{file}: exclusion alone means all but"
        );
        assert!(
            select(&inv, "nosuch")
                .unwrap_err()
                .contains("names no host or group"),
            "{file}"
        );
    }
}

#[test]
fn bad_inventories_name_the_file_and_the_line() {
    let dir = std::env::temp_dir().join(format!("wisp-inv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("a.ini", "[web\nhost\n", "line 1"),
        ("b.ini", "[web]\nh1 novalue\n", "line 2"),
        ("c.toml", "[hosts.a]\nport = \n", "line 2"),
        ("d.toml", "[groupz]\n", "unknown field"),
        ("e.yml", "all:\n  hostz: {}\n", "unknown key"),
        (
            "f.ini",
            "[a:children]\nb\n[b:children]\na\n",
            "own descendant",
        ),
    ];
    for (name, text, needle) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let err = Inventory::load(&path).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains(needle), "{name}: {err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// `group_vars/` beside the inventory and beside the plan, as Ansible layers them: the plan's
/// over the inventory's, structured values kept; `ansible_connection=local` runs here.
#[test]
fn group_vars_beside_the_plan_win_over_those_beside_the_inventory() {
    let tmp = wisp_tests::ScratchDir::new("group-vars");
    let (inv, plan) = (tmp.0.join("inv"), tmp.0.join("plan"));
    for d in [inv.join("group_vars"), plan.join("group_vars")] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(inv.join("hosts"), "[app]\nhere ansible_connection=local\n").unwrap();
    std::fs::write(
        inv.join("group_vars/app.yml"),
        "greeting: from-inventory\nport: 1\nlisted: [a, b]\n",
    )
    .unwrap();
    std::fs::write(plan.join("group_vars/app.yml"), "greeting: from-plan\n").unwrap();
    std::fs::write(
        plan.join("site.toml"),
        "[[task]]\nop = \"exec\"\nargv = [\"echo\", \"{{ greeting }} {{ port }} {{ listed | join(',') }}\"]\n",
    )
    .unwrap();
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["apply", "plan/site.toml", "app", "-i", "inv/hosts"])
        .current_dir(&tmp.0);
    let out = wisp_tests::wisp::run(&mut c, &tmp.0);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("here | from-plan 1 a,b"),
        "the plan's group_vars over the inventory's, lists kept"
    );
}
