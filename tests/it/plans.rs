//! Plans written the way operators write them, run through the real CLI on this machine:
//! loops, register, set_fact, conditions, until, changed_when and failed_when, creates,
//! blocks with rescue and always, tags, extra vars; and `pkg.ensure` and `service.*` from a
//! plan, installing and removing a real package and starting and stopping a real service.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use super::apply::{apply, text};
use wisp_tests::{ScratchDir, root_or_explain};

const PLAN: &str = r#"
[vars]
sites = [ { name = "a", port = 80 }, { name = "b", port = 8080, tls = true } ]
greeting = "hello"

[[task]]
name = "site file"
op = "file.write"
path = "{{ dir }}/site-{{ item.name }}.conf"
content = "listen {{ item.port }}{{ ' ssl' if item.tls | default(false) else '' }}\n"
loop = "{{ sites }}"
loop_control = { label = "{{ item.name }}" }
tags = ["config"]

[[task]]
name = "count sites"
op = "exec"
shell = "ls {{ dir }} | grep -c '^site-'"
register = "counted"
changed_when = false
check_mode = false

[[task]]
name = "remember"
op = "set_fact"
args = { sites_seen = "{{ counted.stdout | int }}" }

[[task]]
name = "assert"
op = "assert"
that = ["sites_seen | int == 2", "counted.rc == 0"]

[[task]]
name = "exit 3 is fine"
op = "exec"
shell = "exit 3"
register = "three"
failed_when = "three.rc not in [0, 3]"
changed_when = false

[[task]]
name = "third time lucky"
op = "exec"
shell = "n=$(cat {{ dir }}/tries 2>/dev/null || echo 0); echo $((n + 1)) > {{ dir }}/tries; echo $((n + 1))"
register = "tries"
until = "tries.stdout | int >= 3"
retries = 5
delay = 0

[[task]]
name = "once"
op = "exec"
shell = "echo {{ greeting }} > {{ dir }}/once"
creates = "{{ dir }}/once"

[[task]]
name = "recovering"

[[task.block]]
name = "boom"
op = "exec"
argv = ["false"]

[[task.rescue]]
name = "note"
op = "file.write"
path = "{{ dir }}/rescued"
content = "{{ ansible_check_mode }}\n"

[[task.always]]
name = "always"
op = "debug"
msg = "tries={{ tries.stdout }} three={{ three.rc }}"
"#;

