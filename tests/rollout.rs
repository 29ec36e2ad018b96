//! Rollouts on real sshd hosts: `--serial` batches with a `--max-fail` budget stop after the
//! batch that spends it, and a failing canary stops the run before anything else starts.
//! Hosts left out are reported, recorded and never touched.

use std::path::Path;
use wisp_tests::sshd::Fleet;

use wisp_tests::{ScratchDir, root_or_explain, wisp};

const HOSTS: usize = 20;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The hosts the newest run recorded with `outcome`, from `wisp show last`.
fn hosts_with(dir: &Path, outcome: &str) -> Vec<String> {
    let mut show = wisp_tests::wisp_command!(dir);
    show.args(["show", "last"]).current_dir(dir);
    let shown = text(&wisp::run(&mut show, dir).stdout);
    shown
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(host, rest)| host.starts_with("web") && rest.starts_with(outcome))
        .map(|(host, _)| host.to_owned())
        .collect()
}

fn names(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("web{i:02}")).collect()
}

#[test]
fn budgets_and_canaries_stop_the_rollout() {
    if !root_or_explain("rollouts across sshd hosts with a folder of their own (mount namespaces)")
    {
        return;
    }
    let tmp = ScratchDir::new("rollout");
    let srv = tmp.0.join("srv");
    let fleet = Fleet::start_with_private_dir(HOSTS, &srv);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let (rigged, ran) = (srv.join("rigged"), srv.join("ran"));
    let (rigged, ran) = (rigged.display(), ran.display());
    // Five hosts are rigged to fail: two in the second batch of five, three in the third.
    let rig = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &[
            "run",
            "web07,web08,web12,web13,web14",
            "--",
            "touch",
            &rigged.to_string(),
        ],
    );
    assert_eq!(rig.status.code(), Some(0), "{}", text(&rig.stderr));

    let job = format!("touch {ran}; ! test -e {rigged}");
    let out = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &[
            "run",
            "all",
            "--serial",
            "5",
            "--max-fail",
            "3",
            "--",
            "sh",
            "-c",
            &job,
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "stopped: 5 of 20 hosts failed, over the --max-fail 3 budget; 5 hosts not started"
        ),
        "the recap says why: {err}"
    );
    assert_eq!(hosts_with(&tmp.0, "not started"), names(16..=20));
    let mut failed = hosts_with(&tmp.0, "failed");
    failed.sort();
    assert_eq!(failed, ["web07", "web08", "web12", "web13", "web14"]);
    // The hosts left out were never touched.
    let check = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &["run", "all", "--", "test", "-e", &ran.to_string()],
    );
    assert_eq!(check.status.code(), Some(2));
    let mut untouched = hosts_with(&tmp.0, "failed");
    untouched.sort();
    assert_eq!(untouched, names(16..=20), "{}", text(&check.stderr));

    // --json says the same in its summary.
    let json = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &[
            "run",
            "all",
            "--json",
            "--serial",
            "5",
            "--max-fail",
            "3",
            "--",
            "sh",
            "-c",
            &job,
        ],
    );
    let summary: serde_json::Value =
        serde_json::from_str(text(&json.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["not_started"], 5);
    assert_eq!(summary["exit_code"], 2);
    assert!(
        summary["stopped"]
            .as_str()
            .unwrap()
            .contains("--max-fail 3")
    );

    // Within the budget every batch runs.
    let within = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &[
            "run",
            "all",
            "--serial",
            "5",
            "--max-fail",
            "25%",
            "--",
            "sh",
            "-c",
            &job,
        ],
    );
    assert_eq!(within.status.code(), Some(2), "five hosts still fail");
    assert!(hosts_with(&tmp.0, "not started").is_empty());

    // A failing canary: nothing after it starts, whatever the budget.
    let canary = fleet.wisp(
        wisp_tests::wisp_command!(&tmp.0),
        &tmp.0,
        &[
            "run",
            "all",
            "--serial",
            "1,50%",
            "--max-fail",
            "100%",
            "--",
            "false",
        ],
    );
    let err = text(&canary.stderr);
    assert_eq!(canary.status.code(), Some(2), "{err}");
    assert!(
        err.contains("stopped: the canary batch failed (1 of 1 hosts)"),
        "{err}"
    );
    assert_eq!(hosts_with(&tmp.0, "failed"), ["web01"]);
    assert_eq!(hosts_with(&tmp.0, "not started"), names(2..=20));
    fleet.assert_clean();
}
