//! Host patterns, as Ansible spells them: terms separated by commas (or, the old way, by
//! colons: `web:&staging:!web03`), each `all` (or `*`), a group, a host, a glob over host
//! and group names, or `~regex`; `!term` removes hosts, `&term` keeps only hosts also in it;
//! a subscript takes some of a term's hosts (`web[0]`, `web[-1]`, `web[1:3]`, `web[2:]`).
//! Positive terms are joined first, then intersections, then exclusions, whatever their
//! order.

use std::collections::BTreeSet;

use super::Inventory;

/// The hosts `pattern` selects, in inventory order.
pub fn select(inv: &Inventory, pattern: &str) -> Result<Vec<String>, String> {
    let mut include = BTreeSet::new();
    let mut intersect = Vec::new();
    let mut exclude = BTreeSet::new();
    let mut any_positive = false;
    for term in split(pattern) {
        if let Some(t) = term.strip_prefix('!') {
            exclude.extend(subscripted(inv, t)?);
        } else if let Some(t) = term.strip_prefix('&') {
            intersect.push(subscripted(inv, t)?);
        } else {
            any_positive = true;
            include.extend(subscripted(inv, term)?);
        }
    }
    if !any_positive {
        // `!web` alone means "all but web", as in Ansible.
        include = inv.group_hosts("all").unwrap_or_default();
    }
    for set in intersect {
        include.retain(|h| set.contains(h));
    }
    include.retain(|h| !exclude.contains(h));
    Ok(inv
        .host_names()
        .into_iter()
        .filter(|h| include.contains(*h))
        .map(str::to_owned)
        .collect())
}

