//! What reading a plan gathers from the files it is made of (its roles' handlers and
//! defaults, the template files, every file's text for the plan's hash), and the rule that
//! nothing is read from outside the plan's folder.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::data::DataMap;
use crate::task::Task;

/// The largest template file read into a plan, and all of them together.
const MAX_TEMPLATE: u64 = 1 << 20;
const MAX_TEMPLATES: usize = 16 << 20;

/// The key under which the templates hold a file a `copy` may pick when it runs: not a name
/// a template could `{% include %}` by accident.
pub(crate) fn file_key(path: &str) -> String {
    format!("\0file:{path}")
}

/// What reading a plan gathers from its roles for the whole plan.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    /// Roles' handlers, after the plan's own.
    pub(crate) handlers: RefCell<Vec<Task>>,
    /// Roles' defaults: the lowest vars.
    pub(crate) defaults: RefCell<DataMap>,
    /// Template files by name (relative to their `templates/`), for `{% include %}` and
    /// `{% import %}`: the plan's first, then each role's.
    pub(crate) templates: RefCell<BTreeMap<String, String>>,
    /// The plan's own folder: nothing is read from outside it (or a roles path).
    pub(crate) root: PathBuf,
    /// Folders roles are also found in (a playbook's `roles_path`), as `root` is read.
    pub(crate) roles_path: Vec<PathBuf>,
    /// Every file read besides the plan, with its text: they are part of the plan's hash.
    pub(crate) files: RefCell<Vec<(PathBuf, String)>>,
    /// An Ansible play's: whether it becomes root.
    pub(crate) become_root: Cell<bool>,
    /// `--check-support`: note what wisp does not implement and read on.
    pub(crate) survey: Cell<bool>,
    /// What was noted, as `FILE:LINE: what`.
    pub(crate) unsupported: Rc<RefCell<Vec<String>>>,
    /// Handlers' `listen` topics, with the handler that listens.
    pub(crate) listens: RefCell<Vec<(String, String)>>,
    /// Roles read as another role's dependencies, with their vars: read once per play.
    pub(crate) dependencies: RefCell<Vec<(PathBuf, String)>>,
}

impl Gathered {
    pub(crate) fn new(root: &Path) -> Gathered {
        Gathered {
            root: root.canonicalize().unwrap_or_else(|_| root.to_owned()),
            ..Gathered::default()
        }
    }

    /// Reads every file under `dir` (a `templates/`) into the templates, by its path under
    /// `dir`; a name already taken keeps its first file.
    pub(crate) fn templates_under(&self, dir: &Path) -> Result<(), String> {
        let name = |path: &Path| path.strip_prefix(dir).unwrap_or(path).display().to_string();
        self.read_under(dir, name, false)
    }

    /// Reads every text file under `dir` (a `files/`) into the templates under its own key
    /// ([`file_key`]), for a `copy` whose `src` is a template: the file is picked when the
    /// task runs, and its text written as it is, never rendered. Files that are not UTF-8 are
    /// left out (a copy that picks one fails, naming it).
    pub(crate) fn files_under(&self, dir: &Path) -> Result<(), String> {
        self.read_under(dir, |path| file_key(&path.display().to_string()), true)
    }

    /// Reads the files under `dir` (8 folders deep, each up to 1 MiB) into the templates by
    /// `key_of` their path; a key already taken keeps its first file. A file that is not
    /// UTF-8 is left out when `text_only`, an error otherwise.
    fn read_under(
        &self,
        dir: &Path,
        key_of: impl Fn(&Path) -> String,
        text_only: bool,
    ) -> Result<(), String> {
        let mut stack = vec![(dir.to_owned(), 0usize)];
        while let Some((d, depth)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                let meta = e
                    .metadata()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if meta.is_dir() && depth < 8 {
                    stack.push((path, depth + 1));
                    continue;
                }
                if !meta.is_file() || meta.len() > MAX_TEMPLATE {
                    continue;
                }
                let mut templates = self.templates.borrow_mut();
                let total: usize = templates.values().map(String::len).sum();
                if total > MAX_TEMPLATES {
                    return Err(format!(
                        "templates and files: more than {} MiB in all",
                        MAX_TEMPLATES >> 20
                    ));
                }
                let std::collections::btree_map::Entry::Vacant(slot) =
                    templates.entry(key_of(&path))
                else {
                    continue;
                };
                let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                match String::from_utf8(bytes) {
                    Ok(text) => {
                        slot.insert(text);
                    }
                    Err(_) if text_only => {}
                    Err(e) => return Err(format!("{}: {e}", path.display())),
                }
            }
        }
        Ok(())
    }

    /// `rel` under `base`, when it stays inside the plan's folder.
    pub(crate) fn inside(&self, base: &Path, rel: &str) -> Result<PathBuf, String> {
        let path = base.join(rel);
        let real = path
            .canonicalize()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !real.starts_with(&self.root) && !self.roles_path.iter().any(|r| real.starts_with(r)) {
            return Err(format!("{rel:?} leads outside the plan's directory"));
        }
        Ok(real)
    }
}
