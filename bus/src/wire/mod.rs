//! What crosses the bus, as types of its own: the work a signed item carries and what a
//! worker sends back. A plan is converted from and to the plan model here ([`PlanSpec`]),
//! a host's end from and to [`HostResult`] ([`HostEnd`]); the job around them, in the `wisp`
//! crate's `bus` module, the one place that knows both the jobs and the bus. Nothing clap-derived or TOML-shaped travels: a plan goes as its tasks, with their
//! args as JSON and their limits spelled out, and a file's bytes as base64; its local path
//! stays on the controller (its name travels, for messages).
//!
//! The item's `format` ([`super::item::FORMAT`]) and the event envelope's `v`
//! ([`super::events::ENVELOPE_FORMAT`]) version these shapes: a worker or controller refuses a
//! version it does not know rather than guess.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wisp_protocol::message::Limits;
use wisp_protocol::ops::ExecArgs;
use wisp_protocol::sandbox::SandboxMode;

use wisp_events::{Event, HostOutcome, HostResult};
use wisp_plan::limits::LimitArgs;
use wisp_plan::{Block, Content, DataMap, Flow, Node, Plan, Task};

/// A job, as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    Exec {
        args: ExecArgs,
        limits: Box<Limits>,
    },
    Facts,
    Ping,
    Plan {
        plan: Box<PlanSpec>,
        options: ApplySpec,
    },
}

/// A checked plan, as it travels: no path, no secrets (those travel sealed, beside it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanSpec {
    /// The plan's file name as the operator gave it, for messages.
    pub name: String,
    /// SHA-256 of its text.
    pub hash: String,
    /// Vars, any value (a text may be a template).
    pub vars: DataMap,
    /// Extra vars (`-e`).
    pub extra_vars: DataMap,
    /// Roles' defaults.
    pub defaults: DataMap,
    /// Template files by name, for `{% include %}` (read on the controller).
    pub templates: std::collections::BTreeMap<String, String>,
    pub tasks: Vec<NodeSpec>,
    pub handlers: Vec<TaskSpec>,
    pub needs_facts: bool,
    /// Whether it names a network fact.
    #[serde(default)]
    pub needs_net: bool,
    /// Each `{{ secret.NAME }}` it uses, with its line.
    pub secret_refs: Vec<(String, usize)>,
}

/// One entry of a task list, as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeSpec {
    Task(Box<TaskSpec>),
    Block(Box<BlockSpec>),
}

/// A block, as it travels. Its `flow` (conditions, loops, register...) is the plan model's
/// own plain data: it travels as it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockSpec {
    pub name: Option<String>,
    pub file: Option<String>,
    pub flow: Flow,
    pub body: Vec<NodeSpec>,
    pub rescue: Vec<NodeSpec>,
    pub always: Vec<NodeSpec>,
    pub line: usize,
}

/// One task, as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    pub name: String,
    pub op: String,
    /// The op's args as the plan gave them (templates not rendered).
    pub args: DataMap,
    pub content: Option<ContentSpec>,
    pub notify: Vec<String>,
    pub limits: LimitSpec,
    /// When and how it runs.
    pub flow: Flow,
    /// Its own host pattern, and the hosts it selected, when it has one.
    pub targets: Option<String>,
    pub hosts: Option<BTreeSet<String>>,
    pub stdin: Option<String>,
    pub line: usize,
    /// The file it is in, when included.
    pub file: Option<String>,
}

/// `file.write` content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "from", content = "data", rename_all = "snake_case")]
pub enum ContentSpec {
    /// Inline text, a template.
    Inline(String),
    /// A file's bytes, base64.
    Bytes(String),
}

/// A task's limits, spelled out (see [`LimitArgs`] for each one's meaning).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LimitSpec {
    pub timeout_ms: Option<u64>,
    pub memory: Option<u64>,
    pub cpus: Option<u64>,
    pub pids: Option<u64>,
    pub ro: Vec<String>,
    pub rw: Vec<String>,
    pub exec: Vec<String>,
    pub no_system_paths: bool,
    pub allow_connect: Vec<u16>,
    pub allow_bind: Vec<u16>,
    pub no_net: bool,
    pub private_tmp: bool,
    pub pid_ns: bool,
    /// `default`, `strict` or `none` (a seccomp file does not travel).
    pub seccomp: Option<String>,
    pub nofile: Option<u64>,
    pub fsize: Option<u64>,
    pub core: Option<u64>,
    pub sandbox: Option<SandboxMode>,
}

