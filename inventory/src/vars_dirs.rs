//! `group_vars/` and `host_vars/` directories, read as Ansible's `host_group_vars` plugin
//! reads them: for a group or host NAME, the first of `NAME`, `NAME.yml`, `NAME.yaml`,
//! `NAME.json` that exists; when it is a directory, every file in it (and below) with one of
//! those extensions or none, in name order, hidden files and `~` backups left out, later
//! files over earlier ones. Only the inventory's own groups and hosts are read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Inventory, InventoryError, Vars};

/// The vars one directory gives: `group_vars/` by group (`all` included), `host_vars/` by
/// host.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct DirVars {
    pub(crate) groups: HashMap<String, Vars>,
    pub(crate) hosts: HashMap<String, Vars>,
}

const EXTENSIONS: [&str; 3] = ["yml", "yaml", "json"];

/// What `dir`'s `group_vars/` and `host_vars/` hold for `inv`, or `None` when it has
/// neither.
pub(super) fn read(dir: &Path, inv: &Inventory) -> Result<Option<DirVars>, InventoryError> {
    let (groups_dir, hosts_dir) = (dir.join("group_vars"), dir.join("host_vars"));
    if !groups_dir.is_dir() && !hosts_dir.is_dir() {
        return Ok(None);
    }
    let mut out = DirVars::default();
    let groups = std::iter::once("all").chain(inv.group_names());
    for g in groups {
        if let Some(v) = entity(&groups_dir, g)? {
            out.groups.insert(g.to_owned(), v);
        }
    }
    for h in inv.host_names() {
        if let Some(v) = entity(&hosts_dir, h)? {
            out.hosts.insert(h.to_owned(), v);
        }
    }
    Ok(Some(out))
}

/// The vars `dir` holds for `name` (see the module docs).
fn entity(dir: &Path, name: &str) -> Result<Option<Vars>, InventoryError> {
    if !dir.is_dir() || name.contains('/') {
        return Ok(None);
    }
    let candidates = std::iter::once(dir.join(name))
        .chain(EXTENSIONS.iter().map(|e| dir.join(format!("{name}.{e}"))));
    let Some(found) = candidates.into_iter().find(|p| p.exists()) else {
        return Ok(None);
    };
    let files = if found.is_dir() {
        let mut files = Vec::new();
        files_below(&found, &mut files)?;
        files
    } else {
        vec![found]
    };
    let mut vars = Vars::new();
    for f in files {
        vars.extend(file_vars(&f)?);
    }
    Ok(Some(vars))
}

fn files_below(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InventoryError> {
    let unreadable = |e| InventoryError {
        path: dir.to_owned(),
        kind: super::InventoryErrorKind::Unreadable(e),
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let ext = p.extension().and_then(|e| e.to_str());
        if p.is_dir() && ext.is_none() {
            files_below(&p, out)?;
        } else if p.is_file() && ext.is_none_or(|e| EXTENSIONS.contains(&e)) {
            out.push(p);
        }
    }
    Ok(())
}

/// One vars file: a YAML (or JSON) mapping; an empty file is no vars.
fn file_vars(path: &Path) -> Result<Vars, InventoryError> {
    let bad = |m: String| InventoryError::new(path, m);
    let text = std::fs::read_to_string(path).map_err(|e| InventoryError {
        path: path.to_owned(),
        kind: super::InventoryErrorKind::Unreadable(e),
    })?;
    crate::yaml::expanded_size_within(&text, 1_000_000).map_err(bad)?;
    let docs = wisp_yaml::load(&text).map_err(bad)?;
    match docs.into_iter().next() {
        None | Some(Value::Null) => Ok(Vars::new()),
        Some(Value::Object(m)) => Ok(m.into_iter().collect()),
        Some(other) => Err(bad(format!(
            "a vars file must hold a mapping of names to values, not {other}"
        ))),
    }
}
