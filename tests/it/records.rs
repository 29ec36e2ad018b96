//! What wisp records and prints stays what it was. `tests/fixtures/records-v1` holds what an
//! earlier wisp wrote for a fixed set of runs on localhost: its state store and journal files,
//! and what `wisp history`, `wisp show` and `wisp show --json` printed from them. Two checks:
//! - that store reads back byte for byte the same with today's wisp;
//! - the same runs made today print the same `--json` output and record the same journal
//!   lines, once what differs by nature (times, durations, the scratch path, the machine, the
//!   facts' values) is masked on both sides.
//!
//! `WISP_WRITE_RECORDS_FIXTURE=DIR cargo test -p wisp-tests --test it records::` writes a new
//! fixture into DIR instead (only when the recorded format is meant to change).

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use serde_json::Value;
use wisp_tests::{ScratchDir, wisp};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/records-v1");

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = wisp_tests::wisp_command!(dir);
    c.args(args).current_dir(dir);
    wisp::run(&mut c, dir)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The plan the runs apply: a change, a check, a failure that is ignored, a skipped task, a
/// handler, and a secret in an exec's environment.
fn site(dir: &Path) -> String {
    format!(
        r#"[vars]
root = "{root}"

[[task]]
name = "site dir"
op = "dir.ensure"
path = "{{{{ root }}}}"
mode = "0750"

[[task]]
name = "config"
op = "file.write"
path = "{{{{ root }}}}/app.conf"
content = "port = 80\n"
notify = ["reload"]

[[task]]
name = "look"
op = "exec"
argv = ["ls", "{{{{ root }}}}"]
changed_when = false

[[task]]
name = "boom"
op = "exec"
argv = ["false"]
ignore_errors = true

[[task]]
name = "never"
op = "exec"
argv = ["true"]
when = 'root == "elsewhere"' 

[[task]]
name = "token"
op = "exec"
shell = "echo token=$TOKEN"
env = {{ TOKEN = "{{{{ secret.db_pass }}}}" }}

[[handler]]
name = "reload"
op = "exec"
shell = "echo reloaded >> {{{{ root }}}}.log"
"#,
        root = dir.join("site").display()
    )
}

/// A plan whose second task fails, so a retry has a host to run again.
fn failing(dir: &Path) -> String {
    format!(
        "[[task]]\nname = \"mark\"\nop = \"file.write\"\npath = \"{}\"\ncontent = \"x\\n\"\n\n\
         [[task]]\nname = \"fail\"\nop = \"exec\"\nshell = \"test -e {}\"\n",
        dir.join("mark").display(),
        dir.join("go").display()
    )
}

