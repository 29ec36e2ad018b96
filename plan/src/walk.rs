//! Every task of a plan, through its blocks, in the order they are written.

use crate::Plan;
use crate::task::{Block, Node, Task};

/// What a walk over a plan meets.
#[derive(Debug, Clone, Copy)]
pub enum Walk<'a> {
    /// A task (or handler).
    Task(&'a Task),
    /// A block (its tasks follow it).
    Block(&'a Block),
}

impl Walk<'_> {
    /// Where it is: its file (when not the plan itself) and line.
    pub fn site(&self) -> (Option<&str>, usize) {
        match self {
            Walk::Task(t) => (t.file.as_deref(), t.line),
            Walk::Block(b) => (b.file.as_deref(), b.line),
        }
    }
}

/// An error at `site`: at its line when in the plan itself; else in its file, at its line
/// there (the plan's own line is not known then: 0).
pub(crate) fn at_site(
    root: &std::path::Path,
    (file, line): (Option<&str>, usize),
    kind: crate::PlanErrorKind,
) -> crate::Located {
    match file {
        None => (line, kind),
        Some(f) => (
            0,
            crate::PlanErrorKind::Inside {
                path: root.join(f),
                line,
                error: Box::new(kind),
            },
        ),
    }
}

fn visit<'a>(nodes: &'a [Node], out: &mut Vec<Walk<'a>>) {
    for n in nodes {
        match n {
            Node::Task(t) => out.push(Walk::Task(t)),
            Node::Block(b) => {
                out.push(Walk::Block(b));
                visit(&b.body, out);
                visit(&b.rescue, out);
                visit(&b.always, out);
            }
        }
    }
}

fn visit_mut(nodes: &mut [Node], f: &mut dyn FnMut(&mut Task)) {
    for n in nodes {
        match n {
            Node::Task(t) => f(t),
            Node::Block(b) => {
                visit_mut(&mut b.body, f);
                visit_mut(&mut b.rescue, f);
                visit_mut(&mut b.always, f);
            }
        }
    }
}

impl Plan {
    /// Every task and block, depth first in the order written, then the handlers.
    pub fn walk(&self) -> Vec<Walk<'_>> {
        let mut out = Vec::new();
        visit(&self.tasks, &mut out);
        out.extend(self.handlers.iter().map(Walk::Task));
        out
    }

    /// Every task (not blocks), then the handlers.
    pub fn all_tasks(&self) -> Vec<&Task> {
        self.walk()
            .into_iter()
            .filter_map(|w| match w {
                Walk::Task(t) => Some(t),
                Walk::Block(_) => None,
            })
            .collect()
    }

    /// Calls `f` on every task and handler.
    pub fn each_task_mut(&mut self, f: &mut dyn FnMut(&mut Task)) {
        visit_mut(&mut self.tasks, f);
        self.handlers.iter_mut().for_each(f);
    }
}

/// Which tasks run: `--tags`, `--skip-tags`, `--start-at-task`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only tasks with one of these tags (and those tagged `always`); all when empty.
    pub tags: Vec<String>,
    /// Never tasks with one of these tags.
    pub skip_tags: Vec<String>,
    /// Start at the first task of this name; the tasks before it do not run.
    pub start_at: Option<String>,
}

impl Selection {
    fn takes(&self, tags: &[String]) -> bool {
        let has = |list: &[String]| tags.iter().any(|t| list.contains(t));
        if has(&self.skip_tags) {
            return false;
        }
        if self.tags.is_empty() || self.tags.iter().any(|t| t == "all") {
            return !tags.iter().any(|t| t == "never");
        }
        has(&self.tags) || tags.iter().any(|t| t == "always")
    }

    /// Keeps the nodes this selection runs; `started` turns true at `start_at`.
    fn prune(&self, nodes: Vec<Node>, inherited: &[String], started: &mut bool) -> Vec<Node> {
        let mut kept = Vec::new();
        for n in nodes {
            match n {
                Node::Task(t) => {
                    if !*started && self.start_at.as_deref() == Some(t.name.as_str()) {
                        *started = true;
                    }
                    let tags: Vec<String> = inherited.iter().chain(&t.flow.tags).cloned().collect();
                    if *started && self.takes(&tags) {
                        kept.push(Node::Task(t));
                    }
                }
                Node::Block(mut b) => {
                    let tags: Vec<String> = inherited.iter().chain(&b.flow.tags).cloned().collect();
                    b.body = self.prune(std::mem::take(&mut b.body), &tags, started);
                    b.rescue = self.prune(std::mem::take(&mut b.rescue), &tags, started);
                    b.always = self.prune(std::mem::take(&mut b.always), &tags, started);
                    if !(b.body.is_empty() && b.rescue.is_empty() && b.always.is_empty()) {
                        kept.push(Node::Block(b));
                    }
                }
            }
        }
        kept
    }
}

impl Plan {
    /// Keeps only the tasks `selection` runs (handlers stay: they run when notified).
    pub fn select(&mut self, selection: &Selection) -> Result<(), String> {
        if let Some(name) = &selection.start_at
            && !self.all_tasks().iter().any(|t| &t.name == name)
        {
            return Err(format!("--start-at-task: no task is named {name:?}"));
        }
        let mut started = selection.start_at.is_none();
        self.tasks = selection.prune(std::mem::take(&mut self.tasks), &[], &mut started);
        Ok(())
    }
}
