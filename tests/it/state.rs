//! The state store end to end: runs recorded and read back (`wisp history`, `wisp show`),
//! several wisp processes writing at once, a run killed mid-way, and stores that cannot be
//! used (damaged, read-only, on a full disk), each refused before anything runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use wisp_tests::sshd::Fleet;
use wisp_tests::{ScratchDir, root_or_explain, wisp};

fn wisp_in(dir: &Path, args: &[&str]) -> Command {
    let mut c = wisp_tests::wisp_command!(dir);
    c.args(args).current_dir(dir);
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    wisp::run(&mut wisp_in(dir, args), dir)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The default store of a scratch directory's isolated environment.
fn store_of(dir: &Path) -> PathBuf {
    wisp::env_dir(dir).join("state/wisp/wisp.db")
}

#[test]
fn runs_are_recorded_and_read_back() {
    let tmp = ScratchDir::new("state-history");
    assert_eq!(
        run(&tmp.0, &["run", "localhost", "--", "true"])
            .status
            .code(),
        Some(0)
    );
    let failed = run(&tmp.0, &["run", "localhost", "--", "sh", "-c", "exit 3"]);
    assert_eq!(failed.status.code(), Some(2));
    assert!(
        store_of(&tmp.0).is_file(),
        "the store is in the XDG state folder"
    );

    let history = run(&tmp.0, &["history"]);
    assert_eq!(history.status.code(), Some(0));
    let lines: Vec<String> = text(&history.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].trim_start().starts_with("2 "),
        "newest first: {lines:?}"
    );
    assert!(
        lines[0].contains("run sh") && lines[0].contains("1 failed"),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with("exit 2"), "{}", lines[0]);
    assert!(
        lines[1].contains("run true") && lines[1].ends_with("exit 0"),
        "{}",
        lines[1]
    );

    let show = run(&tmp.0, &["show", "last"]);
    let shown = text(&show.stdout);
    assert!(shown.contains("localhost: failed (exit 3)"), "{shown}");
    assert!(
        shown.contains("exit 3") && shown.contains("enforcement:"),
        "{shown}"
    );

    // The journal's lines, as recorded, for scripts; the same as the journal file's.
    let json = run(&tmp.0, &["show", "1", "--json"]);
    let lines: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "run");
    assert!(
        kinds[1..].starts_with(&["audit"]),
        "the runner check is audited: {kinds:?}"
    );
    let rest: Vec<&str> = kinds.iter().copied().filter(|k| *k != "audit").collect();
    assert_eq!(rest, ["run", "command", "host", "end"]);
    let journal_dir = wisp::env_dir(&tmp.0).join("journal");
    let mut files: Vec<_> = std::fs::read_dir(&journal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let first: Vec<serde_json::Value> = std::fs::read_to_string(&files[0])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        first, lines,
        "the store and the journal file hold the same lines"
    );

    let missing = run(&tmp.0, &["show", "9"]);
    assert_eq!(missing.status.code(), Some(5));
    assert!(text(&missing.stderr).contains("no run 9"));

    // --no-state records nothing; --state FILE records elsewhere.
    run(&tmp.0, &["run", "localhost", "--no-state", "--", "true"]);
    let other = tmp.0.join("other.db");
    let o = other.to_str().unwrap();
    run(&tmp.0, &["run", "localhost", "--state", o, "--", "true"]);
    assert_eq!(text(&run(&tmp.0, &["history"]).stdout).lines().count(), 2);
    let elsewhere = run(&tmp.0, &["history", "--state", o]);
    assert_eq!(text(&elsewhere.stdout).lines().count(), 1);
}