/// Makes the runs in `dir`; returns each run's name and its `--json` stdout.
fn make_runs(dir: &Path) -> Vec<(String, String)> {
    let secret = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut c = wisp_tests::wisp_command!(dir);
        c.args(args).current_dir(dir);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let public = secret(&["secrets", "keygen", "--out", "a.key"], None);
    secret(
        &["secrets", "init", "s.age", "--recipient", public.trim()],
        None,
    );
    secret(
        &["secrets", "set", "s.age", "db_pass", "--identity", "a.key"],
        Some("hunter2-records\n"),
    );
    std::fs::write(dir.join("site.toml"), site(dir)).unwrap();
    std::fs::write(dir.join("failing.toml"), failing(dir)).unwrap();
    let with_secrets = ["--secrets", "s.age", "--identity", "a.key"];
    let mut runs: Vec<(&str, Vec<&str>, Option<i32>)> = vec![
        (
            "run-ok",
            vec!["run", "localhost", "--json", "--", "echo", "hello"],
            Some(0),
        ),
        (
            "run-failed",
            vec![
                "run",
                "localhost",
                "--json",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
            Some(2),
        ),
        (
            "apply-first",
            vec!["apply", "site.toml", "localhost", "--json", "--diff"],
            Some(0),
        ),
        (
            "apply-again",
            vec!["apply", "site.toml", "localhost", "--json"],
            Some(0),
        ),
        (
            "apply-check",
            vec![
                "apply",
                "site.toml",
                "localhost",
                "--json",
                "--check",
                "--diff",
            ],
            Some(0),
        ),
        (
            "drift",
            vec!["drift", "site.toml", "localhost", "--json"],
            None,
        ),
        (
            "apply-failing",
            vec!["apply", "failing.toml", "localhost", "--json"],
            Some(2),
        ),
        ("retry", vec!["retry", "--json"], Some(0)),
        (
            "unreachable",
            vec![
                "run",
                "localhost,127.0.0.1:1",
                "--json",
                "--fold",
                "--connect-timeout",
                "3s",
                "--",
                "echo",
                "x",
            ],
            Some(3),
        ),
        ("facts", vec!["facts", "localhost", "--json"], Some(0)),
        ("ping", vec!["ping", "localhost", "--json"], Some(0)),
    ];
    for (_, args, _) in &mut runs {
        if args[0] == "apply" || args[0] == "drift" {
            args.extend_from_slice(&with_secrets);
        }
    }
    let mut outputs = Vec::new();
    for (name, args, code) in runs {
        match name {
            // The managed file was changed by hand: the check run shows the diff.
            "apply-check" => std::fs::write(dir.join("site/app.conf"), "port = 81\n").unwrap(),
            "retry" => std::fs::write(dir.join("go"), "").unwrap(),
            _ => {}
        }
        let out = run(dir, &args);
        if let Some(code) = code {
            assert_eq!(
                out.status.code(),
                Some(code),
                "{name}: {}",
                text(&out.stderr)
            );
        }
        outputs.push((name.to_owned(), text(&out.stdout)));
    }
    outputs
}

/// The store a scratch directory's runs were recorded in.
fn store_of(dir: &Path) -> PathBuf {
    wisp::env_dir(dir).join("state/wisp/wisp.db")
}

/// What `wisp history` and `wisp show` print from the store at `state`, file by file.
fn read_back(dir: &Path, state: &Path, runs: usize) -> Vec<(String, String)> {
    let state = state.to_str().unwrap();
    let mut files = Vec::new();
    let history = run(dir, &["history", "-n", "100", "--state", state]);
    assert!(history.status.success(), "{}", text(&history.stderr));
    files.push(("history.txt".to_owned(), text(&history.stdout)));
    for n in 1..=runs {
        let n = n.to_string();
        for (json, suffix) in [(false, "txt"), (true, "jsonl")] {
            let mut args = vec!["show", n.as_str(), "--state", state];
            if json {
                args.push("--json");
            }
            let out = run(dir, &args);
            assert!(out.status.success(), "show {n}: {}", text(&out.stderr));
            files.push((format!("show-{n}.{suffix}"), text(&out.stdout)));
        }
    }
    files
}

/// Keys whose values differ from run to run by nature.
const VOLATILE: &[&str] = &[
    "at",
    "at_ms",
    "elapsed_ms",
    "duration_ms",
    "started_at",
    "ended_at",
    "user",
    "machine",
    "wisp",
    "usage",
    "plan_hash",
];
/// Keys whose values describe this machine: their shape is kept, their leaves masked.
const MACHINE: &[&str] = &["facts", "ready", "enforcement", "host_key", "caps"];

fn mask(value: &mut Value, leaves: bool) {
    match value {
        Value::Object(map) => {
            // Which runner was pushed, and its size and signing key, belong to the build.
            if map.get("act").and_then(Value::as_str) == Some("runner") {
                map.insert("detail".into(), Value::String("<masked>".into()));
            }
            // The host's machine id is there only on hosts that have one.
            if leaves {
                map.remove("machine_id");
            }
            for (key, v) in map.iter_mut() {
                if VOLATILE.contains(&key.as_str()) {
                    *v = Value::String("<masked>".into());
                } else {
                    mask(v, leaves || MACHINE.contains(&key.as_str()));
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask(v, leaves)),
        other if leaves => *other = Value::String("<masked>".into()),
        _ => {}
    }
}

/// JSON lines with the scratch path and the volatile values masked. Hosts run at once, so
/// the lines are grouped by host, and a host's stdout and stderr come through two pipes, so
/// its output is grouped by stream (in order within each group, and the run's own lines
/// first, in order): which host or stream spoke first is not part of the format.
fn masked(dir: &Path, jsonl: &str) -> String {
    let scratch = dir.display().to_string();
    let mut lines: Vec<(String, String)> = jsonl
        .lines()
        .map(|line| {
            let mut v: Value = serde_json::from_str(&line.replace(&scratch, "$SCRATCH"))
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            mask(&mut v, false);
            let field = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
            (
                format!("{}\0{}", field("host"), field("stream")),
                format!("{v}\n"),
            )
        })
        .collect();
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    lines.into_iter().map(|(_, line)| line).collect()
}

/// Every run today, masked: its `--json` output and the journal lines `show --json` reads.
fn masked_runs(dir: &Path) -> Vec<(String, String)> {
    let outputs = make_runs(dir);
    let back = read_back(dir, &store_of(dir), outputs.len());
    let mut files = Vec::new();
    for (i, (name, stdout)) in outputs.iter().enumerate() {
        files.push((
            format!("{:02}-{name}.out.jsonl", i + 1),
            masked(dir, stdout),
        ));
        let journal = &back
            .iter()
            .find(|(f, _)| *f == format!("show-{}.jsonl", i + 1))
            .unwrap()
            .1;
        files.push((
            format!("{:02}-{name}.journal.jsonl", i + 1),
            masked(dir, journal),
        ));
    }
    files
}

/// A store's file and its write-ahead log, when it has one.
fn copy_store(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wal = |p: &Path| PathBuf::from(format!("{}-wal", p.display()));
    if wal(from).exists() {
        std::fs::copy(wal(from), wal(to)).unwrap();
    }
}

fn write_fixture(out: &Path) {
    let tmp = ScratchDir::new("records-write");
    let runs = masked_runs(&tmp.0);
    std::fs::create_dir_all(out.join("runs")).unwrap();
    std::fs::create_dir_all(out.join("store/journal")).unwrap();
    for (name, body) in &runs {
        std::fs::write(out.join("runs").join(name), body).unwrap();
    }
    copy_store(&store_of(&tmp.0), &out.join("store/wisp.db"));
    let journals = wisp::env_dir(&tmp.0).join("journal");
    for entry in std::fs::read_dir(journals).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            out.join("store/journal").join(entry.file_name()),
        )
        .unwrap();
    }
    for (name, body) in read_back(&tmp.0, &out.join("store/wisp.db"), runs.len() / 2) {
        std::fs::write(out.join("store").join(name), body).unwrap();
    }
}

fn fixture() -> Option<PathBuf> {
    if let Some(out) = std::env::var_os("WISP_WRITE_RECORDS_FIXTURE") {
        write_fixture(Path::new(&out));
        return None;
    }
    Some(PathBuf::from(FIXTURE))
}

fn same(name: &str, expected: &str, got: &str) {
    if expected != got {
        let first = expected
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(got.lines().count()));
        panic!(
            "{name} differs from the fixture at line {}:\n  fixture: {}\n  today:   {}",
            first + 1,
            expected.lines().nth(first).unwrap_or("<end>"),
            got.lines().nth(first).unwrap_or("<end>")
        );
    }
}

