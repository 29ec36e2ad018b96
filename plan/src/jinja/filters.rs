//! The filters and tests real Ansible roles use, with Ansible's meaning where it differs
//! from minijinja's built-ins (`bool`, `int`, `string`, `join`, `indent`).

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

use super::emit;
use super::lists::{SetOp, flatten, set_op, version_test};
use super::python::text;
use super::text::{compile, hash, regex_findall, regex_replace, regex_search};
use crate::data::Data;

fn invalid(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, what.into())
}

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter("bool", to_bool);
    env.add_filter("int", to_int);
    env.add_filter("float", to_float);
    env.add_filter("string", |v: Value| text(&v));
    env.add_filter("join", join);
    env.add_filter("indent", indent);
    env.add_filter("ternary", ternary);
    env.add_filter("combine", combine);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("to_json", |v: Value| {
        emit::json(&Data::from_value(&v), None, false)
    });
    env.add_filter(
        "to_nice_json",
        |v: Value, kw: Kwargs| -> Result<String, Error> {
            let indent: Option<usize> = kw.get("indent")?;
            kw.assert_all_used()?;
            Ok(emit::json(
                &Data::from_value(&v),
                Some(indent.unwrap_or(4)),
                true,
            ))
        },
    );
    env.add_filter("from_json", |s: String| -> Result<Value, Error> {
        let v: serde_json::Value =
            serde_json::from_str(&s).map_err(|e| invalid(format!("from_json: {e}")))?;
        Ok(Data::from_json(&v).to_value())
    });
    env.add_filter("to_yaml", |v: Value| {
        emit::yaml(&Data::from_value(&v), 2, false)
    });
    env.add_filter(
        "to_nice_yaml",
        |v: Value, kw: Kwargs| -> Result<String, Error> {
            let indent: Option<usize> = kw.get("indent")?;
            kw.assert_all_used()?;
            Ok(emit::yaml(&Data::from_value(&v), indent.unwrap_or(4), true))
        },
    );
    env.add_filter("from_yaml", |s: String| -> Result<Value, Error> {
        Data::parse_yaml(&s)
            .map(|d| d.to_value())
            .map_err(|e| invalid(format!("from_yaml: {e}")))
    });
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_findall", regex_findall);
    env.add_filter("regex_escape", |s: String| regex::escape(&s));
    env.add_filter("basename", |s: String| {
        s.rsplit('/').next().unwrap_or_default().to_owned()
    });
    env.add_filter("dirname", |s: String| match s.rfind('/') {
        Some(0) => "/".to_owned(),
        Some(i) => s[..i].to_owned(),
        None => String::new(),
    });
    env.add_filter("b64encode", |s: String| {
        data_encoding::BASE64.encode(s.as_bytes())
    });
    env.add_filter("b64decode", |s: String| -> Result<String, Error> {
        let bytes = data_encoding::BASE64
            .decode(s.trim().as_bytes())
            .map_err(|e| invalid(format!("b64decode: {e}")))?;
        String::from_utf8(bytes).map_err(|e| invalid(format!("b64decode: {e}")))
    });
    env.add_filter("hash", |s: String, algo: Option<String>| {
        hash(&s, algo.as_deref())
    });
    env.add_filter("checksum", |s: String| hash(&s, Some("sha1")));
    env.add_filter("mandatory", mandatory);
    env.add_filter("quote", |v: Value| crate::shell_quote(&text(&v)));
    env.add_filter("union", |a: Value, b: Value| set_op(&a, &b, SetOp::Union));
    env.add_filter("difference", |a: Value, b: Value| {
        set_op(&a, &b, SetOp::Difference)
    });
    env.add_filter("intersect", |a: Value, b: Value| {
        set_op(&a, &b, SetOp::Intersect)
    });
    env.add_filter("symmetric_difference", |a: Value, b: Value| {
        set_op(&a, &b, SetOp::Symmetric)
    });
    env.add_filter("flatten", flatten);
    env.add_filter("version_compare", version_test);
    register_tests(env);
}

