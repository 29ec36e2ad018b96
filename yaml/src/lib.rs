//! YAML as Ansible reads it: YAML 1.1's plain scalars (PyYAML's resolver), into JSON values.
//!
//! A plain `yes`, `no`, `on` and `off` are booleans, `0644` is the octal 420, `1_000` is a
//! thousand, `~` is null and `1e3` (no dot) is text, as PyYAML has it; a quoted scalar is
//! always text. Mapping keys become text. `!unsafe` and `!!str` keep a scalar as text; a
//! `!vault` value is refused (wisp does not decrypt Ansible Vault).

use std::collections::HashMap;

use serde_json::{Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Loads every document of `text` as JSON values (after the caller has bounded its
/// expanded size).
pub fn load(text: &str) -> Result<Vec<Value>, String> {
    Ok(load_nodes(text)?.iter().map(Node::json).collect())
}

/// Loads every document of `text`, mappings in the order they were written, each value with
/// its line.
pub fn load_nodes(text: &str) -> Result<Vec<Node>, String> {
    let mut b = Builder::default();
    Parser::new_from_str(text)
        .load(&mut b, true)
        .map_err(|e| e.to_string())?;
    match b.error {
        Some(e) => Err(e),
        None => Ok(b.docs),
    }
}

/// A YAML value and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The line.
    pub line: usize,
    /// The value.
    pub kind: Kind,
}

/// What a [`Node`] is; mappings kept in the order written (group, host and task order
/// matter).
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar.
    Scalar(Value),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys as text, in order (a repeated key: the later wins in [`Node::json`]).
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The node as a JSON value.
    pub fn json(&self) -> Value {
        match &self.kind {
            Kind::Scalar(v) => v.clone(),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::json).collect()),
            Kind::Map(entries) => {
                Value::Object(entries.iter().map(|(k, v)| (k.clone(), v.json())).collect())
            }
        }
    }

    /// A scalar node (as a mapping's missing value reads).
    pub fn scalar(line: usize, v: Value) -> Node {
        Node {
            line,
            kind: Kind::Scalar(v),
        }
    }
}

#[derive(Default)]
struct Builder {
    docs: Vec<Node>,
    /// Open collections: the node so far, its anchor, and for a mapping the key waiting
    /// for its value.
    open: Vec<(Node, usize, Option<String>)>,
    anchors: HashMap<usize, Node>,
    error: Option<String>,
}

impl Builder {
    fn push(&mut self, v: Node) {
        match self.open.last_mut() {
            None => self.docs.push(v),
            Some((
                Node {
                    kind: Kind::Seq(items),
                    ..
                },
                _,
                _,
            )) => items.push(v),
            Some((
                Node {
                    kind: Kind::Map(entries),
                    ..
                },
                _,
                key,
            )) => match key.take() {
                None => *key = Some(key_text(&v)),
                Some(k) => entries.push((k, v)),
            },
            Some(_) => {}
        }
    }
}

fn key_text(v: &Node) -> String {
    match &v.kind {
        Kind::Scalar(Value::String(s)) => s.clone(),
        Kind::Scalar(Value::Null) => "null".into(),
        _ => v.json().to_string(),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        // yaml-rust2 counts lines from 1 here.
        let line = mark.line().max(1);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| t.suffix).unwrap_or_default();
                if tag == "vault" {
                    self.error.get_or_insert(format!(
                        "line {line}: a !vault value: wisp does not decrypt Ansible Vault; give \
                         the value in plain text here, or as a wisp secret"
                    ));
                }
                let v = Node::scalar(
                    line,
                    if style == TScalarStyle::Plain && tag.is_empty() {
                        plain(&text)
                    } else {
                        Value::String(text)
                    },
                );
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                self.push(v);
            }
            Event::Alias(anchor) => {
                let v = self
                    .anchors
                    .get(&anchor)
                    .cloned()
                    .unwrap_or(Node::scalar(line, Value::Null));
                self.push(v);
            }
            Event::SequenceStart(anchor, _) => self.open.push((
                Node {
                    line,
                    kind: Kind::Seq(vec![]),
                },
                anchor,
                None,
            )),
            Event::MappingStart(anchor, _) => self.open.push((
                Node {
                    line,
                    kind: Kind::Map(vec![]),
                },
                anchor,
                None,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((v, anchor, _)) = self.open.pop() {
                    if anchor > 0 {
                        self.anchors.insert(anchor, v.clone());
                    }
                    self.push(v);
                }
            }
            _ => {}
        }
    }
}