#[test]
fn a_store_written_by_an_earlier_wisp_reads_back_byte_for_byte() {
    let Some(fixture) = fixture() else { return };
    let tmp = ScratchDir::new("records-store");
    let state = tmp.0.join("wisp.db");
    copy_store(&fixture.join("store/wisp.db"), &state);
    let runs = std::fs::read_dir(fixture.join("runs")).unwrap().count() / 2;
    assert!(runs >= 10, "the fixture holds {runs} runs");
    let mut journal_lines = 0;
    for (name, got) in read_back(&tmp.0, &state, runs) {
        let expected = std::fs::read_to_string(fixture.join("store").join(&name)).unwrap();
        same(&name, &expected, &got);
        if name.ends_with(".jsonl") {
            journal_lines += got.lines().count();
        }
    }
    // `show --json` prints what the journal files hold, run by run.
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture.join("store/journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let written: usize = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
        .sum();
    assert_eq!(written, journal_lines);
}

#[test]
fn the_same_runs_print_and_record_what_they_did() {
    let Some(fixture) = fixture() else { return };
    let tmp = ScratchDir::new("records-runs");
    for (name, got) in masked_runs(&tmp.0) {
        let expected = std::fs::read_to_string(fixture.join("runs").join(&name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Masked again: masking is the same on both sides, whenever the fixture was written.
        let expected = masked(&tmp.0, &expected);
        same(&name, &expected, &got);
    }
}
