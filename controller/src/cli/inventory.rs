//! `wisp inventory`: an inventory as wisp reads it, printed as `ansible-inventory` prints
//! it (`--list`, `--host`, `--graph`), contacting no host.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};
use wisp_events::exit::ExitStatus;
use wisp_inventory::Inventory;

use super::{parse_error, usage_error};

#[derive(Debug, Args)]
pub(super) struct InventoryArgs {
    /// The inventory: TOML, Ansible INI or YAML, or an executable (run with --list); its
    /// `group_vars/` and `host_vars/` are read too.
    #[arg(short = 'i', long, value_name = "FILE")]
    inventory: PathBuf,
    /// Also read the `group_vars/` and `host_vars/` in DIR (a plan's directory), above the
    /// inventory's own.
    #[arg(long, value_name = "DIR")]
    playbook_dir: Option<PathBuf>,
    /// Every group and host, with every host's vars after precedence, as JSON.
    #[arg(long, conflicts_with_all = ["host", "graph"])]
    list: bool,
    /// One host's vars after precedence, as JSON.
    #[arg(long, value_name = "HOST", conflicts_with = "graph")]
    host: Option<String>,
    /// The groups as a tree, with their hosts (under GROUP, or `all`).
    #[arg(long, value_name = "GROUP", num_args = 0..=1, default_missing_value = "all")]
    graph: Option<String>,
}

pub(super) fn main(a: &InventoryArgs) -> ExitStatus {
    let mut inv = match Inventory::load(&a.inventory) {
        Ok(inv) => inv,
        Err(e) => return parse_error(&wisp_protocol::error::chain(&e)),
    };
    if let Some(dir) = &a.playbook_dir
        && let Err(e) = inv.add_vars_dirs(dir)
    {
        return parse_error(&wisp_protocol::error::chain(&e));
    }
    let mut out = std::io::stdout().lock();
    if let Some(host) = &a.host {
        let Some(h) = inv.resolve(host) else {
            return usage_error(&format!("no host {host:?} in {}", a.inventory.display()));
        };
        let _ = writeln!(out, "{}", pretty(&json!(h.vars)));
    } else if let Some(group) = &a.graph {
        if group != "all" && inv.group_hosts(group).is_none() {
            return usage_error(&format!("no group {group:?} in {}", a.inventory.display()));
        }
        let mut lines = Vec::new();
        graph(&inv, group, 0, &mut lines);
        let _ = writeln!(out, "{}", lines.join("\n"));
    } else if a.list {
        let _ = writeln!(out, "{}", pretty(&list(&inv)));
    } else {
        return usage_error("say what to show: --list, --host HOST or --graph [GROUP]");
    }
    ExitStatus::Ok
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `ansible-inventory --list`'s shape: `_meta.hostvars`, `all` with its children, and each
/// group with its direct hosts and children.
fn list(inv: &Inventory) -> Value {
    let resolver = inv.resolver();
    let hostvars: BTreeMap<&str, Value> = inv
        .host_names()
        .into_iter()
        .filter_map(|h| Some((h, json!(resolver.resolve(h)?.vars))))
        .collect();
    let mut top = serde_json::Map::new();
    top.insert("_meta".into(), json!({ "hostvars": hostvars }));
    let mut all_children = vec!["ungrouped".to_owned()];
    all_children.extend(inv.top_groups());
    top.insert("all".into(), json!({ "children": all_children }));
    let ungrouped = inv.ungrouped();
    if !ungrouped.is_empty() {
        top.insert("ungrouped".into(), json!({ "hosts": ungrouped }));
    }
    for name in inv.group_names() {
        let (hosts, children) = inv.members(name);
        let mut g = serde_json::Map::new();
        if !hosts.is_empty() {
            g.insert("hosts".into(), json!(hosts));
        }
        if !children.is_empty() {
            g.insert("children".into(), json!(children));
        }
        top.insert(name.to_owned(), Value::Object(g));
    }
    Value::Object(top)
}

/// `ansible-inventory --graph`'s tree: `@group:` lines, then their hosts, indented. Groups
/// come by name (Ansible's come in the order they were declared), and a group declared under
/// `all` and under another group shows under the other only.
fn graph(inv: &Inventory, group: &str, depth: usize, lines: &mut Vec<String>) {
    let pad = "  |".repeat(depth);
    let bar = if depth == 0 { "" } else { "--" };
    lines.push(format!("{pad}{bar}@{group}:"));
    let (hosts, children) = if group == "all" {
        let mut children = vec!["ungrouped".to_owned()];
        children.extend(inv.top_groups());
        (Vec::new(), children)
    } else if group == "ungrouped" {
        (inv.ungrouped(), Vec::new())
    } else {
        inv.members(group)
    };
    for child in &children {
        graph(inv, child, depth + 1, lines);
    }
    for h in hosts {
        lines.push(format!("{pad}  |--{h}"));
    }
}
