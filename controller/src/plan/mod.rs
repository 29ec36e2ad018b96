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
use wisp_protocol::ops::{KNOWN_OPS, Op};

use crate::limits::LimitArgs;

/// Keys of a task that belong to the plan, not to the op's args.
const TASK_KEYS: &[&str] = &[
    "name",
    "op",
    "when",
    "notify",
    "limits",
    "ignore_errors",
    "content",
    "content_file",
    "changed_when",
    "targets",
    "stdin",
];

/// The facts a template may name.
const FACT_FIELDS: &[&str] = &[
    "os_id",
    "os_version",
    "os_pretty",
    "kernel",
    "arch",
    "hostname",
    "cpus",
    "mem_total_kb",
    "init",
    "pkg_manager",
];

/// A plan that parsed and checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The file it came from.
    pub path: PathBuf,
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
    pub secrets: crate::secrets::SecretValues,
}

/// One task (or handler).
#[derive(Debug, Clone)]
pub struct Task {
    /// Its name (the op and line when not given).
    pub name: String,
    /// The op.
    pub op: String,
    /// The op's args, templates not yet rendered.
    pub args: serde_json::Value,
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
#[derive(Debug, Clone)]
pub enum Content {
    /// Inline text, rendered per host.
    Inline(String),
    /// A local file's bytes, sent as they are.
    File(Vec<u8>),
}

/// A plan that cannot run, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// `FILE:LINE: what is wrong`.
    pub message: String,
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PlanError {}

type RawTable = BTreeMap<String, Spanned<toml::Value>>;

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
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.matches('\n').count() + 1)
}

