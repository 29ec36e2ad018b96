//! Plans: a TOML file of ordered tasks (and handlers), parsed and checked completely before
//! any host is contacted, with every error naming the file and line.
//!
//! ```toml
//! [vars]
//! app = "demo"
//! ports = [8080, 8081]
//!
//! [[task]]
//! name = "config"
//! op = "file.write"
//! path = "/etc/{{ app }}.conf"
//! content = "{% for p in ports %}listen {{ p }}\n{% endfor %}"
//! mode = "0644"
//! notify = ["reload app"]
//!
//! [[handler]]
//! name = "reload app"
//! op = "exec"
//! shell = "echo reloading {{ app | quote }}"
//! ```
//!
//! Templates and conditions are Jinja2 ([`jinja`]), with Ansible's filters and meaning; vars
//! are any TOML value, and may use other vars ([`scope`]). The reference is `docs/plans.md`.
//!
//! What this module does not know: hosts, sessions, output.

use std::path::{Path, PathBuf};

use crate::limits::LimitArgs;

pub mod ansible;
mod check;
mod compose;
pub mod data;
pub mod edit;
mod error;
pub mod expand;
mod gathered;
pub mod jinja;
pub mod limits;
mod limits_table;
pub mod quantity;
mod read;
pub mod scope;
pub mod source;
mod task;
mod walk;

pub use check::{MAGIC, extra_vars};
pub use data::{Data, DataMap};
use error::Located;
pub use error::{PlanError, PlanErrorKind};
pub use expand::{Compiled, Fleet, HostInfo};
pub use jinja::Engine;
pub use task::{Block, CONTROLLER_OPS, Flow, Node, Task};
pub use walk::{Selection, Walk};

/// A plan that parsed and checked. It travels to workers as it is (without its secrets).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The file it came from.
    pub path: PathBuf,
    /// SHA-256 of the plan file's text (hex), to tell runs of different versions apart.
    pub hash: String,
    /// Plan-level vars (any value; a text may be a template that uses other vars).
    pub vars: DataMap,
    /// Extra vars (`-e`), above every other var.
    #[serde(default)]
    pub extra_vars: DataMap,
    /// Roles' defaults: the lowest vars.
    #[serde(default)]
    pub defaults: DataMap,
    /// Template files by name, for `{% include %}` and `{% import %}`: the plan's
    /// `templates/` and its roles'. Read with the plan, so rendering reads no file.
    #[serde(default)]
    pub templates: std::collections::BTreeMap<String, String>,
    /// Tasks in order.
    pub tasks: Vec<Node>,
    /// Handlers by name, in the order they are declared.
    pub handlers: Vec<Task>,
    /// Whether any template or condition names a fact (then facts are gathered first).
    pub needs_facts: bool,
    /// Whether one names a network fact (`ansible_default_ipv4`...): the host is asked.
    pub needs_net: bool,
    /// The hosts it is meant for, when the command line names none.
    pub targets: Option<String>,
    /// The secrets file the plan names (`secrets = "..."`, relative to the plan).
    pub secrets_file: Option<PathBuf>,
    /// Each `{{ secret.NAME }}` the plan uses, with its line.
    pub secret_refs: Vec<(String, usize)>,
    /// The secrets' values, once [`Plan::attach_secrets`] has them.
    #[serde(skip)]
    pub secrets: wisp_secrets::SecretValues,
}

/// Where `file.write` content comes from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Content {
    /// Inline text, rendered per host.
    Inline(String),
    /// A local file's bytes, sent as they are (how a plan's files travel to workers).
    File(Vec<u8>),
    /// A local file, read one chunk at a time as it is sent to each host, so memory does not
    /// grow with its size; checked against the size and SHA-256 it had when the plan was read.
    #[serde(skip)]
    FileAt(FileAt),
}

/// A `content_file` as the plan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAt {
    /// Where it is.
    pub path: PathBuf,
    /// Its size when the plan was read.
    pub len: u64,
    /// Its SHA-256 (hex) when the plan was read.
    pub sha256: String,
}

impl FileAt {
    /// Reads `path`'s size and SHA-256, streaming.
    pub fn read(path: &Path) -> std::io::Result<FileAt> {
        use sha2::Digest;
        let mut f = std::fs::File::open(path)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = std::io::Read::read(&mut f, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        Ok(FileAt {
            path: path.to_owned(),
            len,
            sha256: data_encoding::HEXLOWER.encode(&hasher.finalize()),
        })
    }

    /// Its bytes, checked to be what the plan read.
    pub fn load(&self) -> std::io::Result<Vec<u8>> {
        use sha2::Digest;
        let bytes = std::fs::read(&self.path)?;
        if data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(&bytes)) != self.sha256 {
            return Err(std::io::Error::other(format!(
                "{} changed since the plan was read",
                self.path.display()
            )));
        }
        Ok(bytes)
    }
}

