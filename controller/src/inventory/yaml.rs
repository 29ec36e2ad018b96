//! Ansible's YAML inventory: groups (usually under `all`) with `hosts`, `vars` and
//! `children`, nested to any depth; host entries may carry vars or be empty.

use yaml_rust2::{Yaml, YamlLoader};

use super::{Inventory, Vars};

pub(super) fn parse(text: &str) -> Result<Inventory, String> {
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
