//! Hiding secret values in everything the controller shows or keeps: lines and JSON
//! ([`Redactor`]) and byte streams whose chunks may split a secret ([`StreamRedactor`]).

use super::SecretValues;

/// Replaces every secret value (as it is, and as JSON escapes it) with `[secret:NAME]`.
#[derive(Clone, Default)]
pub struct Redactor {
    /// (text to hide, replacement), longest first so a value containing another is hidden whole.
    patterns: Vec<(String, String)>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} patterns)", self.patterns.len())
    }
}

/// The shortest line of a multi-line secret that is hidden on its own: shorter ones (a blank
/// line, `}`) would hide ordinary output and give nothing away.
const MIN_LINE_SECRET: usize = 8;

impl Redactor {
    /// A redactor for these values: each value whole, without its trailing newlines, in its
    /// JSON-escaped form, and each line of a multi-line value (a key printed in part, or
    /// shown line by line in a diff) that is at least [`MIN_LINE_SECRET`] long.
    pub fn new(values: &SecretValues) -> Redactor {
        let mut patterns: Vec<(String, String)> = Vec::new();
        for (name, value) in &values.0 {
            let mark = format!("[secret:{name}]");
            let trimmed = value.trim_end_matches(['\n', '\r']);
            let mut forms: Vec<&str> = vec![value, trimmed];
            if trimmed.contains('\n') {
                forms.extend(
                    trimmed
                        .lines()
                        .map(|l| l.trim_end_matches('\r'))
                        .filter(|l| l.trim().len() >= MIN_LINE_SECRET),
                );
            }
            for form in forms {
                if form.is_empty() {
                    continue;
                }
                let escaped = serde_json::to_string(form).unwrap_or_default();
                let escaped = escaped.trim_matches('"').to_owned();
                for p in [form.to_owned(), escaped] {
                    if !patterns.iter().any(|(q, _)| *q == p) {
                        patterns.push((p, mark.clone()));
                    }
                }
            }
        }
        patterns.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Redactor { patterns }
    }

    /// Whether it hides nothing (no secrets in this run).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// A redactor for one byte stream (a host's stdout, say), for secrets that arrive split
    /// across chunks.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor {
            patterns: self
                .patterns
                .iter()
                .map(|(p, m)| (p.as_bytes().to_vec(), m.as_bytes().to_vec()))
                .collect(),
            pending: Vec::new(),
        }
    }

    /// Every string in `value` with every secret hidden (what a worker sends back).
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                if let std::borrow::Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.redact_json(v)),
            _ => {}
        }
    }

    /// `text` with every secret value replaced by `[secret:NAME]`.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.patterns.iter().any(|(p, _)| text.contains(p.as_str())) {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut out = text.to_owned();
        for (p, mark) in &self.patterns {
            out = out.replace(p.as_str(), mark);
        }
        std::borrow::Cow::Owned(out)
    }
}

/// Hides secrets in a byte stream whatever its chunks: what could still be the start of a
/// secret is held back until the next chunk (or the end) shows whether it is one. What is
/// held is bounded by the longest secret.
#[derive(Default)]
pub struct StreamRedactor {
    /// (bytes to hide, replacement), longest first.
    patterns: Vec<(Vec<u8>, Vec<u8>)>,
    pending: Vec<u8>,
}

impl std::fmt::Debug for StreamRedactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamRedactor({} patterns)", self.patterns.len())
    }
}

impl StreamRedactor {
    /// Takes a chunk; returns what can be passed on, secrets hidden.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.patterns.is_empty() {
            return bytes.to_vec();
        }
        self.pending.extend_from_slice(bytes);
        let (out, held) = replace_all(&self.pending, &self.patterns, false);
        self.pending = held;
        out
    }

    /// The end of the stream: whatever was held back, secrets hidden.
    pub fn finish(&mut self) -> Vec<u8> {
        let (out, _) = replace_all(&std::mem::take(&mut self.pending), &self.patterns, true);
        out
    }
}

/// `text` with every pattern replaced, longest first, left to right. Unless `at_end`, the
/// scan stops where what is left could still grow into a pattern (a longer one than any
/// matching there now, so a key is hidden whole, not line by line); that rest is returned
/// to be scanned again with the next chunk.
fn replace_all(text: &[u8], patterns: &[(Vec<u8>, Vec<u8>)], at_end: bool) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < text.len() {
        let rest = &text[i..];
        if !at_end
            && patterns
                .iter()
                .any(|(p, _)| p.len() > rest.len() && p.starts_with(rest))
        {
            return (out, rest.to_vec());
        }
        for (p, mark) in patterns {
            if !p.is_empty() && rest.starts_with(p) {
                out.extend_from_slice(mark);
                i += p.len();
                continue 'scan;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    (out, Vec::new())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_stream_hides_secrets_split_across_chunks() {
        let mut m = BTreeMap::new();
        m.insert(
            "k".to_owned(),
            "-----BEGIN-----\nabcdefghijkl\n-----END-----\n".to_owned(),
        );
        m.insert("t".to_owned(), "token123".to_owned());
        let r = Redactor::new(&SecretValues(m));
        let mut s = r.stream();
        let mut out = Vec::new();
        for chunk in [
            "x tok",
            "en1",
            "23 y\n-----BEGIN-----\nabc",
            "defghijkl\n-----END-----\n",
            "z",
        ] {
            out.extend(s.push(chunk.as_bytes()));
        }
        out.extend(s.finish());
        assert_eq!(String::from_utf8_lossy(&out), "x [secret:t] y\n[secret:k]z");
        // One line of the key, alone, is hidden too; short lines are not secrets.
        assert_eq!(r.redact("+abcdefghijkl"), "+[secret:k]");
        assert_eq!(r.redact("tok"), "tok");
    }

    #[test]
    fn redaction_hides_values_and_their_json_form() {
        let mut m = BTreeMap::new();
        m.insert("db".to_owned(), "s3cr\"et".to_owned());
        m.insert("short".to_owned(), "s3cr".to_owned());
        let r = Redactor::new(&SecretValues(m));
        assert_eq!(r.redact("pw=s3cr\"et!"), "pw=[secret:db]!");
        assert_eq!(
            r.redact(r#"{"line":"pw=s3cr\"et"}"#),
            r#"{"line":"pw=[secret:db]"}"#
        );
        assert_eq!(r.redact("only s3cr here"), "only [secret:short] here");
        assert_eq!(r.redact("nothing"), "nothing");
    }
}