/// How a plan is applied.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ApplySpec {
    pub check: bool,
    pub diff: bool,
    pub drift: bool,
    pub facts_ttl_ms: Option<u64>,
}

/// A host's end, as it travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostEnd {
    pub host: String,
    pub outcome: HostOutcome,
    pub detail: String,
    pub elapsed_ms: u64,
    pub sandbox: Option<String>,
}

/// What a worker says about an item, on `wisp.events.<run>.<item>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Back {
    /// A worker claimed the item and is starting it (`took_over` names the lost worker whose
    /// claim it replaced).
    Claimed {
        worker: String,
        at_ms: u64,
        took_over: Option<String>,
    },
    /// An event of the job on the worker.
    Report { event: Event },
    /// The host is done.
    Finished {
        worker: String,
        at_ms: u64,
        result: HostEnd,
    },
    /// An exec item whose worker went away mid-run: not run again.
    Lost { worker: String, by: String },
    /// The worker would not run the item.
    Refused { worker: String, reason: String },
}

/// Milliseconds, saturating.
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Work {
    /// Whether running it twice is harmless (a plan converges; a command may not).
    pub fn idempotent(&self) -> bool {
        !matches!(self, Work::Exec { .. })
    }
}

impl PlanSpec {
    /// A checked plan as it travels (its files' bytes loaded); why not, naming the task.
    pub fn from_plan(plan: &Plan) -> Result<PlanSpec, String> {
        let name = plan.path.display().to_string();
        let tasks = |list: &[Task]| -> Result<Vec<TaskSpec>, String> {
            list.iter()
                .map(|t| TaskSpec::from_task(t).map_err(|e| format!("{name}:{}: {e}", t.line)))
                .collect()
        };
        Ok(PlanSpec {
            hash: plan.hash.clone(),
            vars: plan.vars.clone(),
            extra_vars: plan.extra_vars.clone(),
            defaults: plan.defaults.clone(),
            templates: plan.templates.clone(),
            tasks: nodes_out(&plan.tasks).map_err(|e| format!("{name}:{e}"))?,
            handlers: tasks(&plan.handlers)?,
            needs_facts: plan.needs_facts,
            needs_net: plan.needs_net,
            secret_refs: plan.secret_refs.clone(),
            name,
        })
    }

    /// The plan again, with its secrets opened where it runs.
    pub fn into_plan(self, secrets: wisp_secrets::SecretValues) -> Result<Plan, String> {
        let tasks = |list: Vec<TaskSpec>| -> Result<Vec<Task>, String> {
            list.into_iter().map(TaskSpec::into_task).collect()
        };
        Ok(Plan {
            path: PathBuf::from(self.name),
            hash: self.hash,
            vars: self.vars,
            extra_vars: self.extra_vars,
            defaults: self.defaults,
            templates: self.templates,
            tasks: nodes_in(self.tasks)?,
            handlers: tasks(self.handlers)?,
            needs_facts: self.needs_facts,
            needs_net: self.needs_net,
            targets: None,
            secrets_file: None,
            secret_refs: self.secret_refs,
            secrets,
        })
    }
}

impl TaskSpec {
    fn from_task(t: &Task) -> Result<TaskSpec, String> {
        let content = match &t.content {
            None => None,
            Some(Content::Inline(text)) => Some(ContentSpec::Inline(text.clone())),
            Some(Content::File(bytes)) => {
                Some(ContentSpec::Bytes(data_encoding::BASE64.encode(bytes)))
            }
            Some(Content::FileAt(f)) => Some(ContentSpec::Bytes(
                data_encoding::BASE64.encode(&f.load().map_err(|e| format!("content_file: {e}"))?),
            )),
        };
        if t.limits.per_arch() {
            return Err(
                "a seccomp file is read on this machine; it does not go through --nats".into(),
            );
        }
        let l = &t.limits;
        let limits = LimitSpec {
            timeout_ms: l.timeout.map(ms),
            memory: l.memory,
            cpus: l.cpus,
            pids: l.pids,
            ro: l.ro.clone(),
            rw: l.rw.clone(),
            exec: l.exec.clone(),
            no_system_paths: l.no_system_paths,
            allow_connect: l.allow_connect.clone(),
            allow_bind: l.allow_bind.clone(),
            no_net: l.no_net,
            private_tmp: l.private_tmp,
            pid_ns: l.pid_ns,
            seccomp: l.seccomp.clone(),
            nofile: l.nofile,
            fsize: l.fsize,
            core: l.core,
            sandbox: l.sandbox,
        };
        Ok(TaskSpec {
            name: t.name.clone(),
            op: t.op.clone(),
            args: t.args.clone(),
            content,
            notify: t.notify.clone(),
            limits,
            flow: t.flow.clone(),
            targets: t.targets.clone(),
            hosts: t.hosts.clone(),
            stdin: t.stdin.clone(),
            line: t.line,
            file: t.file.clone(),
        })
    }