/// A value as template text: strings as they are, numbers and booleans as written.
fn scalar(v: &toml::Value) -> Option<String> {
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
            message: format!("{}: {e}", path.display()),
        })?;
        Plan::parse(&text, path)
    }

    /// Parses and checks plan text (`path` names it in errors and anchors `content_file`).
    pub fn parse(text: &str, path: &Path) -> Result<Plan, PlanError> {
        let at = |line: usize, what: String| PlanError {
            message: format!("{}:{line}: {what}", path.display()),
        };
        let raw: RawPlan = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            at(line, e.message().trim().to_owned())
        })?;
        let mut vars = BTreeMap::new();
        for (k, v) in &raw.vars {
            let s = scalar(v)
                .ok_or_else(|| at(1, format!("var {k:?} must be a string, number or boolean")))?;
            vars.insert(k.clone(), s);
        }
        let defaults = match &raw.limits {
            Some(l) => limit_args(l.get_ref())
                .map_err(|e| at(line_of(text, l.span().start), format!("[limits]: {e}")))?,
            None => LimitArgs::default(),
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let task = |t: &Spanned<RawTable>, kind: &str| {
            read_task(t, kind, text, base, &defaults).map_err(|(line, e)| at(line, e))
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
        let mut plan = Plan {
            path: path.to_owned(),
            vars,
            tasks,
            handlers,
            needs_facts: false,
            targets: raw.targets.clone(),
            secrets_file: raw.secrets.as_ref().map(|f| base.join(f)),
            secret_refs: Vec::new(),
            secrets: Default::default(),
        };
        plan.check().map_err(|(line, e)| at(line, e))?;
        Ok(plan)
    }

    /// Resolves each task's `targets` pattern with `select` (the inventory's pattern rules);
    /// an error names the task's line.
    pub fn select_task_hosts(
        &mut self,
        select: impl Fn(&str) -> Result<Vec<String>, String>,
    ) -> Result<(), PlanError> {
        let path = self.path.display().to_string();
        for t in self.tasks.iter_mut().chain(self.handlers.iter_mut()) {
            if let Some(pattern) = &t.targets {
                let hosts = select(pattern).map_err(|e| PlanError {
                    message: format!("{path}:{}: targets {pattern:?}: {e}", t.line),
                })?;
                t.hosts = Some(hosts.into_iter().collect());
            }
        }
        Ok(())
    }

    /// Cross-checks: handler names, template references, and the args of each op as a runner
    /// would parse them (with placeholder values for what only a host can tell).
    fn check(&mut self) -> Result<(), (usize, String)> {
        let mut needs_facts = false;
        for t in &self.tasks {
            for n in &t.notify {
                if !self.handlers.iter().any(|h| &h.name == n) {
                    return Err((t.line, format!("notify: no handler named {n:?}")));
                }
            }
        }
        let mut secret_refs = Vec::new();
        for t in self.tasks.iter().chain(&self.handlers) {
            let ctx = Context::placeholder(&self.vars);
            let mut refs = Vec::new();
            let args = render_json(&t.args, &ctx, &mut refs).map_err(|e| (t.line, e))?;
            // Secrets may reach a host in env, stdin or file content, never in a command line
            // or a path: those show in `ps` and in every message about the task.
            let exposed: Vec<String> = t
                .args
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !(t.op == "exec" && k.as_str() == "env"))
                .flat_map(|(_, v)| {
                    let mut r = Vec::new();
                    let _ = render_json(v, &ctx, &mut r);
                    r
                })
                .filter(|r| r.starts_with("secret."))
                .collect();
            if let Some(r) = exposed.first() {
                return Err((
                    t.line,
                    format!(
                        "{{{{ {r} }}}} may go only in an exec task's env or stdin, or in file \
                         content: a command line or a path is visible to every user of the host"
                    ),
                ));
            }
            if let Some(Content::Inline(c)) = &t.content {
                render(c, &ctx, &mut refs).map_err(|e| (t.line, e))?;
            }
            if let Some(i) = &t.stdin {
                render(i, &ctx, &mut refs).map_err(|e| (t.line, e))?;
            }
            if let Some(w) = &t.when {
                let mut when_refs = Vec::new();
                condition(w, &ctx, &mut when_refs).map_err(|e| (t.line, format!("when: {e}")))?;
                if when_refs.iter().any(|r| r.starts_with("secret.")) {
                    return Err((t.line, "when: conditions cannot look at secrets".into()));
                }
                refs.extend(when_refs);
            }
            secret_refs.extend(
                refs.iter()
                    .filter_map(|r| r.strip_prefix("secret."))
                    .map(|n| (n.to_owned(), t.line)),
            );
            needs_facts |= refs.iter().any(|r| r.starts_with("facts."));
            Op::parse(&t.op, &args).map_err(|e| (t.line, e.to_string()))?;
            if t.op == "exec" {
                t.limits
                    .to_limits(std::env::consts::ARCH)
                    .map_err(|e| (t.line, format!("limits: {e}")))?;
            }
        }
        self.needs_facts = needs_facts;
        self.secret_refs = secret_refs;
        Ok(())
    }

    /// Gives the plan its secrets; every `{{ secret.NAME }}` it uses must be among them.
    pub fn attach_secrets(
        &mut self,
        values: crate::secrets::SecretValues,
        from: &Path,
    ) -> Result<(), PlanError> {
        for (name, line) in &self.secret_refs {
            if values.get(name).is_none() {
                return Err(PlanError {
                    message: format!(
                        "{}:{line}: {{{{ secret.{name} }}}}: {} has no such secret (it has: {})",
                        self.path.display(),
                        from.display(),
                        values.names().join(", ")
                    ),
                });
            }
        }
        self.secrets = values;
        Ok(())
    }
}

