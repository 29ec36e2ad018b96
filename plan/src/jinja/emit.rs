//! Data written as JSON and YAML the way Ansible's `to_json`, `to_nice_json`, `to_yaml` and
//! `to_nice_yaml` write it (Python's `json` and PyYAML): so a config file rendered here is the
//! file Ansible renders.
//!
//! Differences: PyYAML's rarer choices (block scalars, a text that starts or ends with
//! spaces next to a line break) are not made; such text is quoted the common way.

use crate::data::Data;

/// Python's `json.dumps`: with `indent`, one item per line and `,`/`: ` separators; without,
/// `, ` and `: ` on one line. Non-ASCII text as `\u` escapes.
pub(super) fn json(d: &Data, indent: Option<usize>, sort: bool) -> String {
    let mut out = String::new();
    json_into(&mut out, d, indent, sort, 0);
    out
}

fn json_into(out: &mut String, d: &Data, indent: Option<usize>, sort: bool, depth: usize) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match d {
        Data::Null => out.push_str("null"),
        Data::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Data::Int(i) => out.push_str(&i.to_string()),
        Data::Float(f) => out.push_str(&float(*f, "NaN", "Infinity")),
        Data::Str(s) => json_string(out, s),
        Data::List(items) if items.is_empty() => out.push_str("[]"),
        Data::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                json_into(out, item, indent, sort, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Data::Map(map) if map.is_empty() => out.push_str("{}"),
        Data::Map(map) => {
            out.push('{');
            let mut entries: Vec<_> = map.iter().collect();
            if sort {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, depth + 1);
                json_string(out, k);
                out.push_str(": ");
                json_into(out, v, indent, sort, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// A float as Python writes it (`1.0`, `0.5`, `1e+20`).
fn float(f: f64, nan: &str, inf: &str) -> String {
    if f.is_nan() {
        return nan.to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            inf.to_owned()
        } else {
            format!("-{inf}")
        };
    }
    if f.fract() == 0.0 && f.abs() < 1e16 {
        return format!("{f:.1}");
    }
    let s = f.to_string();
    if f.abs() >= 1e16 {
        let e = format!("{f:e}");
        return match e.split_once('e') {
            Some((m, exp)) if !exp.starts_with('-') => format!("{m}e+{exp:0>2}"),
            _ => e,
        };
    }
    s
}

/// PyYAML's `dump` (keys sorted, lines wrapped past 80 columns): block style with `indent`;
/// `nice` is `default_flow_style=False`, otherwise a collection of plain values is written
/// in flow style (`[a, b]`), as `to_yaml` does.
pub(super) fn yaml(d: &Data, indent: usize, nice: bool) -> String {
    let mut y = Yaml {
        out: String::new(),
        indent: indent.max(2),
        nice,
    };
    match d {
        Data::List(items) if !y.flow(d) => y.seq(items, 0),
        Data::Map(map) if !y.flow(d) => y.map(map, 0),
        Data::List(_) | Data::Map(_) => {
            y.flow_value(d);
            y.out.push('\n');
        }
        other => {
            y.scalar(other, false, y.indent);
            y.out.push('\n');
        }
    }
    y.out
}

/// The column past which PyYAML breaks a line at the next space.
const WIDTH: usize = 80;

struct Yaml {
    out: String,
    indent: usize,
    nice: bool,
}

impl Yaml {
    fn column(&self) -> usize {
        self.out.len() - self.out.rfind('\n').map_or(0, |i| i + 1)
    }

    fn pad_to(&mut self, col: usize) {
        let now = self.column();
        self.out.push_str(&" ".repeat(col.saturating_sub(now)));
    }

    /// Whether a collection is written in flow style.
    fn flow(&self, d: &Data) -> bool {
        let leaf = |v: &Data| !matches!(v, Data::List(_) | Data::Map(_));
        match d {
            Data::List(items) => items.is_empty() || (!self.nice && items.iter().all(leaf)),
            Data::Map(map) => map.is_empty() || (!self.nice && map.values().all(leaf)),
            _ => true,
        }
    }

    fn map(&mut self, map: &crate::DataMap, col: usize) {
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (i, (k, v)) in entries.into_iter().enumerate() {
            if i > 0 {
                self.pad_to(col);
            }
            self.scalar(&Data::Str(k.clone()), false, col + self.indent);
            self.out.push(':');
            match v {
                Data::Map(m) if !self.flow(v) => {
                    self.out.push('\n');
                    self.pad_to(col + self.indent);
                    self.map(m, col + self.indent);
                }
                // A list in a map is not indented (PyYAML's indentless sequence).
                Data::List(items) if !self.flow(v) => {
                    self.out.push('\n');
                    self.pad_to(col);
                    self.seq(items, col);
                }
                other => {
                    self.out.push(' ');
                    self.value(other, col + self.indent);
                    self.out.push('\n');
                }
            }
        }
    }

    fn seq(&mut self, items: &[Data], col: usize) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.pad_to(col);
            }
            self.out.push('-');
            match item {
                Data::Map(m) if !self.flow(item) => {
                    self.pad_to(col + self.indent);
                    self.map(m, col + self.indent);
                }
                Data::List(l) if !self.flow(item) => {
                    self.pad_to(col + self.indent);
                    self.seq(l, col + self.indent);
                }
                other => {
                    self.out.push(' ');
                    self.value(other, col + self.indent);
                    self.out.push('\n');
                }
            }
        }
    }

    /// A value on a block line: a scalar, or a collection in flow style.
    fn value(&mut self, d: &Data, cont: usize) {
        match d {
            Data::List(_) | Data::Map(_) => self.flow_value(d),
            other => self.scalar(other, false, cont),
        }
    }

    fn flow_value(&mut self, d: &Data) {
        match d {
            Data::List(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.flow_value(item);
                }
                self.out.push(']');
            }
            Data::Map(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                self.out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.scalar(&Data::Str(k.clone()), true, self.indent);
                    self.out.push_str(": ");
                    self.flow_value(v);
                }
                self.out.push('}');
            }
            other => self.scalar(other, true, self.indent),
        }
    }

    /// A scalar: plain when YAML reads it back as the same text, single-quoted when it can
    /// be, double-quoted for control characters; long lines broken at a space past
    /// [`WIDTH`], continued at column `cont`.
    fn scalar(&mut self, d: &Data, in_flow: bool, cont: usize) {
        let s = match d {
            Data::Null => return self.out.push_str("null"),
            Data::Bool(b) => return self.out.push_str(if *b { "true" } else { "false" }),
            Data::Int(i) => return self.out.push_str(&i.to_string()),
            Data::Float(f) => return self.out.push_str(&float(*f, ".nan", ".inf")),
            Data::Str(s) => s,
            Data::List(_) | Data::Map(_) => return self.flow_value(d),
        };
        if s.chars().any(|c| c.is_control() && c != '\n') {
            let mut quoted = String::new();
            json_string(&mut quoted, s);
            return self.out.push_str(&quoted);
        }
        let quoted = !plain(s, in_flow) || s.contains('\n');
        if quoted {
            self.out.push('\'');
        }
        let mut chars = s.chars().peekable();
        let mut first = true;
        while let Some(c) = chars.next() {
            match c {
                ' ' if !first
                    && chars.peek().is_some_and(|n| *n != ' ')
                    && self.column() > WIDTH =>
                {
                    self.out.push('\n');
                    self.pad_to(cont);
                }
                '\n' => {
                    self.out.push('\n');
                    self.out.push('\n');
                    while chars.peek() == Some(&'\n') {
                        chars.next();
                        self.out.push('\n');
                    }
                    self.pad_to(cont);
                }
                '\'' if quoted => self.out.push_str("''"),
                c => self.out.push(c),
            }
            first = false;
        }
        if quoted {
            self.out.push('\'');
        }
    }
}

/// Whether text can be written unquoted and read back as the same text (`in_flow`: inside
/// `[...]` or `{...}`, where `,[]{}` end a value).
fn plain(s: &str, in_flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let resolves = matches!(
        s.to_ascii_lowercase().as_str(),
        "null"
            | "~"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | ".nan"
            | ".inf"
            | "-.inf"
            | "+.inf"
            | "="
    ) || looks_numeric(s);
    let indicator = match first {
        '-' | '?' | ':' => s.len() == 1 || s[1..].starts_with(' '),
        c => "[]{},#&*!|>'\"%@`".contains(c),
    };
    !resolves
        && !indicator
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && !(in_flow && s.contains(['[', ']', '{', '}', ',']))
}

/// Whether text would read back as a number (an int, a float, or a sexagesimal).
fn looks_numeric(s: &str) -> bool {
    let t = s.trim_start_matches(['-', '+']);
    if t.is_empty() {
        return false;
    }
    let digits = t.replace('_', "");
    digits.parse::<f64>().is_ok()
        || digits.starts_with("0x")
        || digits.starts_with("0o")
        || digits.starts_with("0b")
        || (t.contains(':')
            && t.split(':')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
}
