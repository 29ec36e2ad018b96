//! What one host's templates see: its vars in precedence layers, its facts, its registered
//! results and `set_fact`s, and the loop's item. A var whose value is a template is rendered
//! when it is read (so it sees the host it is read for), and a var that reads itself, through
//! any chain of others, is an error, not a hang.
//!
//! Precedence, lowest first: role defaults, inventory group vars, inventory host vars, plan
//! vars, role vars, task and block vars, registered results and `set_fact`, the loop's item,
//! extra vars (`-e`).

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Object, ObjectRepr, Value};

use crate::data::{Data, DataMap};
use crate::jinja::Engine;

/// One layer of vars, each converted for the engine once (a var that is a template is kept
/// as data, rendered when read).
#[derive(Debug, Default)]
pub struct Layer {
    slots: IndexMap<String, Slot>,
}

#[derive(Debug)]
enum Slot {
    Ready(Value),
    Template(Data),
}

impl Layer {
    /// A layer of `vars`.
    pub fn new(vars: &DataMap) -> Layer {
        let mut layer = Layer::default();
        for (k, v) in vars {
            layer.set(k, v.clone());
        }
        layer
    }

    /// Sets one var.
    pub fn set(&mut self, name: &str, value: Data) {
        let slot = if value.has_template() {
            Slot::Template(value)
        } else {
            Slot::Ready(value.to_value())
        };
        self.slots.insert(name.to_owned(), slot);
    }

    /// Sets one var to a value the engine made (a registered result).
    pub fn set_value(&mut self, name: &str, value: Value) {
        self.slots.insert(name.to_owned(), Slot::Ready(value));
    }

    fn names(&self) -> impl Iterator<Item = &String> {
        self.slots.keys()
    }
}

/// The vars of one host for one run.
#[derive(Debug)]
pub struct HostScope {
    engine: Arc<Engine>,
    /// Lowest precedence first; shared between hosts where they are the same.
    layers: Vec<Arc<Layer>>,
    /// `set_fact` and registered results, which grow as the host's tasks run.
    runtime: Mutex<Layer>,
    /// Extra vars: above everything.
    extra: Arc<Layer>,
    /// Names that are not vars: `inventory_hostname`, `facts`, `host`, `secret`, ...
    magic: IndexMap<String, Value>,
}

impl HostScope {
    /// A scope of `layers` (lowest first) under `extra`, with `magic` names.
    pub fn new(
        engine: Arc<Engine>,
        layers: Vec<Arc<Layer>>,
        extra: Arc<Layer>,
        magic: IndexMap<String, Value>,
    ) -> Arc<HostScope> {
        Arc::new(HostScope {
            engine,
            layers,
            runtime: Mutex::new(Layer::default()),
            extra,
            magic,
        })
    }

    /// The engine the scope renders with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Sets a var for the rest of the host's run (`set_fact`, a value already rendered).
    pub fn set_fact(&self, name: &str, value: Data) {
        if let Ok(mut r) = self.runtime.lock() {
            r.set_value(name, value.to_value());
        }
    }

    /// Records a task's result under `name` (`register`).
    pub fn register(&self, name: &str, value: Value) {
        if let Ok(mut r) = self.runtime.lock() {
            r.set_value(name, value);
        }
    }

    /// A frame to render in: `task` vars over the host's vars (under registered results),
    /// and the loop's `item` vars over those (under extra vars).
    pub fn frame(self: &Arc<Self>, task: Arc<Layer>, item: Arc<Layer>) -> Value {
        Value::from_object(Frame {
            scope: Arc::clone(self),
            task,
            item,
        })
    }
}

/// One render's view: a host's scope and the locals of the task being rendered.
#[derive(Debug)]
struct Frame {
    scope: Arc<HostScope>,
    task: Arc<Layer>,
    item: Arc<Layer>,
}

thread_local! {
    /// The vars being rendered on this thread, innermost last: a var met again is a cycle.
    static RENDERING: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

impl Frame {
    fn slot_value(self: &Arc<Self>, name: &str, slot: &Slot) -> Value {
        match slot {
            Slot::Ready(v) => v.clone(),
            Slot::Template(data) => self.render_var(name, data),
        }
    }

    /// A var that is a template, rendered now; a cycle is an error value.
    fn render_var(self: &Arc<Self>, name: &str, data: &Data) -> Value {
        let cycle = RENDERING.with(|r| {
            let mut stack = r.borrow_mut();
            if stack.iter().any(|n| n == name) {
                let mut chain = stack.clone();
                chain.push(name.to_owned());
                return Some(chain.join(" -> "));
            }
            stack.push(name.to_owned());
            None
        });
        if let Some(chain) = cycle {
            return Value::from(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("vars refer to each other in a cycle: {chain}"),
            ));
        }
        let ctx = Value::from_dyn_object(Arc::clone(self));
        let rendered = self.scope.engine.data(data, &ctx);
        RENDERING.with(|r| r.borrow_mut().pop());
        match rendered {
            Ok(d) => d.to_value(),
            Err(e) => Value::from(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("var {name}: {e}"),
            )),
        }
    }

    fn lookup(self: &Arc<Self>, name: &str) -> Option<Value> {
        let s = &self.scope;
        for layer in [&s.extra, &self.item] {
            if let Some(slot) = layer.slots.get(name) {
                return Some(self.slot_value(name, slot));
            }
        }
        let runtime = s.runtime.lock().ok().and_then(|r| {
            r.slots.get(name).map(|slot| match slot {
                Slot::Ready(v) => Ok(v.clone()),
                Slot::Template(d) => Err(d.clone()),
            })
        });
        match runtime {
            Some(Ok(v)) => return Some(v),
            Some(Err(d)) => return Some(self.render_var(name, &d)),
            None => {}
        }
        if let Some(slot) = self.task.slots.get(name) {
            return Some(self.slot_value(name, slot));
        }
        for layer in s.layers.iter().rev() {
            if let Some(slot) = layer.slots.get(name) {
                return Some(self.slot_value(name, slot));
            }
        }
        match name {
            "vars" => Some(Value::from_dyn_object(Arc::clone(self))),
            _ => s.magic.get(name).cloned(),
        }
    }
}

impl Object for Frame {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.lookup(key.as_str()?)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let s = &self.scope;
        let mut names: Vec<Value> = Vec::new();
        let runtime: Vec<String> = s
            .runtime
            .lock()
            .map(|r| r.names().cloned().collect())
            .unwrap_or_default();
        let all = s
            .layers
            .iter()
            .flat_map(|l| l.names().cloned().collect::<Vec<_>>())
            .chain(self.task.names().cloned())
            .chain(runtime)
            .chain(self.item.names().cloned())
            .chain(s.extra.names().cloned());
        for n in all {
            let v = Value::from(n);
            if !names.contains(&v) {
                names.push(v);
            }
        }
        Enumerator::Values(names)
    }
}
