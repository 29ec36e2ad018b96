//! Inventories: the native TOML format, Ansible's INI and YAML inventories and executable
//! (dynamic) ones, read as Ansible reads them, with the `group_vars/` and `host_vars/`
//! beside them; resolved into hosts with connection settings; and host patterns over them.
//!
//! Variables are any value (text, numbers, booleans, lists, maps), and take Ansible's
//! precedence, lowest first: `all`'s vars in the inventory, every other group's (shallow
//! groups first, ties by name), then `group_vars/all` beside the inventory, then beside the
//! plan, then `group_vars/<group>` beside the inventory, then beside the plan; then the
//! host's own vars in the inventory, `host_vars/<host>` beside the inventory, beside the
//! plan. Connection settings come from `ansible_host`, `ansible_user`, `ansible_port`,
//! `ansible_ssh_private_key_file` (and their `ansible_ssh_*` spellings), `ansible_become*`
//! and `ansible_connection` (or the native `host`, `user`, `port`, `key`).

mod graph;
pub mod hostlist;
mod ini;
mod load;
mod native;
mod pattern;
pub mod pyliteral;
pub mod ranges;
mod resolve;
mod vars_dirs;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use pattern::select;
pub use resolve::{Connection, ResolvedHost, Resolver};
pub use serde_json::Value;

/// Variables: any value, by name.
pub type Vars = BTreeMap<String, Value>;

/// A parsed inventory, before variables are resolved.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Inventory {
    /// Hosts in the order they were first declared, with their own vars.
    hosts: Vec<(String, Vars)>,
    /// Where each host is in `hosts`: inventories of 100,000 hosts are declared in linear time.
    index: std::collections::HashMap<String, usize>,
    /// Groups by name.
    groups: BTreeMap<String, Group>,
    /// Vars of `all`.
    all_vars: Vars,
    /// Vars from `group_vars/` and `host_vars/` directories, one set per directory, in
    /// precedence order (beside the inventory, then beside the plan).
    dirs: Vec<vars_dirs::DirVars>,
}

/// A group: its direct hosts, its child groups, its vars.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Group {
    /// Hosts listed directly in it.
    pub hosts: BTreeSet<String>,
    /// Its child groups.
    pub children: BTreeSet<String>,
    /// Its vars, as the inventory gives them.
    pub vars: Vars,
}

/// An inventory that could not be read: the file and what is wrong.
#[derive(Debug)]
pub struct InventoryError {
    /// The inventory file.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: InventoryErrorKind,
}

impl std::fmt::Display for InventoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "inventory {}: {}", self.path.display(), self.kind)
    }
}

impl std::error::Error for InventoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// What is wrong with an inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryErrorKind {
    /// The file could not be read.
    #[error("cannot be read")]
    Unreadable(#[source] std::io::Error),
    /// It does not parse, or it does not hold together; the message is the parser's, written
    /// for the operator (with the line where the format has lines).
    #[error("{0}")]
    Invalid(String),
}

impl InventoryError {
    pub(crate) fn new(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            kind: InventoryErrorKind::Invalid(message.into()),
        }
    }
}

impl Inventory {
    pub(crate) fn add_host(&mut self, name: &str, vars: Vars) {
        match self.index.get(name) {
            Some(&i) => self.hosts[i].1.extend(vars),
            None => {
                self.index.insert(name.to_owned(), self.hosts.len());
                self.hosts.push((name.to_owned(), vars));
            }
        }
    }

