//! The list filters and tests of Ansible that minijinja does not have: set operations,
//! `flatten`, and version comparison.

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Error, ErrorKind};

use super::python::text;

fn invalid(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, what.into())
}

pub(super) enum SetOp {
    Union,
    Difference,
    Intersect,
    Symmetric,
}

/// Ansible's list set operations: items in first-seen order, each once.
pub(super) fn set_op(a: &Value, b: &Value, op: SetOp) -> Result<Value, Error> {
    let list = |v: &Value| -> Result<Vec<Value>, Error> { Ok(v.try_iter()?.collect()) };
    let (a, b) = (list(a)?, list(b)?);
    let mut out: Vec<Value> = Vec::new();
    let mut push = |v: &Value| {
        if !out.contains(v) {
            out.push(v.clone());
        }
    };
    match op {
        SetOp::Union => a.iter().chain(&b).for_each(&mut push),
        SetOp::Difference => a.iter().filter(|v| !b.contains(v)).for_each(&mut push),
        SetOp::Intersect => a.iter().filter(|v| b.contains(v)).for_each(&mut push),
        SetOp::Symmetric => a
            .iter()
            .filter(|v| !b.contains(v))
            .chain(b.iter().filter(|v| !a.contains(v)))
            .for_each(&mut push),
    }
    Ok(Value::from(out))
}

pub(super) fn flatten(v: Value, levels: Option<usize>, kwargs: Kwargs) -> Result<Value, Error> {
    // `flatten(1)` and `flatten(levels=1)` alike, as Ansible takes it.
    let levels = match levels {
        Some(l) => Some(l),
        None => kwargs.get::<Option<usize>>("levels")?,
    };
    kwargs.assert_all_used()?;
    fn go(v: &Value, depth: Option<usize>, out: &mut Vec<Value>) -> Result<(), Error> {
        for item in v.try_iter()? {
            if item.kind() == ValueKind::Seq && depth != Some(0) {
                go(&item, depth.map(|d| d - 1), out)?;
            } else if !item.is_none() {
                out.push(item);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    go(&v, levels.map(|l| l.saturating_sub(1)), &mut out)?;
    Ok(Value::from(out))
}

/// Ansible's `version(other, op='eq')` test: dotted versions compared part by part,
/// numerically where both parts are numbers.
pub(super) fn version_test(
    v: Value,
    other: Value,
    op: Option<String>,
    kw: Kwargs,
) -> Result<bool, Error> {
    let _strict: Option<bool> = kw.get("strict")?;
    let _kind: Option<String> = kw.get("version_type")?;
    kw.assert_all_used()?;
    let ord = compare_versions(&text(&v), &text(&other));
    use std::cmp::Ordering::{Equal, Greater, Less};
    Ok(match op.as_deref().unwrap_or("eq") {
        "eq" | "==" | "=" => ord == Equal,
        "ne" | "!=" | "<>" => ord != Equal,
        "lt" | "<" => ord == Less,
        "le" | "<=" => ord != Greater,
        "gt" | ">" => ord == Greater,
        "ge" | ">=" => ord != Less,
        other => return Err(invalid(format!("version: unknown comparison {other:?}"))),
    })
}

fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts =
        |s: &str| -> Vec<String> { s.split(['.', '-', '_', '+']).map(str::to_owned).collect() };
    let (a, b) = (parts(a), parts(b));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).map_or("0", String::as_str),
            b.get(i).map_or("0", String::as_str),
        );
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}
