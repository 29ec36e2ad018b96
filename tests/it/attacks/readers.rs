//! Attacker 6: a reader of output and logs: secrets stay hidden however they are cut.

use super::*;

/// `wisp ARGS` in `dir` with `stdin`, shown on failure.
fn wisp_in(tmp: &ScratchDir, dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut c = wisp_tests::wisp_command!(&tmp.0);
    c.args(args)
        .current_dir(dir)
        .env("TMPDIR", &tmp.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    wisp_tests::wisp::show(&c, &out, &tmp.0);
    out
}

/// Case: secrets in every shape output takes — a multi-line key with its trailing newline
/// printed whole, a token written in two halves half a second apart, a token straddling the
/// 64 KiB line cut, both inside `--json` escapes and a `--diff` — never show on any sink:
/// live output, `--json`, `--diff`, the journal, the store. `secrets set` keeps the key
/// exactly as given (its final newline included).
#[test]
fn secrets_are_hidden_across_lines_chunks_and_cuts() {
    let tmp = ScratchDir::new("attack-redact");
    let dir = tmp.0.clone();
    let pid = std::process::id();
    let body: Vec<String> = (0..3)
        .map(|i| format!("MIIEv{i}QIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC{pid}x{i}"))
        .collect();
    let key = format!(
        "-----BEGIN TEST KEY-----\n{}\n-----END TEST KEY-----\n",
        body.join("\n")
    );
    let token = format!("tok{pid}zq9secret");
    let id = wisp_in(&tmp, &dir, &["secrets", "keygen", "--out", "op.key"], "");
    let recipient = String::from_utf8_lossy(&id.stdout).trim().to_owned();
    let init = wisp_in(
        &tmp,
        &dir,
        &["secrets", "init", "s.age", "--recipient", &recipient],
        "",
    );
    assert_eq!(init.status.code(), Some(0));
    for (name, value) in [("key", key.as_str()), ("tok", &format!("{token}\n"))] {
        let set = wisp_in(
            &tmp,
            &dir,
            &["secrets", "set", "s.age", name, "--identity", "op.key"],
            value,
        );
        assert_eq!(set.status.code(), Some(0));
    }
    let d = dir.display();
    let plan = format!(
        r#"secrets = "s.age"

[[task]]
name = "prints the key"
op = "exec"
shell = 'printf "%s" "$KEY"'
env = {{ KEY = "{{{{ secret.key }}}}" }}

[[task]]
name = "writes the token in halves"
op = "exec"
shell = 'printf "%s" "$(printf %s "$TOK" | cut -c1-7)"; sleep 0.5; printf "%s\n" "$(printf %s "$TOK" | cut -c8-)"'
env = {{ TOK = "{{{{ secret.tok }}}}" }}

[[task]]
name = "straddles the line cut"
op = "exec"
shell = 'head -c 65530 /dev/zero | tr "\0" a; printf "%s\n" "$TOK"'
env = {{ TOK = "{{{{ secret.tok }}}}" }}

[[task]]
name = "writes the key"
op = "file.write"
path = "{d}/key.pem"
content = "{{{{ secret.key }}}}"
mode = "0600"
"#
    );
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", "plan.toml", "localhost", "--identity", "op.key"];
        args.extend_from_slice(extra);
        wisp_in(&tmp, &dir, &args, "")
    };
    let human = apply(&["--diff"]);
    assert_eq!(human.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(dir.join("key.pem")).unwrap(), key);
    std::fs::remove_file(dir.join("key.pem")).unwrap();
    let json = apply(&["--json", "--diff"]);
    assert_eq!(json.status.code(), Some(0));
    let shown = wisp_in(&tmp, &dir, &["show", "last", "--json"], "");
    let mut sinks = vec![
        ("stdout", human.stdout),
        ("stderr", human.stderr),
        ("--json stdout", json.stdout),
        ("--json stderr", json.stderr),
        ("wisp show", shown.stdout),
    ];
    let env = wisp_tests::wisp::env_dir(&tmp.0);
    for e in std::fs::read_dir(env.join("journal")).unwrap() {
        sinks.push(("the journal", std::fs::read(e.unwrap().path()).unwrap()));
    }
    for suffix in ["", "-wal"] {
        if let Ok(bytes) = std::fs::read(env.join(format!("state/wisp/wisp.db{suffix}"))) {
            sinks.push(("the store", bytes));
        }
    }
    let needles: Vec<&str> = body
        .iter()
        .map(String::as_str)
        .chain([token.as_str()])
        .collect();
    for (sink, bytes) in &sinks {
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} shows in {sink}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    let stdout = String::from_utf8_lossy(&sinks[0].1);
    assert!(
        stdout.contains("[secret:key]") && stdout.contains("[secret:tok]"),
        "{stdout}"
    );
}
