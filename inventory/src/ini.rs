//! Ansible's INI inventory: `[group]` host lines with `key=value` vars, `[group:vars]`,
//! `[group:children]`, hosts before any section (ungrouped), `host:port`, ranges such as
//! `web[01:03]` ([`crate::ranges`]), `#` and `;` comments. Values are Python literals when
//! they are one (`80`, `True`, `[1, 2]`), else text ([`crate::pyliteral`]); on a host line
//! quotes are taken off first, as Ansible's shlex does.

use super::{Inventory, Vars};

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

/// The most host entries the ranges of one inventory may expand to, all lines together: ten
/// times the largest fleet wisp is built for. Each name's ranges are also capped (10,000).
const MAX_EXPANDED: usize = 100_000;

pub(super) fn parse(text: &str) -> Result<Inventory, String> {
    let mut inv = Inventory::default();
    let mut expanded = 0usize;
    let mut section = Section::Hosts("ungrouped".into());
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let at = |m: String| format!("line {}: {m}", i + 1);
        if let Some(header) = line.strip_prefix('[') {
            section = header_of(header).map_err(|m| at(m.replace("{line}", line)))?;
            if let Section::Hosts(g) | Section::Children(g) = &section
                && g != "all"
                && g != "ungrouped"
            {
                inv.group_mut(g);
            }
            continue;
        }
        match &section {
            Section::Hosts(group) => {
                let tokens = split_words(line).map_err(at)?;
                let Some((host, rest)) = tokens.split_first() else {
                    continue;
                };
                let mut vars = Vars::new();
                for t in rest {
                    let (k, v) = t
                        .split_once('=')
                        .ok_or_else(|| at(format!("expected key=value, found {t:?}")))?;
                    vars.insert(k.to_owned(), crate::pyliteral::value(v));
                }
                for (name, vars) in host_pattern(host, vars, &mut expanded).map_err(at)? {
                    inv.add_host(&name, vars);
                    if group != "all" && group != "ungrouped" {
                        inv.group_mut(group).hosts.insert(name);
                    }
                }
            }
            Section::Vars(group) => {
                let (k, v) = line
                    .split_once('=')
                    .ok_or_else(|| at(format!("expected key=value, found {line:?}")))?;
                let v = crate::pyliteral::value(v.trim());
                if group == "all" {
                    inv.all_vars_mut().insert(k.trim().to_owned(), v);
                } else {
                    inv.group_mut(group).vars.insert(k.trim().to_owned(), v);
                }
            }
            Section::Children(group) => {
                let child = split_words(line)
                    .map_err(at)?
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                inv.group_mut(&child);
                inv.group_mut(group).children.insert(child);
            }
        }
    }
    Ok(inv)
}

/// A section header after its `[`: `group]`, `group:vars]`, `group:children]` or
/// `group:hosts]`, a comment allowed after it.
fn header_of(header: &str) -> Result<Section, String> {
    let (inside, after) = header
        .split_once(']')
        .ok_or_else(|| "unclosed section header \"{line}\"".to_owned())?;
    let after = after.trim();
    if !after.is_empty() && !after.starts_with('#') && !after.starts_with(';') {
        return Err("text after the section header \"{line}\"".into());
    }
    Ok(match inside.split_once(':') {
        Some((g, "vars")) => Section::Vars(g.to_owned()),
        Some((g, "children")) => Section::Children(g.to_owned()),
        Some((g, "hosts")) => Section::Hosts(g.to_owned()),
        Some((_, kind)) => {
            return Err(format!("unknown section kind {kind:?} (vars or children)"));
        }
        None => Section::Hosts(inside.to_owned()),
    })
}

/// The hosts one pattern stands for (`web[01:10]:2222`), each with `vars` (and the port as
/// `ansible_port`); `expanded` counts names across the inventory.
pub(super) fn host_pattern(
    pattern: &str,
    vars: Vars,
    expanded: &mut usize,
) -> Result<Vec<(String, Vars)>, String> {
    let (host, port) = split_port(pattern);
    let mut vars = vars;
    if let Some(port) = port {
        let port = port
            .parse::<u16>()
            .map_or(serde_json::Value::from(port), Into::into);
        vars.entry("ansible_port".into()).or_insert(port);
    }
    let names = crate::ranges::expand(&host)?;
    *expanded += names.len();
    if *expanded > MAX_EXPANDED {
        return Err(format!(
            "host ranges expand to more than {MAX_EXPANDED} hosts in all: refused \
             (split the inventory, or list fewer hosts per range)"
        ));
    }
    Ok(names.into_iter().map(|n| (n, vars.clone())).collect())
}

/// Splits on whitespace as Python's shlex does for Ansible: quotes (`key="a b"`) keep a
/// value whole and are taken off, a backslash escapes the next character outside single
/// quotes, and `#` outside quotes ends the line.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut word = false;
    let mut quote = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => match chars.next() {
                Some(e @ ('"' | '\\')) => cur.push(e),
                Some(e) => {
                    cur.push('\\');
                    cur.push(e);
                }
                None => cur.push('\\'),
            },
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                word = true;
            }
            (None, '\\') => {
                if let Some(e) = chars.next() {
                    cur.push(e);
                }
                word = true;
            }
            (None, c) if c.is_whitespace() => {
                if word {
                    words.push(std::mem::take(&mut cur));
                    word = false;
                }
            }
            (None, '#') => break,
            (None, c) => {
                cur.push(c);
                word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unclosed quote in {line:?}"));
    }
    if word {
        words.push(cur);
    }
    Ok(words)
}

/// `host:2222` → (`host`, Some("2222")); a colon inside a range is not a port.
fn split_port(host: &str) -> (String, Option<String>) {
    if let Some((h, p)) = host.rsplit_once(':')
        && !p.is_empty()
        && p.bytes().all(|b| b.is_ascii_digit())
        && !h.ends_with('[')
        && h.matches('[').count() == h.matches(']').count()
    {
        return (h.to_owned(), Some(p.to_owned()));
    }
    (host.to_owned(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_ports_and_quotes() {
        assert_eq!(split_port("db:5432"), ("db".into(), Some("5432".into())));
        assert_eq!(split_port("web[1:3]"), ("web[1:3]".into(), None));
        assert_eq!(
            split_words(r#"h a=1 b="x y" # note"#).unwrap(),
            ["h", "a=1", "b=x y"]
        );
    }
}
