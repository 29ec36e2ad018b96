//! Tidy's function cap: no function body over [`CAP`] lines anywhere in the workspace, but
//! for the few on [`LONGER`], each with why and the length it may not grow past. An
//! end-to-end test (`tests/it/`) tells one scenario from setup to its last assertion, and
//! has [`SCENARIO_CAP`].

use std::path::Path;

use super::{crates, root, rust_files};

/// The most lines a function may span, from its `fn` line to its closing brace.
const CAP: usize = 100;

/// The most lines an end-to-end test function may span.
const SCENARIO_CAP: usize = 180;

/// Functions allowed over [`CAP`]: (file, function, most lines, why). A function on it that
/// grows past its length fails; one that shrinks under the cap must leave the list.
const LONGER: &[(&str, &str, usize, &str)] = &[
    (
        "micro-runner/src/sandbox/seccomp/allowed.rs",
        "allowed",
        240,
        "a table: the strict profile's syscalls, one line each",
    ),
    (
        "tests/src/bin/sandbox_probe.rs",
        "main",
        205,
        "a table: one arm per probe the sandbox tests ask for",
    ),
    (
        "micro-runner/src/sandbox/landlock.rs",
        "build",
        185,
        "the ruleset in the kernel's order: each step needs the fds of the one before",
    ),
    (
        "micro-runner/src/sandbox/mod.rs",
        "prepare",
        165,
        "every protection prepared before the fork, in the order they are applied",
    ),
    (
        "micro-runner/src/session/dispatch.rs",
        "on_cmd",
        150,
        "one exhaustive match on the protocol's Op: an op added does not compile until handled",
    ),
    (
        "store/src/write.rs",
        "record",
        127,
        "one match on Record: a row per kind",
    ),
    (
        "micro-runner/src/exec.rs",
        "spawn",
        122,
        "the fork and exec in the order the kernel needs",
    ),
    (
        "bench/src/ssh.rs",
        "bench",
        126,
        "a benchmark's script, step by step",
    ),
];

/// Code with comments, strings and char literals blanked, newlines kept: braces counted in it
/// are the code's own.
fn blank(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let keep_newlines = |s: &[u8], out: &mut String| {
        out.extend(s.iter().filter(|c| **c == b'\n').map(|_| '\n'));
    };
    while i < b.len() {
        let rest = &b[i..];
        let end = if rest.starts_with(b"//") {
            rest.iter().position(|c| *c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            rest.windows(2)
                .position(|w| w == b"*/")
                .map_or(rest.len(), |p| p + 2)
        } else if let Some(len) = raw_string(rest, i > 0 && is_ident(b[i - 1])) {
            len
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(rest.len())
        } else if rest[0] == b'\'' {
            char_literal(rest).unwrap_or(0)
        } else {
            0
        };
        if end > 0 {
            keep_newlines(&rest[..end], &mut out);
            i += end;
        } else {
            out.push(char::from(rest[0]));
            i += 1;
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The length of a raw string (`r"..."`, `r#"..."#`, `br"..."`) at the start of `s`.
fn raw_string(s: &[u8], after_ident: bool) -> Option<usize> {
    if after_ident {
        return None;
    }
    let start = usize::from(s.first() == Some(&b'b'));
    if s.get(start) != Some(&b'r') {
        return None;
    }
    let hashes = s[start + 1..].iter().take_while(|c| **c == b'#').count();
    let open = start + 1 + hashes;
    if s.get(open) != Some(&b'"') {
        return None;
    }
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let body = &s[open + 1..];
    let at = body
        .windows(close.len())
        .position(|w| w == close.as_slice())?;
    Some(open + 1 + at + close.len())
}

/// The length of a char literal at the start of `s` (`'a'`, `'\n'`, `'\u{1b}'`); `None` for
/// a lifetime.
fn char_literal(s: &[u8]) -> Option<usize> {
    if s.get(1) == Some(&b'\\') {
        let close = s[2..].iter().position(|c| *c == b'\'')?;
        return Some(close + 3);
    }
    let c = std::str::from_utf8(&s[1..s.len().min(6)])
        .ok()
        .or_else(|| {
            (2..6)
                .rev()
                .find_map(|n| std::str::from_utf8(s.get(1..n)?).ok())
        })?;
    let first = c.chars().next()?;
    let len = first.len_utf8();
    (s.get(1 + len) == Some(&b'\'')).then_some(len + 2)
}

/// Each function in `text`: its name, its first line (1-based) and how many lines it spans.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let code = blank(text);
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let (mut depth, mut started) = (0i64, false);
        'scan: for (k, l) in lines.iter().enumerate().skip(at) {
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        started = true;
                    }
                    '}' => depth -= 1,
                    ';' if !started => break 'scan,
                    _ => {}
                }
            }
            if started && depth == 0 {
                out.push((name, at + 1, k - at + 1));
                break;
            }
        }
    }
    out
}

/// The name of the function a line declares, if it declares one.
fn fn_name(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "fn")?;
    let before_ok = words[..at].iter().all(|w| {
        matches!(
            *w,
            "pub" | "const" | "async" | "unsafe" | "extern" | "\"C\""
        ) || w.starts_with("pub(")
    });
    let name: String = words
        .get(at + 1)?
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (before_ok && !name.is_empty()).then_some(name)
}

#[test]
fn no_function_is_over_the_cap() {
    let mut seen = Vec::new();
    for dir in crates() {
        let mut files = Vec::new();
        rust_files(&root().join(&dir), &mut files);
        for path in files
            .into_iter()
            .filter(|p| !p.components().any(|c| c.as_os_str() == "target"))
        {
            let text = std::fs::read_to_string(&path).unwrap();
            let rel = path.strip_prefix(root()).unwrap_or(&path).to_owned();
            for (name, line, len) in functions(&text) {
                check(&rel, &name, line, len, &mut seen);
            }
        }
    }
    for (file, name, _, _) in LONGER {
        assert!(
            seen.iter().any(|(f, n)| f == file && n == name),
            "tidy's LONGER names {file}: {name}, which is no longer over {CAP} lines (or \
             gone): take it off the list"
        );
    }
}

fn check(rel: &Path, name: &str, line: usize, len: usize, seen: &mut Vec<(String, String)>) {
    let file = rel.display().to_string();
    if file.starts_with("tests/it/") {
        assert!(
            len <= SCENARIO_CAP,
            "{file}:{line}: fn {name} is {len} lines, over the {SCENARIO_CAP} of a scenario: \
             move its setup into helpers"
        );
        return;
    }
    if len <= CAP {
        return;
    }
    let allowed = LONGER.iter().find(|(f, n, _, _)| *f == file && *n == name);
    match allowed {
        Some((_, _, most, _)) => assert!(
            len <= *most,
            "{file}:{line}: fn {name} is {len} lines, over the {most} tidy allows it; split it"
        ),
        None => panic!(
            "{file}:{line}: fn {name} is {len} lines, over the cap of {CAP}: split it by step \
             (or, for a table or one exhaustive match, add it to tidy's LONGER with why)"
        ),
    }
    seen.push((file, name.to_owned()));
}

#[test]
fn the_scanner_counts_code_not_strings() {
    let text = "fn a() {\n    let s = \"}\";\n    let c = '{';\n    // }\n}\nfn b() -> u8 { 1 }\n";
    assert_eq!(
        functions(text),
        [("a".to_owned(), 1, 5), ("b".to_owned(), 6, 1)]
    );
    let raw = "fn r() {\n    let x = r#\"{ \"}\"# ;\n}\n";
    assert_eq!(functions(raw), [("r".to_owned(), 1, 3)]);
}
