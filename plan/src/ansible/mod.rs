//! Ansible playbooks and roles, read as they are into plans: each play a [`Plan`] (its vars,
//! `vars_files`, roles, `pre_tasks`, `tasks`, `post_tasks` and handlers), with how it runs
//! (`hosts`, `become`, `serial`, `max_fail_percentage`). Modules become the plan model's ops
//! ([`modules`]); a module, arg or keyword wisp does not implement is refused before any host
//! is contacted, naming the file, the line and what to use instead — or, for
//! `--check-support`, listed.

use std::path::{Path, PathBuf};

use crate::data::{Data, DataMap};
use crate::gathered::Gathered;
use crate::source::{Src, SrcValue, read_yaml};
use crate::{Located, Plan, PlanError, PlanErrorKind};

mod args;
mod copy;
mod exec;
pub mod facts;
mod fetch;
mod gather;
mod kv;
mod modules;
pub mod net;
mod paths;
mod play;
mod system;
pub(crate) mod task;

pub use play::{Play, check_support, load_playbook, load_role};

/// An error at `line` of the file being read.
pub(crate) fn refuse(line: usize, what: impl Into<String>) -> Located {
    (line, PlanErrorKind::Task(what.into()))
}

/// Whether `path` is an Ansible playbook (YAML) rather than a wisp plan (TOML).
pub fn is_playbook(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yml" || e == "yaml")
}

/// What translating one file needs: where its files are found, and how refusals are made.
pub(crate) struct Cx<'a> {
    /// The reader's folder (a role's, or the playbook's): `templates/`, `files/` are in it.
    pub(crate) base: &'a Path,
    /// The file being read.
    pub(crate) file: &'a Path,
    /// Whether the play becomes root (then `become` on a file op holds).
    pub(crate) become_root: bool,
    pub(crate) gathered: &'a Gathered,
    /// Reading handlers (which may `listen`).
    pub(crate) handlers: bool,
}

impl Cx<'_> {
    /// Refuses `what` at `line`; when surveying (`--check-support`), notes it and goes on.
    pub(crate) fn unsupported(&self, line: usize, what: &str) -> Result<(), Located> {
        self.refused(line, format!("{what} is not supported by wisp"))
    }

    /// Refuses `what` at `line`, saying what to use instead.
    pub(crate) fn unsupported_with(
        &self,
        line: usize,
        what: &str,
        instead: &str,
    ) -> Result<(), Located> {
        self.refused(line, format!("{what} is not supported; {instead}"))
    }

    fn refused(&self, line: usize, what: String) -> Result<(), Located> {
        if self.gathered.survey.get() {
            let at = self
                .file
                .strip_prefix(&self.gathered.root)
                .unwrap_or(self.file);
            self.gathered
                .unsupported
                .borrow_mut()
                .push(format!("{}:{line}: {what}", at.display()));
            return Ok(());
        }
        Err(refuse(line, what))
    }

    /// A file for `copy` (in `files/` of the role or playbook, or beside them), relative to
    /// the base.
    pub(crate) fn find_file(&self, dir: &str, name: &str) -> Option<String> {
        [format!("{dir}/{name}"), name.to_owned()]
            .into_iter()
            .find(|rel| self.base.join(rel).exists())
    }

    /// A tasks file named by an include: beside the including file, in the role's `tasks/`,
    /// or in the base; relative to the base.
    pub(crate) fn find_tasks_file(&self, name: &str) -> Option<String> {
        let here = self.file.parent().unwrap_or(self.base).join(name);
        let rel_here = here
            .strip_prefix(self.base)
            .ok()
            .map(|p| p.display().to_string());
        rel_here
            .filter(|r| self.base.join(r).is_file())
            .or_else(|| {
                [format!("tasks/{name}"), name.to_owned()]
                    .into_iter()
                    .find(|rel| self.base.join(rel).is_file())
            })
    }

    /// `include_vars`: the file's vars, read now, set as facts for the rest of the host's run.
    pub(crate) fn include_vars(
        &self,
        a: &mut args::Args<'_>,
        line: usize,
    ) -> Result<args::Step, Located> {
        let file = match a.free.take() {
            Some(f) => (f, line),
            None => a
                .text(&["file", "_raw_params"])?
                .ok_or_else(|| refuse(line, "include_vars needs file (dir is not supported)"))?,
        };
        let found = ["vars/", ""]
            .iter()
            .map(|d| format!("{d}{}", file.0))
            .chain(
                self.file
                    .parent()
                    .map(|p| p.join(&file.0).display().to_string()),
            )
            .map(|rel| self.base.join(rel))
            .find(|p| p.is_file())
            .ok_or_else(|| refuse(file.1, format!("include_vars: no file {:?}", file.0)))?;
        let vars = vars_file(&found, self.gathered).map_err(|e| refuse(file.1, e))?;
        let vars = match a.text(&["name"])? {
            Some((name, _)) => DataMap::from_iter([(name, Data::Map(vars))]),
            None => vars,
        };
        let mut step = args::Step::op("set_fact", line);
        for (k, v) in vars {
            step = step.put(&k, data_src(line, &v));
        }
        Ok(step)
    }
}

/// A value as a tree on one line (for values read from a vars file).
pub(crate) fn data_src(line: usize, d: &Data) -> Src {
    let value = match d {
        Data::List(items) => SrcValue::List(items.iter().map(|i| data_src(line, i)).collect()),
        Data::Map(m) => SrcValue::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), data_src(line, v)))
                .collect(),
        ),
        other => SrcValue::Scalar(other.clone()),
    };
    Src { line, value }
}

