//! Host patterns, as Ansible spells them: comma-separated terms, each `all` (or `*`), a
//! group, a host, or a glob over host and group names; `!term` removes hosts, `&term` keeps
//! only hosts also in it. Positive terms are joined first, then intersections, then
//! exclusions, whatever their order.

use std::collections::BTreeSet;

use super::Inventory;

/// The hosts `pattern` selects, in inventory order.
pub fn select(inv: &Inventory, pattern: &str) -> Result<Vec<String>, String> {
    let mut include = BTreeSet::new();
    let mut intersect = Vec::new();
    let mut exclude = BTreeSet::new();
    let mut any_positive = false;
    for term in pattern.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if let Some(t) = term.strip_prefix('!') {
            exclude.extend(resolve(inv, t)?);
        } else if let Some(t) = term.strip_prefix('&') {
            intersect.push(resolve(inv, t)?);
        } else {
            any_positive = true;
            include.extend(resolve(inv, term)?);
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