    pub(crate) fn group_mut(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_owned()).or_default()
    }

    pub(crate) fn all_vars_mut(&mut self) -> &mut Vars {
        &mut self.all_vars
    }

    /// Rejects children that name no group, and cycles.
    fn check(&self, path: &Path) -> Result<(), InventoryError> {
        for (name, g) in &self.groups {
            for child in &g.children {
                if !self.groups.contains_key(child) {
                    return Err(InventoryError::new(
                        path,
                        format!("group {name:?} lists child {child:?}, which is not a group"),
                    ));
                }
            }
        }
        if let Err(name) = self.depths() {
            return Err(InventoryError::new(
                path,
                format!("group {name:?} is its own descendant"),
            ));
        }
        Ok(())
    }

    /// An inventory of just these hosts, in no group: what patterns select from when the
    /// command line names hosts without an inventory file.
    pub fn of_hosts(names: impl IntoIterator<Item = String>) -> Inventory {
        let mut inv = Inventory::default();
        for name in names {
            inv.add_host(&name, Vars::new());
        }
        inv
    }

    /// Every host name, in declaration order.
    pub fn host_names(&self) -> Vec<&str> {
        self.hosts.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Group names.
    pub fn group_names(&self) -> Vec<&str> {
        self.groups.keys().map(String::as_str).collect()
    }

    /// Groups that are no other group's child (`all`'s children), by name.
    pub fn top_groups(&self) -> Vec<String> {
        let children: BTreeSet<&str> = self
            .groups
            .values()
            .flat_map(|g| g.children.iter().map(String::as_str))
            .collect();
        self.groups
            .keys()
            .filter(|g| !children.contains(g.as_str()) && *g != "all" && *g != "ungrouped")
            .cloned()
            .collect()
    }

    /// Hosts in no group, in declaration order.
    pub fn ungrouped(&self) -> Vec<String> {
        let grouped: BTreeSet<&str> = self
            .groups
            .values()
            .flat_map(|g| g.hosts.iter().map(String::as_str))
            .collect();
        self.hosts
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !grouped.contains(n.as_str()))
            .cloned()
            .collect()
    }

    /// A group's own hosts (declaration order) and its children (by name).
    pub fn members(&self, group: &str) -> (Vec<String>, Vec<String>) {
        let Some(g) = self.groups.get(group) else {
            return (Vec::new(), Vec::new());
        };
        let hosts = self
            .hosts
            .iter()
            .map(|(n, _)| n)
            .filter(|n| g.hosts.contains(*n))
            .cloned()
            .collect();
        (hosts, g.children.iter().cloned().collect())
    }

    /// Hosts of a group and of all its descendants. `all` is every host; `ungrouped` is the
    /// hosts in no group.
    pub fn group_hosts(&self, group: &str) -> Option<BTreeSet<String>> {
        match group {
            "all" => Some(self.hosts.iter().map(|(n, _)| n.clone()).collect()),
            "ungrouped" if !self.groups.contains_key("ungrouped") => Some(
                self.hosts
                    .iter()
                    .map(|(n, _)| n)
                    .filter(|n| !self.groups.values().any(|g| g.hosts.contains(*n)))
                    .cloned()
                    .collect(),
            ),
            _ => {
                self.groups.get(group)?;
                // Each group once, however many paths lead to it.
                let mut out = BTreeSet::new();
                let mut seen = BTreeSet::from([group]);
                let mut todo = vec![group];
                while let Some(name) = todo.pop() {
                    let Some(g) = self.groups.get(name) else {
                        continue;
                    };
                    out.extend(g.hosts.iter().cloned());
                    for child in &g.children {
                        if seen.insert(child.as_str()) {
                            todo.push(child.as_str());
                        }
                    }
                }
                Some(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_host_over_child_over_parent_over_all() {
        let mut inv = Inventory::default();
        inv.all_vars_mut().insert("user".into(), "all".into());
        inv.add_host("h", Vars::new());
        inv.add_host("k", [("user".to_owned(), Value::from("own"))].into());
        inv.group_mut("parent").children.insert("child".into());
        inv.group_mut("parent")
            .vars
            .insert("user".into(), "parent".into());
        inv.group_mut("child")
            .hosts
            .extend(["h".to_owned(), "k".to_owned()]);
        inv.group_mut("child")
            .vars
            .insert("user".into(), "child".into());
        assert_eq!(inv.resolve("h").unwrap().user.as_deref(), Some("child"));
        assert_eq!(inv.resolve("k").unwrap().user.as_deref(), Some("own"));
        inv.group_mut("child").vars.clear();
        assert_eq!(inv.resolve("h").unwrap().user.as_deref(), Some("parent"));
        assert_eq!(inv.group_hosts("parent").unwrap().len(), 2);
    }

    /// Inventory text that must be refused, with the whole message.
    fn check(file: &str, text: &str, message: &str) {
        let e = Inventory::parse(text, Path::new(file)).unwrap_err();
        assert!(matches!(e.kind, InventoryErrorKind::Invalid(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("inventory {file}: {message}"),
            "in:\n{text}"
        );
    }

    #[test]
    fn bad_inventories_are_refused_with_the_reason() {
        let cases = [
            (
                "hosts",
                "[web\nh1\n",
                "line 1: unclosed section header \"[web\"",
            ),
            (
                "hosts",
                "[web]\nh1 port\n",
                "line 2: expected key=value, found \"port\"",
            ),
            (
                "hosts",
                "[web:vars]\nport\n",
                "line 2: expected key=value, found \"port\"",
            ),
            (
                "hosts",
                "[a:children]\nb\n[b:children]\na\n",
                "group \"a\" is its own descendant",
            ),
            (
                "hosts.yml",
                "- a\n",
                "the top level must be a mapping of groups",
            ),
            (
                "hosts.yml",
                "web:\n  hosts: [h1]\n",
                "group \"web\": hosts must be a mapping (or one name), not [\"h1\"]",
            ),
            (
                "hosts.toml",
                "[groups.all]\nhosts = [\"h\"]\n",
                "`all` is implicit: put its vars under [vars]",
            ),
        ];
        for (file, text, message) in cases {
            check(file, text, message);
        }
    }

    #[test]
    fn a_child_that_names_no_group_is_refused() {
        let mut inv = Inventory::default();
        inv.group_mut("a").children.insert("nope".into());
        assert_eq!(
            inv.check(Path::new("x")).unwrap_err().to_string(),
            "inventory x: group \"a\" lists child \"nope\", which is not a group"
        );
    }

    #[test]
    fn an_unreadable_inventory_keeps_its_cause() {
        let e = Inventory::load(Path::new("/nonexistent/hosts")).unwrap_err();
        assert!(matches!(e.kind, InventoryErrorKind::Unreadable(_)));
        assert_eq!(
            wisp_protocol::error::chain(&e),
            "inventory /nonexistent/hosts: cannot be read: No such file or directory (os error 2)"
        );
    }
}