/// A YAML vars file (`vars_files`, `include_vars`, a role's `defaults/` and `vars/`): a
/// mapping of names and values.
pub(crate) fn vars_file(path: &Path, gathered: &Gathered) -> Result<DataMap, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    gathered
        .files
        .borrow_mut()
        .push((path.to_owned(), text.clone()));
    let src = read_yaml(&text).map_err(|(l, e)| format!("{}:{l}: {e}", path.display()))?;
    match src.to_data() {
        Data::Map(m) => Ok(m),
        Data::Null => Ok(DataMap::new()),
        _ => Err(format!("{}: expected names and values", path.display())),
    }
}

/// Reads a YAML task list (a file of tasks, or of handlers) into the plan model's tree.
pub(crate) fn read_tasks_file(
    path: &Path,
    base: &Path,
    gathered: &Gathered,
    handlers: bool,
) -> Result<Src, Located> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let kind = PlanErrorKind::ContentFile {
            path: path.to_owned(),
            source: e,
        };
        (1, kind)
    })?;
    gathered
        .files
        .borrow_mut()
        .push((path.to_owned(), text.clone()));
    let list = read_yaml(&text).map_err(|(l, e)| (l, PlanErrorKind::Syntax(e)))?;
    let cx = Cx {
        base,
        file: path,
        become_root: gathered.become_root.get(),
        gathered,
        handlers,
    };
    task::tasks(&list, &cx)
}

/// A `dependencies:` entry of a role's `meta/main.yml` (`meta`) as a role entry.
pub(crate) fn role_entry(dep: &Src, gathered: &Gathered, meta: &Path) -> Result<Src, Located> {
    let base = dir_of(meta);
    let cx = Cx {
        base: &base,
        file: meta,
        become_root: gathered.become_root.get(),
        gathered,
        handlers: false,
    };
    play::role_entry(dep, &cx)
}

/// The error for `path` at `line`.
pub(crate) fn at(path: &Path) -> impl Fn(Located) -> PlanError + '_ {
    move |(line, kind)| PlanError::at(path, line, kind)
}

/// Flags the reading of one play gives the files it reads.
pub(crate) struct Reading {
    pub(crate) survey: bool,
    pub(crate) become_root: bool,
}

impl Gathered {
    /// A gathering for a play under `root`.
    pub(crate) fn for_play(root: &Path, r: &Reading) -> Gathered {
        let mut g = Gathered::new(root);
        g.roles_path = roles_path();
        g.survey.set(r.survey);
        g.become_root.set(r.become_root);
        g
    }
}

/// Where Ansible finds roles besides `roles/` beside the playbook: `ANSIBLE_ROLES_PATH`, or
/// `roles_path` of the `ansible.cfg` Ansible reads (`ANSIBLE_CONFIG`, `./ansible.cfg`,
/// `~/.ansible.cfg`, `/etc/ansible/ansible.cfg`), else its default folders; those that exist.
fn roles_path() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let expand = |p: &str, rel_to: &Path| -> PathBuf {
        match (p.strip_prefix("~/"), &home) {
            (Some(rest), Some(h)) => h.join(rest),
            _ => rel_to.join(p),
        }
    };
    let listed = |text: &str, rel_to: &Path| -> Vec<PathBuf> {
        text.split(':')
            .filter(|p| !p.trim().is_empty())
            .map(|p| expand(p.trim(), rel_to))
            .collect()
    };
    let here = std::env::current_dir().unwrap_or_default();
    let mut paths = match std::env::var("ANSIBLE_ROLES_PATH") {
        Ok(v) => listed(&v, &here),
        Err(_) => {
            let configs = [
                std::env::var_os("ANSIBLE_CONFIG").map(PathBuf::from),
                Some(here.join("ansible.cfg")),
                home.as_ref().map(|h| h.join(".ansible.cfg")),
                Some(PathBuf::from("/etc/ansible/ansible.cfg")),
            ];
            let found = configs.into_iter().flatten().find(|c| c.is_file());
            let setting = found.and_then(|c| {
                let text = std::fs::read_to_string(&c).ok()?;
                Some((cfg_value(&text, "defaults", "roles_path")?, dir_of(&c)))
            });
            match setting {
                Some((v, dir)) => listed(&v, &dir),
                None => {
                    let mut d: Vec<PathBuf> =
                        home.iter().map(|h| h.join(".ansible/roles")).collect();
                    d.push("/usr/share/ansible/roles".into());
                    d.push("/etc/ansible/roles".into());
                    d
                }
            }
        }
    };
    paths.retain(|p| p.is_dir());
    paths.iter().filter_map(|p| p.canonicalize().ok()).collect()
}

/// `key` of `[section]` in an INI file (`key = value` or `key: value`).
fn cfg_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s.trim().to_owned();
        } else if current == section
            && let Some((k, v)) = line.split_once(['=', ':'])
            && k.trim() == key
        {
            return Some(v.trim().to_owned());
        }
    }
    None
}

/// The folder of `path`, `.` for a bare file name.
pub(crate) fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The plan of one play, from its tree (vars, tasks, handlers) built by [`play`].
pub(crate) fn plan_of(
    root: &Src,
    text: &str,
    path: &Path,
    extra_vars: DataMap,
    gathered: Gathered,
) -> Result<Plan, PlanError> {
    Plan::from_tree(root, text, path, extra_vars, gathered)
}
