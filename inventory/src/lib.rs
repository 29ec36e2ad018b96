//! Inventories: the native TOML format and Ansible's INI and YAML inventories, read as they
//! are, resolved into hosts with connection settings; and host patterns over them.
//!
//! Variables: a host's own vars win over its groups' vars, a child group's over its parents',
//! and every group's over `all`'s. Connection settings come from `ansible_host`,
//! `ansible_user`, `ansible_port` and `ansible_ssh_private_key_file` (or the native `host`,
//! `user`, `port`, `key`).

mod graph;
pub mod hostlist;
mod ini;
mod native;
mod pattern;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use pattern::select;

/// Variables, as strings.
pub type Vars = BTreeMap<String, String>;

/// A parsed inventory, before variables are resolved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// Hosts in the order they were first declared, with their own vars.
    hosts: Vec<(String, Vars)>,
    /// Where each host is in `hosts`: inventories of 100,000 hosts are declared in linear time.
    index: std::collections::HashMap<String, usize>,
    /// Groups by name.
    groups: BTreeMap<String, Group>,
    /// Vars of `all`.
    all_vars: Vars,
}

/// A group: its direct hosts, its child groups, its vars.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Group {
    /// Hosts listed directly in it.
    pub hosts: BTreeSet<String>,
    /// Its child groups.
    pub children: BTreeSet<String>,
    /// Its vars.
    pub vars: Vars,
}

/// A host with its connection settings resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedHost {
    /// The inventory name (shown in output).
    pub name: String,
    /// Address to connect to (`ansible_host`, else the name).
    pub address: String,
    /// Login user, if set.
    pub user: Option<String>,
    /// Port, if set.
    pub port: Option<u16>,
    /// Private key file, if set.
    pub key: Option<PathBuf>,
    /// Every variable that applies, after precedence.
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

/// The largest inventory file read: 100,000 hosts with vars take about 10 MiB.
const MAX_BYTES: u64 = 256 << 20;

impl Inventory {
    /// Reads a file: `.toml` as the native format, `.yml`/`.yaml` as Ansible YAML, anything
    /// else as Ansible INI.
    pub fn load(path: &Path) -> Result<Self, InventoryError> {
        let unreadable = |e| InventoryError {
            path: path.to_owned(),
            kind: InventoryErrorKind::Unreadable(e),
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let too_large = || {
            InventoryError::new(
                path,
                format!(
                    "larger than {} MiB: refused (no inventory needs that much; split it)",
                    MAX_BYTES >> 20
                ),
            )
        };
        if file.metadata().is_ok_and(|m| m.len() > MAX_BYTES) {
            return Err(too_large());
        }
        let mut text = String::new();
        // One byte past the limit tells a file at the limit from a larger one.
        std::io::Read::read_to_string(&mut std::io::Read::take(&file, MAX_BYTES + 1), &mut text)
            .map_err(unreadable)?;
        if text.len() as u64 > MAX_BYTES {
            return Err(too_large());
        }
        Inventory::parse(&text, path)
    }

    /// Parses inventory text in the format `path`'s extension names.
    pub fn parse(text: &str, path: &Path) -> Result<Self, InventoryError> {
        let inv = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => native::parse(text),
            Some("yml" | "yaml") => yaml::parse(text),
            _ => ini::parse(text),
        }
        .map_err(|m| InventoryError::new(path, m))?;
        inv.check(path)?;
        Ok(inv)
    }

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

    /// Resolves a host's variables and connection settings (for many hosts, build one
    /// [`Inventory::resolver`] and ask it).
    pub fn resolve(&self, name: &str) -> Option<ResolvedHost> {
        self.resolver().resolve(name)
    }

    /// Resolves hosts with group membership and depths worked out once, in time linear in
    /// the inventory's size.
    pub fn resolver(&self) -> Resolver<'_> {
        use std::collections::HashMap;
        // Checked when the inventory was read: no cycles, so every group has a depth.
        let depth = self.depths().unwrap_or_default();
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut direct: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, g) in &self.groups {
            for child in &g.children {
                parents
                    .entry(child.as_str())
                    .or_default()
                    .push(name.as_str());
            }
            for h in &g.hosts {
                direct.entry(h.as_str()).or_default().push(name.as_str());
            }
        }
        let mut member_of: HashMap<String, Vec<&str>> = HashMap::new();
        for (host, groups) in direct {
            // The host's groups and their ancestors, each once.
            let mut seen: BTreeSet<&str> = groups.iter().copied().collect();
            let mut todo = groups;
            while let Some(g) = todo.pop() {
                for p in parents.get(g).into_iter().flatten() {
                    if seen.insert(p) {
                        todo.push(p);
                    }
                }
            }
            let mut all: Vec<&str> = seen.into_iter().collect();
            // Shallow groups first so deeper ones override; ties by name, as Ansible does.
            all.sort_by_key(|g| (depth.get(g).copied().unwrap_or(1), *g));
            member_of.insert(host.to_owned(), all);
        }
        Resolver {
            inv: self,
            member_of,
        }
    }
}

/// Resolves hosts of one inventory (see [`Inventory::resolver`]).
#[derive(Debug)]
pub struct Resolver<'a> {
    inv: &'a Inventory,
    /// Each host's groups, direct or through children, shallowest first.
    member_of: std::collections::HashMap<String, Vec<&'a str>>,
}

impl Resolver<'_> {
    /// Resolves a host's variables and connection settings.
    pub fn resolve(&self, name: &str) -> Option<ResolvedHost> {
        let inv = self.inv;
        let (_, own) = &inv.hosts[*inv.index.get(name)?];
        let mut vars = inv.all_vars.clone();
        for g in self.member_of.get(name).into_iter().flatten() {
            if let Some(group) = inv.groups.get(*g) {
                vars.extend(group.vars.clone());
            }
        }
        vars.extend(own.clone());
        let get = |keys: &[&str]| keys.iter().find_map(|k| vars.get(*k).cloned());
        Some(ResolvedHost {
            name: name.to_owned(),
            address: get(&["ansible_host", "host"]).unwrap_or_else(|| name.to_owned()),
            user: get(&["ansible_user", "user"]),
            port: get(&["ansible_port", "port"]).and_then(|p| p.parse().ok()),
            key: get(&["ansible_ssh_private_key_file", "key"]).map(|k| expand_home(&k)),
            vars,
        })
    }
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
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
        inv.add_host("k", [("user".to_owned(), "own".to_owned())].into());
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
                "group \"web\": hosts must be a mapping",
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
