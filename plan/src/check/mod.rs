//! A plan checked before any host is contacted: every template and expression compiles,
//! handlers exist, secrets go only where they may, facts are quoted in command lines, each
//! op's args are what its runner accepts; then, with the vars the plan and the inventory
//! give ([`Plan::verify`]), every template renders as far as it can without a host: an
//! undefined var, a condition that is not a boolean or a template that does not end is
//! refused with its line.

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::{Object, ObjectRepr, Value, ValueKind};

mod extra;
mod rules;

pub use extra::extra_vars;
use rules::{check_task, secret_allowed, unknown_fact};

use crate::data::{Data, DataMap, is_template};
use crate::jinja::{Engine, bare_condition};
use crate::read::task_error;
use crate::scope::{HostScope, Layer};
use crate::task::{Flow, Task};
use crate::walk::at_site;
use crate::{Content, Located, Plan, PlanError, PlanErrorKind, Walk};

/// One template-bearing part of a task: where it is, and what it is.
struct Part<'a> {
    /// `args.KEY`, `content`, `stdin`, `when`, `loop`, `vars.NAME`, ...
    at: String,
    piece: Piece<'a>,
}

#[derive(Clone, Copy)]
enum Piece<'a> {
    /// Template text.
    Text(&'a str),
    /// A condition (an expression that must yield a boolean).
    Condition(&'a str),
    /// Data whose texts may be templates (or one `{{ expression }}`, kept as its value).
    Data(&'a Data),
}

fn flow_parts<'a>(flow: &'a Flow, out: &mut Vec<Part<'a>>) {
    let conditions = [
        ("when", &flow.when),
        ("changed_when", &flow.changed_when),
        ("failed_when", &flow.failed_when),
        ("until", &flow.until),
    ];
    for (key, list) in conditions {
        for c in list {
            out.push(Part {
                at: key.to_owned(),
                piece: Piece::Condition(c),
            });
        }
    }
    for (k, v) in &flow.vars {
        out.push(Part {
            at: format!("vars.{k}"),
            piece: Piece::Data(v),
        });
    }
    if let Some(l) = &flow.loop_over {
        out.push(Part {
            at: "loop".to_owned(),
            piece: Piece::Data(l),
        });
    }
    for (key, t) in [
        ("loop_control.label", &flow.loop_label),
        ("creates", &flow.creates),
        ("removes", &flow.removes),
        ("delegate_to", &flow.delegate_to),
        ("become_user", &flow.become_user),
    ] {
        if let Some(t) = t {
            out.push(Part {
                at: key.to_owned(),
                piece: Piece::Text(t),
            });
        }
    }
}

/// Every template-bearing part of a task or block.
fn parts_of(w: Walk<'_>) -> Vec<Part<'_>> {
    match w {
        Walk::Task(t) => task_parts(t),
        Walk::Block(b) => {
            let mut parts = Vec::new();
            flow_parts(&b.flow, &mut parts);
            parts
        }
    }
}

fn task_parts(t: &Task) -> Vec<Part<'_>> {
    let mut out = Vec::new();
    for (k, v) in &t.args {
        out.push(Part {
            at: format!("args.{k}"),
            piece: Piece::Data(v),
        });
    }
    if let Some(Content::Inline(c)) = &t.content {
        out.push(Part {
            at: "content".to_owned(),
            piece: Piece::Text(c),
        });
    }
    if let Some(i) = &t.stdin {
        out.push(Part {
            at: "stdin".to_owned(),
            piece: Piece::Text(i),
        });
    }
    flow_parts(&t.flow, &mut out);
    out
}

/// Every text inside data.
pub(super) fn texts<'a>(d: &'a Data, out: &mut Vec<&'a str>) {
    match d {
        Data::Str(s) => out.push(s),
        Data::List(items) => items.iter().for_each(|i| texts(i, out)),
        Data::Map(m) => m.values().for_each(|v| texts(v, out)),
        _ => {}
    }
}

/// The template sources of a part: each as template text (conditions as `{{ expr }}`).
fn sources(piece: Piece<'_>) -> Vec<String> {
    match piece {
        Piece::Text(t) => vec![t.to_owned()],
        Piece::Condition(c) => vec![format!("{{{{ {} }}}}", bare_condition(c))],
        Piece::Data(d) => {
            let mut all = Vec::new();
            texts(d, &mut all);
            all.into_iter()
                .filter(|s| is_template(s))
                .map(str::to_owned)
                .collect()
        }
    }
}

fn compile(engine: &mut Engine, piece: Piece<'_>) -> Result<(), String> {
    match piece {
        Piece::Text(t) if is_template(t) => engine.add(t),
        Piece::Text(_) => Ok(()),
        Piece::Condition(c) => engine.add_expr(bare_condition(c)),
        Piece::Data(d) => engine.add_data(d),
    }
}

