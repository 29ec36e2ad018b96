//! The keys of a task that say when and how it runs (its [`Flow`]), read and checked.

use super::{Keys, task_error};
use crate::Located;
use crate::data::Data;
use crate::source::{Src, SrcValue};
use crate::task::Flow;

/// The keys that say when and how a task runs.
pub(super) fn flow(keys: &Keys<'_>, op: &str) -> Result<Flow, Located> {
    let mut flow = Flow {
        when: keys.conditions("when")?,
        tags: keys.names("tags")?,
        vars: keys.vars()?,
        ignore_errors: keys.boolean("ignore_errors")?.unwrap_or(false),
        loop_over: keys.src.get("loop").map(Src::to_data),
        loop_var: "item".to_owned(),
        register: keys.string("register")?,
        changed_when: keys.conditions("changed_when")?,
        failed_when: keys.conditions("failed_when")?,
        until: keys.conditions("until")?,
        creates: keys.string("creates")?,
        removes: keys.string("removes")?,
        check_mode: keys.boolean("check_mode")?,
        run_once: keys.boolean("run_once")?.unwrap_or(false),
        no_log: keys.boolean("no_log")?.unwrap_or(false),
        delegate_to: keys.string("delegate_to")?,
        become_root: keys.boolean("become")?,
        become_user: keys.string("become_user")?,
        ..Flow::default()
    };
    if let Some(c) = keys.src.get("loop_control") {
        let bad = |line, what: &str| task_error(line, format!("loop_control: {what}"));
        for (k, v) in c.as_map().ok_or_else(|| bad(c.line, "must be a table"))? {
            let text = v.as_str().ok_or_else(|| bad(v.line, "values are names"))?;
            match k.as_str() {
                "loop_var" => flow.loop_var = text.to_owned(),
                "label" => flow.loop_label = Some(text.to_owned()),
                "index_var" => flow.index_var = Some(text.to_owned()),
                other => {
                    return Err(bad(
                        v.line,
                        &format!("no key {other:?} (loop_var, label, index_var)"),
                    ));
                }
            }
        }
        if flow.loop_over.is_none() {
            return Err(bad(c.line, "without a loop"));
        }
    }
    let number = |k: &str| match keys.src.get(k).map(|v| (v.line, &v.value)) {
        None => Ok(None),
        Some((_, SrcValue::Decimal(n))) if *n >= 0 => Ok(Some(*n as f64)),
        Some((_, SrcValue::Scalar(Data::Float(f)))) if *f >= 0.0 => Ok(Some(*f)),
        Some((line, _)) => Err(task_error(
            line,
            format!(
                "{k} must be a number of {}",
                if k == "delay" { "seconds" } else { "attempts" }
            ),
        )),
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked >= 0 above
    let retries = number("retries")?.map(|n| n.min(1e6) as u32);
    flow.delay_s = number("delay")?.unwrap_or(5.0);
    flow.retries = retries.unwrap_or(if flow.until.is_empty() { 0 } else { 3 });
    if (retries.is_some() || keys.src.get("delay").is_some()) && flow.until.is_empty() {
        return Err(task_error(
            keys.line("retries"),
            "retries and delay go with until",
        ));
    }
    if (flow.become_root.is_some() || flow.become_user.is_some()) && op != "exec" {
        return Err(task_error(
            keys.line("become"),
            format!(
                "become and become_user apply to exec tasks, not {op}: file, package and \
                 service ops run as the session's user (run the plan with --become for root)"
            ),
        ));
    }
    if (flow.creates.is_some() || flow.removes.is_some()) && op != "exec" {
        return Err(task_error(
            keys.line("creates"),
            format!("creates and removes go with exec, not {op}"),
        ));
    }
    Ok(flow)
}
