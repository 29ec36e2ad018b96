//! A plan file's task lists read into [`Node`]s: each task's keys, its content, its limits
//! and its op's args, every error naming its line.

use std::path::{Path, PathBuf};

use wisp_protocol::ops::KNOWN_OPS;

use crate::data::{Data, DataMap};
use crate::limits::LimitArgs;
use crate::limits_table::{limit_args, merge};
use crate::source::{Src, SrcValue};
use crate::task::{Block, CONTROLLER_OPS, Flow, Node, Task};
use crate::{Content, Located, PlanErrorKind};

mod flow;
use flow::flow;

/// The op that renders a file of the plan's `templates/` for each host and writes it there.
pub(crate) const TEMPLATE: &str = "template";

/// Keys a task may have besides its op's args.
const TASK_KEYS: &[&str] = &[
    "name",
    "op",
    "args",
    "when",
    "notify",
    "limits",
    "ignore_errors",
    "content",
    "content_file",
    "changed_when",
    "failed_when",
    "targets",
    "stdin",
    "loop",
    "loop_control",
    "register",
    "until",
    "retries",
    "delay",
    "creates",
    "removes",
    "check_mode",
    "run_once",
    "no_log",
    "delegate_to",
    "become",
    "become_user",
    "tags",
    "vars",
];

/// Keys a block may have.
const BLOCK_KEYS: &[&str] = &[
    "name",
    "block",
    "rescue",
    "always",
    "when",
    "tags",
    "vars",
    "ignore_errors",
];

/// A task or handler that is not whole, at `line`.
pub(crate) fn task_error(line: usize, what: impl Into<String>) -> Located {
    (line, PlanErrorKind::Task(what.into()))
}

/// What a plan's task lists are read with: the folder their files are found in (the plan's,
/// or an included file's, or a role's), the file they are in (for an included one), the
/// plan's default limits, and what composition gathers for the whole plan.
pub(crate) struct Reader<'a> {
    pub(crate) base: PathBuf,
    /// The file being read, relative to the plan's folder; `None` for the plan itself.
    pub(crate) file: Option<String>,
    pub(crate) defaults: &'a LimitArgs,
    pub(crate) gathered: &'a crate::gathered::Gathered,
    /// Files being read, outermost first: an include met again is a cycle.
    pub(crate) reading: Vec<PathBuf>,
}

/// One table's keys, each read with the line it is on.
pub(crate) struct Keys<'a> {
    pub(crate) src: &'a Src,
}

impl Keys<'_> {
    fn line(&self, k: &str) -> usize {
        self.src.get(k).map_or(self.src.line, |v| v.line)
    }

    pub(crate) fn string(&self, k: &str) -> Result<Option<String>, Located> {
        match self.src.get(k) {
            None => Ok(None),
            Some(v) => match v.as_str() {
                Some(s) => Ok(Some(s.to_owned())),
                None => Err(task_error(v.line, format!("{k} must be text"))),
            },
        }
    }

    pub(crate) fn boolean(&self, k: &str) -> Result<Option<bool>, Located> {
        match self.src.get(k).map(|v| (v.line, &v.value)) {
            None => Ok(None),
            Some((_, SrcValue::Scalar(Data::Bool(b)))) => Ok(Some(*b)),
            Some((line, _)) => Err(task_error(line, format!("{k} must be true or false"))),
        }
    }

    /// Text or a list of texts (`notify`, `tags`).
    pub(crate) fn names(&self, k: &str) -> Result<Vec<String>, Located> {
        let bad = |line| task_error(line, format!("{k} must be a name or a list of names"));
        match self.src.get(k) {
            None => Ok(Vec::new()),
            Some(v) => match (&v.value, v.as_list()) {
                (SrcValue::Scalar(Data::Str(s)), _) => Ok(vec![s.clone()]),
                (_, Some(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| bad(i.line)))
                    .collect(),
                _ => Err(bad(v.line)),
            },
        }
    }

    /// A condition key: a boolean, one expression, or a list of them (all must hold).
    pub(crate) fn conditions(&self, k: &str) -> Result<Vec<String>, Located> {
        let one = |v: &Src| match &v.value {
            SrcValue::Scalar(Data::Str(s)) if !s.trim().is_empty() => Ok(s.clone()),
            SrcValue::Scalar(Data::Bool(b)) => Ok(b.to_string()),
            _ => Err(task_error(
                v.line,
                format!("{k} must be an expression, true or false, or a list of expressions"),
            )),
        };
        match self.src.get(k) {
            None => Ok(Vec::new()),
            Some(v) => match v.as_list() {
                Some(items) => items.iter().map(one).collect(),
                None => Ok(vec![one(v)?]),
            },
        }
    }

    /// `vars`: a map of any values.
    pub(crate) fn vars(&self) -> Result<DataMap, Located> {
        match self.src.get("vars") {
            None => Ok(DataMap::new()),
            Some(v) => match v.to_data() {
                Data::Map(m) => Ok(m),
                _ => Err(task_error(
                    v.line,
                    "vars must be a table of names and values",
                )),
            },
        }
    }

    pub(crate) fn unknown(&self, allowed: &[&str], what: &str) -> Result<(), Located> {
        for (k, v) in self.src.as_map().unwrap_or_default() {
            if !allowed.contains(&k.as_str()) {
                return Err(task_error(v.line, format!("{what} has no key {k:?}")));
            }
        }
        Ok(())
    }
}