/// The terms of a pattern: split at commas when it has any; else at colons outside
/// brackets, unless it is one address (`fe80::1`, `db:5432`, `web[1:3]`), as Ansible's
/// `split_host_pattern` does.
fn split(pattern: &str) -> Vec<&str> {
    let terms: Vec<&str> = if pattern.contains(',') {
        pattern.split(',').collect()
    } else if one_address(pattern) {
        vec![pattern]
    } else {
        let mut out = Vec::new();
        let (mut depth, mut start) = (0usize, 0usize);
        for (i, c) in pattern.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                ':' if depth == 0 => {
                    out.push(&pattern[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.push(&pattern[start..]);
        out
    };
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn one_address(p: &str) -> bool {
    let p = p.trim().trim_start_matches(['!', '&']);
    let outside: String = {
        let mut depth = 0usize;
        p.chars()
            .filter(|c| {
                match c {
                    '[' => depth += 1,
                    ']' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                depth == 0 && *c != ']'
            })
            .collect()
    };
    let colons = outside.matches(':').count();
    let ipv6 = colons >= 2
        && p.chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    let host_port = colons == 1
        && outside.rsplit_once(':').is_some_and(|(h, port)| {
            !h.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        });
    colons == 0 || ipv6 || host_port
}

/// A term's hosts, a subscript (`[0]`, `[-1]`, `[1:3]`, `[2:]`) applied to them in
/// inventory order.
fn subscripted(inv: &Inventory, term: &str) -> Result<BTreeSet<String>, String> {
    let Some((base, sub)) = subscript(term) else {
        return resolve(inv, term);
    };
    let set = resolve(inv, base)?;
    let ordered: Vec<&str> = inv
        .host_names()
        .into_iter()
        .filter(|h| set.contains(*h))
        .collect();
    let n = ordered.len() as i64;
    let pick = |i: i64| if i < 0 { n + i } else { i };
    let (from, to) = match sub {
        (i, None) => (pick(i), pick(i)),
        (a, Some(b)) => (pick(a), pick(b)),
    };
    Ok((from.max(0)..=to.min(n - 1))
        .filter_map(|i| ordered.get(usize::try_from(i).ok()?))
        .map(|h| (*h).to_owned())
        .collect())
}

/// `web[1:3]` → (`web`, (1, Some(3))); `web[-1]` → (`web`, (-1, None)); `web[2:]` → to the
/// last. `None` when the term has no subscript (a glob's `[abc]` is not one).
fn subscript(term: &str) -> Option<(&str, (i64, Option<i64>))> {
    if term.starts_with('~') {
        return None;
    }
    let inner = term.strip_suffix(']')?;
    let open = inner.rfind('[')?;
    let (base, sub) = (&inner[..open], &inner[open + 1..]);
    if base.is_empty() {
        return None;
    }
    match sub.split_once(':') {
        None => sub.parse().ok().map(|i| (base, (i, None))),
        Some((a, b)) => {
            let a: i64 = a.parse().ok().filter(|a| *a >= 0)?;
            let b: i64 = if b.is_empty() {
                -1
            } else {
                b.parse().ok().filter(|b| *b >= 0)?
            };
            Some((base, (a, Some(b))))
        }
    }
}

fn resolve(inv: &Inventory, term: &str) -> Result<BTreeSet<String>, String> {
    if term == "all" || term == "*" {
        return Ok(inv.group_hosts("all").unwrap_or_default());
    }
    if let Some(hosts) = inv.group_hosts(term) {
        return Ok(hosts);
    }
    if inv.host_names().contains(&term) {
        return Ok([term.to_owned()].into());
    }
    if let Some(re) = term.strip_prefix('~') {
        let re = regex::Regex::new(&format!("^(?:{re})"))
            .map_err(|e| format!("pattern term {term:?}: {e}"))?;
        let mut out: BTreeSet<String> = inv
            .host_names()
            .into_iter()
            .filter(|h| re.is_match(h))
            .map(str::to_owned)
            .collect();
        for g in inv.group_names().into_iter().filter(|g| re.is_match(g)) {
            out.extend(inv.group_hosts(g).unwrap_or_default());
        }
        return Ok(out);
    }
    if term.contains(['*', '?']) {
        let mut out: BTreeSet<String> = inv
            .host_names()
            .into_iter()
            .filter(|h| glob(term, h))
            .map(str::to_owned)
            .collect();
        for g in inv.group_names().into_iter().filter(|g| glob(term, g)) {
            out.extend(inv.group_hosts(g).unwrap_or_default());
        }
        return Ok(out);
    }
    let groups = inv.group_names();
    Err(format!(
        "pattern term {term:?} names no host or group in the inventory (groups: {})",
        if groups.is_empty() {
            "none".to_owned()
        } else {
            groups.join(", ")
        }
    ))
}

fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.split_first(), n.split_first()) {
            (None, None) => true,
            (Some((b'*', rest)), _) => go(rest, n) || (!n.is_empty() && go(p, &n[1..])),
            (Some((b'?', rest)), Some((_, n_rest))) => go(rest, n_rest),
            (Some((pc, rest)), Some((nc, n_rest))) => pc == nc && go(rest, n_rest),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        let text = "[web]\nweb[1:4]\n[db]\ndb1\ndb2\n[staging]\nweb2\ndb2\n";
        Inventory::parse(text, std::path::Path::new("hosts.ini")).unwrap()
    }

    #[test]
    fn colons_separate_terms_unless_the_pattern_is_one_address() {
        let inv = inv();
        let s = |p: &str| select(&inv, p).unwrap();
        assert_eq!(s("web:&staging"), ["web2"]);
        assert_eq!(s("web:!staging:db1"), ["web1", "web3", "web4", "db1"]);
        assert_eq!(split("fe80::1"), ["fe80::1"]);
        assert_eq!(split("db:5432"), ["db:5432"]);
        assert_eq!(split("web[1:3]"), ["web[1:3]"]);
    }

    #[test]
    fn subscripts_and_regexes() {
        let inv = inv();
        let s = |p: &str| select(&inv, p).unwrap();
        assert_eq!(s("web[0]"), ["web1"]);
        assert_eq!(s("web[-1]"), ["web4"]);
        assert_eq!(s("web[1:2]"), ["web2", "web3"]);
        assert_eq!(s("web[2:]"), ["web3", "web4"]);
        assert_eq!(s("~db[12]"), ["db1", "db2"]);
        assert_eq!(s("~web(1|3)"), ["web1", "web3"]);
    }
}