impl Plan {
    /// The folder the plan's files are relative to.
    pub(crate) fn root(&self) -> std::path::PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => std::path::PathBuf::from("."),
        }
    }

    /// The plan's engine: every template and expression compiled, files read from the
    /// plan's directory.
    pub fn engine(&self) -> Result<Engine, PlanError> {
        self.build_engine()
            .map_err(|(line, kind)| PlanError::at(&self.path, line, kind))
    }

    fn build_engine(&self) -> Result<Engine, Located> {
        let mut engine = Engine::new(Arc::new(self.templates.clone()));
        let template = |line: usize, at: &str, e: String| {
            (line, PlanErrorKind::Template(format!("{at}: {e}")))
        };
        for (k, v) in self.vars.iter().chain(&self.extra_vars) {
            engine
                .add_data(v)
                .map_err(|e| template(1, &format!("vars.{k}"), e))?;
        }
        let root = self.root();
        for w in self.walk() {
            for p in parts_of(w) {
                compile(&mut engine, p.piece).map_err(|e| {
                    let (_, kind) = template(0, &p.at, e);
                    at_site(&root, w.site(), kind)
                })?;
            }
        }
        Ok(engine)
    }

    /// The checks that need no host and no inventory (run by [`Plan::parse`]).
    pub(crate) fn check(&mut self) -> Result<(), Located> {
        let root = self.root();
        for t in self.all_tasks() {
            for n in &t.notify {
                if !self.handlers.iter().any(|h| &h.name == n) {
                    let (_, kind) = task_error(0, format!("notify: no handler named {n:?}"));
                    return Err(at_site(&root, Walk::Task(t).site(), kind));
                }
            }
        }
        let engine = self.build_engine()?;
        let mut secret_refs = Vec::new();
        let mut needs_facts = false;
        let mut needs_net = false;
        for w in self.walk() {
            let (_, line) = w.site();
            let parts = parts_of(w);
            let place = |kind| at_site(&root, w.site(), kind);
            for p in &parts {
                for source in sources(p.piece) {
                    let read = engine.reads_nested(&source);
                    needs_facts |= read.iter().any(|r| {
                        r == "facts" || r.starts_with("facts.") || crate::ansible::facts::is_fact(r)
                    });
                    needs_net |= read.iter().any(|r| crate::ansible::facts::is_net_fact(r));
                    unknown_fact(&read)
                        .map_err(|e| place(PlanErrorKind::Template(format!("{}: {e}", p.at))))?;
                    for name in read.iter().filter_map(|r| r.strip_prefix("secret.")) {
                        secret_refs.push((name.to_owned(), line));
                    }
                    if read
                        .iter()
                        .any(|r| r == "secret" || r.starts_with("secret."))
                    {
                        secret_allowed(w, &p.at)
                            .map_err(|what| place(PlanErrorKind::Secret(what)))?;
                    }
                }
            }
            if let Walk::Task(t) = w {
                check_task(t).map_err(place)?;
            }
        }
        for v in self.vars.values() {
            let mut all = Vec::new();
            texts(v, &mut all);
            for s in all {
                let read = engine.reads(s, false);
                needs_facts |= read
                    .iter()
                    .any(|r| r == "facts" || crate::ansible::facts::is_fact(r));
                needs_net |= read.iter().any(|r| crate::ansible::facts::is_net_fact(r));
            }
        }
        self.needs_facts = needs_facts || needs_net;
        self.needs_net = needs_net;
        self.secret_refs = secret_refs;
        Ok(())
    }

    /// Renders every template and condition as far as the plan's vars, `inventory` var
    /// names and extra vars allow, without a host: what only a host can tell (its facts,
    /// registered results, the loop's item) stands for anything. Refused here: a var no
    /// one defines, a condition whose value is known and is not a boolean, a template that
    /// runs out of fuel or renders too much.
    pub fn verify(&self, inventory: &[String]) -> Result<(), PlanError> {
        let engine = Arc::new(self.engine()?);
        let unknown = Value::from_object(Unknown);
        let mut anything = Layer::default();
        let registered = self.walk().into_iter().filter_map(|w| match w {
            Walk::Task(t) => Some(t),
            Walk::Block(_) => None,
        });
        for t in registered {
            if let Some(r) = &t.flow.register {
                anything.set_value(r, unknown.clone());
            }
            if t.op == "set_fact" {
                for k in t.args.keys() {
                    anything.set_value(k, unknown.clone());
                }
            }
        }
        for name in inventory {
            anything.set_value(name, unknown.clone());
        }
        let mut magic = IndexMap::new();
        for name in MAGIC {
            magic.insert((*name).to_owned(), unknown.clone());
        }
        for name in crate::ansible::facts::NAMES
            .iter()
            .chain(crate::ansible::net::NAMES)
        {
            magic.insert(format!("ansible_{name}"), unknown.clone());
        }
        let scope = HostScope::new(
            Arc::clone(&engine),
            vec![
                Arc::new(Layer::new(&self.defaults)),
                Arc::new(anything),
                Arc::new(Layer::new(&self.vars)),
            ],
            Arc::new(Layer::new(&self.extra_vars)),
            magic,
        );
        let trial = Trial {
            engine: &engine,
            scope: &scope,
            path: &self.path,
        };
        trial.nodes(&self.tasks, &DataMap::new())?;
        for h in &self.handlers {
            trial.task(h, &DataMap::new())?;
        }
        Ok(())
    }
}

