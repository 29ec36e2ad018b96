//! `lineinfile` and `blockinfile` as pure edits of a file's bytes: the same lines found, the
//! same place chosen and the same bytes written as Ansible's modules (ansible-core 2.19), so
//! a file edited by either is the same file. Regular expressions are Rust's (no look-around,
//! no backreferences in the pattern); one that does not compile is an error naming it.

#![allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)] // line numbers, as Ansible's -1

use regex::bytes::{Captures, Regex};

/// What `lineinfile` is asked.
#[derive(Debug, Default)]
pub struct LineArgs {
    /// The line (`present`), or the line to remove when no `regexp`/`search_string`.
    pub line: Option<String>,
    pub regexp: Option<String>,
    pub search_string: Option<String>,
    /// `EOF`, `BOF` or a pattern.
    pub insertafter: Option<String>,
    /// `BOF` or a pattern.
    pub insertbefore: Option<String>,
    pub backrefs: bool,
    pub firstmatch: bool,
    /// `state: present` (else absent).
    pub present: bool,
}

pub(super) fn compile(what: &str, pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("{what} {pattern:?} is not a pattern wisp reads: {e}"))
}

/// Python's `bytes.readlines()`: lines split after each `\n`, the last one perhaps without.
fn readlines(content: &[u8]) -> Vec<Vec<u8>> {
    content
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// The line as Python's `$` sees it: a pattern's `$` matches before a last `\n`.
pub(super) fn body(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\n").unwrap_or(l)
}

fn strip_eol(l: &[u8]) -> &[u8] {
    let mut end = l.len();
    while end > 0 && matches!(l[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    &l[..end]
}

/// Python's `match.expand(template)`: `\1`, `\g<1>`, `\g<name>` and the escapes `\n`, `\t`,
/// `\\` in `template`.
pub(super) fn expand(caps: &Captures<'_>, template: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    let group = |out: &mut Vec<u8>, name: &[u8]| {
        let name = String::from_utf8_lossy(name);
        let m = match name.parse::<usize>() {
            Ok(n) => caps.get(n),
            Err(_) => caps.name(&name),
        };
        if let Some(m) = m {
            out.extend_from_slice(m.as_bytes());
        }
    };
    while i < template.len() {
        let c = template[i];
        if c != b'\\' || i + 1 == template.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let n = template[i + 1];
        match n {
            b'0'..=b'9' => {
                let mut j = i + 1;
                while j < template.len() && j < i + 3 && template[j].is_ascii_digit() {
                    j += 1;
                }
                group(&mut out, &template[i + 1..j]);
                i = j;
            }
            b'g' if template.get(i + 2) == Some(&b'<') => {
                let end = template[i + 3..]
                    .iter()
                    .position(|b| *b == b'>')
                    .map(|p| p + i + 3);
                match end {
                    Some(e) => {
                        group(&mut out, &template[i + 3..e]);
                        i = e + 1;
                    }
                    None => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            b'n' => {
                out.push(b'\n');
                i += 2;
            }
            b't' => {
                out.push(b'\t');
                i += 2;
            }
            b'\\' => {
                out.push(b'\\');
                i += 2;
            }
            _ => {
                out.push(c);
                out.push(n);
                i += 2;
            }
        }
    }
    out
}

/// `lineinfile` on `content` (`None`: no file). Returns the new content and Ansible's `msg`
/// (`line added`, `line replaced`, `N line(s) removed`, or empty when nothing changes).
pub fn lineinfile(content: Option<&[u8]>, a: &LineArgs) -> Result<(Vec<u8>, String), String> {
    let mut lines = readlines(content.unwrap_or_default());
    let regexp = a
        .regexp
        .as_deref()
        .map(|r| compile("regexp", r))
        .transpose()?;
    if !a.present {
        return Ok(remove(lines, regexp.as_ref(), a));
    }
    let line = a.line.as_deref().unwrap_or_default().as_bytes();
    let (after, before) = (a.insertafter.as_deref(), a.insertbefore.as_deref());
    let Found { index, matched } = find(&lines, regexp.as_ref(), a)?;
    let with_eol = |l: &[u8]| {
        let mut v = l.to_vec();
        v.push(b'\n');
        v
    };
    let ends_open = |lines: &Vec<Vec<u8>>| {
        lines
            .last()
            .is_some_and(|l| !matches!(l.last(), Some(b'\n' | b'\r')))
    };
    let mut msg = "";
    if index[0] != -1 {
        let at = index[0] as usize;
        let mut new_line = match (a.backrefs, matched, &regexp) {
            (true, Some(n), Some(re)) => re
                .captures(body(&lines[n]))
                .map_or_else(|| line.to_vec(), |c| expand(&c, line)),
            _ => line.to_vec(),
        };
        if !new_line.ends_with(b"\n") {
            new_line.push(b'\n');
        }
        // Without a pattern, index[0] is only ever an exact match: that line is compared too.
        if lines[at] != new_line {
            lines[at] = new_line;
            msg = "line replaced";
        }
    } else if a.backrefs {
        // A pattern with backrefs that matches nothing changes nothing.
    } else if before == Some("BOF") || after == Some("BOF") {
        lines.insert(0, with_eol(line));
        msg = "line added";
    } else if after == Some("EOF") || index[1] == -1 {
        if ends_open(&lines) {
            lines.push(b"\n".to_vec());
        }
        lines.push(with_eol(line));
        msg = "line added";
    } else if after.is_some() {
        let at = index[1] as usize;
        let differs = match lines.get(at) {
            None => strip_eol(&lines[at - 1]) != line,
            Some(l) => strip_eol(l) != line,
        };
        if differs {
            lines.insert(at, with_eol(line));
            msg = "line added";
        }
    } else {
        lines.insert(index[1] as usize, with_eol(line));
        msg = "line added";
    }
    Ok((lines.concat(), msg.to_owned()))
}

/// `state: absent`: every line the pattern (or the exact line) matches, removed.
fn remove(mut lines: Vec<Vec<u8>>, regexp: Option<&Regex>, a: &LineArgs) -> (Vec<u8>, String) {
    let line = a.line.as_deref().unwrap_or_default().as_bytes();
    let before = lines.len();
    lines.retain(|l| {
        let found = match (regexp, &a.search_string) {
            (Some(re), _) => re.is_match(body(l)),
            (None, Some(s)) => contains(l, s.as_bytes()),
            (None, None) => strip_eol(l) == line,
        };
        !found
    });
    let removed = before - lines.len();
    let msg = if removed > 0 {
        format!("{removed} line(s) removed")
    } else {
        String::new()
    };
    (lines.concat(), msg)
}

/// Where the line is (`index[0]`: the pattern's or the exact line's match) and where it would
/// go (`index[1]`: after or before `insertafter`/`insertbefore`'s match), as Ansible finds them.
struct Found {
    index: [isize; 2],
    matched: Option<usize>,
}

fn find(lines: &[Vec<u8>], regexp: Option<&Regex>, a: &LineArgs) -> Result<Found, String> {
    let line = a.line.as_deref().unwrap_or_default().as_bytes();
    let (after, before) = (a.insertafter.as_deref(), a.insertbefore.as_deref());
    let ins = match (after, before) {
        (Some(p), _) if p != "BOF" && p != "EOF" => Some(compile("insertafter", p)?),
        (None, Some(p)) if p != "BOF" => Some(compile("insertbefore", p)?),
        _ => None,
    };
    let mut index = [-1isize, -1isize];
    let mut matched: Option<usize> = None;
    if let Some(re) = regexp {
        for (n, l) in lines.iter().enumerate() {
            if re.is_match(body(l)) {
                index[0] = n as isize;
                matched = Some(n);
                if a.firstmatch {
                    break;
                }
            }
        }
    }
    if let Some(s) = &a.search_string {
        for (n, l) in lines.iter().enumerate() {
            if contains(l, s.as_bytes()) {
                index[0] = n as isize;
                matched = Some(n);
                if a.firstmatch {
                    break;
                }
            }
        }
    }
    if matched.is_none() {
        for (n, l) in lines.iter().enumerate() {
            if strip_eol(l) == line {
                index[0] = n as isize;
            } else if let Some(re) = &ins
                && re.is_match(body(l))
            {
                if after.is_some() {
                    index[1] = n as isize + 1;
                    if a.firstmatch {
                        break;
                    }
                }
                if before.is_some() {
                    index[1] = n as isize;
                    if a.firstmatch {
                        break;
                    }
                }
            }
        }
    }
    Ok(Found { index, matched })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(line: &str) -> LineArgs {
        LineArgs {
            line: Some(line.into()),
            present: true,
            ..LineArgs::default()
        }
    }

    fn run(content: &str, a: &LineArgs) -> (String, String) {
        let (out, msg) = lineinfile(Some(content.as_bytes()), a).unwrap();
        (String::from_utf8(out).unwrap(), msg)
    }

    #[test]
    fn a_line_is_replaced_added_or_left_as_ansible_does() {
        let mut a = present("PermitRootLogin no");
        a.regexp = Some("^#?PermitRootLogin".into());
        assert_eq!(
            run("Port 22\n#PermitRootLogin yes\nX 1\n", &a),
            (
                "Port 22\nPermitRootLogin no\nX 1\n".into(),
                "line replaced".into()
            )
        );
        assert_eq!(run("PermitRootLogin no\n", &a).1, "");
        // No match: appended, after a last line without its newline.
        assert_eq!(run("Port 22", &a).0, "Port 22\nPermitRootLogin no\n");
        // Without a pattern, an exact line is left alone.
        assert_eq!(
            run("a\nPermitRootLogin no\nb\n", &present("PermitRootLogin no")).1,
            ""
        );
        let mut after = present("new");
        after.insertafter = Some("^\\[main\\]".into());
        assert_eq!(
            run("[main]\nx\n[other]\n", &after).0,
            "[main]\nnew\nx\n[other]\n"
        );
        let mut bof = present("first");
        bof.insertbefore = Some("BOF".into());
        assert_eq!(run("a\n", &bof).0, "first\na\n");
        let mut back = present("\\1=2");
        back.regexp = Some("^(\\w+)=1$".into());
        back.backrefs = true;
        assert_eq!(run("k=1\n", &back).0, "k=2\n");
        assert_eq!(
            run("z\n", &back).1,
            "",
            "backrefs without a match change nothing"
        );
        let mut gone = present("x");
        gone.present = false;
        gone.regexp = Some("^x".into());
        assert_eq!(
            run("x1\ny\nx2\n", &gone),
            ("y\n".into(), "2 line(s) removed".into())
        );
    }
}