fn read_task(
    t: &Spanned<RawTable>,
    kind: &str,
    text: &str,
    base: &Path,
    defaults: &LimitArgs,
) -> Result<Task, (usize, String)> {
    let line = line_of(text, t.span().start);
    let table = t.get_ref();
    let key_line = |k: &str| table.get(k).map_or(line, |v| line_of(text, v.span().start));
    let string = |k: &str| -> Result<Option<String>, (usize, String)> {
        match table.get(k).map(Spanned::get_ref) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err((key_line(k), format!("{k} must be a string"))),
        }
    };
    let op = string("op")?.ok_or((line, format!("{kind} without an op")))?;
    if !KNOWN_OPS.contains(&op.as_str()) {
        return Err((
            key_line("op"),
            format!("unknown op {op:?} (known: {})", KNOWN_OPS.join(", ")),
        ));
    }
    let name = string("name")?.unwrap_or_else(|| format!("{op} (line {line})"));
    let notify = match table.get("notify").map(Spanned::get_ref) {
        None => Vec::new(),
        Some(toml::Value::String(s)) => vec![s.clone()],
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or((key_line("notify"), "notify must name handlers".to_owned()))?,
        Some(_) => return Err((key_line("notify"), "notify must name handlers".into())),
    };
    let ignore_errors = match table.get("ignore_errors").map(Spanned::get_ref) {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => {
            return Err((
                key_line("ignore_errors"),
                "ignore_errors must be true or false".into(),
            ));
        }
    };
    let changed_when = match table.get("changed_when").map(Spanned::get_ref) {
        None => None,
        Some(toml::Value::Boolean(b)) => Some(*b),
        Some(_) => {
            return Err((
                key_line("changed_when"),
                "changed_when must be true or false".into(),
            ));
        }
    };
    let content = match (string("content")?, string("content_file")?) {
        (Some(_), Some(_)) => {
            return Err((line, "give content or content_file, not both".into()));
        }
        (Some(c), None) => Some(Content::Inline(c)),
        (None, Some(f)) => {
            let p = base.join(&f);
            let bytes = std::fs::read(&p).map_err(|e| {
                (
                    key_line("content_file"),
                    format!("content_file {}: {e}", p.display()),
                )
            })?;
            Some(Content::File(bytes))
        }
        (None, None) => None,
    };
    if op == "file.write" && content.is_none() {
        return Err((line, "file.write needs content or content_file".into()));
    }
    if op != "file.write" && content.is_some() {
        return Err((line, format!("{op} takes no content")));
    }
    let mut limits = defaults.clone();
    if let Some(l) = table.get("limits") {
        if op != "exec" {
            return Err((
                key_line("limits"),
                format!("limits apply to exec, not {op}"),
            ));
        }
        let own =
            limit_args(l.get_ref()).map_err(|e| (key_line("limits"), format!("limits: {e}")))?;
        limits = merge(limits, own);
    }
    let stdin = string("stdin")?;
    if stdin.is_some() && op != "exec" {
        return Err((key_line("stdin"), format!("{op} takes no stdin")));
    }
    let mut args = serde_json::Map::new();
    for (k, v) in table {
        if TASK_KEYS.contains(&k.as_str()) {
            continue;
        }
        let mut value = serde_json::to_value(v.get_ref())
            .map_err(|e| (line_of(text, v.span().start), format!("{k}: {e}")))?;
        // `mode = 0o644` reads as a number; the op wants octal text.
        if k == "mode"
            && let Some(n) = value.as_u64()
        {
            value = serde_json::Value::String(format!("{n:04o}"));
        }
        args.insert(k.clone(), value);
    }
    Ok(Task {
        name,
        op,
        args: serde_json::Value::Object(args),
        content,
        when: string("when")?,
        notify,
        limits,
        ignore_errors,
        changed_when,
        targets: string("targets")?,
        hosts: None,
        stdin,
        line,
    })
}