/// Ansible's tests: versions, regexes, and registered results.
fn register_tests(env: &mut Environment<'static>) {
    env.add_test("version", version_test);
    env.add_test("version_compare", version_test);
    env.add_test("match", |s: String, p: String| -> Result<bool, Error> {
        Ok(compile(&format!("^(?:{p})"))?.is_match(&s))
    });
    env.add_test("search", |s: String, p: String| -> Result<bool, Error> {
        Ok(compile(&p)?.is_match(&s))
    });
    env.add_test("regex", |s: String, p: String| -> Result<bool, Error> {
        Ok(compile(&p)?.is_match(&s))
    });
    env.add_test("changed", |r: Value| field(&r, "changed"));
    env.add_test("failed", |r: Value| field(&r, "failed"));
    env.add_test("skipped", |r: Value| field(&r, "skipped"));
    env.add_test("succeeded", |r: Value| !field(&r, "failed"));
    env.add_test("success", |r: Value| !field(&r, "failed"));
    env.add_test("truthy", |v: Value| v.is_true());
    env.add_test("falsy", |v: Value| !v.is_true());
}

/// Ansible's `bool`: `yes`, `on`, `1`, `true` (any case) and 1 are true; the rest false.
fn to_bool(v: Value) -> bool {
    match v.kind() {
        ValueKind::Bool => v.is_true(),
        ValueKind::String => matches!(
            v.as_str()
                .unwrap_or_default()
                .trim()
                .to_lowercase()
                .as_str(),
            "yes" | "on" | "1" | "true" | "y" | "t"
        ),
        ValueKind::Number => f64::try_from(v).is_ok_and(|f| f == 1.0),
        _ => false,
    }
}

/// Jinja2's `int`: text or a number to a whole number; what is neither is `default` (0).
fn to_int(v: Value, default: Option<i64>, kw: Kwargs) -> Result<i64, Error> {
    let base: Option<u32> = kw.get("base")?;
    kw.assert_all_used()?;
    let default = default.unwrap_or(0);
    Ok(match v.kind() {
        ValueKind::Bool => i64::from(v.is_true()),
        ValueKind::Number => match i64::try_from(v.clone()) {
            Ok(i) => i,
            #[allow(clippy::cast_possible_truncation)] // Python's int() truncates too
            Err(_) => f64::try_from(v).map_or(default, |f| f.trunc() as i64),
        },
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default().trim().replace('_', "");
            let (digits, radix) = match (base, s.get(..2)) {
                (Some(16) | None, Some("0x" | "0X")) => (&s[2..], 16),
                (Some(8) | None, Some("0o" | "0O")) => (&s[2..], 8),
                (Some(2) | None, Some("0b" | "0B")) => (&s[2..], 2),
                (b, _) => (s.as_str(), b.unwrap_or(10)),
            };
            i64::from_str_radix(digits, radix)
                .ok()
                .or_else(|| {
                    #[allow(clippy::cast_possible_truncation)] // as Python's int(float(s))
                    s.parse::<f64>().ok().map(|f| f.trunc() as i64)
                })
                .unwrap_or(default)
        }
        _ => default,
    })
}

fn to_float(v: Value, default: Option<f64>) -> f64 {
    let default = default.unwrap_or(0.0);
    match v.kind() {
        ValueKind::Bool => f64::from(u8::from(v.is_true())),
        ValueKind::Number => f64::try_from(v).unwrap_or(default),
        ValueKind::String => v
            .as_str()
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(default),
        _ => default,
    }
}

/// Jinja2's `join`: each item as Python's `str()` writes it.
fn join(v: Value, sep: Option<String>, attribute: Option<String>) -> Result<String, Error> {
    let sep = sep.unwrap_or_default();
    if let Some(s) = v.as_str() {
        return Ok(s.chars().map(String::from).collect::<Vec<_>>().join(&sep));
    }
    let items = v.try_iter()?;
    let mut parts = Vec::new();
    for item in items {
        let item = match &attribute {
            Some(a) => item.get_attr(a)?,
            None => item,
        };
        parts.push(text(&item));
    }
    Ok(parts.join(&sep))
}

/// Jinja2's `indent(width=4, first=False, blank=False)`, positional or by name; `width` may
/// be text to indent with.
fn indent(s: String, args: Rest<Value>, kw: Kwargs) -> Result<String, Error> {
    let arg = |i: usize, name: &str| -> Result<Option<Value>, Error> {
        Ok(match kw.get::<Option<Value>>(name)? {
            Some(v) => Some(v),
            None => args.get(i).cloned(),
        })
    };
    let width = arg(0, "width")?;
    let first = arg(1, "first")?.is_some_and(|v| v.is_true());
    let blank = arg(2, "blank")?.is_some_and(|v| v.is_true());
    kw.assert_all_used()?;
    let pad = match &width {
        None => "    ".to_owned(),
        Some(w) if w.kind() == ValueKind::String => w.as_str().unwrap_or_default().to_owned(),
        Some(w) => " ".repeat(usize::try_from(w.clone()).unwrap_or(4)),
    };
    // As Jinja2 does it: a newline added, then split into lines (which drops the last).
    let padded = format!("{s}\n");
    let lines: Vec<&str> = padded.lines().collect();
    let mut out = if blank {
        lines.join(&format!("\n{pad}"))
    } else {
        let mut rest = lines.iter();
        let mut out = rest.next().copied().unwrap_or_default().to_owned();
        for line in rest {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
            out.push_str(line);
        }
        out
    };
    if first {
        out.insert_str(0, &pad);
    }
    Ok(out)
}

