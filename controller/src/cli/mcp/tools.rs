//! The tools: their names, schemas and hints, and what each does.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};
use tokio::sync::watch;
use wisp_events::interrupt::Interrupt;
use wisp_plan::limits::LimitArgs;

use super::State;
use super::fold::Outputs;
use crate::jobs::Job;
use crate::report::{Reporter, fold_hosts};

/// How a refusal by the policy begins.
pub(super) const REFUSED: &str = "refused by the policy: ";

fn schema(v: Value) -> Arc<JsonObject> {
    Arc::new(v.as_object().cloned().unwrap_or_default())
}

/// Every tool, as `tools/list` gives them.
pub(super) fn list() -> Vec<Tool> {
    let mut inventory = Tool::new(
        "inventory",
        "The inventory's groups, each with its hosts folded (web[01-40]); with `pattern`, \
         the hosts it selects.",
        schema(json!({
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "An inventory pattern (web:&prod, db*, !web03); all groups when absent."}
            }
        })),
    );
    inventory.annotations = Some(
        ToolAnnotations::new()
            .read_only(true)
            .destructive(false)
            .idempotent(true)
            .open_world(false),
    );
    let mut run = Tool::new(
        "run",
        "Runs a program (no shell: argv) on the hosts `targets` selects, as the policy \
         allows: the program by its path, its arguments, the hosts and how many, under the \
         policy's sandbox. Waits for the end and returns the results folded: hosts that \
         ended the same way with the same output are told once.",
        schema(json!({
            "type": "object",
            "properties": {
                "targets": {"type": "string", "description": "Hosts: an inventory pattern or a comma-separated list."},
                "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                         "description": "The program and its arguments, one word each."}
            },
            "required": ["targets", "argv"]
        })),
    );
    run.annotations = Some(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(true)
            .idempotent(false)
            .open_world(false),
    );
    let mut facts = Tool::new(
        "facts",
        "What each host is: OS, kernel, architecture, CPUs, memory, init system and package \
         manager; hosts alike are told once.",
        schema(json!({
            "type": "object",
            "properties": {
                "targets": {"type": "string", "description": "Hosts: an inventory pattern or a comma-separated list."}
            },
            "required": ["targets"]
        })),
    );
    facts.annotations = Some(
        ToolAnnotations::new()
            .read_only(true)
            .destructive(false)
            .idempotent(true)
            .open_world(false),
    );
    vec![inventory, facts, run]
}

/// `facts`: each host's facts, read and folded, on hosts some rule covers.
pub(super) async fn facts(state: &State, args: &JsonObject) -> Result<String, String> {
    let spec = args
        .get("targets")
        .and_then(Value::as_str)
        .ok_or("facts needs targets")?;
    let (targets, names, inv) = hosts(state, spec)?;
    let select = |pattern: &str| wisp_inventory::select(&inv, pattern);
    state
        .policy
        .allow_hosts(&names, select)
        .map_err(|e| format!("{REFUSED}{e}"))?;
    Ok(fan_out(state, targets, Job::Facts, &state.common.rollout).await)
}

/// The hosts `spec` names, their names, and the inventory patterns are read in.
fn hosts(
    state: &State,
    spec: &str,
) -> Result<
    (
        Vec<crate::fleet::Target>,
        Vec<String>,
        wisp_inventory::Inventory,
    ),
    String,
> {
    let common = &state.common;
    let targets = super::super::connect::resolve(spec, common).map_err(|e| match e {
        super::super::connect::TargetsError::Inventory(m)
        | super::super::connect::TargetsError::Options(m) => m,
    })?;
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let inv = match &common.inventory {
        Some(p) => wisp_inventory::Inventory::load(p).map_err(|e| e.to_string())?,
        None => wisp_inventory::Inventory::of_hosts(names.clone()),
    };
    Ok((targets, names, inv))
}

/// Runs `job` on `targets` and folds what they said.
async fn fan_out(
    state: &State,
    targets: Vec<crate::fleet::Target>,
    job: Job,
    rollout: &super::super::options::RolloutArgs,
) -> String {
    let outputs = Outputs::default();
    let reporter = Arc::new(Reporter::forwarding(outputs.sink()));
    let (_stop, interrupt) = watch::channel(Interrupt::None);
    let forks = usize::try_from(state.common.forks).unwrap_or(usize::MAX);
    let fanned = crate::jobs::run(
        targets,
        job,
        &state.launch,
        &rollout.rollout(forks),
        None,
        reporter,
        interrupt,
    )
    .await;
    let mut text = outputs.fold(&fanned.results);
    if let Some(why) = fanned.stopped {
        text.push_str(&format!("stopped: {why}\n"));
    }
    text
}

/// `inventory`: groups and their folded hosts, or the hosts a pattern selects.
pub(super) fn inventory(state: &State, args: &JsonObject) -> Result<String, String> {
    let Some(path) = &state.common.inventory else {
        return Err("no inventory: start `wisp mcp` with -i INVENTORY".into());
    };
    let inv = wisp_inventory::Inventory::load(path).map_err(|e| e.to_string())?;
    if let Some(pattern) = args.get("pattern").and_then(Value::as_str) {
        let hosts = wisp_inventory::select(&inv, pattern)?;
        return Ok(format!(
            "{pattern}: {} ({} hosts)\n",
            fold_hosts(&hosts),
            hosts.len()
        ));
    }
    let mut text = String::new();
    let all = inv.group_hosts("all").unwrap_or_default();
    let all: Vec<String> = all.into_iter().collect();
    text.push_str(&format!(
        "all: {} ({} hosts)\n",
        fold_hosts(&all),
        all.len()
    ));
    for g in inv.group_names() {
        let hosts: Vec<String> = inv.group_hosts(g).unwrap_or_default().into_iter().collect();
        text.push_str(&format!(
            "{g}: {} ({} hosts)\n",
            fold_hosts(&hosts),
            hosts.len()
        ));
    }
    Ok(text)
}

/// `run`: the call checked against the policy, then run on every host it names; the
/// results folded.
pub(super) async fn run(state: &State, args: &JsonObject) -> Result<(String, String), String> {
    let spec = args
        .get("targets")
        .and_then(Value::as_str)
        .ok_or("run needs targets")?;
    let argv: Vec<String> = args
        .get("argv")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .ok_or("run needs argv, a list of words")?;
    let (targets, names, inv) = hosts(state, spec)?;
    let select = |pattern: &str| wisp_inventory::select(&inv, pattern);
    let refused = |e: String| format!("{REFUSED}{e}");
    let rule = state.policy.allow(&argv, &names, select).map_err(refused)?;
    let limits = rule.limits(&LimitArgs::default()).map_err(refused)?;
    let mut rollout = state.common.rollout.clone();
    state
        .policy
        .rollout(&mut rollout.serial, &mut rollout.max_fail, (false, false))
        .map_err(refused)?;
    let exec = super::super::run::ExecOptions {
        max_output: Some(1 << 20),
        cwd: None,
        output_dir: None,
        env: Vec::new(),
        limits,
    };
    let mut job = super::super::run::exec_job(exec, argv)
        .map_err(|status| format!("the command was refused (exit {})", status as u8))?;
    if let Job::Exec { args, .. } = &mut job {
        args.programs = rule.programs.clone();
    }
    let text = fan_out(state, targets, job, &rollout).await;
    Ok((rule.name.clone(), format!("rule {:?}\n{text}", rule.name)))
}
