//! A host's variables after precedence (see the crate docs), and the connection settings
//! they give.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Inventory, Vars};

/// A host with its connection settings resolved.
#[derive(Debug, Clone, PartialEq)]
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
    /// How the host is reached.
    pub connection: Connection,
    /// `ansible_become`, when set: become root on this host (or not), whatever the command
    /// line says.
    pub become_root: Option<bool>,
    /// `ansible_become_method`, when set.
    pub become_method: Option<String>,
    /// `ansible_become_user`, when set.
    pub become_user: Option<String>,
    /// Every variable that applies, after precedence.
    pub vars: Vars,
}

/// How a host is reached (`ansible_connection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Over SSH (`ssh`, `smart`, `paramiko`, or not set).
    Ssh,
    /// On this machine (`local`).
    Local,
    /// Something wisp does not speak (`winrm`, `docker`, ...): named, to be refused.
    Other(String),
}

/// Resolves hosts of one inventory (see [`Inventory::resolver`]).
#[derive(Debug)]
pub struct Resolver<'a> {
    inv: &'a Inventory,
    /// Each host's groups, direct or through children, shallowest first.
    member_of: HashMap<String, Vec<&'a str>>,
}

impl Inventory {
    /// Resolves a host's variables and connection settings (for many hosts, build one
    /// [`Inventory::resolver`] and ask it).
    pub fn resolve(&self, name: &str) -> Option<ResolvedHost> {
        self.resolver().resolve(name)
    }

    /// Resolves hosts with group membership and depths worked out once, in time linear in
    /// the inventory's size.
    pub fn resolver(&self) -> Resolver<'_> {
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

impl Resolver<'_> {
    /// The groups `name` is in, directly or through children, shallowest first (`all`
    /// not among them).
    pub fn groups_of(&self, name: &str) -> &[&str] {
        self.member_of.get(name).map_or(&[], Vec::as_slice)
    }

    /// Every group with its hosts in declaration order, as Ansible's `groups` gives them:
    /// `all`, `ungrouped` (hosts in no other group) and each group, its children's hosts
    /// included.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = self
            .inv
            .groups
            .keys()
            .map(|g| (g.clone(), Vec::new()))
            .collect();
        out.insert("all".into(), Vec::new());
        out.insert("ungrouped".into(), Vec::new());
        for (host, _) in &self.inv.hosts {
            let groups = self.groups_of(host);
            if groups.iter().all(|g| *g == "ungrouped") {
                out.entry("ungrouped".into())
                    .or_default()
                    .push(host.clone());
            }
            for g in std::iter::once(&"all").chain(groups.iter()) {
                if *g != "ungrouped" {
                    out.entry((*g).to_owned()).or_default().push(host.clone());
                }
            }
        }
        out
    }

    /// Resolves a host's variables and connection settings.
    pub fn resolve(&self, name: &str) -> Option<ResolvedHost> {
        let inv = self.inv;
        let (_, own) = &inv.hosts[*inv.index.get(name)?];
        let groups = self.groups_of(name);
        let mut vars = inv.all_vars.clone();
        for g in groups {
            if let Some(group) = inv.groups.get(*g) {
                vars.extend(group.vars.clone());
            }
        }
        for d in &inv.dirs {
            vars.extend(d.groups.get("all").cloned().unwrap_or_default());
        }
        for d in &inv.dirs {
            for g in groups {
                vars.extend(d.groups.get(*g).cloned().unwrap_or_default());
            }
        }
        vars.extend(own.clone());
        for d in &inv.dirs {
            vars.extend(d.hosts.get(name).cloned().unwrap_or_default());
        }
        Some(connection(name, vars))
    }
}

/// The connection settings `vars` give host `name`.
fn connection(name: &str, vars: Vars) -> ResolvedHost {
    let get = |keys: &[&str]| keys.iter().find_map(|k| vars.get(*k).and_then(text));
    let connection = match get(&["ansible_connection"]).as_deref() {
        None | Some("ssh" | "smart" | "paramiko" | "ansible.builtin.ssh") => Connection::Ssh,
        Some("local" | "ansible.builtin.local") => Connection::Local,
        Some(other) => Connection::Other(other.to_owned()),
    };
    ResolvedHost {
        name: name.to_owned(),
        address: get(&["ansible_host", "ansible_ssh_host", "host"])
            .unwrap_or_else(|| name.to_owned()),
        user: get(&["ansible_user", "ansible_ssh_user", "user"]),
        port: get(&["ansible_port", "ansible_ssh_port", "port"]).and_then(|p| p.parse().ok()),
        key: get(&[
            "ansible_ssh_private_key_file",
            "ansible_private_key_file",
            "key",
        ])
        .map(|k| expand_home(&k)),
        connection,
        become_root: ["ansible_become", "ansible_sudo"]
            .iter()
            .find_map(|k| vars.get(*k))
            .map(truthy),
        become_method: get(&["ansible_become_method"]),
        become_user: get(&["ansible_become_user", "ansible_sudo_user"]),
        vars,
    }
}

/// A value as text, for settings that are text (a port may be written as a number).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Ansible's `boolean()`: true, yes, on, 1, y, t (any case), and the number 1.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() == Some(1.0),
        Value::String(s) => matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "yes" | "on" | "1" | "y" | "t" | "1.0"
        ),
        _ => false,
    }
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}
