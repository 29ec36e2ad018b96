//! `wisp drift` on real sshd hosts: a converged fleet, a file changed by hand on three hosts
//! and one host stopped; the report folds the three into one group with the diff, names the
//! stopped one unreachable and exits 2; after a re-apply it exits 0. `--history` says since
//! when each host drifted.

use wisp_tests::sshd::Fleet;
use wisp_tests::{ScratchDir, root_or_explain};

const HOSTS: usize = 20;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn drift_folds_identical_drift_and_names_the_unreachable() {
    if !root_or_explain(
        "wisp drift across sshd hosts with a folder of their own (mount namespaces)",
    ) {
        return;
    }
    let tmp = ScratchDir::new("drift");
    let srv = tmp.0.join("srv");
    let mut fleet = Fleet::start_with_private_dir(HOSTS, &srv);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let conf = srv.join("app.conf");
    let conf = conf.display();
    std::fs::write(
        tmp.0.join("site.toml"),
        format!(
            "[[task]]\nname = \"config\"\nop = \"file.write\"\npath = \"{conf}\"\n\
             content = \"port = 8080\\n\"\nmode = \"0644\"\n\n\
             [[task]]\nname = \"reload\"\nop = \"exec\"\nargv = [\"true\"]\n"
        ),
    )
    .unwrap();

    let applied = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &["apply", "site.toml", "all"],
    );
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
    let clean = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &["drift", "site.toml", "all"],
    );
    assert_eq!(
        clean.status.code(),
        Some(0),
        "a converged fleet has not drifted"
    );
    assert!(text(&clean.stdout).contains("CLEAN web[01-20] (20 hosts)"));

    // By hand, on three hosts (each has its own folder: the write goes through its sshd).
    let edit = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &[
            "run",
            "web03,web07,web12",
            "--",
            "sh",
            "-c",
            &format!("echo 'port = 9999' > {conf}"),
        ],
    );
    assert_eq!(edit.status.code(), Some(0), "{}", text(&edit.stderr));
    fleet.hosts[HOSTS - 1].stop();

    let drift = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &["drift", "site.toml", "all", "--connect-timeout", "5s"],
    );
    let report = text(&drift.stdout);
    assert_eq!(drift.status.code(), Some(2), "{report}");
    assert!(
        report.starts_with("DRIFTED web[03,07,12] (3 hosts)\n  changed  config"),
        "the three fold into one group: {report}"
    );
    assert!(
        report.contains(&format!("    --- {conf}\n    +++ {conf}\n"))
            && report.contains("    -port = 9999\n    +port = 8080\n"),
        "with the diff: {report}"
    );
    assert_eq!(report.matches("DRIFTED").count(), 1, "{report}");
    assert!(report.contains("UNREACHABLE web20: "), "{report}");
    assert!(
        report.contains("CLEAN web[01-02,04-06,08-11,13-19] (16 hosts)"),
        "{report}"
    );
    assert!(
        !report.contains("reload"),
        "exec tasks are not run in a drift check: {report}"
    );

    let json = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &["drift", "site.toml", "all", "--json"],
    );
    let last: serde_json::Value =
        serde_json::from_str(text(&json.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "drift");
    assert_eq!(
        last["groups"][0]["host_list"],
        serde_json::json!(["web03", "web07", "web12"])
    );
    assert_eq!(last["exit_code"], 2);

    let history = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &["drift", "site.toml", "--history"],
    );
    let history = text(&history.stdout);
    let line = |host: &str| {
        history
            .lines()
            .find(|l| l.starts_with(host))
            .unwrap_or_else(|| panic!("no {host} in {history}"))
            .to_owned()
    };
    assert!(line("web03").contains("drifted "), "{history}");
    assert!(line("web03").contains("drifted since run 4"), "{history}");
    assert!(line("web03").contains("last clean run 2"), "{history}");
    assert!(line("web01").contains("clean "), "{history}");
    assert!(line("web20").contains("unreachable"), "{history}");
    // Another file typed the same way, from another directory, is another plan: its
    // history is its own (empty), not this one's.
    let other = tmp.0.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(tmp.0.join("site.toml"), other.join("site.toml")).unwrap();
    let elsewhere = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &other,
        &["drift", "site.toml", "--history"],
    );
    let said = text(&elsewhere.stderr);
    assert_eq!(elsewhere.status.code(), Some(5), "{said}");
    assert!(said.contains("no `wisp drift` run of"), "{said}");
    assert!(!text(&elsewhere.stdout).contains("web03"));

    fleet.start_host(HOSTS - 1);
    let reapplied = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &["apply", "site.toml", "all"],
    );
    assert_eq!(
        reapplied.status.code(),
        Some(0),
        "{}",
        text(&reapplied.stderr)
    );
    let after = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &["drift", "site.toml", "all"],
    );
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stdout));
    fleet.assert_clean();
}
