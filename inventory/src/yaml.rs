//! Ansible's YAML inventory: groups (usually under `all`) with `hosts`, `vars` and
//! `children`, nested to any depth; host entries are patterns (`web[01:10]`, `db:5432`) and
//! may carry vars or be empty; a section may be one name (`hosts: web1`). Values are YAML
//! 1.1, as Ansible reads them ([`crate::yaml11`]). Executable inventories print the same
//! groups as JSON ([`from_script`]).

use std::collections::HashMap;

use serde_json::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::{Inventory, Vars};
use wisp_yaml::{Kind, Node};

/// Most nodes a document may expand to, aliases counted at their full size: ten times a
/// 100,000-host inventory with a few vars per host, and far below what would exhaust memory.
const MAX_NODES: u64 = 10_000_000;

pub(super) fn parse(text: &str) -> Result<Inventory, String> {
    expanded_size_within(text, MAX_NODES)?;
    let docs = wisp_yaml::load_nodes(text)?;
    let mut inv = Inventory::default();
    let top = match docs.into_iter().next().map(|n| n.kind) {
        Some(Kind::Map(m)) => m,
        None | Some(Kind::Scalar(Value::Null)) => return Ok(inv),
        Some(_) => return Err("the top level must be a mapping of groups".into()),
    };
    if top.iter().any(|(k, _)| k == "plugin") {
        return Err(
            "an inventory plugin's configuration (`plugin:`), not an inventory: wisp reads \
             inventories, and executable ones (run with --list)"
                .into(),
        );
    }
    let mut expanded = 0;
    for (name, body) in &top {
        group(&mut inv, name, body, None, &mut expanded)?;
    }
    Ok(inv)
}

/// Whether `text` is YAML whose first document is a mapping: how a file with no extension
/// is told to be a YAML inventory rather than INI.
pub(super) fn holds_a_mapping(text: &str) -> bool {
    expanded_size_within(text, MAX_NODES).is_ok()
        && wisp_yaml::load_nodes(text)
            .is_ok_and(|d| matches!(d.first().map(|n| &n.kind), Some(Kind::Map(_))))
}

/// A section's entries; one written as a name (`hosts: web1`) is that name with no value.
fn entries(v: &Node, what: &str) -> Result<Vec<(String, Node)>, String> {
    match &v.kind {
        Kind::Map(m) => Ok(m.clone()),
        Kind::Scalar(Value::Null) => Ok(Vec::new()),
        Kind::Scalar(Value::String(name)) => {
            Ok(vec![(name.clone(), Node::scalar(v.line, Value::Null))])
        }
        _ => Err(format!(
            "{what} must be a mapping (or one name), not {}",
            v.json()
        )),
    }
}

fn vars_of(v: &Node, what: &str) -> Result<Vars, String> {
    json_vars(&v.json(), what)
}

