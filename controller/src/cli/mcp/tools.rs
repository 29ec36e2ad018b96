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
use crate::report::fold_hosts;

/// How a refusal by the policy begins.
pub(super) const REFUSED: &str = "refused by the policy: ";

fn schema(v: Value) -> Arc<JsonObject> {
    Arc::new(v.as_object().cloned().unwrap_or_default())
}

/// Every tool, as `tools/list` gives them.
pub(super) fn list() -> Vec<Tool> {
    let targets = json!({"type": "string", "description": "Hosts: an inventory pattern or a comma-separated list."});
    let inventory = tool(
        "inventory",
        "The inventory's groups, each with its hosts folded (web[01-40]); with `pattern`, \
         the hosts it selects.",
        json!({
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "An inventory pattern (web:&prod, db*, !web03); all groups when absent."}
            }
        }),
        [true, false, true],
    );
    let run = tool(
        "run",
        "Runs a program (no shell: argv) on the hosts `targets` selects, as the policy \
         allows: the program by its path, its arguments, the hosts and how many, under the \
         policy's sandbox. Waits for the end and returns the results folded: hosts that \
         ended the same way with the same output are told once (the whole output stays \
         with the job, for `job`).",
        json!({
            "type": "object",
            "properties": {
                "targets": targets,
                "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                         "description": "The program and its arguments, one word each."},
                "background": {"type": "boolean", "description": "Answer at once with the job's number instead of waiting; follow it with `job`."}
            },
            "required": ["targets", "argv"]
        }),
        [false, true, false],
    );
    let facts = tool(
        "facts",
        "What each host is: OS, kernel, architecture, CPUs, memory, init system and package \
         manager; hosts alike are told once.",
        json!({"type": "object", "properties": {"targets": targets}, "required": ["targets"]}),
        [true, false, true],
    );
    let mut tools = vec![inventory, facts, run];
    tools.extend(plan_tools());
    let id = json!({"type": "integer", "minimum": 1, "description": "The job's number, as `run` gave it."});
    tools.push(tool(
        "job",
        "How a job is going (hosts ended so far), or once it ended its whole output, folded, \
         one page at a time.",
        json!({"type": "object", "properties": {"id": id, "page": {"type": "integer", "minimum": 1}}, "required": ["id"]}),
        [true, false, true],
    ));
    tools.push(tool(
        "cancel",
        "Stops a running job: each host's runner kills the command's whole process tree; \
         hosts not started yet are not started.",
        json!({"type": "object", "properties": {"id": id}, "required": ["id"]}),
        [false, false, true],
    ));
    tools
}

/// A tool with its hints: read-only, destructive, idempotent (and never open-world: the
/// tools reach the inventory's hosts alone).
fn tool(name: &'static str, description: &'static str, args: Value, hints: [bool; 3]) -> Tool {
    let mut t = Tool::new(name, description, schema(args));
    t.annotations = Some(
        ToolAnnotations::new()
            .read_only(hints[0])
            .destructive(hints[1])
            .idempotent(hints[2])
            .open_world(false),
    );
    t
}

/// `check`, `apply` and `drift`.
fn plan_tools() -> Vec<Tool> {
    let plan = json!({"type": "string", "description": "The plan file (a wisp plan or an Ansible playbook), as the policy names it."});
    let targets = json!({"type": "string", "description": "Hosts: an inventory pattern or a comma-separated list [default: the plan's targets]."});
    let vars = json!({"type": "object", "description": "Extra vars, above every other."});
    vec![
        tool(
            "check",
            "Checks a plan on its hosts, changing nothing: what each host would change, with \
             diffs. What would change is recorded under an id that an operator approves \
             (`wisp approve ID`); `apply` then runs exactly that, once.",
            json!({"type": "object", "properties": {"plan": plan, "targets": targets, "vars": vars}, "required": ["plan"]}),
            [true, false, false],
        ),
        tool(
            "apply",
            "Applies an approved check, once: only if the plan, its vars and its hosts are \
             still what was checked, and only on hosts whose state is still what the check \
             saw there.",
            json!({"type": "object", "properties": {
                "approval": {"type": "string", "description": "The id `check` gave."},
                "plan": plan, "targets": targets, "vars": vars
            }, "required": ["approval"]}),
            [false, true, false],
        ),
        tool(
            "drift",
            "Checks a plan on its hosts, changing nothing, and tells which hosts no longer \
             match it (hosts that drifted the same way told once) and which are clean.",
            json!({"type": "object", "properties": {"plan": plan, "targets": targets, "vars": vars}, "required": ["plan"]}),
            [true, false, true],
        ),
    ]
}

/// `facts`: each host's facts, read and folded, on hosts some rule covers.
pub(super) async fn facts(state: &State, args: &JsonObject) -> Result<String, String> {
    let spec = args
        .get("targets")
        .and_then(Value::as_str)
        .ok_or("facts needs targets")?;
    let (targets, names, inv) = hosts(state, spec, None)?;
    let select = |pattern: &str| wisp_inventory::select(&inv, pattern);
    state.policy.allow_hosts(&names, select).map_err(refused)?;
    Ok(fan_out(state, targets, Job::Facts, &state.common.rollout).await)
}

/// A refusal by the policy, as the agent reads it.
pub(super) fn refused(why: String) -> String {
    format!("{REFUSED}{why}")
}

/// The hosts `spec` names (with a plan's `group_vars/` and `host_vars/` when `plan` is
/// given), their names, and the inventory patterns are read in.
pub(super) fn hosts(
    state: &State,
    spec: &str,
    plan: Option<&std::path::Path>,
) -> Result<
    (
        Vec<crate::fleet::Target>,
        Vec<String>,
        wisp_inventory::Inventory,
    ),
    String,
> {
    let mut common = state.common.clone();
    if let Some(p) = plan {
        common.playbook_dir = Some(super::super::apply::plan_dir(p));
    }
    let targets = super::super::connect::resolve(spec, &common).map_err(|e| match e {
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
    let (_stop, interrupt) = watch::channel(Interrupt::None);
    let fanned = super::jobs::fan(state, targets, job, rollout, outputs.sink(), interrupt).await;
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
pub(super) async fn run(
    state: &State,
    args: &JsonObject,
    follow: super::jobs::Follow<'_>,
) -> Result<(String, String), String> {
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
    let (targets, names, inv) = hosts(state, spec, None)?;
    let select = |pattern: &str| wisp_inventory::select(&inv, pattern);
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
    let mut job = super::super::run::exec_job(exec, argv.clone())
        .map_err(|status| format!("the command was refused (exit {})", status as u8))?;
    if let Job::Exec { args, .. } = &mut job {
        args.programs = rule.programs.clone();
    }
    let what = super::jobs::what(&argv, &names);
    let (id, task) = state.jobs.start(state, targets, job, rollout, what);
    let head = format!("rule {:?}\n", rule.name);
    if args.get("background").and_then(Value::as_bool) == Some(true) {
        return Ok((
            rule.name.clone(),
            format!("{head}job {id} started; `job` with id {id} follows it, `cancel` stops it\n"),
        ));
    }
    follow.wait(state, id, task).await?;
    Ok((rule.name.clone(), head + &state.jobs.answer(id)?))
}