/// A plain scalar as PyYAML's YAML 1.1 resolver reads it.
pub fn plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true);
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false);
        }
        _ => {}
    }
    if let Some(i) = int(s) {
        return Value::Number(i.into());
    }
    if let Some(f) = float(s).and_then(Number::from_f64) {
        return Value::Number(f);
    }
    Value::String(s.to_owned())
}

fn int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() || body.starts_with('_') {
        return None;
    }
    let digits = |d: &str| d.replace('_', "");
    let n = if let Some(b) = body.strip_prefix("0b") {
        i64::from_str_radix(&digits(b), 2).ok()?
    } else if let Some(h) = body.strip_prefix("0x") {
        i64::from_str_radix(&digits(h), 16).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&digits(&body[1..]), 8).ok()?
    } else if body.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        digits(body).parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -n } else { n })
}

fn float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, frac) = mantissa.split_once('.')?;
    let digits_ok = |d: &str| d.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let whole_ok = (whole.is_empty() && !frac.is_empty())
        || (!whole.is_empty() && whole.as_bytes()[0].is_ascii_digit() && digits_ok(whole));
    let exp_ok = exponent.is_none_or(|e| {
        e.len() > 1 && e.starts_with(['-', '+']) && e[1..].bytes().all(|b| b.is_ascii_digit())
    });
    if !(whole_ok && digits_ok(frac) && exp_ok) {
        return None;
    }
    s.replace('_', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_scalars_resolve_as_pyyaml_does() {
        let cases = [
            ("yes", json!(true)),
            ("Off", json!(false)),
            ("0644", json!(420)),
            ("0x1f", json!(31)),
            ("1_000", json!(1000)),
            ("-7", json!(-7)),
            ("1.5", json!(1.5)),
            ("1.0e+3", json!(1000.0)),
            ("1e3", json!("1e3")),
            ("~", json!(null)),
            ("y", json!("y")),
            ("08", json!("08")),
            ("web01", json!("web01")),
        ];
        for (text, want) in cases {
            assert_eq!(plain(text), want, "{text}");
        }
    }

    #[test]
    fn documents_load_with_quotes_anchors_and_nesting() {
        let docs = load("a: 'yes'\nb: yes\nc: &x [1, {d: 0755}]\ne: *x\n").unwrap();
        assert_eq!(
            docs[0],
            json!({"a": "yes", "b": true, "c": [1, {"d": 493}], "e": [1, {"d": 493}]})
        );
        assert!(load("k: !vault |\n  $ANSIBLE_VAULT;1.1\n").is_err());
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_value_has_the_line_it_starts_on() {
        let docs =
            load_nodes("- name: a\n  shell: |\n    echo\n- name: b\n  x: [1,\n    2]\n").unwrap();
        let Kind::Seq(tasks) = &docs[0].kind else {
            panic!("{docs:?}")
        };
        let lines: Vec<usize> = tasks.iter().map(|t| t.line).collect();
        assert_eq!(lines, [1, 4]);
        let Kind::Map(b) = &tasks[1].kind else {
            panic!()
        };
        assert_eq!(b[1].1.line, 5);
        let Kind::Map(a) = &tasks[0].kind else {
            panic!()
        };
        // A block scalar starts where its text does.
        assert_eq!((a[1].1.line, a[1].1.json()), (3, json!("echo\n")));
    }
}
