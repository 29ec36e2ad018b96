//! INI inventory values as Ansible reads them: a Python literal when the text is one
//! (`80`, `1.5`, `True`, `None`, `'quoted'`, `[1, 2]`, `{'a': 1}`), else the text itself.

use serde_json::{Map, Number, Value};

/// The value of `text`: its Python literal, or the text.
pub fn value(text: &str) -> Value {
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    match p.literal() {
        Some(v) if p.end() => v,
        _ => Value::String(text.to_owned()),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn end(&mut self) -> bool {
        self.skip_space();
        self.at == self.s.len()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self) -> Option<Value> {
        self.depth += 1;
        if self.depth > 64 {
            return None;
        }
        self.skip_space();
        let v = match *self.s.get(self.at)? {
            b'[' => self.items(b']').map(Value::Array),
            b'(' => self.items(b')').map(Value::Array),
            b'{' => self.dict(),
            b'\'' | b'"' => self.string().map(Value::String),
            _ => self.word(),
        };
        self.depth -= 1;
        v
    }

    fn items(&mut self, close: u8) -> Option<Vec<Value>> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            if self.eat(close) {
                return Some(out);
            }
            out.push(self.literal()?);
            if !self.eat(b',') {
                return self.eat(close).then_some(out);
            }
        }
    }

    fn dict(&mut self) -> Option<Value> {
        self.at += 1;
        let mut map = Map::new();
        loop {
            if self.eat(b'}') {
                return Some(Value::Object(map));
            }
            let key = match self.literal()? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if !self.eat(b':') {
                return None;
            }
            map.insert(key, self.literal()?);
            if !self.eat(b',') {
                return self.eat(b'}').then_some(Value::Object(map));
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        let quote = self.s[self.at];
        self.at += 1;
        let mut out = Vec::new();
        while let Some(&c) = self.s.get(self.at) {
            self.at += 1;
            match c {
                _ if c == quote => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.s.get(self.at)?;
                    self.at += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'0' => 0,
                        other => other,
                    });
                }
                b'\n' => return None,
                _ => out.push(c),
            }
        }
        None
    }

    /// A number, `True`, `False` or `None`, up to the next delimiter.
    fn word(&mut self) -> Option<Value> {
        let start = self.at;
        while self.s.get(self.at).is_some_and(|c| {
            !matches!(c, b',' | b']' | b')' | b'}' | b':') && !c.is_ascii_whitespace()
        }) {
            self.at += 1;
        }
        let w = std::str::from_utf8(&self.s[start..self.at]).ok()?;
        match w {
            "True" => Some(Value::Bool(true)),
            "False" => Some(Value::Bool(false)),
            "None" => Some(Value::Null),
            _ => number(w),
        }
    }
}

/// A Python int or float literal (`_` between digits, `0x`/`0o`/`0b`, no leading zero).
fn number(w: &str) -> Option<Value> {
    let (neg, body) = match w.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, w.strip_prefix('+').unwrap_or(w)),
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let clean = body.replace('_', "");
    let radix = |prefix: [&str; 2], r| {
        prefix
            .iter()
            .find_map(|p| clean.strip_prefix(p))
            .map(|d| i64::from_str_radix(d, r).ok())
    };
    let int = if let Some(i) = radix(["0x", "0X"], 16) {
        i
    } else if let Some(i) = radix(["0o", "0O"], 8) {
        i
    } else if let Some(i) = radix(["0b", "0B"], 2) {
        i
    } else if clean.bytes().all(|b| b.is_ascii_digit()) {
        // Python refuses `007`; `0` and `00` are zero.
        if clean.len() > 1 && clean.starts_with('0') && clean.bytes().any(|b| b != b'0') {
            return None;
        }
        clean.parse().ok()
    } else {
        let looks_float = clean
            .bytes()
            .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b))
            && clean.bytes().any(|b| b.is_ascii_digit());
        return looks_float
            .then(|| clean.parse::<f64>().ok())
            .flatten()
            .and_then(|f| Number::from_f64(if neg { -f } else { f }))
            .map(Value::Number);
    };
    int.map(|i| Value::Number((if neg { -i } else { i }).into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals_and_text() {
        let cases = [
            ("80", json!(80)),
            ("-3", json!(-3)),
            ("1_000", json!(1000)),
            ("0x10", json!(16)),
            ("1.5", json!(1.5)),
            ("1e3", json!(1000.0)),
            ("True", json!(true)),
            ("None", json!(null)),
            ("'a b'", json!("a b")),
            ("[1, 'x', [True]]", json!([1, "x", [true]])),
            ("(1, 2)", json!([1, 2])),
            ("{'a': 1, 'b': [2]}", json!({"a": 1, "b": [2]})),
            ("yes", json!("yes")),
            ("true", json!("true")),
            ("007", json!("007")),
            ("web01.example.com", json!("web01.example.com")),
            ("/usr/bin/python3", json!("/usr/bin/python3")),
            ("1.2.3", json!("1.2.3")),
            ("[1, 2", json!("[1, 2")),
        ];
        for (text, want) in cases {
            assert_eq!(value(text), want, "{text}");
        }
    }
}