/// The plan rendered with what only a host can tell standing for anything.
struct Trial<'a> {
    engine: &'a Engine,
    scope: &'a Arc<HostScope>,
    path: &'a std::path::Path,
}

impl Trial<'_> {
    fn nodes(&self, nodes: &[crate::Node], around: &DataMap) -> Result<(), PlanError> {
        for n in nodes {
            match n {
                crate::Node::Task(t) => self.task(t, around)?,
                crate::Node::Block(b) => {
                    let mut parts = Vec::new();
                    flow_parts(&b.flow, &mut parts);
                    self.parts(Walk::Block(b).site(), parts, &b.flow, around)?;
                    let mut inner = around.clone();
                    inner.extend(b.flow.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
                    for list in [&b.body, &b.rescue, &b.always] {
                        self.nodes(list, &inner)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn task(&self, t: &Task, around: &DataMap) -> Result<(), PlanError> {
        self.parts(Walk::Task(t).site(), task_parts(t), &t.flow, around)
    }

    fn parts(
        &self,
        site: (Option<&str>, usize),
        parts: Vec<Part<'_>>,
        flow: &Flow,
        around: &DataMap,
    ) -> Result<(), PlanError> {
        let unknown = Value::from_object(Unknown);
        let mut item = Layer::default();
        item.set_value(&flow.loop_var, unknown.clone());
        if let Some(i) = &flow.index_var {
            item.set_value(i, unknown.clone());
        }
        item.set_value("ansible_loop", unknown);
        let mut vars = around.clone();
        vars.extend(flow.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        let frame = self
            .scope
            .frame(Arc::new(Layer::new(&vars)), Arc::new(item));
        let root = self.path.parent().unwrap_or(std::path::Path::new("."));
        let file = match site.0 {
            Some(f) => root.join(f),
            None => self.path.to_owned(),
        };
        for p in parts {
            let place = format!("{}:{}: {}", file.display(), site.1, p.at);
            crate::jinja::at(&place, || trial(self.engine, p.piece, &frame)).map_err(|e| {
                let what = format!("{}: {e}", p.at);
                let (line, kind) = at_site(root, site, PlanErrorKind::Template(what));
                PlanError::at(self.path, line, kind)
            })?;
        }
        Ok(())
    }
}

/// Names every host has that are not vars: what a host tells, and who it is.
pub const MAGIC: &[&str] = &[
    "facts",
    "host",
    "secret",
    "inventory_hostname",
    "inventory_hostname_short",
    "group_names",
    "groups",
    "hostvars",
    "ansible_check_mode",
    "ansible_diff_mode",
    "ansible_facts",
    "play_hosts",
    "ansible_play_hosts",
    "ansible_play_batch",
    "playbook_dir",
];

/// One part rendered in the trial: only the errors a host could not change are errors.
fn trial(engine: &Engine, piece: Piece<'_>, frame: &Value) -> Result<(), String> {
    let fatal = |e: String| {
        let host_could_change = !(e.contains("is undefined")
            || e.contains("undefined value")
            || e.contains("ran past")
            || e.contains("renders to more than")
            || e.contains("cycle")
            || e.contains("recursion limit"));
        if host_could_change { Ok(()) } else { Err(e) }
    };
    match piece {
        Piece::Text(t) => engine.render(t, frame).map(drop).or_else(fatal),
        Piece::Data(d) => engine.data(d, frame).map(drop).or_else(fatal),
        Piece::Condition(c) => {
            let expr = bare_condition(c);
            match engine.eval(expr, frame) {
                Ok(v) if v.kind() == ValueKind::Bool => Ok(()),
                Ok(v) if v.downcast_object_ref::<Unknown>().is_some() => Ok(()),
                Ok(v) => Err(crate::jinja::not_boolean(expr, &v)),
                Err(e) => fatal(e),
            }
        }
    }
}

/// What only a host can tell, in the trial: any attribute of it is another unknown.
#[derive(Debug)]
struct Unknown;

impl Object for Unknown {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        Some(Value::from_object(Unknown))
    }

    fn render(self: &Arc<Self>, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}
