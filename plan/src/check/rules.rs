//! The rules a plan is held to before anything renders: facts quoted in command lines,
//! secrets only where they may go, facts that exist, and each op's args.

use super::texts;
use crate::data::Data;
use crate::task::{CONTROLLER_OPS, Task};
use crate::{PlanErrorKind, Walk};

/// Refuses a fact no host reports (`facts.oss`).
pub(super) fn unknown_fact(read: &[String]) -> Result<(), String> {
    use wisp_protocol::ops::Facts;
    for f in read.iter().filter_map(|r| r.strip_prefix("facts.")) {
        let f = f.split('.').next().unwrap_or(f);
        if !Facts::NAMES.contains(&f) {
            return Err(format!(
                "facts have no {f:?} (they have: {})",
                Facts::NAMES.join(", ")
            ));
        }
    }
    Ok(())
}

/// Where a secret may be read: an exec task's env or stdin, a file's content.
pub(super) fn secret_allowed(w: Walk<'_>, at: &str) -> Result<(), String> {
    let ok = match w {
        Walk::Task(t) => {
            (t.op == "exec" && (at == "args.env" || at == "stdin"))
                || (t.op == "file.write" && at == "content")
        }
        Walk::Block(_) => false,
    };
    if ok {
        return Ok(());
    }
    if matches!(at, "when" | "changed_when" | "failed_when" | "until") {
        return Err(format!("{at}: conditions cannot look at secrets"));
    }
    Err(format!(
        "{at}: a secret may go only in an exec task's env or stdin, or in file content: a \
         command line or a path is visible to every user of the host"
    ))
}

/// The checks of one task that need no rendering: facts quoted in command lines, and the
/// args of an op whose args hold no template.
pub(super) fn check_task(t: &Task) -> Result<(), PlanErrorKind> {
    if t.op == "exec" {
        for key in ["shell", "argv"] {
            if let Some(v) = t.args.get(key) {
                let mut all = Vec::new();
                texts(v, &mut all);
                for s in all {
                    unquoted_fact(s).map_err(PlanErrorKind::Template)?;
                }
            }
        }
    }
    if CONTROLLER_OPS.contains(&t.op.as_str()) {
        return controller_args(t).map_err(PlanErrorKind::Task);
    }
    if crate::edit::account::ACCOUNT_OPS.contains(&t.op.as_str()) {
        let known = crate::edit::account::known_args(&t.op);
        return match t.args.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(PlanErrorKind::Task(format!(
                "{}: no arg {k:?} (wisp reads: {})",
                t.op,
                known.join(", ")
            ))),
            None => Ok(()),
        };
    }
    if t.op == crate::edit::cron::CRON {
        let known = crate::edit::cron::CRON_ARGS;
        if let Some(k) = t.args.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(PlanErrorKind::Task(format!(
                "cron: no arg {k:?} (wisp reads: {})",
                known.join(", ")
            )));
        }
        return Ok(());
    }
    if crate::edit::EDIT_OPS.contains(&t.op.as_str()) {
        // Checked whole once rendered for a host; an unknown arg is refused now.
        return match crate::edit::Edit::parse(&t.op, &t.args) {
            Err(e) if e.contains(": no arg ") => Err(PlanErrorKind::Task(e)),
            _ => Ok(()),
        };
    }
    if !Data::Map(t.args.clone()).has_template() {
        crate::op_of(&t.op, &t.args).map_err(PlanErrorKind::Task)?;
    }
    if t.op == "exec" {
        t.limits
            .to_limits(std::env::consts::ARCH)
            .map_err(|e| PlanErrorKind::Limits(format!("limits: {e}")))?;
    }
    Ok(())
}

/// Refuses a command line that prints a fact without the `quote` filter: a fact is what the
/// host says, and in a command line it could run code there.
fn unquoted_fact(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").unwrap_or(after.len());
        let expr = after[..end].trim().trim_matches('-').trim();
        let reads_fact = expr
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == "facts" || crate::ansible::facts::is_fact(w));
        let quoted = expr
            .rsplit_once('|')
            .is_some_and(|(_, last)| last.trim() == "quote");
        if reads_fact && !quoted {
            return Err(format!(
                "{{{{ {expr} }}}} in a command: a fact is what the host says, and it could hold \
                 shell code; write {{{{ {expr} | quote }}}}"
            ));
        }
        rest = &after[end.min(after.len())..];
    }
    Ok(())
}

/// The args of the ops the controller carries out itself.
fn controller_args(t: &Task) -> Result<(), String> {
    let allowed: &[&str] = match t.op.as_str() {
        "set_fact" => {
            if t.args.is_empty() {
                return Err("set_fact needs at least one name = value".into());
            }
            return Ok(());
        }
        "debug" => &["msg", "var"],
        "assert" => &["that", "fail_msg", "success_msg", "msg", "quiet"],
        "fail" => &["msg"],
        _ => &[],
    };
    if let Some(k) = t.args.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "{} has no arg {k:?} (it takes: {})",
            t.op,
            allowed.join(", ")
        ));
    }
    if t.op == "assert" && !t.args.contains_key("that") {
        return Err("assert needs that = [conditions]".into());
    }
    Ok(())
}
