//! Ansible's INI inventory: `[group]` host lines with `key=value` vars, `[group:vars]`,
//! `[group:children]`, hosts before any section (ungrouped), `host:port`, numeric ranges
//! such as `web[01:03]`, `#` and `;` comments.

use super::{Inventory, Vars};

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

/// The most host entries the ranges of one inventory may expand to, all lines together: ten
/// times the largest fleet wisp is built for. Each line's range is also capped (10,000).
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
            let header = header
                .strip_suffix(']')
                .ok_or_else(|| at(format!("unclosed section header {line:?}")))?;
            section = match header.split_once(':') {
                Some((g, "vars")) => Section::Vars(g.to_owned()),
                Some((g, "children")) => Section::Children(g.to_owned()),
                Some((_, kind)) => {
                    return Err(at(format!(
                        "unknown section kind {kind:?} (vars or children)"
                    )));
                }
                None => Section::Hosts(header.to_owned()),
            };
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
                    vars.insert(k.to_owned(), v.to_owned());
                }
                let (host, port) = split_port(host);
                if let Some(port) = port {
                    vars.entry("ansible_port".into()).or_insert(port);
                }
                let names = expand_range(&host).map_err(at)?;
                expanded += names.len();
                if expanded > MAX_EXPANDED {
                    return Err(at(format!(
                        "host ranges expand to more than {MAX_EXPANDED} hosts in all: refused \
                         (split the inventory, or list fewer hosts per range)"
                    )));
                }
                for name in names {
                    inv.add_host(&name, vars.clone());
                    if group != "all" && group != "ungrouped" {
                        inv.group_mut(group).hosts.insert(name);
                    }
                }
            }
            Section::Vars(group) => {
                let (k, v) = line
                    .split_once('=')
                    .ok_or_else(|| at(format!("expected key=value, found {line:?}")))?;
                let v = unquote(v.trim());
                if group == "all" {
                    inv.all_vars_mut().insert(k.trim().to_owned(), v);
                } else {
                    inv.group_mut(group).vars.insert(k.trim().to_owned(), v);
                }
            }
            Section::Children(group) => {
                inv.group_mut(line);
                inv.group_mut(group).children.insert(line.to_owned());
            }
        }
    }
    Ok(inv)
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    v.to_owned()
}

/// Splits on whitespace, keeping quoted values (`key="a b"`) whole and unquoted.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (None, '#') if cur.is_empty() => break,
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("unclosed quote in {line:?}"));
    }
    if !cur.is_empty() {
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

/// `web[01:03].x` → `web01.x`, `web02.x`, `web03.x` (zero padding kept); one range per name.
fn expand_range(name: &str) -> Result<Vec<String>, String> {
    let (Some(open), Some(close)) = (name.find('['), name.find(']')) else {
        return Ok(vec![name.to_owned()]);
    };
    let (prefix, range, suffix) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let (a, b) = range
        .split_once(':')
        .ok_or_else(|| format!("range {range:?}: expected [start:end]"))?;
    if a.len().max(b.len()) > 20 {
        return Err(format!("range {range:?}: numbers of at most 20 digits"));
    }
    let (start, end): (u64, u64) = (
        a.parse()
            .map_err(|_| format!("range {range:?}: {a:?} is not a number"))?,
        b.parse()
            .map_err(|_| format!("range {range:?}: {b:?} is not a number"))?,
    );
    if end < start || end - start > 10_000 {
        return Err(format!(
            "range {range:?}: end must be at or after start, at most 10000 apart"
        ));
    }
    let width = if a.starts_with('0') { a.len() } else { 0 };
    Ok((start..=end)
        .map(|n| format!("{prefix}{n:0width$}{suffix}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_ports_and_quotes() {
        assert_eq!(
            expand_range("web[01:03].x").unwrap(),
            ["web01.x", "web02.x", "web03.x"]
        );
        assert_eq!(split_port("db:5432"), ("db".into(), Some("5432".into())));
        assert_eq!(split_port("web[1:3]"), ("web[1:3]".into(), None));
        assert_eq!(
            split_words(r#"h a=1 b="x y" # note"#).unwrap(),
            ["h", "a=1", "b=x y"]
        );
    }
}
