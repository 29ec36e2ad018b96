//! Values printed the way Python prints them, which is what a Jinja2 template in Ansible
//! writes: `True`, `None`, `['a', 'b']`, `{'k': 1}`.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, Output, State};

/// How `{{ value }}` writes a value into a template's output.
pub(super) fn formatter(
    out: &mut Output<'_>,
    _state: &State<'_, '_>,
    v: &Value,
) -> Result<(), Error> {
    let text = match v.kind() {
        ValueKind::String => return write(out, v.as_str().unwrap_or_default()),
        // Ansible's templar writes a none as nothing (inside a list it is `None`).
        ValueKind::None => return Ok(()),
        // Only the undefined of an inline `if` without `else` gets here (strict mode refuses
        // any other before): it writes nothing, as in Jinja2.
        ValueKind::Undefined => return Ok(()),
        _ => repr(v),
    };
    write(out, &text)
}

fn write(out: &mut Output<'_>, s: &str) -> Result<(), Error> {
    out.write_str(s)
        .map_err(|_| Error::new(minijinja::ErrorKind::WriteFailure, "the output is closed"))
}

/// A value as Python's `str()` writes it (strings as they are at the top level, quoted
/// inside lists and maps, as `repr()` does).
pub fn repr(v: &Value) -> String {
    let mut s = String::new();
    put(&mut s, v, false);
    s
}

fn put(s: &mut String, v: &Value, quoted: bool) {
    match v.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => s.push_str("None"),
        ValueKind::Bool => s.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::String if quoted => quote(s, v.as_str().unwrap_or_default()),
        ValueKind::Number => number(s, v),
        ValueKind::Seq | ValueKind::Iterable => {
            s.push('[');
            for (i, item) in v.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                put(s, &item, true);
            }
            s.push(']');
        }
        ValueKind::Map => {
            s.push('{');
            for (i, key) in v.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                put(s, &key, true);
                s.push_str(": ");
                put(s, &v.get_item(&key).unwrap_or_default(), true);
            }
            s.push('}');
        }
        _ => s.push_str(&v.to_string()),
    }
}

/// A number: integers as they are, floats with Python's `.0` when whole.
fn number(s: &mut String, v: &Value) {
    if v.is_integer() {
        s.push_str(&v.to_string());
        return;
    }
    let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
    if f.is_nan() {
        s.push_str("nan");
    } else if f.is_infinite() {
        s.push_str(if f > 0.0 { "inf" } else { "-inf" });
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        s.push_str(&format!("{f:.1}"));
    } else {
        s.push_str(&f.to_string());
    }
}

/// Python's `repr()` of a string: single quotes unless the text holds `'` and no `"`.
fn quote(s: &mut String, text: &str) {
    let q = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    s.push(q);
    for c in text.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if c == q => {
                s.push('\\');
                s.push(c);
            }
            c => s.push(c),
        }
    }
    s.push(q);
}

/// A value as Python's `str()` makes it.
pub(super) fn text(v: &Value) -> String {
    match v.as_str() {
        Some(s) => s.to_owned(),
        None => repr(v),
    }
}
