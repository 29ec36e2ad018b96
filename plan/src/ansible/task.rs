//! An Ansible task (a module with its args, and the keywords that say when and how it runs)
//! translated into a task of the plan model, with the lines it was written on; what the
//! plan model does not implement is refused here, naming the keyword or module.

use super::args::{PRIVATE_RESULT, Step};
use super::kv::one_expression;
use super::modules::module;
use super::{Cx, refuse};
use crate::Located;
use crate::data::Data;
use crate::source::{Src, SrcValue};

/// Keywords carried over under the same name, with the same meaning.
const SAME: &[&str] = &[
    "name",
    "when",
    "loop",
    "loop_control",
    "register",
    "until",
    "retries",
    "delay",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "notify",
    "tags",
    "vars",
    "check_mode",
    "run_once",
    "delegate_to",
];

/// Keywords of a block.
const BLOCK_SAME: &[&str] = &["name", "when", "tags", "vars", "ignore_errors"];

/// Keywords Ansible has that change what a task does, and wisp does not implement: refused.
const NOT_SUPPORTED: &[(&str, &str)] = &[
    (
        "async",
        "run it in the foreground, with limits = { timeout = ... } in a wisp plan",
    ),
    ("poll", "run it in the foreground"),
    ("throttle", "use --forks"),
    ("any_errors_fatal", "use --max-fail 0"),
    ("max_fail_percentage", "put it on the play"),
    ("delegate_facts", "set_fact on the host itself"),
    ("connection", "set ansible_connection in the inventory"),
    ("remote_user", "set ansible_user in the inventory"),
    ("port", "set ansible_port in the inventory"),
    ("local_action", "use delegate_to: localhost"),
    ("action", "name the module as the task's key"),
    ("debugger", "none"),
    ("module_defaults", "give the args on each task"),
    ("timeout", "none"),
    ("become_flags", "none"),
    ("become_exe", "none"),
    ("diff", "run with --diff, or without it"),
    ("ignore_unreachable", "none"),
    ("listen", "only handlers listen"),
];

/// Keywords accepted and of no effect on what runs.
const NO_EFFECT: &[&str] = &["collections"];

/// A task list.
pub(crate) fn tasks(list: &Src, cx: &Cx<'_>) -> Result<Src, Located> {
    match &list.value {
        SrcValue::Scalar(Data::Null) => Ok(Src::list(list.line, Vec::new())),
        SrcValue::List(items) => {
            let mut out = Vec::new();
            for t in items {
                out.push(task(t, cx)?);
            }
            Ok(Src::list(list.line, out))
        }
        _ => Err(refuse(list.line, "a task list must be a list of tasks")),
    }
}

