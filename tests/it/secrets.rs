//! Secrets: an age file for two recipients opens with either identity; a plan's secret reaches
//! the host's processes through env, stdin and file content, and its value appears nowhere the
//! controller prints or records (human output, `--json`, the journal, errors, diffs), nor in
//! the host's process list, nor on disk outside the file it was written to.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use wisp_tests::{ScratchDir, runner_path};

/// `wisp` in `dir`, its temp directory (and so the local runner's) `dir/tmp`.
pub(crate) fn wisp(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let mut child = wisp_tests::wisp_command!(dir)
        .args(args)
        .current_dir(dir)
        .env("TMPDIR", dir.join("tmp"))
        .env("WISP_RUNNER", runner_path())
        .env("WISP_JOURNAL_DIR", dir.join("journal"))
        .env_remove("WISP_AGE_IDENTITY")
        .env_remove("WISP_AGE_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Two identities, a secrets file for both, and `db_pass` set to `value` with the first.
pub(crate) fn setup(dir: &Path, value: &str) {
    let a = wisp(dir, &["secrets", "keygen", "--out", "a.key"], None);
    let b = wisp(dir, &["secrets", "keygen", "--out", "b.key"], None);
    let (a, b) = (text(&a.stdout), text(&b.stdout));
    assert!(a.starts_with("age1") && b.starts_with("age1"), "{a} {b}");
    let init = wisp(
        dir,
        &[
            "secrets",
            "init",
            "s.age",
            "--recipient",
            a.trim(),
            "--recipient",
            b.trim(),
        ],
        None,
    );
    assert_eq!(init.status.code(), Some(0), "{}", text(&init.stderr));
    let set = wisp(
        dir,
        &["secrets", "set", "s.age", "db_pass", "--identity", "a.key"],
        Some(&format!("{value}\n")),
    );
    assert_eq!(set.status.code(), Some(0), "{}", text(&set.stderr));
}

#[test]
fn a_secrets_file_for_two_recipients_opens_with_either_identity() {
    let tmp = ScratchDir::new("secrets-two");
    let value = format!("v4lue-{}-x", std::process::id());
    setup(&tmp.0, &value);
    let sealed = std::fs::read(tmp.0.join("s.age")).unwrap();
    assert!(!text(&sealed).contains(&value), "the file is not encrypted");
    for id in ["a.key", "b.key"] {
        let out = wisp(
            &tmp.0,
            &["secrets", "list", "s.age", "--identity", id],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "{id}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "db_pass\n", "{id}");
    }
    // A third identity, not a recipient, cannot.
    wisp(&tmp.0, &["secrets", "keygen", "--out", "c.key"], None);
    let out = wisp(
        &tmp.0,
        &["secrets", "list", "s.age", "--identity", "c.key"],
        None,
    );
    assert_eq!(out.status.code(), Some(5));
    assert!(
        text(&out.stderr).contains("cannot decrypt"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_secret_reaches_the_host_and_shows_nowhere() {
    let tmp = ScratchDir::new("secrets-plan");
    let value = format!("s3cr3t-{}-value", std::process::id());
    setup(&tmp.0, &value);
    let dir = tmp.0.display().to_string();
    let plan = format!(
        r#"secrets = "s.age"

[[task]]
name = "echoes it"
op = "exec"
shell = 'echo "token is $TOKEN"; ps -eo args > {dir}/ps.txt; echo "to stderr $TOKEN" >&2'
env = {{ TOKEN = "{{{{ secret.db_pass }}}}" }}

[[task]]
name = "reads it"
op = "exec"
argv = ["cat"]
stdin = "pw={{{{ secret.db_pass }}}}\n"

[[task]]
name = "writes it"
op = "file.write"
path = "{dir}/app.conf"
content = "password = {{{{ secret.db_pass }}}}\n"
mode = "0600"

[[task]]
name = "fails with it"
op = "exec"
shell = 'echo "bad $TOKEN" >&2; exit 3'
env = {{ TOKEN = "{{{{ secret.db_pass }}}}" }}
"#
    );
    std::fs::write(tmp.0.join("plan.toml"), plan).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["apply", "plan.toml", "localhost", "--identity", "b.key"];
        args.extend_from_slice(extra);
        wisp(&tmp.0, &args, None)
    };
    let human = run(&["--diff"]);
    let (stdout, stderr) = (text(&human.stdout), text(&human.stderr));
    assert_eq!(human.status.code(), Some(2), "{stdout}{stderr}");
    // It did reach the host...
    assert!(stdout.contains("token is [secret:db_pass]"), "{stdout}");
    assert!(stdout.contains("pw=[secret:db_pass]"), "{stdout}");
    assert!(stdout.contains("+password = [secret:db_pass]"), "{stdout}");
    assert!(stdout.contains("bad [secret:db_pass]"), "{stdout}");
    let conf = std::fs::read_to_string(tmp.0.join("app.conf")).unwrap();
    assert_eq!(conf, format!("password = {value}\n"));
    // ...and shows nowhere.
    let json = run(&["--json"]);
    let mut seen = vec![
        ("stdout", stdout),
        ("stderr", stderr),
        ("--json stdout", text(&json.stdout)),
        ("--json stderr", text(&json.stderr)),
        (
            "the host's process list",
            std::fs::read_to_string(tmp.0.join("ps.txt")).unwrap(),
        ),
    ];
    for e in std::fs::read_dir(tmp.0.join("journal")).unwrap() {
        let path = e.unwrap().path();
        seen.push(("the journal", std::fs::read_to_string(path).unwrap()));
    }
    assert!(seen.len() >= 7, "two journals expected");
    // The state store holds both runs' tasks, never the value: its bytes, WAL included.
    let shown = wisp(&tmp.0, &["show", "last", "--json"], None);
    assert!(
        text(&shown.stdout).contains("\"task\":\"fails with it\""),
        "the run is in the store"
    );
    let store = wisp_tests::wisp::env_dir(&tmp.0).join("state/wisp/wisp.db");
    let mut found = 0;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = store.clone().into_os_string();
        path.push(suffix);
        if let Ok(bytes) = std::fs::read(&path) {
            found += 1;
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "the secret is in {}",
                Path::new(&path).display()
            );
        }
    }
    assert!(found >= 1, "no store at {}", store.display());
    assert!(seen[2].1.contains("[secret:db_pass]"), "{}", seen[2].1);
    // On disk, in clear, it is only in the file it was written to: nothing in the controller's
    // home, state, cache or temp directory, nor the runner's, nor shared memory.
    let mut on_disk = wisp_tests::files_containing(&tmp.0, value.as_bytes());
    on_disk.extend(wisp_tests::files_containing(
        Path::new("/dev/shm"),
        value.as_bytes(),
    ));
    assert_eq!(
        on_disk,
        [tmp.0.join("app.conf")],
        "the secret is on disk in clear"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.0.join("tmp")).unwrap().collect();
    assert!(left.is_empty(), "left in the temp directory: {left:?}");
    for (what, content) in &seen {
        assert!(
            !content.contains(&value),
            "the secret shows in {what}:\n{content}"
        );
    }

    // A plan that misuses a secret is refused before anything runs, naming file and line.
    let refused = |name: &str, task: &str| {
        let plan = format!("secrets = \"s.age\"\n\n[[task]]\nop = \"exec\"\n{task}\n");
        std::fs::write(tmp.0.join(name), plan).unwrap();
        let out = wisp(
            &tmp.0,
            &["apply", name, "localhost", "--identity", "a.key"],
            None,
        );
        assert_eq!(out.status.code(), Some(4), "{name}");
        text(&out.stderr)
    };
    // On a command line,
    let err = refused("bad.toml", "shell = \"echo {{ secret.db_pass }}\"");
    assert!(
        err.contains("bad.toml:3: args.shell: a secret may go only in"),
        "{err}"
    );
    // or by a name the file does not have.
    let err = refused(
        "missing.toml",
        "argv = [\"true\"]\nenv = { X = \"{{ secret.nope }}\" }",
    );
    assert!(err.contains("missing.toml:3: {{ secret.nope }}"), "{err}");
}

/// Case: `wisp secrets edit` hands the editor a decrypted copy. It lives in a directory of its
/// own (0700, a name no one can guess: the next few hundred names of the old `wisp-secrets-PID`
/// scheme are taken beforehand, as another user sharing the temp directory could), as a 0600
/// file, and both are gone afterwards; the value is nowhere else on disk.
#[test]
fn the_editors_copy_is_private_and_gone_after() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = ScratchDir::new("secrets-edit");
    let value = format!("ed1t-{}-v", std::process::id());
    setup(&tmp.0, &value);
    let shared = tmp.0.join("shared-tmp");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for pid in last..last + 400 {
        std::fs::create_dir(shared.join(format!("wisp-secrets-{pid}"))).unwrap();
    }
    let seen = tmp.0.join("seen");
    let editor = tmp.0.join("editor.sh");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\nstat -c '%a %u %n' \"$1\" \"${{1%/*}}\" > {seen}\necho 'added = \"x\"' >> \"$1\"\n",
            seen = seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["secrets", "edit", "s.age", "--identity", "a.key"])
        .current_dir(&tmp.0)
        .env("EDITOR", &editor)
        .env("TMPDIR", &shared)
        .env_remove("WISP_AGE_IDENTITY")
        .env_remove("WISP_AGE_KEY")
        .stdin(Stdio::null());
    let out = wisp_tests::wisp::run(&mut c, &tmp.0);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let seen = std::fs::read_to_string(&seen).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    let me = nix_uid();
    assert_eq!(lines.len(), 2, "{seen}");
    let (file, dir) = (lines[0], lines[1]);
    assert!(file.starts_with(&format!("600 {me} ")), "{seen}");
    assert!(dir.starts_with(&format!("700 {me} ")), "{seen}");
    let dir = Path::new(dir.splitn(3, ' ').nth(2).unwrap());
    assert!(dir.starts_with(&shared), "{seen}");
    assert!(
        !dir.exists(),
        "the editor's directory is left: {}",
        dir.display()
    );
    let list = wisp(
        &tmp.0,
        &["secrets", "list", "s.age", "--identity", "a.key"],
        None,
    );
    assert_eq!(
        text(&list.stdout),
        "added\ndb_pass\n",
        "the edit was not saved"
    );
    let found = wisp_tests::files_containing(&tmp.0, value.as_bytes());
    assert!(found.is_empty(), "the value is on disk in clear: {found:?}");
}

fn nix_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid()
}