impl Reader<'_> {
    /// A list of tasks (`[[task]]`, a block's `block`, `rescue` or `always`).
    pub(crate) fn nodes(&self, list: &Src, kind: &str) -> Result<Vec<Node>, Located> {
        let items = list
            .as_list()
            .ok_or_else(|| task_error(list.line, format!("{kind} must be a list of tables")))?;
        items.iter().map(|t| self.node(t, kind)).collect()
    }

    fn node(&self, src: &Src, kind: &str) -> Result<Node, Located> {
        if src.as_map().is_none() {
            return Err(task_error(src.line, format!("a {kind} must be a table")));
        }
        if src.get("block").is_some() {
            return self.block(src).map(|b| Node::Block(Box::new(b)));
        }
        if src.get("include").is_some() || src.get("role").is_some() {
            return self.compose(src).map(|b| Node::Block(Box::new(b)));
        }
        self.task(src, kind).map(|t| Node::Task(Box::new(t)))
    }

    fn block(&self, src: &Src) -> Result<Block, Located> {
        let keys = Keys { src };
        keys.unknown(BLOCK_KEYS, "a block")?;
        let list = |k: &str| match src.get(k) {
            Some(l) => self.nodes(l, k),
            None => Ok(Vec::new()),
        };
        Ok(Block {
            name: keys.string("name")?,
            flow: Flow {
                when: keys.conditions("when")?,
                tags: keys.names("tags")?,
                vars: keys.vars()?,
                ignore_errors: keys.boolean("ignore_errors")?.unwrap_or(false),
                ..Flow::default()
            },
            body: list("block")?,
            rescue: list("rescue")?,
            always: list("always")?,
            line: src.line,
            file: self.file.clone(),
        })
    }

    /// One task table.
    pub(crate) fn task(&self, src: &Src, kind: &str) -> Result<Task, Located> {
        let line = src.line;
        let keys = Keys { src };
        let op = keys
            .string("op")?
            .ok_or_else(|| task_error(line, format!("{kind} without an op")))?;
        let known_here = CONTROLLER_OPS.contains(&op.as_str())
            || crate::edit::EDIT_OPS.contains(&op.as_str())
            || crate::edit::account::ACCOUNT_OPS.contains(&op.as_str())
            || op == crate::edit::cron::CRON
            || op == TEMPLATE;
        if !KNOWN_OPS.contains(&op.as_str()) && !known_here {
            let known = [
                KNOWN_OPS,
                CONTROLLER_OPS,
                crate::edit::EDIT_OPS,
                crate::edit::account::ACCOUNT_OPS,
                &[crate::edit::cron::CRON],
                &[TEMPLATE],
            ]
            .concat()
            .join(", ");
            return Err(task_error(
                keys.line("op"),
                format!("unknown op {op:?} (known: {known})"),
            ));
        }
        let name = keys
            .string("name")?
            .unwrap_or_else(|| format!("{op} (line {line})"));
        let mut args = op_args(&keys, &op)?;
        let (op, content) = if op == TEMPLATE {
            let text = self.template(&keys, &mut args)?;
            ("file.write".to_owned(), Some(Content::Inline(text)))
        } else {
            let content = self.content(&keys, &op)?;
            (op, content)
        };
        let limits = self.limits(&keys, &op)?;
        let stdin = keys.string("stdin")?;
        if stdin.is_some() && op != "exec" {
            return Err(task_error(
                keys.line("stdin"),
                format!("{op} takes no stdin"),
            ));
        }
        let flow = flow(&keys, &op)?;
        Ok(Task {
            name,
            args,
            content,
            stdin,
            notify: keys.names("notify")?,
            limits,
            targets: keys.string("targets")?,
            hosts: None,
            flow,
            line,
            file: self.file.clone(),
            op,
        })
    }

    /// `template`: the file `src` names (under the plan's `templates/`, or its directory),
    /// read now, to be rendered per host and written to `dest`. The args become
    /// `file.write`'s.
    fn template(&self, keys: &Keys<'_>, args: &mut DataMap) -> Result<String, Located> {
        let line = keys.line("src");
        let Some(Data::Str(src)) = args.shift_remove("src") else {
            return Err(task_error(
                keys.src.line,
                "template needs src = \"FILE\" (under templates/)",
            ));
        };
        let Some(dest) = args.shift_remove("dest") else {
            return Err(task_error(
                keys.src.line,
                "template needs dest = \"/path/on/the/host\"",
            ));
        };
        args.insert("path".to_owned(), dest);
        let rel = Path::new(&src);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(task_error(
                line,
                format!("template src {src:?}: only files under the plan's directory"),
            ));
        }
        let path = [self.base.join("templates").join(rel), self.base.join(rel)]
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| self.base.join("templates").join(rel));
        std::fs::read_to_string(&path).map_err(|e| {
            let kind = PlanErrorKind::ContentFile {
                path: path.clone(),
                source: e,
            };
            (line, kind)
        })
    }

    /// `content` or `content_file` (read now, relative to the plan), for `file.write` only.
    fn content(&self, keys: &Keys<'_>, op: &str) -> Result<Option<Content>, Located> {
        let content = match (keys.string("content")?, keys.string("content_file")?) {
            (Some(_), Some(_)) => {
                return Err(task_error(
                    keys.src.line,
                    "give content or content_file, not both",
                ));
            }
            (Some(c), None) => Some(Content::Inline(c)),
            (None, Some(f)) => {
                // In a role, its files/ first.
                let in_files = self.base.join("files").join(&f);
                let p = if self.file.is_some() && in_files.is_file() {
                    in_files
                } else {
                    self.base.join(&f)
                };
                let file = super::FileAt::read(&p).map_err(|e| {
                    let kind = PlanErrorKind::ContentFile {
                        path: p.clone(),
                        source: e,
                    };
                    (keys.line("content_file"), kind)
                })?;
                Some(Content::FileAt(file))
            }
            (None, None) => None,
        };
        if op == "file.write" && content.is_none() {
            return Err(task_error(
                keys.src.line,
                "file.write needs content or content_file",
            ));
        }
        if op != "file.write" && content.is_some() {
            return Err(task_error(keys.src.line, format!("{op} takes no content")));
        }
        Ok(content)
    }

    /// The plan's default limits, with the task's own `limits` (exec only) merged in.
    fn limits(&self, keys: &Keys<'_>, op: &str) -> Result<LimitArgs, Located> {
        let Some(l) = keys.src.get("limits") else {
            return Ok(self.defaults.clone());
        };
        if op != "exec" {
            return Err(task_error(
                l.line,
                format!("limits apply to exec, not {op}"),
            ));
        }
        let table = l.to_data().to_toml().unwrap_or(toml::Value::Boolean(false));
        let own = limit_args(&table)
            .map_err(|e| (l.line, PlanErrorKind::Limits(format!("limits: {e}"))))?;
        Ok(merge(self.defaults.clone(), own))
    }
}