/// One task (or block, include or role) in the plan model's form.
pub(crate) fn task(t: &Src, cx: &Cx<'_>) -> Result<Src, Located> {
    let Some(entries) = t.as_map() else {
        return Err(refuse(t.line, "a task must be a mapping"));
    };
    if t.get("block").is_some() {
        return block(t, entries, cx);
    }
    let mut keep: Vec<(String, Src)> = Vec::new();
    let mut action: Option<(&str, &Src)> = None;
    let mut extra_args: Option<&Src> = None;
    let mut listen: Vec<String> = Vec::new();
    let mut env: Option<&Src> = None;
    for (k, v) in entries {
        let k = k.as_str();
        if SAME.contains(&k) {
            keep.push((k.to_owned(), v.clone()));
        } else if let Some(loop_) = with_loop(k, v)? {
            keep.push(("loop".into(), loop_));
        } else if k == "with_fileglob" {
            keep.push(("loop".into(), super::copy::fileglob(v, cx)?));
        } else if k == "args" {
            extra_args = Some(v);
        } else if k == "environment" {
            env = Some(v);
        } else if k == "become" || k == "become_user" {
            keep.push((k.to_owned(), v.clone()));
        } else if k == "become_method" {
            if v.as_str() != Some("sudo") {
                cx.unsupported(v.line, "become_method other than sudo on a task")?;
            }
        } else if k == "listen" && cx.handlers {
            match (v.as_str(), v.as_list()) {
                (Some(topic), _) => listen.push(topic.to_owned()),
                (_, Some(l)) => listen.extend(l.iter().filter_map(Src::as_str).map(str::to_owned)),
                _ => return Err(refuse(v.line, "listen names a topic or a list of them")),
            }
        } else if k == "no_log" {
            match &v.value {
                SrcValue::Scalar(Data::Bool(_)) => keep.push((k.to_owned(), v.clone())),
                _ => cx.unsupported(v.line, "no_log given by a template (give true or false)")?,
            }
        } else if NO_EFFECT.contains(&k) {
        } else if let Some((_, instead)) = NOT_SUPPORTED.iter().find(|(n, _)| *n == k) {
            cx.unsupported(v.line, &format!("the keyword {k} ({instead})"))?;
        } else if k.starts_with("with_") {
            cx.unsupported(
                v.line,
                &format!(
                    "{k} (use loop with a filter; with_items, with_list, with_dict and \
                     with_fileglob are read)"
                ),
            )?;
        } else if let Some((other, _)) = action {
            return Err(refuse(
                v.line,
                format!("a task with two actions, {other} and {k} (or {k} is misspelt)"),
            ));
        } else {
            action = Some((k, v));
        }
    }
    let Some((name, args)) = action else {
        return Err(refuse(t.line, "a task with no module"));
    };
    if !listen.is_empty() {
        let handler = match t.get("name").and_then(Src::as_str) {
            Some(n) => n.to_owned(),
            None => {
                let n = format!("listen {}", listen.join(", "));
                keep.push(("name".into(), Src::text(t.line, n.clone())));
                n
            }
        };
        let mut l = cx.gathered.listens.borrow_mut();
        l.extend(listen.into_iter().map(|topic| (topic, handler.clone())));
    }
    let steps = module(name, args, extra_args, t.line, cx)?;
    let mut steps = match steps {
        Some(s) => s,
        None => return Ok(placeholder(t.line, name)),
    };
    // A module run as a script is shown under the module's name, not as `exec`.
    let module = super::modules::short(name);
    if let [step] = steps.as_mut_slice()
        && step.op == "exec"
        && !matches!(module, "command" | "shell" | "raw")
        && step.name.is_none()
        && !keep.iter().any(|(k, _)| k == "name")
    {
        step.name = Some(format!("{module} (line {})", t.line));
    }
    assemble(t.line, steps, keep, env, cx)
}

/// The task a refused module stands in for while `--check-support` reads on.
fn placeholder(line: usize, module: &str) -> Src {
    Src::map(
        line,
        vec![
            ("op".into(), Src::text(line, "debug")),
            (
                "msg".into(),
                Src::text(line, format!("{module} is not supported")),
            ),
        ],
    )
}

/// The steps a module became, each with the task's keywords; several steps make a block
/// whose last step keeps `register`.
fn assemble(
    line: usize,
    steps: Vec<Step>,
    keep: Vec<(String, Src)>,
    env: Option<&Src>,
    cx: &Cx<'_>,
) -> Result<Src, Located> {
    let count = steps.len();
    let mut out = Vec::new();
    for (i, mut step) in steps.into_iter().enumerate() {
        let exec = step.op == "exec";
        if let Some(env) = env {
            if exec {
                step.args.push(("env".into(), env.clone()));
            } else {
                cx.unsupported(env.line, "environment on a task that runs no command")?;
            }
        }
        let (name, own) = (step.name.take(), std::mem::take(&mut step.own));
        // A step that registers its result under a private name for its own changed_when
        // takes the task's `register` name instead, when it has one.
        if let Some(user) = keep
            .iter()
            .find(|(k, _)| k == "register")
            .and_then(|(_, v)| v.as_str())
        {
            for (_, v) in &mut step.keys {
                if let Some(s) = v.as_str().filter(|s| s.contains(PRIVATE_RESULT)) {
                    *v = Src::text(v.line, s.replace(PRIVATE_RESULT, user));
                }
            }
        }
        let mut entries = step.into_entries();
        for (k, v) in &keep {
            let last = i + 1 == count;
            if !exec && (k == "become" || k == "become_user") {
                become_elsewhere(k, v, cx)?;
                continue;
            }
            if (k == "register" && !last) || (k == "name" && name.is_some()) {
                continue;
            }
            if own.contains(&k.as_str()) {
                continue;
            }
            entries.push((k.clone(), v.clone()));
        }
        if let Some(n) = name {
            entries.push(("name".into(), Src::text(line, n)));
        }
        out.push(Src::map(line, entries));
    }
    if out.len() == 1 {
        return Ok(out.remove(0));
    }
    let mut block = vec![("block".to_owned(), Src::list(line, out))];
    if let Some((_, n)) = keep.iter().find(|(k, _)| k == "name") {
        block.push(("name".into(), n.clone()));
    }
    Ok(Src::map(line, block))
}