/// A `[limits]` table, with the same names and value forms as `wisp run`'s flags.
fn limit_args(v: &toml::Value) -> Result<LimitArgs, String> {
    let table = v.as_table().ok_or("expected a table")?;
    let mut a = LimitArgs::default();
    for (k, v) in table {
        let text = || scalar(v).ok_or(format!("{k} must be a string or number"));
        let list = || -> Result<Vec<String>, String> {
            match v {
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or(format!("{k} must list paths")),
                toml::Value::String(s) => Ok(vec![s.clone()]),
                _ => Err(format!("{k} must list paths")),
            }
        };
        let ports = || -> Result<Vec<u16>, String> {
            let items = match v {
                toml::Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            items
                .iter()
                .map(|i| i.as_integer().and_then(|p| u16::try_from(p).ok()))
                .collect::<Option<_>>()
                .ok_or(format!("{k} must list TCP ports"))
        };
        let flag = || v.as_bool().ok_or(format!("{k} must be true or false"));
        match k.as_str() {
            "timeout" => a.timeout = Some(crate::cli::parse_duration(&text()?)?),
            "memory" => a.memory = Some(crate::limits::parse_size(&text()?)?),
            "cpus" => a.cpus = Some(crate::limits::parse_cpus(&text()?)?),
            "pids" => {
                a.pids = Some(
                    text()?
                        .parse()
                        .map_err(|_| "pids must be a number".to_owned())?,
                )
            }
            "ro" => a.ro = list()?,
            "rw" => a.rw = list()?,
            "exec" => a.exec = list()?,
            "no_system_paths" => a.no_system_paths = flag()?,
            "allow_connect" => a.allow_connect = ports()?,
            "allow_bind" => a.allow_bind = ports()?,
            "no_net" => a.no_net = flag()?,
            "private_tmp" => a.private_tmp = flag()?,
            "pid_ns" => a.pid_ns = flag()?,
            "seccomp" => a.seccomp = Some(text()?),
            "nofile" => {
                a.nofile = Some(
                    text()?
                        .parse()
                        .map_err(|_| "nofile must be a number".to_owned())?,
                )
            }
            "fsize" => a.fsize = Some(crate::limits::parse_size(&text()?)?),
            "core" => a.core = Some(crate::limits::parse_size(&text()?)?),
            "sandbox" => {
                a.sandbox = Some(match text()?.as_str() {
                    "require" => wisp_protocol::sandbox::SandboxMode::Require,
                    "best-effort" => wisp_protocol::sandbox::SandboxMode::BestEffort,
                    other => {
                        return Err(format!(
                            "sandbox {other:?}: expected require or best-effort"
                        ));
                    }
                });
            }
            other => return Err(format!("unknown limit {other:?}")),
        }
    }
    Ok(a)
}

/// The task's own limits over the plan's defaults.
fn merge(base: LimitArgs, own: LimitArgs) -> LimitArgs {
    let pick_vec = |a: Vec<String>, b: Vec<String>| if b.is_empty() { a } else { b };
    LimitArgs {
        timeout: own.timeout.or(base.timeout),
        memory: own.memory.or(base.memory),
        cpus: own.cpus.or(base.cpus),
        pids: own.pids.or(base.pids),
        ro: pick_vec(base.ro, own.ro),
        rw: pick_vec(base.rw, own.rw),
        exec: pick_vec(base.exec, own.exec),
        no_system_paths: own.no_system_paths || base.no_system_paths,
        allow_connect: if own.allow_connect.is_empty() {
            base.allow_connect
        } else {
            own.allow_connect
        },
        allow_bind: if own.allow_bind.is_empty() {
            base.allow_bind
        } else {
            own.allow_bind
        },
        no_net: own.no_net || base.no_net,
        private_tmp: own.private_tmp || base.private_tmp,
        pid_ns: own.pid_ns || base.pid_ns,
        seccomp: own.seccomp.or(base.seccomp),
        nofile: own.nofile.or(base.nofile),
        fsize: own.fsize.or(base.fsize),
        core: own.core.or(base.core),
        sandbox: own.sandbox.or(base.sandbox),
    }
}

/// What templates resolve against on one host.
#[derive(Debug, Clone, Default)]
pub struct Context {
    vars: BTreeMap<String, String>,
    host: BTreeMap<String, String>,
    facts: BTreeMap<String, String>,
    secrets: crate::secrets::SecretValues,
    /// Checking a plan: host and facts names resolve to a placeholder.
    placeholder: bool,
}

impl Context {
    /// For one host: plan vars overridden by the host's inventory vars; `host.name`; facts.
    pub fn for_host(
        plan_vars: &BTreeMap<String, String>,
        host_name: &str,
        host_vars: &BTreeMap<String, String>,
        facts: Option<&serde_json::Value>,
    ) -> Context {
        let mut vars = plan_vars.clone();
        vars.extend(host_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut host = host_vars.clone();
        host.insert("name".into(), host_name.to_owned());
        let facts = facts
            .and_then(serde_json::Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| {
                        let s = match v {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Number(n) => n.to_string(),
                            serde_json::Value::Bool(b) => b.to_string(),
                            _ => return None,
                        };
                        Some((k.clone(), s))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Context {
            vars,
            host,
            facts,
            secrets: Default::default(),
            placeholder: false,
        }
    }

    /// The same, with the plan's secrets.
    pub fn with_secrets(mut self, secrets: &crate::secrets::SecretValues) -> Context {
        self.secrets = secrets.clone();
        self
    }

    fn placeholder(vars: &BTreeMap<String, String>) -> Context {
        Context {
            vars: vars.clone(),
            placeholder: true,
            ..Default::default()
        }
    }

    fn lookup(&self, name: &str) -> Result<String, String> {
        if let Some(n) = name.strip_prefix("secret.") {
            if !crate::secrets::valid_name(n) {
                return Err(format!("{{{{ {name} }}}}: {n:?} is not a secret name"));
            }
            if self.placeholder {
                return Ok("0".into());
            }
            return self
                .secrets
                .get(n)
                .map(str::to_owned)
                .ok_or_else(|| format!("{{{{ {name} }}}}: no such secret"));
        }
        if let Some(f) = name.strip_prefix("facts.") {
            if !FACT_FIELDS.contains(&f) {
                return Err(format!(
                    "{{{{ {name} }}}}: facts have no {f:?} (they have: {})",
                    FACT_FIELDS.join(", ")
                ));
            }
            if self.placeholder {
                return Ok("0".into());
            }
            return self
                .facts
                .get(f)
                .cloned()
                .ok_or_else(|| format!("{{{{ {name} }}}}: this host did not report it"));
        }
        if let Some(h) = name.strip_prefix("host.") {
            if self.placeholder {
                return Ok("0".into());
            }
            return self
                .host
                .get(h)
                .cloned()
                .ok_or_else(|| format!("{{{{ {name} }}}}: this host has no var {h:?}"));
        }
        match self.vars.get(name) {
            Some(v) => Ok(v.clone()),
            // A host's inventory may still define it.
            None if self.placeholder
                && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') =>
            {
                Err(format!(
                    "{{{{ {name} }}}}: no such var (define it under [vars], or use host.{name} for an inventory var)"
                ))
            }
            None => Err(format!("{{{{ {name} }}}}: no such var")),
        }
    }
}

/// Renders `{{ name }}` references in `text`; records the names it met.
pub fn render(text: &str, ctx: &Context, refs: &mut Vec<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ in {text:?}"))?;
        let name = after[..end].trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("bad template reference {{{{{}}}}}", &after[..end]));
        }
        refs.push(name.to_owned());
        out.push_str(&ctx.lookup(name)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders every string inside a JSON value.
pub fn render_json(
    v: &serde_json::Value,
    ctx: &Context,
    refs: &mut Vec<String>,
) -> Result<serde_json::Value, String> {
    Ok(match v {
        serde_json::Value::String(s) => serde_json::Value::String(render(s, ctx, refs)?),
        serde_json::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .map(|x| render_json(x, ctx, refs))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), render_json(x, ctx, refs)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Evaluates a `when` condition.
pub fn condition(expr: &str, ctx: &Context, refs: &mut Vec<String>) -> Result<bool, String> {
    let e = expr.trim();
    if let Some(inner) = e.strip_prefix("not ") {
        return condition(inner, ctx, refs).map(|b| !b);
    }
    for (op, equal) in [("==", true), ("!=", false)] {
        if let Some((left, right)) = e.split_once(op) {
            let right = right.trim();
            let lit = right
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .ok_or_else(|| format!("{expr:?}: the right side must be a \"quoted\" text"))?;
            let name = left.trim();
            refs.push(name.to_owned());
            let value = ctx.lookup(name)?;
            return Ok((value == lit) == equal);
        }
    }
    if e.is_empty() || e.contains(char::is_whitespace) {
        return Err(format!(
            "{expr:?}: expected NAME, not NAME, NAME == \"text\" or NAME != \"text\""
        ));
    }
    refs.push(e.to_owned());
    let v = ctx.lookup(e)?;
    Ok(!(v.is_empty() || v == "false" || v == "0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Plan, String> {
        Plan::parse(text, Path::new("plan.toml")).map_err(|e| e.message)
    }

    #[test]
    fn a_plain_plan_parses() {
        let p = parse(
            r#"
[vars]
app = "demo"

[[task]]
name = "config"
op = "file.write"
path = "/etc/{{ app }}.conf"
content = "port = 8080\n"
mode = 0o644
notify = ["reload app"]

[[task]]
op = "exec"
shell = "echo {{ facts.os_id }}"
when = 'facts.os_id == "debian"'
limits = { memory = "64M", timeout = "5s" }

[[handler]]
name = "reload app"
op = "exec"
argv = ["true"]
"#,
        )
        .unwrap();
        assert_eq!(p.tasks.len(), 2);
        assert_eq!(p.tasks[0].args["mode"], "0644");
        assert_eq!(p.tasks[1].name, "exec (line 13)");
        assert!(p.needs_facts);
        assert_eq!(p.tasks[1].limits.memory, Some(64 << 20));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let typo = "[[task]]\nop = \"file.wirte\"\npath = \"/x\"\n";
        assert_eq!(
            parse(typo).unwrap_err().split(" (known").next().unwrap(),
            "plan.toml:2: unknown op \"file.wirte\""
        );
        let missing = "[vars]\na = \"1\"\n\n[[task]]\nop = \"dir.ensure\"\nmode = \"0755\"\n";
        let e = parse(missing).unwrap_err();
        assert!(
            e.starts_with("plan.toml:4: dir.ensure args: missing field `path`"),
            "{e}"
        );
        let template = "[[task]]\nop = \"dir.ensure\"\npath = \"/srv/{{ ap }}\"\n";
        let e = parse(template).unwrap_err();
        assert!(e.starts_with("plan.toml:1: {{ ap }}: no such var"), "{e}");
        let fact = "[[task]]\nop = \"exec\"\nshell = \"{{ facts.oss }}\"\n";
        assert!(parse(fact).unwrap_err().contains("facts have no \"oss\""));
        let syntax = "[[task]]\nop = \"exec\"\nshell = \"x\n";
        assert!(parse(syntax).unwrap_err().starts_with("plan.toml:3: "));
        let handler = "[[task]]\nop = \"exec\"\nshell = \"x\"\nnotify = [\"nope\"]\n";
        assert!(
            parse(handler)
                .unwrap_err()
                .contains("no handler named \"nope\"")
        );
        let unknown_arg = "[[task]]\nop = \"file.absent\"\npath = \"/x\"\nrecursiv = true\n";
        assert!(
            parse(unknown_arg)
                .unwrap_err()
                .contains("unknown field `recursiv`")
        );
    }

    #[test]
    fn templates_and_conditions() {
        let mut vars = BTreeMap::new();
        vars.insert("app".to_owned(), "demo".to_owned());
        let mut host = BTreeMap::new();
        host.insert("port".to_owned(), "81".to_owned());
        let facts = serde_json::json!({"os_id": "debian", "cpus": 2});
        let ctx = Context::for_host(&vars, "web1", &host, Some(&facts));
        let mut refs = Vec::new();
        assert_eq!(
            render(
                "{{app}}:{{ host.port }}@{{ host.name }}/{{ facts.cpus }}",
                &ctx,
                &mut refs
            )
            .unwrap(),
            "demo:81@web1/2"
        );
        assert!(condition("facts.os_id == \"debian\"", &ctx, &mut refs).unwrap());
        assert!(!condition("not app", &ctx, &mut refs).unwrap());
        assert!(condition("facts.os_id != \"alpine\"", &ctx, &mut refs).unwrap());
        assert!(render("{{ nope }}", &ctx, &mut refs).is_err());
        assert!(render("{{ app", &ctx, &mut refs).is_err());
    }
}