/// The op's own args: the `args` table, and any key that is not a task key. A task's
/// `name` is always its display name, never an arg.
fn op_args(keys: &Keys<'_>, op: &str) -> Result<DataMap, Located> {
    let mut args = DataMap::new();
    let mut put = |k: &str, v: &Src| -> Result<(), Located> {
        if k == "mode" && matches!(v.value, SrcValue::Decimal(_)) {
            let SrcValue::Decimal(n) = v.value else {
                unreachable!()
            };
            return Err(task_error(
                v.line,
                format!(
                    "mode = {n} is a decimal number (octal {n:o}); write the octal mode as text, \
                     mode = \"0{n}\", or as a TOML octal, mode = 0o{n}"
                ),
            ));
        }
        let value = match (&v.value, k) {
            // `mode = 0o644` reads as a number; the op wants octal text.
            (SrcValue::Scalar(Data::Int(n)), "mode") if *n >= 0 => Data::Str(format!("{n:04o}")),
            _ => v.to_data(),
        };
        if args.insert(k.to_owned(), value).is_some() {
            return Err(task_error(
                v.line,
                format!("{k} is given twice (in args and as a key)"),
            ));
        }
        Ok(())
    };
    if let Some(table) = keys.src.get("args") {
        let entries = table
            .as_map()
            .ok_or_else(|| task_error(table.line, "args must be a table"))?;
        for (k, v) in entries {
            put(k, v)?;
        }
    }
    for (k, v) in keys.src.as_map().unwrap_or_default() {
        if !TASK_KEYS.contains(&k.as_str()) {
            put(k, v)?;
        }
    }
    let needs_name = op == "pkg.ensure" || op.starts_with("service.");
    if needs_name && !args.contains_key("name") {
        let example = keys.string("name")?.unwrap_or_else(|| "NAME".to_owned());
        let what = if op == "pkg.ensure" {
            "package"
        } else {
            "service"
        };
        return Err(task_error(
            keys.src.line,
            format!(
                "{op} needs the {what}'s name in its args: a task's own `name` is its display \
                 name. Write args = {{ name = {example:?} }}"
            ),
        ));
    }
    Ok(args)
}
