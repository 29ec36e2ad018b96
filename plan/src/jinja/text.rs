//! The text filters of Ansible that minijinja does not have: regular expressions and hashes.

use minijinja::value::{Kwargs, Rest, Value};
use minijinja::{Error, ErrorKind};

use super::python::text;

fn invalid(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, what.into())
}

pub(super) fn compile(pattern: &str) -> Result<regex::Regex, Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| invalid(format!("regex {pattern:?}: {e}")))
}

fn flags(pattern: &str, kw: &Kwargs) -> Result<regex::Regex, Error> {
    let ignorecase: Option<bool> = kw.get("ignorecase")?;
    let multiline: Option<bool> = kw.get("multiline")?;
    let mut p = String::new();
    if ignorecase == Some(true) {
        p.push_str("(?i)");
    }
    if multiline == Some(true) {
        p.push_str("(?m)");
    }
    p.push_str(pattern);
    compile(&p)
}

/// Ansible's `regex_replace(pattern, replacement)`; `\1` and `\g<name>` in the replacement.
pub(super) fn regex_replace(
    s: Value,
    pattern: String,
    with: Option<String>,
    kw: Kwargs,
) -> Result<String, Error> {
    let re = flags(&pattern, &kw)?;
    kw.assert_all_used()?;
    let with = with.unwrap_or_default();
    let back = compile(r"\\(\d+)|\\g<(\w+)>")
        .unwrap_or_else(|_| regex::Regex::new("$^").unwrap_or_else(|_| unreachable!()));
    let with = back.replace_all(&with, |c: &regex::Captures<'_>| {
        let group = c.get(1).or_else(|| c.get(2)).map_or("", |m| m.as_str());
        format!("${{{group}}}")
    });
    Ok(re.replace_all(&text(&s), with.as_ref()).into_owned())
}

/// Ansible's `regex_search(pattern, '\\1', ...)`: the match (or the groups asked for), none
/// without a match.
pub(super) fn regex_search(
    s: String,
    pattern: String,
    groups: Rest<String>,
    kw: Kwargs,
) -> Result<Value, Error> {
    let re = flags(&pattern, &kw)?;
    kw.assert_all_used()?;
    let Some(c) = re.captures(&s) else {
        return Ok(Value::from(()));
    };
    if groups.is_empty() {
        return Ok(Value::from(c.get(0).map_or("", |m| m.as_str())));
    }
    let picked: Vec<Value> = groups
        .iter()
        .map(|g| {
            let g = g.trim_start_matches('\\');
            let m = match g.strip_prefix("g<").and_then(|n| n.strip_suffix('>')) {
                Some(name) => c.name(name),
                None => g.parse().ok().and_then(|i| c.get(i)),
            };
            Value::from(m.map_or("", |m| m.as_str()))
        })
        .collect();
    Ok(Value::from(picked))
}

pub(super) fn regex_findall(s: String, pattern: String, kw: Kwargs) -> Result<Value, Error> {
    let re = flags(&pattern, &kw)?;
    kw.assert_all_used()?;
    let found: Vec<Value> = re
        .captures_iter(&s)
        .map(|c| match c.len() {
            1 => Value::from(c.get(0).map_or("", |m| m.as_str())),
            2 => Value::from(c.get(1).map_or("", |m| m.as_str())),
            _ => Value::from(
                c.iter()
                    .skip(1)
                    .map(|m| Value::from(m.map_or("", |m| m.as_str())))
                    .collect::<Vec<_>>(),
            ),
        })
        .collect();
    Ok(Value::from(found))
}

pub(super) fn hash(s: &str, algo: Option<&str>) -> Result<String, Error> {
    use sha2::Digest;
    let hex = |b: &[u8]| data_encoding::HEXLOWER.encode(b);
    match algo.unwrap_or("sha1") {
        "sha1" => Ok(hex(&sha1::Sha1::digest(s.as_bytes()))),
        "sha256" => Ok(hex(&sha2::Sha256::digest(s.as_bytes()))),
        "sha512" => Ok(hex(&sha2::Sha512::digest(s.as_bytes()))),
        other => Err(invalid(format!(
            "hash: {other:?} is not known here (sha1, sha256, sha512)"
        ))),
    }
}
