//! Ansible's inline args: `copy: src=a dest=/b mode=0644`, and a command's free-form text
//! with its own `creates=`, `chdir=`... taken out of it.

/// What a command module takes from its free-form text.
const COMMAND_KEYS: &[&str] = &[
    "creates",
    "removes",
    "chdir",
    "executable",
    "warn",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
];

/// Splits `text` into its `key=value` args and, for a free-form module, the rest of the
/// text (where only the command's own keys are args). For other modules, every word must be
/// `key=value`; a word that is not is kept as free-form text, which the module refuses.
pub(crate) fn split(text: &str, free_form: bool) -> (Vec<(String, String)>, Option<String>) {
    let mut args = Vec::new();
    let mut rest: Vec<&str> = Vec::new();
    for (start, end) in words(text) {
        let word = &text[start..end];
        match key_value(word) {
            Some((k, v)) if !free_form || COMMAND_KEYS.contains(&k) => {
                args.push((k.to_owned(), unquote(&decode_escapes(v))));
            }
            _ => rest.push(word),
        }
    }
    let rest = rest.join(" ");
    (args, (!rest.trim().is_empty()).then_some(rest))
}

/// `key=value` when the word starts with a name and `=`.
fn key_value(word: &str) -> Option<(&str, &str)> {
    let (k, v) = word.split_once('=')?;
    let name = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    name.then_some((k, v))
}

/// A value with its quotes taken off (`"a b"` is `a b`).
fn unquote(v: &str) -> String {
    let bytes = v.as_bytes();
    if bytes.len() >= 2
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[bytes.len() - 1] == bytes[0]
    {
        return v[1..v.len() - 1].to_owned();
    }
    v.to_owned()
}

/// Python's escapes in a value decoded as Ansible decodes them: `\n`, `\t`, `\\`, `\"`,
/// `\xHH`, `\uHHHH`, `\UHHHHHHHH`...; anything else is kept as written.
fn decode_escapes(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let hex = |n: usize| {
            let digits = after.get(1..1 + n)?;
            let c = u32::from_str_radix(digits, 16)
                .ok()
                .and_then(char::from_u32)?;
            Some((c, 1 + n))
        };
        let decoded = match after.chars().next() {
            Some(c @ ('\\' | '\'' | '"')) => Some((c, 1)),
            Some('a') => Some(('\u{7}', 1)),
            Some('b') => Some(('\u{8}', 1)),
            Some('f') => Some(('\u{c}', 1)),
            Some('n') => Some(('\n', 1)),
            Some('r') => Some(('\r', 1)),
            Some('t') => Some(('\t', 1)),
            Some('v') => Some(('\u{b}', 1)),
            Some('x') => hex(2),
            Some('u') => hex(4),
            Some('U') => hex(8),
            _ => None,
        };
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &after[len..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The words of `text` as byte spans: split on blanks outside quotes and outside Jinja's
/// `{{ }}` and `{% %}`, as Ansible's `split_args` does.
fn words(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start) = (0, None);
    let (mut quote, mut jinja) = (None::<u8>, 0usize);
    while i < b.len() {
        let c = b[i];
        let two = b.get(i..i + 2);
        if quote.is_none() && matches!(two, Some(b"{{") | Some(b"{%")) {
            jinja += 1;
            start.get_or_insert(i);
            i += 2;
            continue;
        }
        if jinja > 0 && matches!(two, Some(b"}}") | Some(b"%}")) {
            jinja -= 1;
            i += 2;
            continue;
        }
        match (quote, c) {
            (Some(_), b'\\') | (None, b'\\') if jinja == 0 => i += 1,
            (Some(q), _) if c == q => quote = None,
            (None, b'"' | b'\'') if jinja == 0 => quote = Some(c),
            (None, b' ' | b'\t' | b'\n') if jinja == 0 => {
                if let Some(s) = start.take() {
                    out.push((s, i));
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
        i += 1;
    }
    if let Some(s) = start {
        out.push((s, b.len()));
    }
    out
}

/// The words of a `command` line as Python's `shlex.split` makes them: quotes and
/// backslashes taken off, a Jinja `{{ }}` kept within its word.
pub(crate) fn shell_words(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .map(|(s, e)| dequote(&text[s..e]))
        .collect()
}

fn dequote(word: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut jinja = 0usize;
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        if quote.is_none() && c == '{' && matches!(next, Some('{' | '%')) {
            jinja += 1;
        } else if jinja > 0 && matches!(c, '}' | '%') && next == Some('}') {
            jinja -= 1;
            out.push(c);
            out.extend(chars.next());
            continue;
        }
        if jinja > 0 {
            out.push(c);
            continue;
        }
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The expression of a text that is one `{{ expression }}` and nothing else.
pub(crate) fn one_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_args_split_as_ansible_splits_them() {
        let (kv, rest) = split("src=a.conf dest='/etc/a b.conf' mode=0644", false);
        assert_eq!(
            kv,
            [
                ("src".to_owned(), "a.conf".to_owned()),
                ("dest".to_owned(), "/etc/a b.conf".to_owned()),
                ("mode".to_owned(), "0644".to_owned())
            ]
        );
        assert_eq!(rest, None);
        let (kv, rest) = split(
            "tar xzf {{ archive }} -C /opt creates=/opt/app chdir=/tmp",
            true,
        );
        assert_eq!(kv.len(), 2);
        assert_eq!(rest.as_deref(), Some("tar xzf {{ archive }} -C /opt"));
        let (kv, rest) = split("echo a=b", true);
        assert!(kv.is_empty());
        assert_eq!(rest.as_deref(), Some("echo a=b"));
    }

    #[test]
    fn command_words_are_shlex_words() {
        assert_eq!(
            shell_words(r#"printf '%s\n' "a b" c\ d {{ x | default('y z') }}"#),
            ["printf", "%s\\n", "a b", "c d", "{{ x | default('y z') }}"]
        );
    }
}
