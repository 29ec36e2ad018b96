//! The ops the controller answers itself, without the host: `set_fact`, `debug`, `assert`
//! and `fail`.

use minijinja::value::Value;
use wisp_plan::scope::HostScope;
use wisp_plan::{Data, DataMap, Engine, Task};

use super::apply::TaskStatus;
use super::op::Ran;

/// `set_fact`, `debug`, `assert` and `fail`: answered here, without the host.
pub(super) fn answer(engine: &Engine, scope: &HostScope, t: &Task, frame: &Value) -> Ran {
    let args = match engine.data(&Data::Map(t.args.clone()), frame) {
        Ok(Data::Map(a)) => a,
        Ok(_) => DataMap::new(),
        Err(e) => return Ran::without_running(TaskStatus::Failed, e),
    };
    let text = |k: &str| {
        args.get(k).map(|v| match v {
            Data::Str(s) => s.clone(),
            other => wisp_plan::jinja::python_repr(&other.to_value()),
        })
    };
    let (status, detail) = match t.op.as_str() {
        "set_fact" => {
            for (k, v) in &args {
                scope.set_fact(k, v.clone());
            }
            (
                TaskStatus::Ok,
                args.keys().cloned().collect::<Vec<_>>().join(", "),
            )
        }
        "debug" => match (text("msg"), t.args.get("var").and_then(Data::as_str)) {
            (_, Some(var)) => match engine.eval(var, frame) {
                Ok(v) => (
                    TaskStatus::Ok,
                    format!("{var}: {}", wisp_plan::jinja::python_repr(&v)),
                ),
                Err(e) => (TaskStatus::Failed, format!("{var}: {e}")),
            },
            (msg, None) => (TaskStatus::Ok, msg.unwrap_or_else(|| "Hello world!".into())),
        },
        "assert" => assert(engine, t, &args, frame),
        _ => (
            TaskStatus::Failed,
            text("msg").unwrap_or_else(|| "failed as requested".into()),
        ),
    };
    let mut ran = Ran::without_running(status, detail);
    if status != TaskStatus::Skipped {
        ran.result.shift_remove("skipped");
    }
    ran
}

fn assert(engine: &Engine, t: &Task, args: &DataMap, frame: &Value) -> (TaskStatus, String) {
    let that: Vec<String> = match t.args.get("that") {
        Some(Data::List(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        Some(Data::Str(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let msg = |k: &str| args.get(k).and_then(Data::as_str).map(str::to_owned);
    for c in &that {
        match engine.condition(c, frame) {
            Ok(true) => {}
            Ok(false) => {
                let why = msg("fail_msg").or_else(|| msg("msg"));
                return (
                    TaskStatus::Failed,
                    why.unwrap_or_else(|| format!("assertion failed: {c}")),
                );
            }
            Err(e) => return (TaskStatus::Failed, format!("{c}: {e}")),
        }
    }
    (
        TaskStatus::Ok,
        msg("success_msg").unwrap_or_else(|| "all assertions passed".into()),
    )
}
