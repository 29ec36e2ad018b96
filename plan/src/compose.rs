//! A plan made of other files: `include = "FILE"` (the tasks of another plan file, with
//! vars) and `role = "NAME"` (a role in the usual layout under `roles/NAME/`: `tasks/`,
//! `handlers/`, `defaults/`, `vars/`, `templates/`, `files/`). Both are read when the plan is,
//! into a block, so the plan that runs (and travels to workers) is whole; every file stays
//! under the plan's directory.

use std::path::{Path, PathBuf};

use crate::data::{Data, DataMap};
use crate::gathered::Gathered;
use crate::read::{Keys, Reader, task_error};
use crate::source::Src;
use crate::task::{Block, Flow, Node, Task};
use crate::{Located, PlanErrorKind};

/// How deep includes may nest.
const MAX_DEPTH: usize = 16;

/// Keys an `include` or `role` entry may have.
const KEYS: &[&str] = &[
    "name",
    "include",
    "role",
    "vars",
    "when",
    "tags",
    "ignore_errors",
];

/// A file's tasks, read: its `[vars]`, its tasks, its handlers.
struct Read {
    vars: DataMap,
    tasks: Vec<Node>,
    handlers: Vec<Task>,
}

impl Reader<'_> {
    /// `include = "FILE"` or `role = "NAME"`: a block of the file's (or role's) tasks.
    pub(crate) fn compose(&self, src: &Src) -> Result<Block, Located> {
        let keys = Keys { src };
        keys.unknown(KEYS, "an include or role")?;
        if self.reading.len() >= MAX_DEPTH {
            return Err(task_error(
                src.line,
                format!("includes nest more than {MAX_DEPTH} deep"),
            ));
        }
        let (name, vars, body) = match (keys.string("include")?, keys.string("role")?) {
            (Some(file), None) => {
                let path = self
                    .gathered
                    .inside(&self.base, &file)
                    .map_err(|e| task_error(src.line, e))?;
                let read = self.read_file(&path, src.line)?;
                (format!("include {file}"), read.vars, read.tasks)
            }
            (None, Some(role)) => {
                let (vars, tasks) = self.role(&role, src.line)?;
                (format!("role {role}"), vars, tasks)
            }
            _ => return Err(task_error(src.line, "give include or role, not both")),
        };
        // The include's own vars over the file's.
        let mut all = vars;
        all.extend(keys.vars()?);
        Ok(Block {
            name: Some(keys.string("name")?.unwrap_or(name)),
            flow: Flow {
                when: keys.conditions("when")?,
                tags: keys.names("tags")?,
                vars: all,
                ignore_errors: keys.boolean("ignore_errors")?.unwrap_or(false),
                ..Flow::default()
            },
            body,
            rescue: Vec::new(),
            always: Vec::new(),
            line: src.line,
            file: self.file.clone(),
        })
    }

    /// A reader for another file, found in `base`.
    fn reader_for(&self, path: &Path, base: PathBuf) -> Reader<'_> {
        let rel = path.strip_prefix(&self.gathered.root).unwrap_or(path);
        let mut reading = self.reading.clone();
        reading.push(path.to_owned());
        Reader {
            base,
            file: Some(rel.display().to_string()),
            defaults: self.defaults,
            gathered: self.gathered,
            reading,
        }
    }

    /// A plan file's `[vars]`, `[[task]]`s and `[[handler]]`s (with `base` its own folder),
    /// or an Ansible tasks file's tasks (with the includer's folder: a role's, or the
    /// playbook's).
    fn read_file(&self, path: &Path, line: usize) -> Result<Read, Located> {
        let base = if crate::ansible::is_playbook(path) {
            self.base.clone()
        } else {
            path.parent().unwrap_or(&self.base).to_owned()
        };
        self.read_with(path, base, line, false)
    }

    fn read_with(
        &self,
        path: &Path,
        base: PathBuf,
        line: usize,
        handlers: bool,
    ) -> Result<Read, Located> {
        if self.reading.iter().any(|p| p == path) {
            let what = format!("{} includes itself", path.display());
            return Err(task_error(line, what));
        }
        let reader = self.reader_for(path, base);
        let inside = |(l, kind): Located| {
            let kind = PlanErrorKind::Inside {
                path: path.to_owned(),
                line: l,
                error: Box::new(kind),
            };
            (line, kind)
        };
        if crate::ansible::is_playbook(path) {
            let list = crate::ansible::read_tasks_file(path, &reader.base, self.gathered, handlers)
                .map_err(inside)?;
            return Ok(Read {
                vars: DataMap::new(),
                tasks: reader.nodes(&list, "task").map_err(inside)?,
                handlers: Vec::new(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            (
                line,
                PlanErrorKind::ContentFile {
                    path: path.to_owned(),
                    source: e,
                },
            )
        })?;
        let root = crate::source::read_toml(&text)
            .map_err(|(l, what)| inside((l, PlanErrorKind::Syntax(what))))?;
        self.gathered
            .files
            .borrow_mut()
            .push((path.to_owned(), text.clone()));
        for (k, v) in root.as_map().unwrap_or_default() {
            if !["vars", "task", "handler"].contains(&k.as_str()) {
                let what = format!("unknown key {k:?} in an included file (vars, task, handler)");
                return Err(inside((v.line, PlanErrorKind::Syntax(what))));
            }
        }
        let vars = match root.get("vars").map(Src::to_data) {
            Some(Data::Map(m)) => m,
            None => DataMap::new(),
            Some(_) => return Err(inside(task_error(1, "[vars] must be a table"))),
        };
        let tasks = match root.get("task") {
            Some(list) => reader.nodes(list, "task").map_err(inside)?,
            None => Vec::new(),
        };
        let handlers = match root.get("handler") {
            Some(list) => reader.handlers(list).map_err(inside)?,
            None => Vec::new(),
        };
        Ok(Read {
            vars,
            tasks,
            handlers,
        })
    }

    /// Handlers: tasks, not blocks.
    pub(crate) fn handlers(&self, list: &Src) -> Result<Vec<Task>, Located> {
        self.nodes(list, "handler")?
            .into_iter()
            .map(|n| match n {
                Node::Task(t) => Ok(*t),
                Node::Block(b) => Err(task_error(b.line, "a handler cannot be a block")),
            })
            .collect()
    }

    /// A role: its tasks (with its `vars/` as their vars); its handlers, defaults and
    /// templates gathered for the plan.
    fn role(&self, name: &str, line: usize) -> Result<(DataMap, Vec<Node>), Located> {
        let bad = |what: String| task_error(line, format!("role {name}: {what}"));
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(bad("a role is named by its folder under roles/".into()));
        }
        let dir = self
            .gathered
            .inside(&self.gathered.root, &format!("roles/{name}"))
            .or_else(|_| self.gathered.inside(&self.gathered.root, name))
            .or_else(|e| {
                let g = self.gathered;
                let mut found = g.roles_path.iter().map(|p| g.inside(p, name));
                found.find(Result::is_ok).unwrap_or(Err(e))
            })
            .map_err(|e| {
                bad(format!(
                    "{e} (roles live in roles/NAME beside the plan, or in a roles_path folder)"
                ))
            })?;
        let main = |part: &str| {
            ["main.toml", "main.yml", "main.yaml"]
                .iter()
                .map(|f| dir.join(part).join(f))
                .find(|p| p.is_file())
        };
        let mut before = self.dependencies(&dir, main("meta").as_deref(), line)?;
        // Defaults are the lowest vars of the whole plan; a name an earlier role set keeps
        // that role's default.
        if let Some(file) = main("defaults") {
            let data = vars_file(&file, self.gathered).map_err(&bad)?;
            let mut d = self.gathered.defaults.borrow_mut();
            for (k, v) in data {
                d.entry(k).or_insert(v);
            }
        }
        let vars = match main("vars") {
            Some(file) => vars_file(&file, self.gathered).map_err(&bad)?,
            None => DataMap::new(),
        };
        self.gathered
            .templates_under(&dir.join("templates"))
            .map_err(&bad)?;
        let tasks = match main("tasks") {
            Some(file) => self.read_with(&file, dir.clone(), line, false)?,
            None if before.is_empty() && main("handlers").is_none() => {
                return Err(bad("no tasks/main.toml (or main.yml)".into()));
            }
            None => Read {
                vars: DataMap::new(),
                tasks: Vec::new(),
                handlers: Vec::new(),
            },
        };
        if let Some(handlers_file) = main("handlers") {
            let handlers = self.read_with(&handlers_file, dir.clone(), line, true)?;
            let mut all = handlers.handlers;
            all.extend(handlers.tasks.into_iter().filter_map(|n| match n {
                Node::Task(t) => Some(*t),
                Node::Block(_) => None,
            }));
            self.gathered.handlers.borrow_mut().extend(all);
        }
        let mut all = tasks.vars;
        all.extend(vars);
        before.extend(tasks.tasks);
        Ok((all, before))
    }

    /// The roles a role's `meta/main.yml` lists under `dependencies`, each read (once per
    /// play with the same vars) to run before the role's own tasks.
    fn dependencies(
        &self,
        dir: &Path,
        meta: Option<&Path>,
        line: usize,
    ) -> Result<Vec<Node>, Located> {
        let Some(meta) = meta else {
            return Ok(Vec::new());
        };
        let text = std::fs::read_to_string(meta)
            .map_err(|e| task_error(line, format!("{}: {e}", meta.display())))?;
        self.gathered
            .files
            .borrow_mut()
            .push((meta.to_owned(), text.clone()));
        let root = crate::source::read_yaml(&text)
            .map_err(|(l, e)| task_error(line, format!("{}:{l}: {e}", meta.display())))?;
        let mut out = Vec::new();
        for dep in root
            .get("dependencies")
            .and_then(Src::as_list)
            .unwrap_or_default()
        {
            let entry = crate::ansible::role_entry(dep, self.gathered, meta)
                .map_err(|(l, k)| task_error(line, format!("{}:{l}: {k}", meta.display())))?;
            let seen = (dir.to_owned(), format!("{:?}", entry.to_data()));
            if self.gathered.dependencies.borrow().contains(&seen) {
                continue;
            }
            self.gathered.dependencies.borrow_mut().push(seen);
            out.push(Node::Block(Box::new(self.compose(&entry)?)));
        }
        Ok(out)
    }
}

/// A `defaults/` or `vars/` file: a table of names and values, TOML or YAML.
fn vars_file(path: &Path, gathered: &Gathered) -> Result<DataMap, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    gathered
        .files
        .borrow_mut()
        .push((path.to_owned(), text.clone()));
    let data = if path.extension().is_some_and(|e| e == "toml") {
        crate::source::read_toml(&text)
    } else {
        crate::source::read_yaml(&text)
    }
    .map(|s| s.to_data())
    .map_err(|(line, e)| format!("{}:{line}: {e}", path.display()))?;
    match data {
        Data::Map(m) => Ok(m),
        Data::Null => Ok(DataMap::new()),
        _ => Err(format!("{}: expected names and values", path.display())),
    }
}
