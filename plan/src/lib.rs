//! Plans: a TOML file of ordered tasks (and handlers), parsed and checked completely before
//! any host is contacted, with every error naming the file and line.
//!
//! ```toml
//! [vars]
//! app = "demo"
//!
//! [[task]]
//! name = "config"
//! op = "file.write"
//! path = "/etc/{{ app }}.conf"
//! content = "port = 8080\n"
//! mode = "0644"
//! notify = ["reload app"]
//!
//! [[handler]]
//! name = "reload app"
//! op = "exec"
//! shell = "echo reloading {{ app }}"
//! ```
//!
//! Templates: `{{ var }}` (the plan's vars, overridden by the host's inventory vars),
//! `{{ host.name }}` and `{{ host.VAR }}`, `{{ facts.FIELD }}` (what `facts` reports).
//! `when`: `EXPR`, `not EXPR`, `EXPR == "text"`, `EXPR != "text"`, where EXPR is a template
//! name (`facts.os_id`, `app`).
//!
//! What this module does not know: hosts, sessions, output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::limits::LimitArgs;

mod error;
pub mod limits;
pub mod quantity;
mod task;
mod template;

use error::Located;
pub use error::{PlanError, PlanErrorKind};
use task::{limit_args, read_task};
pub use template::{Context, condition, op_from_args, render, render_args, render_value};
use template::{QUOTED, unquoted_host_value};

/// A plan that parsed and checked. It travels to workers as it is (without its secrets).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The file it came from.
    pub path: PathBuf,
    /// SHA-256 of the plan file's text (hex), to tell runs of different versions apart.
    pub hash: String,
    /// Plan-level vars.
    pub vars: BTreeMap<String, String>,
    /// Tasks in order.
    pub tasks: Vec<Task>,
    /// Handlers by name, in the order they are declared.
    pub handlers: Vec<Task>,
    /// Whether any template or condition names a fact (then facts are gathered first).
    pub needs_facts: bool,
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

/// One task (or handler).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Task {
    /// Its name (the op and line when not given).
    pub name: String,
    /// The op.
    pub op: String,
    /// The op's args as the plan gives them, templates not yet rendered.
    pub args: toml::Table,
    /// `file.write` content, templates not yet rendered (when from `content`).
    pub content: Option<Content>,
    /// Condition, when given.
    pub when: Option<String>,
    /// Handlers to run at the end if this task changed something.
    pub notify: Vec<String>,
    /// Limits (exec), the plan's defaults merged in.
    pub limits: LimitArgs,
    /// A failure does not stop the host.
    pub ignore_errors: bool,
    /// `changed_when = false`: an exec task that only looks (it never reports changed).
    pub changed_when: Option<bool>,
    /// A host pattern: the task runs only on the hosts it selects.
    pub targets: Option<String>,
    /// The hosts `targets` selects, once [`Plan::select_task_hosts`] has resolved it.
    pub hosts: Option<std::collections::BTreeSet<String>>,
    /// An exec task's stdin, a template (secrets may go here).
    pub stdin: Option<String>,
    /// Line in the plan file, for messages.
    pub line: usize,
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
        for t in plan.tasks.iter_mut().chain(plan.handlers.iter_mut()) {
            if let Some(Content::FileAt(f)) = &t.content {
                t.content = Some(Content::File(f.load()?));
            }
        }
        Ok(plan)
    }
}