    fn into_task(self) -> Result<Task, String> {
        let line = self.line;
        let bad =
            |what: &str, e: &dyn std::fmt::Display| format!("task at line {line}: {what}: {e}");
        let content = match self.content {
            None => None,
            Some(ContentSpec::Inline(text)) => Some(Content::Inline(text)),
            Some(ContentSpec::Bytes(b64)) => Some(Content::File(
                data_encoding::BASE64
                    .decode(b64.as_bytes())
                    .map_err(|e| bad("content", &e))?,
            )),
        };
        let l = self.limits;
        if l.seccomp
            .as_deref()
            .is_some_and(|s| !matches!(s, "default" | "strict" | "none"))
        {
            return Err(bad("seccomp", &"only default, strict or none travel"));
        }
        let limits = LimitArgs {
            timeout: l.timeout_ms.map(Duration::from_millis),
            memory: l.memory,
            cpus: l.cpus,
            pids: l.pids,
            ro: l.ro,
            rw: l.rw,
            exec: l.exec,
            no_system_paths: l.no_system_paths,
            allow_connect: l.allow_connect,
            allow_bind: l.allow_bind,
            no_net: l.no_net,
            private_tmp: l.private_tmp,
            pid_ns: l.pid_ns,
            seccomp: l.seccomp,
            nofile: l.nofile,
            fsize: l.fsize,
            core: l.core,
            sandbox: l.sandbox,
        };
        Ok(Task {
            name: self.name,
            op: self.op,
            args: self.args,
            content,
            notify: self.notify,
            limits,
            flow: self.flow,
            targets: self.targets,
            hosts: self.hosts,
            stdin: self.stdin,
            line,
            file: self.file,
        })
    }
}

/// A task list as it travels (a file's bytes read in, each error naming its line).
fn nodes_out(nodes: &[Node]) -> Result<Vec<NodeSpec>, String> {
    nodes
        .iter()
        .map(|n| match n {
            Node::Task(t) => TaskSpec::from_task(t)
                .map(|t| NodeSpec::Task(Box::new(t)))
                .map_err(|e| format!("{}: {e}", t.line)),
            Node::Block(b) => Ok(NodeSpec::Block(Box::new(BlockSpec {
                name: b.name.clone(),
                file: b.file.clone(),
                flow: b.flow.clone(),
                body: nodes_out(&b.body)?,
                rescue: nodes_out(&b.rescue)?,
                always: nodes_out(&b.always)?,
                line: b.line,
            }))),
        })
        .collect()
}

/// A task list again, where it runs.
fn nodes_in(nodes: Vec<NodeSpec>) -> Result<Vec<Node>, String> {
    nodes
        .into_iter()
        .map(|n| match n {
            NodeSpec::Task(t) => t.into_task().map(|t| Node::Task(Box::new(t))),
            NodeSpec::Block(b) => Ok(Node::Block(Box::new(Block {
                name: b.name,
                file: b.file,
                flow: b.flow,
                body: nodes_in(b.body)?,
                rescue: nodes_in(b.rescue)?,
                always: nodes_in(b.always)?,
                line: b.line,
            }))),
        })
        .collect()
}

impl From<&HostResult> for HostEnd {
    fn from(r: &HostResult) -> HostEnd {
        HostEnd {
            host: r.host.clone(),
            outcome: r.outcome,
            detail: r.detail.clone(),
            elapsed_ms: ms(r.elapsed),
            sandbox: r.sandbox.clone(),
        }
    }
}

impl From<HostEnd> for HostResult {
    fn from(e: HostEnd) -> HostResult {
        HostResult {
            host: e.host,
            outcome: e.outcome,
            detail: e.detail,
            elapsed: Duration::from_millis(e.elapsed_ms),
            sandbox: e.sandbox,
        }
    }
}