fn ternary(v: Value, yes: Value, no: Value, none: Option<Value>) -> Value {
    match (v.is_none(), none) {
        (true, Some(n)) => n,
        _ if v.is_true() => yes,
        _ => no,
    }
}

/// Ansible's `combine(*maps, recursive=False, list_merge='replace')`.
fn combine(first: Value, others: Rest<Value>, kw: Kwargs) -> Result<Value, Error> {
    let recursive: Option<bool> = kw.get("recursive")?;
    let list_merge: Option<String> = kw.get("list_merge")?;
    kw.assert_all_used()?;
    let mut acc = Data::from_value(&first);
    for other in others.iter() {
        let other = Data::from_value(other);
        merge(
            &mut acc,
            other,
            recursive.unwrap_or(false),
            list_merge.as_deref().unwrap_or("replace"),
        )?;
    }
    Ok(acc.to_value())
}

fn merge(acc: &mut Data, other: Data, recursive: bool, lists: &str) -> Result<(), Error> {
    match (acc, other) {
        (Data::Map(a), Data::Map(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(old @ Data::Map(_)) if recursive && matches!(v, Data::Map(_)) => {
                        merge(old, v, recursive, lists)?;
                    }
                    Some(Data::List(old)) if lists != "replace" => {
                        let Data::List(new) = v else {
                            a.insert(k, v);
                            continue;
                        };
                        match lists {
                            "append" => old.extend(new),
                            "prepend" => {
                                let tail = std::mem::replace(old, new);
                                old.extend(tail);
                            }
                            "keep" => {}
                            other => return Err(invalid(format!("combine: list_merge {other:?}"))),
                        }
                    }
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
            Ok(())
        }
        _ => Err(invalid("combine: only maps can be combined")),
    }
}

/// `key_name` and `value_name` (`key` and `value` unless given), for `dict2items` and
/// `items2dict`.
fn pair_names(kw: &Kwargs) -> Result<(String, String), Error> {
    let key: Option<String> = kw.get("key_name")?;
    let value: Option<String> = kw.get("value_name")?;
    kw.assert_all_used()?;
    Ok((
        key.unwrap_or_else(|| "key".into()),
        value.unwrap_or_else(|| "value".into()),
    ))
}

fn dict2items(v: Value, kw: Kwargs) -> Result<Value, Error> {
    let (key, value) = pair_names(&kw)?;
    let (key, value) = (key.as_str(), value.as_str());
    let Data::Map(map) = Data::from_value(&v) else {
        return Err(invalid("dict2items: expects a map"));
    };
    Ok(Data::List(
        map.into_iter()
            .map(|(k, v)| {
                Data::Map(
                    [(key.to_owned(), Data::Str(k)), (value.to_owned(), v)]
                        .into_iter()
                        .collect(),
                )
            })
            .collect(),
    )
    .to_value())
}

fn items2dict(v: Value, kw: Kwargs) -> Result<Value, Error> {
    let (key, value) = pair_names(&kw)?;
    let (key, value) = (key.as_str(), value.as_str());
    let mut out = crate::DataMap::new();
    for item in v.try_iter()? {
        let k = item.get_attr(key)?;
        if k.is_undefined() {
            return Err(invalid(format!("items2dict: an item has no {key:?}")));
        }
        out.insert(text(&k), Data::from_value(&item.get_attr(value)?));
    }
    Ok(Data::Map(out).to_value())
}

fn mandatory(state: &State<'_, '_>, v: Value, msg: Option<String>) -> Result<Value, Error> {
    let _ = state;
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            msg.unwrap_or_else(|| "a mandatory var is undefined".to_owned()),
        ));
    }
    Ok(v)
}

/// A registered result's flag (`changed`, `failed`, `skipped`).
fn field(r: &Value, name: &str) -> bool {
    r.get_attr(name).is_ok_and(|v| v.is_true())
}