#[test]
fn concurrent_runs_lose_no_rows() {
    const PROCESSES: usize = 8;
    const RUNS: usize = 50;
    let fleet = Fleet::start(1);
    let tmp = ScratchDir::new("state-concurrent");
    let targets = format!("localhost,{}", fleet.targets());
    let options = fleet.root_options();
    let started = Instant::now();
    let workers: Vec<_> = (0..PROCESSES)
        .map(|_| {
            let (dir, targets, options) = (tmp.0.clone(), targets.clone(), options.clone());
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for _ in 0..RUNS {
                    let out = wisp_in(&dir, &["run", &targets])
                        .args(&options)
                        .args(["--", "true"])
                        .output()
                        .unwrap();
                    if out.status.code() != Some(0) {
                        failures.push(text(&out.stderr));
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    println!(
        "{} runs by {PROCESSES} processes in {:?}",
        PROCESSES * RUNS,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} runs failed: {:?}",
        failures.len(),
        failures.first()
    );
    let history = run(&tmp.0, &["history", "-n", "100000"]);
    let lines: Vec<String> = text(&history.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), PROCESSES * RUNS, "every run is in the store");
    let whole = lines
        .iter()
        .filter(|l| l.contains("2 hosts: 2 ok") && l.ends_with("exit 0"))
        .count();
    assert_eq!(whole, PROCESSES * RUNS, "every host result is in the store");
    assert!(!text(&history.stderr).contains("locked"));
    fleet.assert_clean();
}

#[test]
fn a_killed_run_leaves_a_readable_store_with_what_it_finished() {
    let tmp = ScratchDir::new("state-killed");
    std::fs::write(
        tmp.0.join("hosts"),
        "fast ansible_connection=local delay=0\nslow ansible_connection=local delay=60\n",
    )
    .unwrap();
    std::fs::write(
        tmp.0.join("plan.toml"),
        "[[task]]\nname = \"wait\"\nop = \"exec\"\nshell = \"sleep {{ host.delay }}\"\n",
    )
    .unwrap();
    let mut child = wisp_in(&tmp.0, &["apply", "plan.toml", "all", "-i", "hosts"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Bounded: the fast host's result is in the store within a minute, or the test fails.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    while Instant::now() < deadline {
        if store_of(&tmp.0).exists() {
            let out = wisp_in(&tmp.0, &["show", "last"]).output().unwrap();
            seen = text(&out.stdout);
            if seen.contains("fast: ok") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        seen.contains("fast: ok"),
        "the fast host never showed: {seen}"
    );

    let history = run(&tmp.0, &["history"]);
    assert_eq!(history.status.code(), Some(0), "the store is readable");
    let line = text(&history.stdout);
    assert!(line.contains("apply plan.toml"), "{line}");
    assert!(line.contains("2 hosts: 1 ok"), "{line}");
    assert!(line.trim_end().ends_with("not finished"), "{line}");
    let show = text(&run(&tmp.0, &["show", "last"]).stdout);
    assert!(
        show.contains("fast: ok") && show.contains("wait [exec]"),
        "{show}"
    );
    assert!(!show.contains("slow:"), "the slow host never ended: {show}");
    // A later run still writes to it.
    assert_eq!(
        run(&tmp.0, &["run", "localhost", "--", "true"])
            .status
            .code(),
        Some(0)
    );
    assert!(text(&run(&tmp.0, &["history"]).stdout).lines().count() == 2);
}

/// The kinds of the last run's journal lines, from the store.
fn kinds_of_last_run(dir: &Path) -> Vec<String> {
    text(&run(dir, &["show", "last", "--json"]).stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["kind"].as_str().unwrap_or("").to_owned()
        })
        .collect()
}

#[test]
fn plans_use_cached_facts_only_within_the_ttl() {
    let tmp = ScratchDir::new("state-facts");
    std::fs::write(
        tmp.0.join("plan.toml"),
        "[[task]]\nop = \"exec\"\nshell = \"echo {{ facts.os_id | quote }}\"\n",
    )
    .unwrap();
    let facts = run(&tmp.0, &["facts", "localhost"]);
    assert_eq!(facts.status.code(), Some(0));
    assert!(
        kinds_of_last_run(&tmp.0).contains(&"facts".to_owned()),
        "wisp facts stores them"
    );

    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", "plan.toml", "localhost"];
        args.extend_from_slice(extra);
        let out = run(&tmp.0, &args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        kinds_of_last_run(&tmp.0).contains(&"facts".to_owned())
    };
    assert!(
        !apply(&["--facts-ttl", "1h"]),
        "young cached facts are used, not read again"
    );
    assert!(apply(&[]), "without --facts-ttl they are read");
    assert!(
        apply(&["--facts-ttl", "1h", "--refresh-facts"]),
        "--refresh-facts reads them"
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert!(
        apply(&["--facts-ttl", "1s"]),
        "older than the ttl: read again"
    );
}

/// A tmpfs mounted for one test, unmounted however the test ends.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).expect("create the mount point");
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "cannot mount a tmpfs at {}", at.display());
        Mount(at.to_owned())
    }

    fn read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "cannot remount {} read-only", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Runs `wisp run localhost -- touch MARKER` with the store at `store`: it must be refused
/// with exit 6, naming the store and `hint`, and the command must not have run.
fn refused(dir: &Path, store: &Path, hint: &str) {
    let marker = dir.join("ran");
    let out = run(
        dir,
        &[
            "run",
            "localhost",
            "--state",
            store.to_str().expect("a UTF-8 path"),
            "--",
            "touch",
            marker.to_str().expect("a UTF-8 path"),
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains(&store.display().to_string()),
        "names the store: {err}"
    );
    assert!(err.contains(hint), "says why ({hint}): {err}");
    assert!(err.contains("--no-state"), "gives the way out: {err}");
    assert!(!marker.exists(), "nothing ran");
}

#[test]
fn unusable_stores_stop_the_run_before_it_starts() {
    let tmp = ScratchDir::new("state-unusable");
    let corrupt = tmp.0.join("corrupt.db");
    std::fs::write(&corrupt, "this is not a database\n".repeat(200)).unwrap();
    refused(&tmp.0, &corrupt, "damaged or not a wisp store");

    if !root_or_explain("a read-only and a full store (tmpfs mounts)") {
        return;
    }
    let ro = Mount::tmpfs(&tmp.0.join("ro"), "4m");
    let store = ro.0.join("wisp.db");
    let first = run(
        &tmp.0,
        &[
            "run",
            "localhost",
            "--state",
            store.to_str().expect("a UTF-8 path"),
            "--",
            "true",
        ],
    );
    assert_eq!(first.status.code(), Some(0));
    ro.read_only();
    refused(&tmp.0, &store, "read-only");

    let full = Mount::tmpfs(&tmp.0.join("full"), "256k");
    // Fill it: dd stops by itself at the end of the space.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", full.0.join("filler").display()))
        .stderr(Stdio::null())
        .status();
    refused(&tmp.0, &full.0.join("wisp.db"), "disk is full");
}
