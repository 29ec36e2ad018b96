//! `wisp apply` through the real CLI on localhost: a plan applied twice changes nothing the
//! second time; `--check` leaves the disk alone and says what would change; `--diff` shows
//! it; handlers run once, only after a change; a broken plan is refused, naming file and line,
//! before any host is contacted.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::path::Path;
use std::process::Output;

use wisp_tests::{ScratchDir, runner_path, snapshot};

pub(crate) fn apply(tmp: &ScratchDir, plan: &Path, extra: &[&str]) -> Output {
    wisp_tests::wisp_command!(&tmp.0)
        .arg("apply")
        .arg(plan)
        .arg("localhost")
        .args(extra)
        .env("WISP_RUNNER", runner_path())
        .env("TMPDIR", &tmp.0)
        .output()
        .unwrap()
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The plan: a directory, two files (one from a template, one notifying a handler), a
/// read-only exec, and the handler, which appends to a log so its runs can be counted.
fn plan(tmp: &ScratchDir, port: u32) -> std::path::PathBuf {
    let root = tmp.0.join("site");
    let plan = format!(
        r#"
[vars]
root = "{root}"
port = "{port}"

[[task]]
name = "site dir"
op = "dir.ensure"
path = "{{{{ root }}}}"
mode = "0750"

[[task]]
name = "config"
op = "file.write"
path = "{{{{ root }}}}/app.conf"
content = "port = {{{{ port }}}}\nname = {{{{ host.name }}}}\n"
notify = ["reload"]

[[task]]
name = "motd"
op = "file.write"
path = "{{{{ root }}}}/motd"
content = "hello\n"
mode = "0600"

[[task]]
name = "look"
op = "exec"
argv = ["ls", "{{{{ root }}}}"]
changed_when = false

[[handler]]
name = "reload"
op = "exec"
shell = "echo reloaded >> {{{{ root }}}}.log"
"#,
        root = root.display()
    );
    let path = tmp.0.join("site.toml");
    std::fs::write(&path, plan).unwrap();
    path
}

#[test]
fn applying_twice_changes_nothing_the_second_time_and_handlers_run_only_after_a_change() {
    let tmp = ScratchDir::new("apply-twice");
    let plan = plan(&tmp, 80);
    let log = tmp.0.join("site.log");

    let out = apply(&tmp, &plan, &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("ok=1 changed=4 failed=0 skipped=0"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.0.join("site/app.conf")).unwrap(),
        "port = 80\nname = localhost\n"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "reloaded\n");

    let out = apply(&tmp, &plan, &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("ok=4 changed=0 failed=0 skipped=0"),
        "the second run changed something: {stdout}{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "reloaded\n",
        "the handler ran without a change"
    );

    // A change to the config (only) notifies the handler once more.
    let plan = self::plan(&tmp, 81);
    let out = apply(&tmp, &plan, &[]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ok=3 changed=2 failed=0 skipped=0"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "reloaded\nreloaded\n"
    );
}

#[test]
fn check_mode_changes_nothing_and_diff_shows_what_would() {
    let tmp = ScratchDir::new("apply-check");
    let plan = plan(&tmp, 80);
    assert_eq!(apply(&tmp, &plan, &[]).status.code(), Some(0));
    let plan = self::plan(&tmp, 8080);
    let before = snapshot(&tmp.0);
    let out = apply(&tmp, &plan, &["--check", "--diff"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(snapshot(&tmp.0), before, "--check changed the disk");
    let conf = tmp.0.join("site/app.conf");
    let diff = format!(
        "localhost | --- {c}\nlocalhost | +++ {c}\nlocalhost | @@ -1,2 +1,2 @@\n\
         localhost | -port = 80\nlocalhost | +port = 8080\nlocalhost |  name = localhost\n",
        c = conf.display()
    );
    assert!(stdout.contains(&diff), "{stdout}");
    assert!(stdout.contains("changed  config (content)"), "{stdout}");
    assert!(stdout.contains("skipped  look (check mode)"), "{stdout}");
    assert!(stdout.contains("skipped  reload (check mode)"), "{stdout}");
    assert!(
        stderr.contains("ok=2 changed=1 failed=0 skipped=2"),
        "{stderr}"
    );
}

#[test]
fn a_broken_plan_is_refused_before_any_host_is_contacted() {
    let tmp = ScratchDir::new("apply-broken");
    let cases = [
        (
            "[[task]]\nop = \"file.wirte\"\npath = \"/x\"\n",
            ":2: unknown op \"file.wirte\"",
        ),
        (
            "[[task]]\nname = \"d\"\nop = \"dir.ensure\"\nmode = \"0755\"\n",
            ":1: dir.ensure args: missing field `path`",
        ),
        (
            "[vars]\napp = \"x\"\n\n[[task]]\nop = \"exec\"\nshell = \"echo {{ ap }}\"\n",
            ":4: args.shell: ap is undefined",
        ),
        (
            "[vars]\nflag = \"yes\"\n\n[[task]]\nop = \"exec\"\nargv = [\"true\"]\nwhen = \"flag\"\n",
            ":4: when: \"flag\" is 'yes', not a boolean",
        ),
        (
            "[[task]]\nop = \"file.write\"\npath = \"/tmp/x\"\ncontent = \"{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}\"\n",
            ":1: content: rendering ran past",
        ),
        (
            "[[task]]\nop = \"file.write\"\npath = \"/tmp/x\"\ncontent = \"\"\nmode = 644\n",
            ":5: mode = 644 is a decimal number (octal 1204)",
        ),
        (
            "[[task]]\nname = \"tzdata\"\nop = \"pkg.ensure\"\n",
            ":1: pkg.ensure needs the package's name in its args",
        ),
        (
            "[[task]]\nop = \"exec\"\nshell = \"true\"\nunless = \"test -e /x\"\n",
            ":1: exec args: unknown field `unless`",
        ),
    ];
    for (text_of_plan, expected) in cases {
        let plan = tmp.0.join("broken.toml");
        std::fs::write(&plan, text_of_plan).unwrap();
        // An address nothing listens on: had wisp tried to connect, it would say unreachable.
        let out = wisp_tests::wisp_command!(&tmp.0)
            .arg("apply")
            .arg(&plan)
            .arg("127.0.0.1:1")
            .env("WISP_RUNNER", runner_path())
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(
            stderr.contains(&format!("{}{expected}", plan.display())),
            "{expected}: {stderr}"
        );
        assert!(!stderr.contains("UNREACHABLE"), "{stderr}");
    }
}

#[test]
fn the_first_failure_stops_the_host_unless_ignored() {
    let tmp = ScratchDir::new("apply-fail");
    let marker = tmp.0.join("after");
    let plan = tmp.0.join("fail.toml");
    let write = |ignore: bool| {
        std::fs::write(
            &plan,
            format!(
                "[[task]]\nname = \"boom\"\nop = \"exec\"\nargv = [\"false\"]\nignore_errors = {ignore}\n\n\
                 [[task]]\nname = \"after\"\nop = \"file.write\"\npath = \"{}\"\ncontent = \"x\"\n",
                marker.display()
            ),
        )
        .unwrap();
    };
    write(false);
    let out = apply(&tmp, &plan, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).contains("failed   boom (exit 1)"));
    assert!(!marker.exists(), "a task ran after a failure");
    write(true);
    let out = apply(&tmp, &plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(marker.exists());
    assert!(text(&out.stderr).contains("ignored=1"));
}

#[test]
fn content_larger_than_a_frame_arrives_whole_and_only_once() {
    let tmp = ScratchDir::new("apply-big");
    // Three frames' worth and a bit: 8 MiB + 8 MiB + 4 KiB + 3 bytes, not a repeating pattern.
    let len = (16 << 20) + 4099;
    let mut state: u32 = 0x2545_f491;
    let content: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect();
    std::fs::write(tmp.0.join("big.bin"), &content).unwrap();
    let target = tmp.0.join("out/big.bin");
    let plan = tmp.0.join("big.toml");
    std::fs::write(
        &plan,
        format!(
            "[[task]]\nname = \"big\"\nop = \"file.write\"\npath = \"{}\"\ncontent_file = \"big.bin\"\nmake_parents = true\n",
            target.display()
        ),
    )
    .unwrap();
    let out = apply(&tmp, &plan, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("changed  big (created)"));
    assert!(
        std::fs::read(&target).unwrap() == content,
        "the file differs"
    );
    let out = apply(&tmp, &plan, &[]);
    assert!(
        text(&out.stderr).contains("ok=1 changed=0"),
        "{}",
        text(&out.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["big.bin"], "a temporary file was left behind");
}
