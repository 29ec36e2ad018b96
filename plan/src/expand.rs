//! A task made concrete for one host: its loop's items, its conditions, its args rendered.
//! The controller runs what this gives; [`Plan::preview`] shows it without running anything
//! (what `check` tests compare, and what an operator reads before a run).

use std::sync::Arc;

use indexmap::IndexMap;

use minijinja::value::Value;

use crate::data::{Data, DataMap};
use crate::jinja::{Engine, python_repr};
use crate::scope::{HostScope, Layer};
use crate::task::{Node, Task};
use crate::{Content, Plan};

/// One loop item: its label in the output, and the vars it sets (`item`, `ansible_loop`).
#[derive(Debug)]
pub struct Item {
    /// What the output calls it (`None` for a task that does not loop).
    pub label: Option<String>,
    /// The vars it sets.
    pub vars: Arc<Layer>,
}

/// The items a task runs for: its loop's, each with its vars; one item with no label when
/// it does not loop. A map loops as `{key, value}` items.
pub fn loop_items(
    engine: &Engine,
    scope: &Arc<HostScope>,
    task: &Task,
    task_vars: &Arc<Layer>,
) -> Result<Vec<Item>, String> {
    let Some(over) = &task.flow.loop_over else {
        return Ok(vec![Item {
            label: None,
            vars: Arc::new(Layer::default()),
        }]);
    };
    let frame = scope.frame(Arc::clone(task_vars), Arc::new(Layer::default()));
    let list = match engine.data(over, &frame)? {
        Data::List(items) => items,
        Data::Map(m) => m
            .into_iter()
            .map(|(k, v)| {
                let pair = [("key".to_owned(), Data::Str(k)), ("value".to_owned(), v)];
                Data::Map(pair.into_iter().collect())
            })
            .collect(),
        Data::Null => Vec::new(),
        other => {
            return Err(format!(
                "must be a list (or a map), not {}",
                python_repr(&other.to_value())
            ));
        }
    };
    let length = list.len();
    let mut items = Vec::with_capacity(length);
    for (i, value) in list.into_iter().enumerate() {
        let mut layer = Layer::default();
        let value = value.to_value();
        layer.set_value(&task.flow.loop_var, value.clone());
        if let Some(index) = &task.flow.index_var {
            layer.set_value(index, Value::from(i));
        }
        let about = [
            ("index", Value::from(i + 1)),
            ("index0", Value::from(i)),
            ("first", Value::from(i == 0)),
            ("last", Value::from(i + 1 == length)),
            ("length", Value::from(length)),
        ];
        layer.set_value("ansible_loop", Value::from_iter(about));
        let vars = Arc::new(layer);
        let label = match &task.flow.loop_label {
            Some(l) => {
                let frame = scope.frame(Arc::clone(task_vars), Arc::clone(&vars));
                engine.render(l, &frame)?
            }
            None => python_repr(&value),
        };
        items.push(Item {
            label: Some(label),
            vars,
        });
    }
    Ok(items)
}