fn json_vars(v: &Value, what: &str) -> Result<Vars, String> {
    match v {
        Value::Object(m) => Ok(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Value::Null => Ok(Vars::new()),
        other => Err(format!("{what}: vars must be a mapping, not {other}")),
    }
}

fn group(
    inv: &mut Inventory,
    name: &str,
    body: &Node,
    parent: Option<&str>,
    expanded: &mut usize,
) -> Result<(), String> {
    let is_all = name == "all";
    if !is_all {
        inv.group_mut(name);
        if let Some(p) = parent.filter(|p| *p != "all") {
            inv.group_mut(p).children.insert(name.to_owned());
        }
    }
    let body = match &body.kind {
        Kind::Map(m) => m,
        Kind::Scalar(Value::Null) => return Ok(()),
        _ => {
            return Err(format!(
                "group {name:?}: expected a mapping, not {}",
                body.json()
            ));
        }
    };
    for (k, v) in body {
        let what = format!("group {name:?}: {k}");
        match k.as_str() {
            "hosts" => {
                for (pattern, hv) in entries(v, &what)? {
                    let vars = vars_of(&hv, &format!("host {pattern:?}"))?;
                    for (host, vars) in crate::ini::host_pattern(&pattern, vars, expanded)? {
                        inv.add_host(&host, vars);
                        if !is_all {
                            inv.group_mut(name).hosts.insert(host);
                        }
                    }
                }
            }
            "vars" => {
                let vars = vars_of(v, &format!("group {name:?}"))?;
                if is_all {
                    inv.all_vars_mut().extend(vars);
                } else {
                    inv.group_mut(name).vars.extend(vars);
                }
            }
            "children" => {
                for (c, cv) in entries(v, &what)? {
                    group(inv, &c, &cv, Some(name), expanded)?;
                }
            }
            other => {
                return Err(format!(
                    "group {name:?}: unknown key {other:?} (hosts, vars, children)"
                ));
            }
        }
    }
    Ok(())
}

/// An executable inventory's `--list` JSON: groups (each `{hosts, vars, children}`, or a
/// bare list of hosts) and `_meta.hostvars`; `host_vars(name)` answers `--host` for an
/// inventory that gives no `_meta`.
pub(super) fn from_script<E: std::fmt::Display>(
    list: &Value,
    mut host_vars: impl FnMut(&str) -> Result<Value, E>,
) -> Result<Inventory, String> {
    let Value::Object(top) = list else {
        return Err("--list must print a JSON object of groups".into());
    };
    let mut inv = Inventory::default();
    let meta = top.get("_meta").and_then(|m| m.get("hostvars"));
    for (name, body) in top.iter().filter(|(k, _)| *k != "_meta") {
        let is_all = name == "all";
        if !is_all {
            inv.group_mut(name);
        }
        let (hosts, vars, children) = match body {
            Value::Array(hosts) => (hosts.as_slice(), None, &[][..]),
            Value::Object(g) => (
                g.get("hosts")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice),
                g.get("vars"),
                g.get("children")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice),
            ),
            _ => {
                return Err(format!(
                    "group {name:?}: expected an object or a list of hosts"
                ));
            }
        };
        for h in hosts.iter().filter_map(Value::as_str) {
            inv.add_host(h, Vars::new());
            if !is_all {
                inv.group_mut(name).hosts.insert(h.to_owned());
            }
        }
        if let Some(v) = vars {
            let v = json_vars(v, &format!("group {name:?}"))?;
            if is_all {
                inv.all_vars_mut().extend(v);
            } else {
                inv.group_mut(name).vars.extend(v);
            }
        }
        for c in children.iter().filter_map(Value::as_str) {
            inv.group_mut(c);
            if !is_all {
                inv.group_mut(name).children.insert(c.to_owned());
            }
        }
    }
    let names: Vec<String> = inv.host_names().iter().map(|h| (*h).to_owned()).collect();
    for host in names {
        let vars = match meta {
            Some(all) => all.get(&host).cloned().unwrap_or(Value::Null),
            None => host_vars(&host).map_err(|e| e.to_string())?,
        };
        let vars = json_vars(&vars, &format!("host {host:?}"))?;
        inv.add_host(&host, vars);
    }
    Ok(inv)
}

/// Refuses a text whose documents would expand (aliases copied at their full size, as the
/// loader copies them) to more than `limit` nodes, before the loader builds any of it: a few
/// lines of nested aliases can stand for billions of nodes.
pub(super) fn expanded_size_within(text: &str, limit: u64) -> Result<(), String> {
    let mut sizer = Sizer {
        open: Vec::new(),
        anchors: HashMap::new(),
        total: 0,
    };
    // A syntax error is left for the loader to report, with its position.
    let _ = Parser::new_from_str(text).load(&mut sizer, true);
    if sizer.total > limit {
        return Err(format!(
            "its aliases expand to more than {limit} nodes: refused (a YAML alias bomb?); \
             write the repeated parts out or use groups and vars"
        ));
    }
    Ok(())
}

/// Counts nodes per anchor and in all, saturating (the counts themselves can be enormous).
struct Sizer {
    /// Collections being read: their anchor (0 for none) and size so far.
    open: Vec<(usize, u64)>,
    anchors: HashMap<usize, u64>,
    total: u64,
}

impl Sizer {
    fn add(&mut self, n: u64) {
        match self.open.last_mut() {
            Some((_, size)) => *size = size.saturating_add(n),
            None => self.total = self.total.saturating_add(n),
        }
    }
}

impl MarkedEventReceiver for Sizer {
    fn on_event(&mut self, ev: Event, _mark: Marker) {
        match ev {
            Event::Scalar(_, _, anchor, _) => {
                if anchor > 0 {
                    self.anchors.insert(anchor, 1);
                }
                self.add(1);
            }
            Event::Alias(anchor) => {
                let n = self.anchors.get(&anchor).copied().unwrap_or(1);
                self.add(n);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.open.push((anchor, 1));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, size)) = self.open.pop() {
                    if anchor > 0 {
                        self.anchors.insert(anchor, size);
                    }
                    self.add(size);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_count_at_their_expanded_size() {
        let doc = "a: &a [1, 2, 3]\nb: &b [*a, *a, *a]\nc: [*b, *b]\n";
        // a = 4 nodes, b = 1 + 3*4 = 13, c = 1 + 2*13 = 27; the mapping's keys and its own
        // node bring it to 1 + 3 + 4 + 13 + 27 = 48.
        assert!(expanded_size_within(doc, 48).is_ok());
        assert!(expanded_size_within(doc, 47).is_err());
    }
}