pub(crate) type RawTable = BTreeMap<String, Spanned<toml::Value>>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    #[serde(default)]
    targets: Option<String>,
    #[serde(default)]
    secrets: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
    #[serde(default)]
    limits: Option<Spanned<toml::Value>>,
    #[serde(default)]
    task: Vec<Spanned<RawTable>>,
    #[serde(default)]
    handler: Vec<Spanned<RawTable>>,
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
        let at = |(line, kind): Located| PlanError::at(path, line, kind);
        let raw: RawPlan = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            at((line, PlanErrorKind::Syntax(e.message().trim().to_owned())))
        })?;
        let mut vars = BTreeMap::new();
        for (k, v) in &raw.vars {
            let s = scalar(v).ok_or_else(|| {
                let what = format!("var {k:?} must be a string, number or boolean");
                at((1, PlanErrorKind::Syntax(what)))
            })?;
            vars.insert(k.clone(), s);
        }
        let defaults = match &raw.limits {
            Some(l) => limit_args(l.get_ref()).map_err(|e| {
                let line = line_of(text, l.span().start);
                at((line, PlanErrorKind::Limits(format!("[limits]: {e}"))))
            })?,
            None => LimitArgs::default(),
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let task = |t: &Spanned<RawTable>, kind: &str| {
            read_task(t, kind, text, base, &defaults).map_err(at)
        };
        let tasks = raw
            .task
            .iter()
            .map(|t| task(t, "task"))
            .collect::<Result<Vec<_>, _>>()?;
        let handlers = raw
            .handler
            .iter()
            .map(|t| task(t, "handler"))
            .collect::<Result<Vec<_>, _>>()?;
        let hash = {
            use sha2::Digest;
            sha2::Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let mut plan = Plan {
            path: path.to_owned(),
            hash,
            vars,
            tasks,
            handlers,
            needs_facts: false,
            targets: raw.targets.clone(),
            secrets_file: raw.secrets.as_ref().map(|f| base.join(f)),
            secret_refs: Vec::new(),
            secrets: Default::default(),
        };
        plan.check().map_err(at)?;
        Ok(plan)
    }

    /// Resolves each task's `targets` pattern with `select` (the inventory's pattern rules);
    /// an error names the task's line.
    pub fn select_task_hosts(
        &mut self,
        select: impl Fn(&str) -> Result<Vec<String>, String>,
    ) -> Result<(), PlanError> {
        for t in self.tasks.iter_mut().chain(self.handlers.iter_mut()) {
            if let Some(pattern) = &t.targets {
                let hosts = select(pattern).map_err(|e| {
                    let what = format!("targets {pattern:?}: {e}");
                    PlanError::at(&self.path, t.line, PlanErrorKind::Targets(what))
                })?;
                t.hosts = Some(hosts.into_iter().collect());
            }
        }
        Ok(())
    }

    /// Cross-checks: handler names, template references, and the args of each op as a runner
    /// would parse them (with placeholder values for what only a host can tell).
    fn check(&mut self) -> Result<(), Located> {
        let mut needs_facts = false;
        for t in &self.tasks {
            for n in &t.notify {
                if !self.handlers.iter().any(|h| &h.name == n) {
                    let what = format!("notify: no handler named {n:?}");
                    return Err((t.line, PlanErrorKind::Task(what)));
                }
            }
        }
        let mut secret_refs = Vec::new();
        for t in self.tasks.iter().chain(&self.handlers) {
            let ctx = Context::placeholder(&self.vars);
            let mut refs = Vec::new();
            let template = |e| (t.line, PlanErrorKind::Template(e));
            let args = render_args(&t.args, &ctx, &mut refs).map_err(template)?;
            // Secrets may reach a host in env, stdin or file content, never in a command line
            // or a path: those show in `ps` and in every message about the task.
            let exposed: Vec<String> = t
                .args
                .iter()
                .filter(|(k, _)| !(t.op == "exec" && k.as_str() == "env"))
                .flat_map(|(_, v)| {
                    let mut r = Vec::new();
                    let _ = render_value(v, &ctx, &mut r);
                    r
                })
                .filter(|r| r.starts_with("secret."))
                .collect();
            if let Some(r) = exposed.first() {
                let what = format!(
                    "{{{{ {r} }}}} may go only in an exec task's env or stdin, or in file \
                     content: a command line or a path is visible to every user of the host"
                );
                return Err((t.line, PlanErrorKind::Secret(what)));
            }
            // What a host reports is data: in a command line it must be quoted, or a host
            // named `vm; touch /x #` runs `touch` on itself (as root, under --become).
            if t.op == "exec" {
                unquoted_host_value(&t.args, &ctx).map_err(template)?;
            }
            if let Some(Content::Inline(c)) = &t.content {
                render(c, &ctx, &mut refs).map_err(template)?;
            }
            if let Some(i) = &t.stdin {
                render(i, &ctx, &mut refs).map_err(template)?;
            }
            if let Some(w) = &t.when {
                let mut when_refs = Vec::new();
                condition(w, &ctx, &mut when_refs).map_err(|e| template(format!("when: {e}")))?;
                if when_refs.iter().any(|r| r.starts_with("secret.")) {
                    let what = "when: conditions cannot look at secrets".to_owned();
                    return Err((t.line, PlanErrorKind::Secret(what)));
                }
                refs.extend(when_refs);
            }
            secret_refs.extend(
                refs.iter()
                    .filter_map(|r| r.strip_prefix("secret."))
                    .map(|n| (n.trim_end_matches(QUOTED).to_owned(), t.line)),
            );
            needs_facts |= refs.iter().any(|r| r.starts_with("facts."));
            op_from_args(&t.op, args).map_err(|e| (t.line, PlanErrorKind::Task(e)))?;
            if t.op == "exec" {
                t.limits
                    .to_limits(std::env::consts::ARCH)
                    .map_err(|e| (t.line, PlanErrorKind::Limits(format!("limits: {e}"))))?;
            }
        }
        self.needs_facts = needs_facts;
        self.secret_refs = secret_refs;
        Ok(())
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
