//! One `[[task]]` or `[[handler]]` table read into a [`Task`]: its plan keys, its content, its
//! `[limits]` (the same names and value forms as `wisp run`'s flags), and the op's args.

use std::path::Path;

use toml::Spanned;
use wisp_protocol::ops::KNOWN_OPS;

use super::{Content, Located, PlanErrorKind, RawTable, Task, line_of, scalar};
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

/// A task or handler that is not whole, at `line`.
fn task_error(line: usize, what: impl Into<String>) -> Located {
    (line, PlanErrorKind::Task(what.into()))
}

/// One task table's keys, each read with the line it is on.
struct Keys<'a> {
    table: &'a RawTable,
    text: &'a str,
    /// The table's own line.
    line: usize,
}

impl Keys<'_> {
    fn line(&self, k: &str) -> usize {
        self.table
            .get(k)
            .map_or(self.line, |v| line_of(self.text, v.span().start))
    }

    fn string(&self, k: &str) -> Result<Option<String>, Located> {
        match self.table.get(k).map(Spanned::get_ref) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(task_error(self.line(k), format!("{k} must be a string"))),
        }
    }

    fn boolean(&self, k: &str) -> Result<Option<bool>, Located> {
        match self.table.get(k).map(Spanned::get_ref) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(_) => Err(task_error(
                self.line(k),
                format!("{k} must be true or false"),
            )),
        }
    }

    /// `notify`: one handler's name, or a list of them.
    fn notify(&self) -> Result<Vec<String>, Located> {
        let bad = || task_error(self.line("notify"), "notify must name handlers");
        match self.table.get("notify").map(Spanned::get_ref) {
            None => Ok(Vec::new()),
            Some(toml::Value::String(s)) => Ok(vec![s.clone()]),
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad),
            Some(_) => Err(bad()),
        }
    }

    /// `content` or `content_file` (read now, relative to the plan), for `file.write` only.
    fn content(&self, op: &str, base: &Path) -> Result<Option<Content>, Located> {
        let content = match (self.string("content")?, self.string("content_file")?) {
            (Some(_), Some(_)) => {
                return Err(task_error(
                    self.line,
                    "give content or content_file, not both",
                ));
            }
            (Some(c), None) => Some(Content::Inline(c)),
            (None, Some(f)) => {
                let p = base.join(&f);
                let file = super::FileAt::read(&p).map_err(|e| {
                    let kind = PlanErrorKind::ContentFile {
                        path: p.clone(),
                        source: e,
                    };
                    (self.line("content_file"), kind)
                })?;
                Some(Content::FileAt(file))
            }
            (None, None) => None,
        };
        if op == "file.write" && content.is_none() {
            return Err(task_error(
                self.line,
                "file.write needs content or content_file",
            ));
        }
        if op != "file.write" && content.is_some() {
            return Err(task_error(self.line, format!("{op} takes no content")));
        }
        Ok(content)
    }

    /// The plan's default limits, with the task's own `limits` (exec only) merged in.
    fn limits(&self, op: &str, defaults: &LimitArgs) -> Result<LimitArgs, Located> {
        let Some(l) = self.table.get("limits") else {
            return Ok(defaults.clone());
        };
        if op != "exec" {
            return Err(task_error(
                self.line("limits"),
                format!("limits apply to exec, not {op}"),
            ));
        }
        let own = limit_args(l.get_ref()).map_err(|e| {
            (
                self.line("limits"),
                PlanErrorKind::Limits(format!("limits: {e}")),
            )
        })?;
        Ok(merge(defaults.clone(), own))
    }

    /// The op's own args: every key that is not a plan key.
    fn op_args(&self) -> toml::Table {
        let mut args = toml::Table::new();
        for (k, v) in self.table {
            if TASK_KEYS.contains(&k.as_str()) {
                continue;
            }
            let value = match v.get_ref() {
                // `mode = 0o644` reads as a number; the op wants octal text.
                toml::Value::Integer(n) if k == "mode" && *n >= 0 => {
                    toml::Value::String(format!("{n:04o}"))
                }
                other => other.clone(),
            };
            args.insert(k.clone(), value);
        }
        args
    }
}

pub(super) fn read_task(
    t: &Spanned<RawTable>,
    kind: &str,
    text: &str,
    base: &Path,
    defaults: &LimitArgs,
) -> Result<Task, Located> {
    let line = line_of(text, t.span().start);
    let keys = Keys {
        table: t.get_ref(),
        text,
        line,
    };
    let op = keys
        .string("op")?
        .ok_or_else(|| task_error(line, format!("{kind} without an op")))?;
    if !KNOWN_OPS.contains(&op.as_str()) {
        return Err(task_error(
            keys.line("op"),
            format!("unknown op {op:?} (known: {})", KNOWN_OPS.join(", ")),
        ));
    }
    // Read in the order the keys' errors have always been reported.
    let name = keys
        .string("name")?
        .unwrap_or_else(|| format!("{op} (line {line})"));
    let notify = keys.notify()?;
    let ignore_errors = keys.boolean("ignore_errors")?.unwrap_or(false);
    let changed_when = keys.boolean("changed_when")?;
    let content = keys.content(&op, base)?;
    let limits = keys.limits(&op, defaults)?;
    let stdin = keys.string("stdin")?;
    if stdin.is_some() && op != "exec" {
        return Err(task_error(
            keys.line("stdin"),
            format!("{op} takes no stdin"),
        ));
    }
    Ok(Task {
        name,
        args: keys.op_args(),
        content,
        when: keys.string("when")?,
        notify,
        limits,
        ignore_errors,
        changed_when,
        targets: keys.string("targets")?,
        hosts: None,
        stdin,
        line,
        op,
    })
}

/// A `[limits]` table, with the same names and value forms as `wisp run`'s flags.
pub(super) fn limit_args(v: &toml::Value) -> Result<LimitArgs, String> {
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
        let named = |e: String| format!("{k}: {e}");
        match k.as_str() {
            "timeout" => {
                a.timeout = Some(crate::quantity::parse_duration(&text()?).map_err(named)?)
            }
            "memory" => a.memory = Some(crate::quantity::parse_size(&text()?).map_err(named)?),
            "cpus" => a.cpus = Some(crate::quantity::parse_cpus(&text()?).map_err(named)?),
            "pids" => a.pids = Some(crate::quantity::parse_count(&text()?).map_err(named)?),
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
            "nofile" => a.nofile = Some(crate::quantity::parse_count(&text()?).map_err(named)?),
            "fsize" => a.fsize = Some(crate::quantity::parse_size(&text()?).map_err(named)?),
            "core" => a.core = Some(crate::quantity::parse_size(&text()?).map_err(named)?),
            "sandbox" => a.sandbox = Some(crate::quantity::parse_mode(&text()?).map_err(named)?),
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