/// Case: a plan of loops, registered results, set_fact, assert, failed_when, until, creates
/// and a rescued block converges on the first run, changes nothing on the second; `--tags`
/// runs only the tagged tasks; `-e` wins over the plan's vars; `--list-tasks` names them all.
#[test]
fn loops_register_until_and_blocks_run_on_a_real_host() {
    let tmp = ScratchDir::new("plans-flow");
    let dir = tmp.0.join("out");
    std::fs::create_dir_all(&dir).unwrap();
    let plan = tmp.0.join("site.toml");
    std::fs::write(&plan, PLAN).unwrap();
    let dir_var = format!("dir={}", dir.display());

    let out = apply(&tmp, &plan, &["-e", &dir_var]);
    // Task lines on stdout, the recap on stderr: read together.
    let stdout = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for want in [
        "changed  site file (item=a) (created)",
        "changed  site file (item=b) (created)",
        "ok       count sites",
        "ok       assert (all assertions passed)",
        "ok       exit 3 is fine (not failed (failed_when)",
        "changed  third time lucky",
        "failed   boom (exit 1)",
        "changed  note (created)",
        "ok       always (tries=3 three=3)",
        "rescued=1",
    ] {
        assert!(stdout.contains(want), "{want:?} missing:\n{stdout}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("site-b.conf")).unwrap(),
        "listen 8080 ssl\n"
    );
    assert_eq!(std::fs::read_to_string(dir.join("tries")).unwrap(), "3\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("once")).unwrap(),
        "hello\n"
    );

    // Again: the files are there, `once` is not run (creates), the counter starts over at 4
    // and holds at once.
    let out = apply(&tmp, &plan, &["-e", &dir_var, "-e", "greeting=bye"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok       site file (item=a)"), "{stdout}");
    assert!(stdout.contains("not run: "), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(dir.join("once")).unwrap(),
        "hello\n"
    );

    // --tags config: the loop alone.
    std::fs::remove_file(dir.join("site-a.conf")).unwrap();
    let out = apply(&tmp, &plan, &["-e", &dir_var, "--tags", "config"]);
    let stdout = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("changed  site file (item=a) (created)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("count sites") && !stdout.contains("boom"),
        "{stdout}"
    );
    // One task, counted once, its items shown each.
    assert!(stdout.contains("ok=0 changed=1 failed=0"), "{stdout}");

    // --list-tasks contacts nothing and names every task with its line.
    let out = apply(&tmp, &plan, &["--list-tasks"]);
    let listed = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{listed}");
    assert!(
        listed.contains("site.toml:6  site file  (file.write)  tags: config"),
        "{listed}"
    );
    assert!(listed.contains("block recovering"), "{listed}");
    assert_eq!(listed.lines().count(), 11, "{listed}");
    let out = apply(&tmp, &plan, &["--list-hosts"]);
    assert_eq!(text(&out.stdout), "localhost\n", "{}", text(&out.stderr));
}

/// Case: `pkg.ensure` and `service.*` from a plan, end to end: a package (built here, no
/// network) installed and a service started; a second run changes nothing; a second plan
/// stops the service and removes the package.
#[test]
fn a_plan_installs_and_removes_a_package_and_starts_and_stops_a_service() {
    if !root_or_explain("installing a package and an init script") {
        return;
    }
    let _dpkg = super::pkg::DPKG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _purge = super::pkg::Purge;
    let tmp = ScratchDir::new("plans-pkg");
    let deb = super::pkg::build_deb(&tmp.0, "1.0");
    let name = format!("wisp-plan-svc-{}", std::process::id());
    let log = tmp.0.join("svc.log");
    super::service::install_script(&name, &log, false);
    let _cleanup = super::service::Cleanup(vec![name.clone()]);
    let plan = tmp.0.join("up.toml");
    std::fs::write(
        &plan,
        format!(
            "[[task]]\nname = \"install the package\"\nop = \"pkg.ensure\"\nargs = {{ name = \"{}\", file = \"{}\" }}\n\n\
             [[task]]\nname = \"start the service\"\nop = \"service.start\"\nargs = {{ name = \"{name}\" }}\n",
            super::pkg::PKG,
            deb.display()
        ),
    )
    .unwrap();
    let out = apply(&tmp, &plan, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("changed  install the package (installed)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("changed  start the service (started)"),
        "{stdout}"
    );
    assert_eq!(super::pkg::installed_version().as_deref(), Some("1.0"));
    assert_eq!(super::service::log(&log), ["start"]);

    let out = apply(&tmp, &plan, &[]);
    let stdout = text(&out.stdout) + &text(&out.stderr);
    assert!(stdout.contains("ok=2 changed=0 failed=0"), "{stdout}");

    let down = tmp.0.join("down.toml");
    std::fs::write(
        &down,
        format!(
            "[[task]]\nname = \"stop\"\nop = \"service.stop\"\nargs = {{ name = \"{name}\" }}\n\n\
             [[task]]\nname = \"remove\"\nop = \"pkg.ensure\"\nargs = {{ name = \"{}\", state = \"absent\" }}\n",
            super::pkg::PKG
        ),
    )
    .unwrap();
    let out = apply(&tmp, &down, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("changed  stop (stopped)"), "{stdout}");
    assert!(stdout.contains("changed  remove (removed)"), "{stdout}");
    assert_eq!(super::pkg::installed_version(), None);
    assert_eq!(super::service::log(&log), ["start", "stop"]);
}

/// Case: `become_user` runs an exec task as that user (from this root session, through
/// `runuser`), and the rest of the plan as the session's user.
#[test]
fn become_user_runs_one_task_as_another_user() {
    if !root_or_explain("switching to another user") {
        return;
    }
    let tmp = ScratchDir::new("plans-become");
    let plan = tmp.0.join("who.toml");
    std::fs::write(
        &plan,
        "[[task]]\nname = \"as nobody\"\nop = \"exec\"\nargv = [\"id\", \"-un\"]\nbecome_user = \"nobody\"\nregister = \"who\"\nchanged_when = false\n\n\
         [[task]]\nname = \"as the session\"\nop = \"exec\"\nshell = \"id -un\"\nregister = \"me\"\nchanged_when = false\n\n\
         [[task]]\nname = \"check\"\nop = \"assert\"\nthat = [\"who.stdout == 'nobody'\", \"me.stdout == 'root'\"]\n",
    )
    .unwrap();
    let out = apply(&tmp, &plan, &[]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("ok       check (all assertions passed)"),
        "{said}"
    );
}