impl Plan {
    /// The plan with every `content_file` read into it (for a plan that travels whole, to a
    /// worker on the bus).
    pub fn with_contents_loaded(&self) -> std::io::Result<Plan> {
        let mut plan = self.clone();
        let mut failed = None;
        plan.each_task_mut(&mut |t| {
            if let Some(Content::FileAt(f)) = &t.content {
                match f.load() {
                    Ok(bytes) => t.content = Some(Content::File(bytes)),
                    Err(e) => failed = Some(e),
                }
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(plan),
        }
    }
}

/// The line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.matches('\n').count() + 1)
}

/// A value as template text: strings as they are, numbers and booleans as written.
pub(crate) fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `value` as one word of a POSIX shell command line: as it is when it holds only characters
/// no shell treats specially, else in single quotes (each `'` written as `'"'"'`).
pub fn shell_quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', "'\"'\"'"))
}

/// The typed op a task's rendered args make, checked as the runner checks them.
pub fn op_of(op: &str, args: &DataMap) -> Result<wisp_protocol::ops::Op, String> {
    // A runner ignores an exec arg it does not know (a newer controller's); a plan is
    // written for this version, and `creates = ...` misspelt must not run every time.
    if op == wisp_protocol::ops::name::EXEC {
        let fields = wisp_protocol::ops::ExecArgs::FIELDS;
        if let Some(k) = args.keys().find(|k| !fields.contains(&k.as_str())) {
            let expected = fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>();
            return Err(format!(
                "exec args: unknown field `{k}`, expected one of {}",
                expected.join(", ")
            ));
        }
    }
    let table: toml::Table = args
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.to_toml()?)))
        .collect();
    wisp_protocol::ops::Op::from_args(op, table).map_err(|e| e.to_string())
}

/// The plan's top-level keys checked, and its `[vars]` (each var's templates compiled, so an
/// error names its line).
fn top_level(root: &source::Src) -> Result<DataMap, Located> {
    for (k, v) in root.as_map().unwrap_or_default() {
        if !PLAN_KEYS.contains(&k.as_str()) {
            let what = format!(
                "unknown key {k:?} at the top of a plan (known: {})",
                PLAN_KEYS.join(", ")
            );
            return Err((v.line, PlanErrorKind::Syntax(what)));
        }
    }
    let vars = root.get("vars");
    for (k, v) in vars.and_then(source::Src::as_map).unwrap_or_default() {
        Engine::new(Default::default())
            .add_data(&v.to_data())
            .map_err(|e| (v.line, PlanErrorKind::Template(format!("vars.{k}: {e}"))))?;
    }
    match vars.map(|v| (v.line, v.to_data())) {
        None => Ok(DataMap::new()),
        Some((_, Data::Map(m))) => Ok(m),
        Some((line, _)) => {
            let what = "[vars] must be a table of names and values".to_owned();
            Err((line, PlanErrorKind::Syntax(what)))
        }
    }
}

/// Keys a plan file may have at the top.
const PLAN_KEYS: &[&str] = &["targets", "secrets", "vars", "limits", "task", "handler"];

