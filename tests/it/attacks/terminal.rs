//! Attacker 4 at the operator's terminal: text a host, a runner or a worker chose reaches
//! the terminal escaped on every path.

use super::*;

/// The OSC 52 clipboard write (the clipboard set to `evil`) that the terminal tests inject,
/// as it travels in a frame's JSON, and as wisp must show it: escaped.
const OSC52_JSON: &str = r"\u001b]52;c;ZXZpbA==\u0007";

const OSC52_RAW: &str = "\x1b]52;c;ZXZpbA==\x07";

const OSC52_SHOWN: &str = r"\x1b]52;c;ZXZpbA==\x07";

/// Runs `c` with stdout and stderr on a fresh pseudo-terminal, as an operator does: its exit
/// code and everything the terminal received.
#[allow(clippy::print_stdout)] // shown only when the test fails
fn on_terminal(mut c: Command, tmp: &ScratchDir) -> (Option<i32>, String) {
    let (mut master, slave) = open_pty();
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave)
        .unwrap();
    c.stdin(Stdio::null())
        .stdout(tty.try_clone().unwrap())
        .stderr(tty)
        .env("NO_COLOR", "1");
    let mut child = c.spawn().unwrap();
    let shown = format!("{c:?}");
    drop(c);
    // Read while it runs (a terminal's buffer is small); ends with EIO once it has exited.
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    let status = child.wait().unwrap();
    let seen = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    println!(
        "--- on a terminal: {shown}\n--- exit {status}\n{seen}\n--- scratch {}",
        tmp.0.display()
    );
    (status.code(), seen)
}

/// Asserts that what a terminal received shows the injected OSC 52 escaped, never raw.
fn assert_escaped(seen: &str, path: &str) {
    assert!(
        !seen.contains(OSC52_RAW) && !seen.contains('\u{7}'),
        "{path}: the terminal got the raw sequence: {seen:?}"
    );
    assert!(
        seen.contains(OSC52_SHOWN),
        "{path}: the sequence is not shown escaped: {seen:?}"
    );
}

/// Case: host output on the operator's terminal. A command prints an OSC 52 clipboard write,
/// a bell, and `ESC[2K\r` followed by a fake line; on a terminal each control character is
/// shown as `\xNN`, never passed through.
#[test]
fn host_output_cannot_drive_the_operators_terminal() {
    let tmp = ScratchDir::new("attack-escapes");
    let (mut master, slave) = open_pty();
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave)
        .unwrap();
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(["run", "localhost", "--", "printf"])
        .arg("before\\033]52;c;ZXZpbA==\\007 bell\\007\\033[2K\\rlocalhost  ok  fake\\n")
        .env("TMPDIR", &tmp.0)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(tty)
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(c);
    let status = child.wait().unwrap();
    assert!(status.code().is_some());
    let mut seen = Vec::new();
    // The slave is closed now that wisp has exited: read what is buffered, then EIO.
    let mut buf = [0u8; 4096];
    while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    let line = text
        .lines()
        .find(|l| l.contains("before"))
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(
        !line.contains('\u{1b}') && !line.contains('\u{7}'),
        "{line:?}"
    );
    assert!(
        line.contains("before\\x1b]52;c;ZXZpbA==\\x07 bell\\x07\\x1b[2K\\x0dlocalhost  ok  fake"),
        "{line:?}"
    );
}

/// Case: text from a hostile runner or host reaches the operator's terminal by every path
/// that is not live output: a refusal's message and its list of gaps, the recap's sandbox
/// line, a failed task's detail (live and in `wisp show`), and `wisp drift`'s diff of a file
/// someone changed on the host. Each is fed an OSC 52 clipboard write; the terminal sees it
/// escaped every time.
#[test]
fn peer_text_cannot_drive_the_terminal_on_any_path() {
    let tmp = ScratchDir::new("attack-escape-paths");
    // The refusal's message: the runner's ERROR for a program that does not exist.
    let c = broken_run(
        &tmp,
        &[],
        &["/nonexistent-EVIL"],
        "EVIL",
        ("BROKEN_RUNNER_TO", &format!("EVIL{OSC52_JSON}")),
    );
    let (code, seen) = on_terminal(c, &tmp);
    assert_eq!(code, Some(2));
    assert_escaped(&seen, "refusal message");
    // The refusal's gaps: an ERROR that lists a missing protection.
    let c = broken_run(
        &tmp,
        &[],
        &["/nonexistent-EVIL"],
        r#""message":""#,
        (
            "BROKEN_RUNNER_TO",
            &format!(r#""missing":["gap{OSC52_JSON}"],"message":""#),
        ),
    );
    let (code, seen) = on_terminal(c, &tmp);
    assert_eq!(code, Some(2));
    assert!(seen.contains("cannot apply"), "{seen}");
    assert_escaped(&seen, "refusal gaps");
    // The recap's sandbox line, from the enforcement report of a DONE.
    let c = broken_run(
        &tmp,
        &["--seccomp", "default"],
        &["true"],
        r#""profile":"default""#,
        (
            "BROKEN_RUNNER_TO",
            &format!(r#""profile":"default{OSC52_JSON}""#),
        ),
    );
    let (code, seen) = on_terminal(c, &tmp);
    assert_eq!(code, Some(0));
    assert!(seen.contains("RECAP"), "{seen}");
    assert_escaped(&seen, "recap sandbox line");
    // A failed task's detail, live and then in `wisp show`.
    std::fs::write(
        tmp.0.join("fails.toml"),
        "[[task]]\nname = \"run it\"\nop = \"exec\"\nargv = [\"/nonexistent-EVIL\"]\n",
    )
    .unwrap();
    let mut c = broken_run(
        &tmp,
        &[],
        &["unused"],
        "EVIL",
        ("BROKEN_RUNNER_TO", &format!("EVIL{OSC52_JSON}")),
    );
    let args: Vec<_> = c.get_args().map(std::ffi::OsStr::to_owned).collect();
    let mut apply = wisp_tests::wisp_command!(&tmp.0);
    apply
        .args(["apply", "fails.toml", "localhost"])
        .args(args.iter().skip(2).take_while(|a| *a != "--"))
        .envs(
            c.get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .current_dir(&tmp.0);
    c = apply;
    let (code, seen) = on_terminal(c, &tmp);
    assert_eq!(code, Some(2));
    assert_escaped(&seen, "live task detail");
    let mut show = wisp_tests::wisp_command!(&tmp.0);
    show.args(["show", "last"]);
    let (code, seen) = on_terminal(show, &tmp);
    assert_eq!(code, Some(0));
    assert_escaped(&seen, "task detail in wisp show");
    // `wisp drift`'s diff of a file someone changed on the host.
    let conf = tmp.0.join("app.conf");
    std::fs::write(
        tmp.0.join("drift.toml"),
        format!(
            "[[task]]\nname = \"conf\"\nop = \"file.write\"\npath = \"{}\"\ncontent = \"port = 80\\n\"\n",
            conf.display()
        ),
    )
    .unwrap();
    std::fs::write(&conf, format!("port = 80{OSC52_RAW}\n")).unwrap();
    let mut drift = wisp_tests::wisp_command!(&tmp.0);
    drift
        .args(["drift", "drift.toml", "localhost"])
        .env("TMPDIR", &tmp.0)
        .current_dir(&tmp.0);
    let (code, seen) = on_terminal(drift, &tmp);
    assert_eq!(code, Some(2), "a drifted host exits 2");
    assert!(seen.contains("DRIFTED"), "{seen}");
    assert_escaped(&seen, "drift diff");
}
