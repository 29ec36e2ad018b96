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

/// `wisp ARGS` against `fleet` from `dir` (see [`Fleet::wisp`]).
fn wisp_at(fleet: &Fleet, dir: &Path, args: &[&str]) -> std::process::Output {
    fleet.wisp(wisp_tests::wisp_command!(dir), dir, args)
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
    let rig = wisp_at(
        &fleet,
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
    let out = wisp_at(
        &fleet,
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
    let check = wisp_at(
        &fleet,
        &tmp.0,
        &["run", "all", "--", "test", "-e", &ran.to_string()],
    );
    assert_eq!(check.status.code(), Some(2));
    let mut untouched = hosts_with(&tmp.0, "failed");
    untouched.sort();
    assert_eq!(untouched, names(16..=20), "{}", text(&check.stderr));

    // `wisp retry 2` (the budgeted run: the rig was run 1) runs the five that failed and the
    // five never started, and nothing else.
    let retry = wisp_at(&fleet, &tmp.0, &["retry", "2", "--", "sh", "-c", &job]);
    let err = text(&retry.stderr);
    assert_eq!(
        retry.status.code(),
        Some(2),
        "the rigged five fail again: {err}"
    );
    let mut retried = hosts_with(&tmp.0, "");
    retried.sort();
    let mut expected = vec!["web07", "web08", "web12", "web13", "web14"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    expected.extend(names(16..=20));
    assert_eq!(retried, expected, "{err}");
    assert_eq!(hosts_with(&tmp.0, "ok"), names(16..=20));
    let mut history = wisp_tests::wisp_command!(&tmp.0);
    history.args(["history", "-n", "1"]);
    let listed = text(&wisp::run(&mut history, &tmp.0).stdout);
    assert!(listed.contains("run (retry of 2) sh"), "{listed}");
    // A retry of a `wisp run` needs its command again, and the same program.
    let bare = wisp_at(&fleet, &tmp.0, &["retry", "2"]);
    assert_eq!(bare.status.code(), Some(5));
    assert!(
        text(&bare.stderr).contains("give the command again, as in `wisp retry 2 -- sh ARGS`"),
        "{}",
        text(&bare.stderr)
    );

    // --json says the same in its summary.
    let json = wisp_at(
        &fleet,
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
    let within = wisp_at(
        &fleet,
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
    let canary = wisp_at(
        &fleet,
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

/// The journal lines of the newest run, from `wisp show last --json`.
fn journal(dir: &Path) -> Vec<serde_json::Value> {
    let mut show = wisp_tests::wisp_command!(dir);
    show.args(["show", "last", "--json"]);
    text(&wisp::run(&mut show, dir).stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a journal line is JSON"))
        .collect()
}

#[test]
fn retry_from_the_failed_task_skips_what_was_done() {
    if !root_or_explain("retries across sshd hosts with a folder of their own (mount namespaces)") {
        return;
    }
    let tmp = ScratchDir::new("retry");
    let srv = tmp.0.join("srv");
    let fleet = Fleet::start_with_private_dir(4, &srv);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let at = |name: &str| srv.join(name).display().to_string();
    let (rigged, count, handled) = (at("rigged"), at("count"), at("handled"));
    std::fs::write(
        tmp.0.join("site.toml"),
        format!(
            "[[task]]\nname = \"config\"\nop = \"file.write\"\npath = \"{conf}\"\n\
             content = \"on\\n\"\nnotify = [\"reload\"]\n\n\
             [[task]]\nname = \"count\"\nop = \"exec\"\nargv = [\"sh\", \"-c\", \"echo x >> {count}\"]\n\n\
             [[task]]\nname = \"gate\"\nop = \"exec\"\nargv = [\"sh\", \"-c\", \"! test -e {rigged}\"]\n\n\
             [[task]]\nname = \"after\"\nop = \"file.write\"\npath = \"{after}\"\ncontent = \"x\\n\"\n\n\
             [[handler]]\nname = \"reload\"\nop = \"exec\"\nargv = [\"touch\", \"{handled}\"]\n",
            conf = at("app.conf"),
            after = at("after"),
        ),
    )
    .unwrap();
    // Rigged outside the store, so that the apply stays the last recorded run.
    let rig = wisp_at(
        &fleet,
        &tmp.0,
        &["run", "web02,web04", "--no-state", "--", "touch", &rigged],
    );
    assert_eq!(rig.status.code(), Some(0), "{}", text(&rig.stderr));
    let applied = wisp_at(&fleet, &tmp.0, &["apply", "site.toml", "all"]);
    assert_eq!(applied.status.code(), Some(2), "{}", text(&applied.stderr));
    let mut failed = hosts_with(&tmp.0, "failed");
    failed.sort();
    assert_eq!(failed, ["web02", "web04"]);
    let unrig = wisp_at(
        &fleet,
        &tmp.0,
        &["run", "web02,web04", "--no-state", "--", "rm", &rigged],
    );
    assert_eq!(unrig.status.code(), Some(0), "{}", text(&unrig.stderr));

    let retry = wisp_at(&fleet, &tmp.0, &["retry", "--from-failed-task"]);
    assert_eq!(retry.status.code(), Some(0), "{}", text(&retry.stderr));
    let lines = journal(&tmp.0);
    assert_eq!(lines[0]["retry_of"], 1, "{:?}", lines[0]);
    assert_eq!(lines[0]["hosts"], serde_json::json!(["web02", "web04"]));
    for host in ["web02", "web04"] {
        let tasks: Vec<(&str, &str)> = lines
            .iter()
            .filter(|l| l["kind"] == "task" && l["host"] == host)
            .map(|l| (l["task"].as_str().unwrap(), l["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            tasks,
            [
                ("config", "skipped"),
                ("count", "skipped"),
                ("gate", "changed"),
                ("after", "changed"),
                ("reload", "changed"),
            ],
            "{host}: the tasks done in run 1 are not run again; the handler the first one \
             notified then still runs"
        );
        let carried = lines
            .iter()
            .filter(|l| l["kind"] == "task" && l["host"] == host && l["done_in"] == 1)
            .count();
        assert_eq!(carried, 2, "{host}: recorded as done in run 1");
    }
    // Every host ran the counting task exactly once, across both runs.
    let counted = wisp_at(
        &fleet,
        &tmp.0,
        &[
            "run",
            "all",
            "--no-state",
            "--",
            "sh",
            "-c",
            &format!("wc -l < {count}; test -e {handled}"),
        ],
    );
    assert_eq!(counted.status.code(), Some(0), "{}", text(&counted.stderr));
    let out = text(&counted.stdout);
    assert_eq!(
        out.lines().filter(|l| l.ends_with("| 1")).count(),
        4,
        "{out}"
    );

    // A plan that changed since cannot be resumed task by task.
    std::fs::write(
        tmp.0.join("site.toml"),
        "[[task]]\nname = \"other\"\nop = \"exec\"\nargv = [\"true\"]\n",
    )
    .unwrap();
    let changed = wisp_at(&fleet, &tmp.0, &["retry", "1", "--from-failed-task"]);
    assert_eq!(changed.status.code(), Some(5));
    assert!(
        text(&changed.stderr).contains("changed since run 1"),
        "{}",
        text(&changed.stderr)
    );
    fleet.assert_clean();
}

#[test]
fn fold_prints_identical_output_once_under_a_host_range() {
    if !root_or_explain(
        "folded output across sshd hosts with a folder of their own (mount namespaces)",
    ) {
        return;
    }
    let tmp = ScratchDir::new("fold");
    let srv = tmp.0.join("srv");
    let fleet = Fleet::start_with_private_dir(30, &srv);
    fleet.write_inventory(&tmp.0.join("hosts"));
    let marker = srv.join("marker").display().to_string();
    let odd = wisp_at(
        &fleet,
        &tmp.0,
        &[
            "run",
            "web17",
            "--",
            "sh",
            "-c",
            &format!("echo different > {marker}"),
        ],
    );
    assert_eq!(odd.status.code(), Some(0), "{}", text(&odd.stderr));
    let job = format!("cat {marker} 2>/dev/null || echo same");
    let folded = wisp_at(
        &fleet,
        &tmp.0,
        &["run", "all", "--fold", "--", "sh", "-c", &job],
    );
    let (out, err) = (text(&folded.stdout), text(&folded.stderr));
    assert_eq!(folded.status.code(), Some(0), "{err}");
    assert_eq!(
        out,
        "==== web[01-16,18-30] (29 hosts): ok, exit 0\n| same\n\
         ==== web17: ok, exit 0\n| different\n",
        "each output once, under its hosts"
    );
    let recap: Vec<&str> = err.lines().skip_while(|l| *l != "RECAP").collect();
    assert_eq!(recap.len(), 3, "one folded recap row: {err}");
    assert!(recap[1].starts_with("web[01-30]  ok"), "{err}");

    // --json: output still streams, and a fold line comes before the summary.
    let json = wisp_at(
        &fleet,
        &tmp.0,
        &["run", "all", "--fold", "--json", "--", "sh", "-c", &job],
    );
    let lines: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let outputs = lines.iter().filter(|l| l["type"] == "output").count();
    assert_eq!(outputs, 30);
    let fold = &lines[lines.len() - 2];
    assert_eq!(fold["type"], "fold");
    assert_eq!(fold["groups"][0]["hosts"], "web[01-16,18-30]");
    assert_eq!(fold["groups"][0]["count"], 29);
    assert_eq!(fold["groups"][0]["lines"][0]["line"], "same");
    assert_eq!(fold["groups"][1]["host_list"], serde_json::json!(["web17"]));
    fleet.assert_clean();
}