impl Plan {
    /// Reads and checks a plan file.
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError {
            path: path.to_owned(),
            line: None,
            kind: PlanErrorKind::Unreadable(e),
        })?;
        Plan::parse(&text, path)
    }

    /// Parses and checks plan text (`path` names it in errors and anchors `content_file`).
    pub fn parse(text: &str, path: &Path) -> Result<Plan, PlanError> {
        Plan::parse_with(text, path, DataMap::new())
    }

    /// [`Plan::parse`], with extra vars (`-e`) that override every other var.
    pub fn parse_with(text: &str, path: &Path, extra_vars: DataMap) -> Result<Plan, PlanError> {
        let at = |(line, kind): Located| PlanError::at(path, line, kind);
        let root = source::read_toml(text)
            .map_err(|(line, what)| at((line, PlanErrorKind::Syntax(what))))?;
        let base = ansible::dir_of(path);
        Plan::from_tree(
            &root,
            text,
            path,
            extra_vars,
            gathered::Gathered::new(&base),
        )
    }

    /// A plan from its tree (read from TOML, or built from an Ansible play); `text` is the
    /// file's, for the plan's hash.
    pub(crate) fn from_tree(
        root: &source::Src,
        text: &str,
        path: &Path,
        extra_vars: DataMap,
        gathered: gathered::Gathered,
    ) -> Result<Plan, PlanError> {
        let at = |(line, kind): Located| PlanError::at(path, line, kind);
        let vars = top_level(root).map_err(at)?;
        let text_of = |k: &str| -> Result<Option<String>, PlanError> {
            match root.get(k) {
                None => Ok(None),
                Some(v) => v.as_str().map(|s| Some(s.to_owned())).ok_or_else(|| {
                    at((v.line, PlanErrorKind::Syntax(format!("{k} must be text"))))
                }),
            }
        };
        let defaults = match root.get("limits") {
            Some(l) => {
                let table = l.to_data().to_toml().unwrap_or(toml::Value::Boolean(false));
                limits_table::limit_args(&table)
                    .map_err(|e| at((l.line, PlanErrorKind::Limits(format!("[limits]: {e}")))))?
            }
            None => LimitArgs::default(),
        };
        let base = ansible::dir_of(path);
        gathered
            .templates_under(&base.join("templates"))
            .map_err(|e| at((1, PlanErrorKind::Syntax(e))))?;
        let reader = read::Reader {
            base: base.clone(),
            file: None,
            defaults: &defaults,
            gathered: &gathered,
            reading: Vec::new(),
        };
        let tasks = match root.get("task") {
            Some(list) => reader.nodes(list, "task").map_err(at)?,
            None => Vec::new(),
        };
        let mut handlers = match root.get("handler") {
            Some(list) => reader.handlers(list).map_err(at)?,
            None => Vec::new(),
        };
        handlers.extend(gathered.handlers.take());
        // Of the plan and every file it is made of: an included file or a template that
        // changed is a changed plan.
        let hash = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(text.as_bytes());
            for (p, t) in gathered.files.borrow().iter() {
                h.update(format!("\0{}\0", p.display()).as_bytes());
                h.update(t.as_bytes());
            }
            for (n, t) in gathered.templates.borrow().iter() {
                h.update(format!("\0{n}\0").as_bytes());
                h.update(t.as_bytes());
            }
            data_encoding::HEXLOWER.encode(&h.finalize())
        };
        let mut plan = Plan {
            path: path.to_owned(),
            hash,
            vars,
            extra_vars,
            defaults: gathered.defaults.take(),
            templates: gathered.templates.take(),
            tasks,
            handlers,
            needs_facts: false,
            needs_net: false,
            targets: text_of("targets")?,
            secrets_file: text_of("secrets")?.map(|f| base.join(f)),
            secret_refs: Vec::new(),
            secrets: Default::default(),
        };
        plan.listen(&gathered.listens.take());
        plan.check().map_err(at)?;
        Ok(plan)
    }

    /// A `notify` that names a topic handlers `listen` to notifies each of them.
    fn listen(&mut self, listens: &[(String, String)]) {
        if listens.is_empty() {
            return;
        }
        let expand = |t: &mut Task| {
            let mut out = Vec::new();
            for n in std::mem::take(&mut t.notify) {
                let mut hit = false;
                for (topic, handler) in listens {
                    if *topic == n && !out.contains(handler) {
                        out.push(handler.clone());
                        hit = true;
                    }
                }
                if !hit && !out.contains(&n) {
                    out.push(n);
                }
            }
            t.notify = out;
        };
        self.each_task_mut(&mut |t| expand(t));
    }

    /// Resolves each task's `targets` pattern with `select` (the inventory's pattern rules);
    /// an error names the task's line.
    pub fn select_task_hosts(
        &mut self,
        select: impl Fn(&str) -> Result<Vec<String>, String>,
    ) -> Result<(), PlanError> {
        let path = self.path.clone();
        let mut failed = None;
        self.each_task_mut(&mut |t| {
            if failed.is_some() {
                return;
            }
            if let Some(pattern) = &t.targets {
                match select(pattern) {
                    Ok(hosts) => t.hosts = Some(hosts.into_iter().collect()),
                    Err(e) => {
                        let what = format!("targets {pattern:?}: {e}");
                        failed = Some(PlanError::at(&path, t.line, PlanErrorKind::Targets(what)));
                    }
                }
            }
        });
        failed.map_or(Ok(()), Err)
    }

    /// Gives the plan its secrets; every `{{ secret.NAME }}` it uses must be among them.
    pub fn attach_secrets(
        &mut self,
        values: wisp_secrets::SecretValues,
        from: &Path,
    ) -> Result<(), PlanError> {
        for (name, line) in &self.secret_refs {
            if values.get(name).is_none() {
                let what = format!(
                    "{{{{ secret.{name} }}}}: {} has no such secret (it has: {})",
                    from.display(),
                    values.names().join(", ")
                );
                return Err(PlanError::at(
                    &self.path,
                    *line,
                    PlanErrorKind::Secret(what),
                ));
            }
        }
        self.secrets = values;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