/// `become` on a task that runs no command: its ops run as the session's user, so it holds
/// only when the play becomes root (or it says `false`).
fn become_elsewhere(k: &str, v: &Src, cx: &Cx<'_>) -> Result<(), Located> {
    let root = match &v.value {
        SrcValue::Scalar(Data::Bool(b)) => *b,
        _ => v.as_str() == Some("root"),
    };
    if matches!(v.value, SrcValue::Scalar(Data::Bool(false))) || (root && cx.become_root) {
        return Ok(());
    }
    cx.unsupported(
        v.line,
        &format!(
            "{k} on a task that runs no command while the play does not become root (file, \
             package and service ops run as the session's user: put become: true on the play)"
        ),
    )
}

/// `block`, `rescue` and `always`, each a task list.
fn block(t: &Src, entries: &[(String, Src)], cx: &Cx<'_>) -> Result<Src, Located> {
    let mut out = Vec::new();
    for (k, v) in entries {
        match k.as_str() {
            "block" | "rescue" | "always" => out.push((k.clone(), tasks(v, cx)?)),
            k2 if BLOCK_SAME.contains(&k2) => out.push((k.clone(), v.clone())),
            "become" | "become_user" | "no_log" | "collections" => {
                // Read as on each task of the block.
                if k == "no_log" && !matches!(v.value, SrcValue::Scalar(Data::Bool(false))) {
                    cx.unsupported(v.line, "no_log on a block (give it on each task)")?;
                }
            }
            other => cx.unsupported(v.line, &format!("the keyword {other} on a block"))?,
        }
    }
    Ok(Src::map(t.line, out))
}

/// `with_items`, `with_list` and `with_dict` as `loop`: the items flattened one level, the
/// list as it is, the mapping as `key`/`value` items. `None` for any other key.
fn with_loop(k: &str, v: &Src) -> Result<Option<Src>, Located> {
    let filter = match k {
        "with_items" => "flatten(levels=1)",
        "with_list" => "list",
        "with_dict" => "dict2items",
        _ => return Ok(None),
    };
    let expr = match &v.value {
        SrcValue::Scalar(Data::Str(s)) => match one_expression(s) {
            Some(e) => e.to_owned(),
            // A bare name, as old roles write `with_items: packages`.
            None if s
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.') =>
            {
                s.clone()
            }
            None => return Err(refuse(v.line, format!("{k}: {s:?} is not a list"))),
        },
        SrcValue::List(_) if k == "with_items" => {
            let mut flat = Vec::new();
            for i in v.as_list().unwrap_or_default() {
                match i.as_list() {
                    Some(inner) => flat.extend(inner.iter().cloned()),
                    None => flat.push(i.clone()),
                }
            }
            return Ok(Some(Src::list(v.line, flat)));
        }
        _ => return Ok(Some(v.clone())),
    };
    Ok(Some(Src::text(
        v.line,
        format!("{{{{ ({expr}) | {filter} }}}}"),
    )))
}