/// The first of `conditions` that does not hold, or `None` when all do.
pub fn first_false<'c>(
    engine: &Engine,
    conditions: impl IntoIterator<Item = &'c String>,
    frame: &Value,
) -> Result<Option<&'c str>, String> {
    for c in conditions {
        if !engine.condition(c, frame)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// A task's vars with those of the blocks around it (the task's own win).
pub fn task_vars(around: &DataMap, task: &Task) -> Arc<Layer> {
    let mut vars = around.clone();
    vars.extend(task.flow.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    Arc::new(Layer::new(&vars))
}

impl Plan {
    /// What each task would do on the host `scope` is for, one line per task (or loop
    /// item), without running anything: `NAME [ITEM]: OP ARGS`, or why it is skipped.
    /// Results that only a run gives (`register`) read as undefined; a block's `rescue` and
    /// `always` are shown after its body.
    pub fn preview(&self, engine: &Engine, scope: &Arc<HostScope>) -> Vec<String> {
        let mut out = Vec::new();
        preview_nodes(engine, scope, &self.tasks, &Around::default(), &mut out);
        out
    }
}

#[derive(Default, Clone)]
struct Around {
    when: Vec<String>,
    vars: DataMap,
}

fn preview_nodes(
    engine: &Engine,
    scope: &Arc<HostScope>,
    nodes: &[Node],
    around: &Around,
    out: &mut Vec<String>,
) {
    for n in nodes {
        match n {
            Node::Task(t) => preview_task(engine, scope, t, around, out),
            Node::Block(b) => {
                let mut inner = around.clone();
                inner.when.extend(b.flow.when.iter().cloned());
                inner
                    .vars
                    .extend(b.flow.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
                for (part, list) in [
                    ("block", &b.body),
                    ("rescue", &b.rescue),
                    ("always", &b.always),
                ] {
                    if !list.is_empty() {
                        out.push(format!("{part}:"));
                        preview_nodes(engine, scope, list, &inner, out);
                    }
                }
            }
        }
    }
}

fn preview_task(
    engine: &Engine,
    scope: &Arc<HostScope>,
    t: &Task,
    around: &Around,
    out: &mut Vec<String>,
) {
    let vars = task_vars(&around.vars, t);
    let items = match loop_items(engine, scope, t, &vars) {
        Ok(items) => items,
        Err(e) => return out.push(format!("{}: loop: {e}", t.name)),
    };
    for item in items {
        let name = match &item.label {
            Some(l) => format!("{} [{l}]", t.name),
            None => t.name.clone(),
        };
        let frame = scope.frame(Arc::clone(&vars), Arc::clone(&item.vars));
        match first_false(engine, around.when.iter().chain(&t.flow.when), &frame) {
            Ok(None) => {}
            Ok(Some(c)) => {
                out.push(format!("{name}: skipped (when: {c})"));
                continue;
            }
            Err(e) => {
                out.push(format!("{name}: failed (when: {e})"));
                continue;
            }
        }
        let args = engine.data(&Data::Map(t.args.clone()), &frame);
        let content = match &t.content {
            Some(Content::Inline(c)) => Some(engine.render(c, &frame)),
            _ => None,
        };
        let line = match (args, content) {
            (Err(e), _) | (_, Some(Err(e))) => format!("{name}: failed ({e})"),
            (Ok(args), content) => {
                let args = serde_json::to_string(&args).unwrap_or_default();
                match content {
                    Some(Ok(c)) => format!("{name}: {} {args} content={c:?}", t.op),
                    _ => format!("{name}: {} {args}", t.op),
                }
            }
        };
        out.push(line);
    }
}

/// A plan made ready for a run once, for every host: its templates compiled, and the vars
/// every host shares.
#[derive(Debug)]
pub struct Compiled {
    /// The engine, every template of the plan compiled.
    pub engine: Arc<Engine>,
    defaults: Arc<Layer>,
    plan_vars: Arc<Layer>,
    extra: Arc<Layer>,
    fleet: FleetValues,
}

/// Who is in the inventory and in the run: what `groups`, `group_names`, `hostvars` and
/// `play_hosts` say.
#[derive(Debug, Default)]
pub struct Fleet {
    /// Each group with its hosts, `all` and `ungrouped` among them.
    pub groups: Vec<(String, Vec<String>)>,
    /// Each host's groups (not `all` or `ungrouped`).
    pub member_of: std::collections::HashMap<String, Vec<String>>,
    /// The run's hosts with their inventory vars.
    pub hostvars: Vec<(String, DataMap)>,
    /// The run's hosts, in order.
    pub play_hosts: Vec<String>,
}

/// [`Fleet`] made into template values once for every host.
#[derive(Debug, Default)]
struct FleetValues {
    groups: Value,
    hostvars: Value,
    play_hosts: Value,
    member_of: std::collections::HashMap<String, Value>,
}

/// Who a host is, for its templates.
#[derive(Debug, Clone, Copy)]
pub struct HostInfo<'a> {
    /// Its name in the inventory.
    pub name: &'a str,
    /// Its inventory vars.
    pub vars: &'a DataMap,
    /// What it reported (`facts`), when read.
    pub facts: Option<&'a Data>,
    /// `--check` and `--diff`.
    pub check: bool,
    /// `--diff`.
    pub diff: bool,
}

impl Compiled {
    /// Compiles `plan`'s templates.
    pub fn new(plan: &Plan) -> Result<Compiled, crate::PlanError> {
        Ok(Compiled {
            engine: Arc::new(plan.engine()?),
            defaults: Arc::new(Layer::new(&plan.defaults)),
            plan_vars: Arc::new(Layer::new(&plan.vars)),
            extra: Arc::new(Layer::new(&plan.extra_vars)),
            fleet: FleetValues::default(),
        })
    }

    /// With the inventory's groups and the run's hosts, which templates read as `groups`,
    /// `group_names`, `hostvars` and `play_hosts`.
    pub fn with_fleet(mut self, fleet: Fleet) -> Compiled {
        let names = |hosts: &[String]| Value::from(hosts.to_vec());
        let groups: IndexMap<String, Value> = fleet
            .groups
            .iter()
            .map(|(g, hosts)| (g.clone(), names(hosts)))
            .collect();
        let hostvars: IndexMap<String, Value> = fleet
            .hostvars
            .into_iter()
            .map(|(h, mut vars)| {
                vars.insert("inventory_hostname".into(), Data::Str(h.clone()));
                (h, Data::Map(vars).to_value())
            })
            .collect();
        self.fleet = FleetValues {
            groups: Value::from_iter(groups),
            hostvars: Value::from_iter(hostvars),
            play_hosts: names(&fleet.play_hosts),
            member_of: fleet
                .member_of
                .into_iter()
                .map(|(h, mut g)| {
                    g.sort();
                    (h, Value::from(g))
                })
                .collect(),
        };
        self
    }

    /// The vars one host's templates see: its inventory vars, the plan's, extra vars; its
    /// facts, name and the plan's secrets.
    pub fn host_scope(&self, plan: &Plan, host: HostInfo<'_>) -> Arc<HostScope> {
        let mut about = host.vars.clone();
        about.insert("name".into(), Data::Str(host.name.to_owned()));
        let mut magic = IndexMap::new();
        magic.insert(
            "facts".to_owned(),
            host.facts.map(Data::to_value).unwrap_or_default(),
        );
        magic.insert("host".to_owned(), Data::Map(about).to_value());
        for (k, v) in host
            .facts
            .map(crate::ansible::facts::of)
            .unwrap_or_default()
        {
            magic.insert(k, v.to_value());
        }
        let secrets: DataMap = plan
            .secrets
            .names()
            .into_iter()
            .filter_map(|n| Some((n.to_owned(), Data::Str(plan.secrets.get(n)?.to_owned()))))
            .collect();
        magic.insert("secret".to_owned(), Data::Map(secrets).to_value());
        magic.insert("inventory_hostname".to_owned(), Value::from(host.name));
        let short = host.name.split('.').next().unwrap_or_default();
        magic.insert("inventory_hostname_short".to_owned(), Value::from(short));
        let fleet = &self.fleet;
        if !fleet.groups.is_undefined() {
            magic.insert("groups".to_owned(), fleet.groups.clone());
            magic.insert("hostvars".to_owned(), fleet.hostvars.clone());
            for k in ["play_hosts", "ansible_play_hosts", "ansible_play_batch"] {
                magic.insert(k.to_owned(), fleet.play_hosts.clone());
            }
            let mine = fleet.member_of.get(host.name).cloned();
            magic.insert(
                "group_names".to_owned(),
                mine.unwrap_or_else(|| Value::from(Vec::<String>::new())),
            );
        }
        magic.insert("ansible_check_mode".to_owned(), Value::from(host.check));
        magic.insert("ansible_diff_mode".to_owned(), Value::from(host.diff));
        let dir = plan.path.parent().map(|p| p.display().to_string());
        magic.insert(
            "playbook_dir".to_owned(),
            Value::from(dir.unwrap_or_default()),
        );
        HostScope::new(
            Arc::clone(&self.engine),
            vec![
                Arc::clone(&self.defaults),
                Arc::new(Layer::new(host.vars)),
                Arc::clone(&self.plan_vars),
            ],
            Arc::clone(&self.extra),
            magic,
        )
    }
}
