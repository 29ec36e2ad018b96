//! Ansible's YAML inventory: groups (usually under `all`) with `hosts`, `vars` and
//! `children`, nested to any depth; host entries may carry vars or be empty.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;
use yaml_rust2::{Yaml, YamlLoader};

use super::{Inventory, Vars};

/// Most nodes a document may expand to, aliases counted at their full size: ten times a
/// 100,000-host inventory with a few vars per host, and far below what would exhaust memory.
const MAX_NODES: u64 = 10_000_000;

pub(super) fn parse(text: &str) -> Result<Inventory, String> {
    expanded_size_within(text, MAX_NODES)?;
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    let mut inv = Inventory::default();
    let Some(doc) = docs.first() else {
        return Ok(inv);
    };
    let top = match doc {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(inv),
        _ => return Err("the top level must be a mapping of groups".into()),
    };
    for (name, body) in top {
        group(&mut inv, &key(name)?, body, None)?;
    }
    Ok(inv)
}

fn key(k: &Yaml) -> Result<String, String> {
    scalar(k).ok_or_else(|| format!("{k:?} is not a name"))
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn vars(node: &Yaml, what: &str) -> Result<Vars, String> {
    match node {
        Yaml::Null => Ok(Vars::new()),
        Yaml::Hash(h) => h
            .iter()
            .map(|(k, v)| {
                let value = scalar(v).ok_or_else(|| {
                    format!("{what}: variable {k:?} must be a string, number or boolean")
                })?;
                Ok((key(k)?, value))
            })
            .collect(),
        _ => Err(format!("{what}: expected a mapping")),
    }
}

fn group(inv: &mut Inventory, name: &str, body: &Yaml, parent: Option<&str>) -> Result<(), String> {
    let is_all = name == "all";
    if !is_all {
        inv.group_mut(name);
        if let Some(p) = parent.filter(|p| *p != "all") {
            inv.group_mut(p).children.insert(name.to_owned());
        }
    }
    let body = match body {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(()),
        _ => return Err(format!("group {name:?}: expected a mapping")),
    };
    for (k, v) in body {
        match key(k)?.as_str() {
            "hosts" => {
                let Yaml::Hash(hosts) = v else {
                    if matches!(v, Yaml::Null) {
                        continue;
                    }
                    return Err(format!("group {name:?}: hosts must be a mapping"));
                };
                for (h, hv) in hosts {
                    let host = key(h)?;
                    inv.add_host(&host, vars(hv, &format!("host {host:?}"))?);
                    if !is_all {
                        inv.group_mut(name).hosts.insert(host);
                    }
                }
            }
            "vars" => {
                let v = vars(v, &format!("group {name:?}"))?;
                if is_all {
                    inv.all_vars_mut().extend(v);
                } else {
                    inv.group_mut(name).vars.extend(v);
                }
            }
            "children" => match v {
                Yaml::Hash(children) => {
                    for (c, cv) in children {
                        group(inv, &key(c)?, cv, Some(name))?;
                    }
                }
                Yaml::Null => {}
                _ => return Err(format!("group {name:?}: children must be a mapping")),
            },
            other => {
                return Err(format!(
                    "group {name:?}: unknown key {other:?} (hosts, vars, children)"
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a text whose documents would expand (aliases copied at their full size, as the
/// loader copies them) to more than `limit` nodes, before the loader builds any of it: a few
/// lines of nested aliases can stand for billions of nodes.
fn expanded_size_within(text: &str, limit: u64) -> Result<(), String> {
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
