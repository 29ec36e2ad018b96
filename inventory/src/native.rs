//! The native TOML inventory:
//!
//! ```toml
//! [vars]                  # for every host
//! user = "ops"
//!
//! [hosts.web1]            # a host and its own vars / connection settings
//! host = "10.0.0.11"      # address (default: the name)
//! port = 2222
//! key = "~/.ssh/deploy"
//!
//! [groups.web]
//! hosts = ["web1", "web2"]
//! children = ["canary"]
//! vars = { user = "www" }
//! ```
//!
//! Hosts named only in a group need no `[hosts]` entry. Unknown keys are errors.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Inventory, Vars};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
    #[serde(default)]
    hosts: BTreeMap<String, BTreeMap<String, toml::Value>>,
    #[serde(default)]
    groups: BTreeMap<String, GroupDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDef {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    children: Vec<String>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
}

fn to_vars(values: BTreeMap<String, toml::Value>, what: &str) -> Result<Vars, String> {
    values
        .into_iter()
        .map(|(k, v)| {
            let v = serde_json::to_value(v).map_err(|e| format!("{what}: variable {k:?}: {e}"))?;
            Ok((k, v))
        })
        .collect()
}

pub(super) fn parse(text: &str) -> Result<Inventory, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut inv = Inventory::default();
    *inv.all_vars_mut() = to_vars(file.vars, "vars")?;
    for (name, vars) in file.hosts {
        let vars = to_vars(vars, &format!("host {name:?}"))?;
        inv.add_host(&name, vars);
    }
    for (name, g) in file.groups {
        if name == "all" {
            return Err("`all` is implicit: put its vars under [vars]".into());
        }
        for h in &g.hosts {
            inv.add_host(h, Vars::new());
        }
        let vars = to_vars(g.vars, &format!("group {name:?}"))?;
        let group = inv.group_mut(&name);
        group.hosts.extend(g.hosts);
        group.vars = vars;
        for c in g.children {
            inv.group_mut(&c);
            inv.group_mut(&name).children.insert(c);
        }
    }
    Ok(inv)
}
