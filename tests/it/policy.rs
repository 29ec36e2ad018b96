//! `wisp run --policy`: the ways people get around command allow-lists, each tried. What
//! the policy can see (the program, its arguments, the hosts, the limits asked for) is
//! refused before any host is contacted (exit 8); what it cannot (an allowed program made to
//! run another, to write elsewhere, to reach the network) is stopped on the host: by the
//! runner, which execs only a program the rule names once `PATH` and symlinks are followed,
//! and by the kernel, which holds every command to the rule's sandbox floor.

#![allow(clippy::unwrap_used)] // helpers of tests: a failed unwrap is a failed test

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use wisp_tests::{ScratchDir, root_or_explain};

/// The policy of these tests: a few programs, writes only beneath `w/`, no network.
fn policy(tmp: &ScratchDir) -> std::path::PathBuf {
    let w = tmp.0.join("w");
    std::fs::create_dir_all(&w).unwrap();
    let text = format!(
        r#"
[limits]
max_hosts = 5
serial = "2"

[[rule]]
name = "tools"
programs = ["/usr/bin/id", "/usr/bin/find", "/usr/bin/tar", "/usr/bin/awk",
            "/usr/bin/xargs", "/usr/bin/sed", "/usr/bin/curl", "/usr/bin/touch"]
[rule.sandbox]
no_net = true
rw = ["{w}"]
timeout = "20s"

[[rule]]
name = "echo one word"
programs = ["/usr/bin/echo"]
args = ["*"]
"#,
        w = w.display()
    );
    let path = tmp.0.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(tmp: &ScratchDir, targets: &str, extra: &[&str], argv: &[&str]) -> Output {
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["run", "--policy"])
        .arg(policy(tmp))
        .arg(targets)
        .args(extra)
        .arg("--")
        .args(argv);
    wisp_tests::wisp::run(&mut c, &tmp.0)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn what_the_policy_can_see_is_refused_before_any_host_is_contacted() {
    let tmp = ScratchDir::new("policy-refused");
    // No host at these addresses listens: a call that got past the policy would end
    // unreachable (exit 3), not refused (exit 8).
    let nowhere = "127.0.0.251";
    let cases: &[(&[&str], &[&str], &str)] = &[
        (
            &[],
            &["sh", "-c", "id"],
            "no rule allows the program \"sh\"",
        ),
        (
            &[],
            &["bash", "-c", "id"],
            "no rule allows the program \"bash\"",
        ),
        (&[], &["env", "sh"], "no rule allows the program \"env\""),
        (&[], &["/bin/../usr/bin/rm", "-rf", "/"], "no rule allows"),
        (
            &[],
            &["id;rm", "-rf", "/"],
            "no rule allows the program \"id;rm\"",
        ),
        (&[], &["echo", "one", "two"], "only with arguments"),
        (&[], &["echo", "one\nrm -rf /"], "only with arguments"),
        (&[], &["/usr/bin/python3", "-c", "1"], "no rule allows"),
        (
            &["--rw", "/etc"],
            &["touch", "/etc/x"],
            "--rw /etc: the rule allows writes",
        ),
        (
            &["--allow-connect", "443"],
            &["curl", "x"],
            "the rule allows no network",
        ),
        (
            &["--sandbox", "best-effort"],
            &["id"],
            "the policy's sandbox is required",
        ),
        (&["--serial", "5"], &["id"], "leave --serial out"),
        (
            &["--insecure-unsigned-runner"],
            &["id"],
            "the runner keeps the policy's programs",
        ),
    ];
    for (extra, argv, why) in cases {
        let o = run(&tmp, nowhere, extra, argv);
        assert_eq!(o.status.code(), Some(8), "{argv:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{argv:?}: {}", stderr(&o));
        assert!(
            !stderr(&o).contains("UNREACHABLE"),
            "{argv:?} reached a host"
        );
    }
    // Each refusal is recorded, with what was asked and why.
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["history", "--calls", "-n", "100"]);
    let calls = String::from_utf8_lossy(&wisp_tests::wisp::run(&mut c, &tmp.0).stdout).into_owned();
    assert_eq!(calls.matches(" refused: ").count(), cases.len(), "{calls}");
    assert!(calls.contains(r#""argv":["sh","-c","id"]"#), "{calls}");
    assert!(
        calls.contains(r#"refused: no rule allows the program "sh""#),
        "{calls}"
    );
    let o = run(
        &tmp,
        "127.0.0.241,127.0.0.242,127.0.0.243,127.0.0.244,127.0.0.245,127.0.0.246",
        &[],
        &["id"],
    );
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert!(stderr(&o).contains("at most 5 per call"), "{}", stderr(&o));
}

/// Runs `argv` on localhost under the policy and returns its exit code.
fn on_localhost(tmp: &ScratchDir, extra: &[&str], argv: &[&str]) -> (i32, String) {
    let o = run(tmp, "localhost", extra, argv);
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    (o.status.code().unwrap_or(-1), all)
}

#[test]
fn an_allowed_program_that_is_abused_is_contained_on_the_host() {
    if !root_or_explain("the policy's network namespace") {
        return;
    }
    let tmp = ScratchDir::new("policy-contained");
    let outside = tmp.0.join("outside");
    let protected = tmp.0.join("protected.txt");
    std::fs::write(&protected, "keep me\n").unwrap();
    let path = |p: &Path| p.display().to_string();

    // A program named as allowed, which PATH leads elsewhere: the runner refuses it.
    let bin = tmp.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/bin/rm", bin.join("id")).unwrap();
    let env_path = format!("PATH={}", path(&bin));
    let (code, all) = on_localhost(&tmp, &["--env", &env_path], &["id", &path(&protected)]);
    assert_eq!(code, 2, "{all}");
    assert!(
        all.contains("is /usr/bin/rm, which the policy does not allow"),
        "{all}"
    );
    assert!(protected.exists(), "the symlinked rm ran");

    // Allowed programs made to write outside their paths: the kernel says no.
    let list = tmp.0.join("w/list");
    std::fs::write(&list, format!("{}\n", path(&outside))).unwrap();
    let archive = tmp.0.join("w/a.tar");
    let made = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&tmp.0)
        .arg("protected.txt")
        .status()
        .unwrap();
    assert!(made.success());
    let to_command = format!("--to-command=touch {}", path(&outside));
    let awk = format!("BEGIN {{ system(\"touch {}\") }}", path(&outside));
    let attempts: Vec<Vec<String>> = vec![
        vec![
            "find".into(),
            path(&tmp.0),
            "-maxdepth".into(),
            "0".into(),
            "-exec".into(),
            "touch".into(),
            path(&outside),
            ";".into(),
        ],
        vec!["tar".into(), "-xf".into(), path(&archive), to_command],
        vec!["awk".into(), awk],
        vec!["xargs".into(), "-a".into(), path(&list), "touch".into()],
        vec![
            "sed".into(),
            "-i".into(),
            "s/keep/lose/".into(),
            path(&protected),
        ],
        vec!["touch".into(), path(&outside)],
    ];
    for argv in &attempts {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let (_, all) = on_localhost(&tmp, &[], &argv);
        assert!(all.contains("sandbox fully enforced"), "{argv:?}: {all}");
        assert!(!outside.exists(), "{argv:?} wrote outside its paths: {all}");
        assert_eq!(
            std::fs::read_to_string(&protected).unwrap(),
            "keep me\n",
            "{argv:?}"
        );
    }
    // Inside its paths it works.
    let inside = tmp.0.join("w/inside");
    let (code, all) = on_localhost(&tmp, &[], &["touch", &path(&inside)]);
    assert_eq!(code, 0, "{all}");
    assert!(inside.exists());

    // An allowed curl reaches nothing: the command has a network of its own.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let (code, all) = on_localhost(&tmp, &[], &["curl", "-sS", "--max-time", "5", &url]);
    assert_ne!(code, 0, "{all}");
    assert!(listener.accept().is_err(), "curl reached the listener");
}
