//! The tasks of a plan: a task (an op with its args) or a block (tasks with `rescue` and
//! `always`), each with the keys that say when and how it runs. How one is read from a plan
//! file is [`crate::read`]'s.

use std::collections::BTreeSet;

use super::Content;
use crate::data::{Data, DataMap};
use crate::limits::LimitArgs;

/// Ops the controller carries out itself, without a runner.
pub const CONTROLLER_OPS: &[&str] = &["set_fact", "debug", "assert", "fail", "flush_handlers"];

/// One entry of a task list.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Node {
    /// An op.
    Task(Box<Task>),
    /// Tasks run together, with `rescue` when one fails and `always` after.
    Block(Box<Block>),
}

impl Node {
    /// Its line.
    pub fn line(&self) -> usize {
        match self {
            Node::Task(t) => t.line,
            Node::Block(b) => b.line,
        }
    }
}

/// A block: its tasks, and what runs when one fails (`rescue`) and after them (`always`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Block {
    /// Its name, when given.
    pub name: Option<String>,
    /// What its tasks inherit: `when`, `tags`, `vars`, `ignore_errors`.
    pub flow: Flow,
    /// Its tasks.
    pub body: Vec<Node>,
    /// Run when a task of the body fails; a rescue that ends well clears the failure.
    pub rescue: Vec<Node>,
    /// Run after the body (and rescue), whatever became of them.
    pub always: Vec<Node>,
    /// Line in its file.
    pub line: usize,
    /// The file it is in, when not the plan itself (see [`Task::file`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// One task (or handler).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Task {
    /// Its name (the op and line when not given).
    pub name: String,
    /// The op.
    pub op: String,
    /// The op's args as the plan gives them, templates not yet rendered.
    pub args: DataMap,
    /// `file.write` content, templates not yet rendered (when from `content`).
    pub content: Option<Content>,
    /// An exec task's stdin, a template (secrets may go here).
    pub stdin: Option<String>,
    /// Handlers to run at the end if this task changed something.
    pub notify: Vec<String>,
    /// Limits (exec), the plan's defaults merged in.
    pub limits: LimitArgs,
    /// A host pattern: the task runs only on the hosts it selects.
    pub targets: Option<String>,
    /// The hosts `targets` selects, once [`crate::Plan::select_task_hosts`] has resolved it.
    pub hosts: Option<BTreeSet<String>>,
    /// When and how it runs.
    pub flow: Flow,
    /// Line in its file, for messages.
    pub line: usize,
    /// The file it is in, relative to the plan's folder, when it came from an included file
    /// or a role; `None` for the plan itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The keys that say when and how a task runs (a block has the first four).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Flow {
    /// Conditions, all of which must hold (Jinja expressions yielding a boolean).
    pub when: Vec<String>,
    /// Tags, for `--tags` and `--skip-tags`.
    pub tags: Vec<String>,
    /// Vars for this task (or block) alone.
    pub vars: DataMap,
    /// A failure does not stop the host.
    pub ignore_errors: bool,
    /// A list (or a template that yields one, or a map) to run the task once per item of.
    pub loop_over: Option<Data>,
    /// The name each item has (`item`).
    pub loop_var: String,
    /// What an item is called in the output (a template), instead of the whole item.
    pub loop_label: Option<String>,
    /// The name the item's index has, when asked for.
    pub index_var: Option<String>,
    /// The var the task's result is kept in, for later tasks on the host.
    pub register: Option<String>,
    /// When it counts as changed: conditions that replace the op's own answer.
    pub changed_when: Vec<String>,
    /// When it counts as failed: conditions that replace the op's own answer.
    pub failed_when: Vec<String>,
    /// Run again until these hold (with `retries` and `delay`).
    pub until: Vec<String>,
    /// Attempts after the first, with `until`.
    pub retries: u32,
    /// Seconds between attempts, with `until`.
    pub delay_s: f64,
    /// An exec task that does not run when this path exists.
    pub creates: Option<String>,
    /// An exec task that does not run when this path does not exist.
    pub removes: Option<String>,
    /// `Some(false)`: runs for real even in check mode (a command that only reads);
    /// `Some(true)`: always in check mode.
    pub check_mode: Option<bool>,
    /// Run on the first host that reaches it; the others take its result as theirs.
    #[serde(default)]
    pub run_once: bool,
    /// Its output, detail and diff are not shown or recorded (what it registers is kept).
    #[serde(default)]
    pub no_log: bool,
    /// Where the op runs instead of the host (a template): `localhost` is this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_to: Option<String>,
    /// An exec task run as root (`true`) through `sudo -n` when the session is not root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_root: Option<bool>,
    /// An exec task run as this user (a template): `runuser` from a root session, `sudo -n
    /// -u` from another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub become_user: Option<String>,
}
