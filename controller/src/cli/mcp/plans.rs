//! The plan tools: `check` (what a plan would change, recorded for approval), `apply` (an
//! approved check, once, only while everything it was made of is unchanged) and `drift`.
//!
//! What binds an approval to the change: the plan's hash (the plan and every file it is made
//! of), the vars' hash (the vars the check was given and every host's inventory vars), the
//! exact hosts, and on each host a digest of what the check found there (every task that
//! would change it, with its diff). An apply checks all of them again, the hosts by a fresh
//! check, and runs only on hosts whose digest is unchanged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rmcp::model::JsonObject;
use serde_json::Value;
use sha2::Digest;
use wisp_events::{Event, Sink};
use wisp_store::approvals::{self, Approval, Check};

use super::State;
use super::jobs::fan;
use super::tools::{REFUSED, hosts, refused};
use crate::fleet::Target;
use crate::jobs::apply::ApplyOptions;
use crate::policy::{Apply, PlanRule};
use crate::report::drift::{Collector, Drift};

/// The most bytes of a check's report an agent is sent; the approver sees all of it.
const REPORT_BYTES: usize = 32 * 1024;

/// What a plan call names: the plan, its vars and its hosts, read and held to the policy.
struct Asked<'a> {
    plan: wisp_plan::Plan,
    file: PathBuf,
    vars: Value,
    spec: String,
    targets: Vec<Target>,
    names: Vec<String>,
    rule: &'a PlanRule,
}

impl Asked<'_> {
    /// The SHA-256 of the vars given and each host's inventory vars.
    fn vars_hash(&self) -> String {
        let mut h = sha2::Sha256::new();
        h.update(canonical(&self.vars).as_bytes());
        for t in &self.targets {
            h.update(format!("\0{}\0", t.name).as_bytes());
            h.update(canonical(&Value::Object(t.vars.clone().into_iter().collect())).as_bytes());
        }
        data_encoding::HEXLOWER.encode(&h.finalize())
    }
}

/// Reads the plan and hosts a call names, and finds the plan rule that allows them.
fn ask<'s>(
    state: &'s State,
    plan: &str,
    targets: Option<&str>,
    vars: Value,
) -> Result<Asked<'s>, String> {
    let file = std::fs::canonicalize(plan).map_err(|e| format!("plan {plan}: {e}"))?;
    let vars = match vars {
        Value::Null => Value::Object(serde_json::Map::new()),
        v @ Value::Object(_) => v,
        _ => return Err("vars must be an object".into()),
    };
    let options = super::super::apply::PlanOptions {
        secrets: None,
        identity: super::super::secrets::IdentityArg { identity: None },
        facts_ttl: None,
        refresh_facts: false,
        extra_vars: vec![vars.to_string()],
        tags: Vec::new(),
        skip_tags: Vec::new(),
        start_at_task: None,
    };
    let plan = super::super::apply::load_quiet(&file, &options)?;
    let spec = match targets.map(str::to_owned).or_else(|| plan.targets.clone()) {
        Some(s) => s,
        None => return Err("name the hosts: targets (the plan sets none)".into()),
    };
    let (targets, names, inv) = hosts(state, &spec, Some(&file))?;
    let select = |pattern: &str| wisp_inventory::select(&inv, pattern);
    let rule = state
        .policy
        .allow_plan(&file, &names, select)
        .map_err(refused)?;
    Ok(Asked {
        plan,
        file,
        vars,
        spec,
        targets,
        names,
        rule,
    })
}

/// What a plan's run found.
struct Found {
    /// What each host's tasks changed (or would), folded.
    drift: Drift,
    /// Why the rollout stopped early.
    stopped: Option<String>,
    /// The tasks check mode could not check (an exec runs only for real), by task, with their
    /// hosts: they run on apply, whatever they do.
    unchecked: BTreeMap<String, Vec<String>>,
}

impl Found {
    /// The tasks that run unchecked, for the approver.
    fn unchecked_text(&self) -> String {
        self.unchecked
            .iter()
            .map(|(task, hosts)| {
                format!(
                    "WILL RUN UNCHECKED {} ({} hosts): {}\n",
                    crate::report::fold_hosts(hosts),
                    hosts.len(),
                    crate::report::visible(task)
                )
            })
            .collect()
    }
}

/// Runs `asked`'s plan on `targets` in check mode (or for real), and gathers what each
/// host's tasks found.
async fn run_plan(
    state: &State,
    asked: &Asked<'_>,
    targets: Vec<Target>,
    check: bool,
) -> Result<Found, String> {
    let options = ApplyOptions {
        check,
        diff: true,
        drift: false,
        facts_ttl: None,
    };
    let inventory = state.common.inventory.clone();
    let job = super::super::apply::plan_job(
        asked.plan.clone(),
        inventory.as_deref(),
        &targets,
        options,
        None,
    )?;
    let collector = Arc::new(Collector::default());
    let unchecked = Arc::new(std::sync::Mutex::new(BTreeMap::<String, Vec<String>>::new()));
    let (into, skipped) = (Arc::clone(&collector), Arc::clone(&unchecked));
    let sink = Sink(Arc::new(move |e| match e {
        Event::Task(t) => {
            if t.status == "skipped"
                && t.detail == "check mode"
                && let Ok(mut s) = skipped.lock()
            {
                s.entry(t.task.clone()).or_default().push(t.host.clone());
            }
            into.task(&t.host, &t.task, &t.status, &t.detail);
        }
        Event::Diff { host, text } => into.diff(&host, &text),
        _ => {}
    }));
    let mut rollout = state.common.rollout.clone();
    state
        .policy
        .rollout(&mut rollout.serial, &mut rollout.max_fail, (false, false))
        .map_err(refused)?;
    let (_stop, interrupt) = tokio::sync::watch::channel(wisp_events::interrupt::Interrupt::None);
    let fanned = fan(state, targets, job, &rollout, sink, interrupt).await;
    let mut unchecked = unchecked.lock().map(|u| u.clone()).unwrap_or_default();
    for hosts in unchecked.values_mut() {
        hosts.sort();
        hosts.dedup();
    }
    Ok(Found {
        drift: Drift::new(&collector, &fanned.results),
        stopped: fanned.stopped,
        unchecked,
    })
}

/// Each host's digest of what the check found on it; the hosts that could not be checked
/// whole, with why.
fn digests(drift: &Drift) -> (BTreeMap<String, String>, Vec<String>) {
    let mut states = BTreeMap::new();
    for g in &drift.groups {
        let d = digest(&serde_json::to_string(&g.findings).unwrap_or_default());
        for h in &g.host_list {
            states.insert(h.clone(), d.clone());
        }
    }
    let clean = digest("[]");
    for h in &drift.clean_hosts {
        states.insert(h.clone(), clean.clone());
    }
    let broken = drift
        .unreachable
        .iter()
        .chain(&drift.incomplete)
        .map(|(h, why)| format!("{h}: {why}"))
        .collect();
    (states, broken)
}

fn digest(text: &str) -> String {
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(text.as_bytes()))
}

/// JSON with every object's keys in order, so that equal values hash the same.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, String> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            let parts: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::String((*k).clone())))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn text_arg<'a>(args: &'a JsonObject, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

fn store(state: &State) -> Result<std::sync::MutexGuard<'_, wisp_store::Store>, String> {
    state
        .store
        .as_ref()
        .ok_or("checks and approvals live in the state store: start `wisp mcp` without --no-state")?
        .lock()
        .map_err(|_| "the state store is unusable after an earlier failure".to_owned())
}

/// `check`: the plan in check mode on its hosts; what would change, recorded under an id for
/// an operator to approve (or approved by the rule, when it applies plans directly).
pub(super) async fn check(
    state: &State,
    client: &str,
    args: &JsonObject,
) -> Result<(String, String), String> {
    let plan = text_arg(args, "plan").ok_or("check needs plan")?;
    let vars = args.get("vars").cloned().unwrap_or(Value::Null);
    let asked = ask(state, plan, text_arg(args, "targets"), vars)?;
    let found = run_plan(state, &asked, asked.targets.clone(), true).await?;
    let (drift, stopped) = (&found.drift, found.stopped.clone());
    let (states, broken) = digests(drift);
    let report = drift.text_as("WOULD CHANGE") + &found.unchecked_text();
    let rule = asked.rule.name.clone();
    if let Some(why) = stopped {
        return Err(format!("the check stopped: {why}\n{report}"));
    }
    if !broken.is_empty() {
        return Err(format!(
            "not every host could be checked, so nothing can be approved; fix them or leave \
             them out, then check again:\n  {}\n{report}",
            broken.join("\n  ")
        ));
    }
    if drift.groups.is_empty() && found.unchecked.is_empty() {
        return Ok((rule, format!("nothing would change\n{report}")));
    }
    let id = {
        let s = store(state)?;
        let id = s
            .record_check(&Check {
                asked_by: client.to_owned(),
                rule: rule.clone(),
                plan_file: asked.file.display().to_string(),
                plan_hash: asked.plan.hash.clone(),
                vars: canonical(&asked.vars),
                vars_hash: asked.vars_hash(),
                targets: asked.spec.clone(),
                hosts: asked.names.clone(),
                states: serde_json::to_string(&states).unwrap_or_default(),
                report: report.clone(),
            })
            .map_err(|e| e.to_string())?;
        if asked.rule.apply == Apply::Direct {
            let until = approvals::now() + asked.rule.lifetime()?.as_secs();
            s.approve(&id, &format!("policy rule {rule:?}"), until)
                .map_err(|e| e.to_string())?;
        }
        id
    };
    let next = match asked.rule.apply {
        Apply::Approved => format!(
            "an operator must approve it (`wisp approve {id}`) before `apply` with approval \
             {id:?}"
        ),
        Apply::Direct => format!("the policy approves it: `apply` with approval {id:?}"),
        Apply::Never => "the policy allows this plan to be checked, never applied".into(),
    };
    let mut shown = report;
    if shown.len() > REPORT_BYTES {
        let cut = (0..=REPORT_BYTES)
            .rev()
            .find(|i| shown.is_char_boundary(*i))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push_str("\n(cut; `wisp approve` shows the whole report)\n");
    }
    Ok((rule, format!("check {id}: {next}\n{shown}")))
}

/// `drift`: the plan in check mode, the hosts that drifted the same way told once.
pub(super) async fn drift(state: &State, args: &JsonObject) -> Result<(String, String), String> {
    let plan = text_arg(args, "plan").ok_or("drift needs plan")?;
    let vars = args.get("vars").cloned().unwrap_or(Value::Null);
    let asked = ask(state, plan, text_arg(args, "targets"), vars)?;
    let found = run_plan(state, &asked, asked.targets.clone(), true).await?;
    let mut text = found.drift.text();
    if let Some(why) = found.stopped {
        text.push_str(&format!("stopped: {why}\n"));
    }
    Ok((asked.rule.name.clone(), text))
}

/// `apply`: an approved check, run once, on the hosts whose state is still what it saw.
pub(super) async fn apply(state: &State, args: &JsonObject) -> Result<(String, String), String> {
    let id = text_arg(args, "approval").ok_or("apply needs approval: the id a check gave")?;
    let approval = store(state)?
        .approval(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no check {id:?}: `check` the plan first"))?;
    let c = &approval.check;
    let plan = text_arg(args, "plan").unwrap_or(&c.plan_file);
    let targets = text_arg(args, "targets").unwrap_or(&c.targets);
    let vars = match args.get("vars") {
        Some(v) => v.clone(),
        None => serde_json::from_str(&c.vars).map_err(|e| e.to_string())?,
    };
    let asked = ask(state, plan, Some(targets), vars)?;
    bound(&approval, &asked)?;
    let now = approvals::now();
    if !store(state)?
        .use_approval(id, now)
        .map_err(|e| e.to_string())?
    {
        return Err(refused(format!("approval {id} was taken by another call")));
    }
    let rule = asked.rule.name.clone();
    let seen: BTreeMap<String, String> = serde_json::from_str(&c.states).unwrap_or_default();
    let found = run_plan(state, &asked, asked.targets.clone(), true).await?;
    if let Some(why) = found.stopped {
        return Err(format!("the check before applying stopped: {why}"));
    }
    let (now_states, _) = digests(&found.drift);
    let (same, moved): (Vec<Target>, Vec<Target>) = asked.targets.iter().cloned().partition(|t| {
        seen.get(&t.name)
            .is_some_and(|d| now_states.get(&t.name) == Some(d))
    });
    let mut text = String::new();
    if !same.is_empty() {
        let applied: Vec<String> = same.iter().map(|t| t.name.clone()).collect();
        let done = run_plan(state, &asked, same, false).await?;
        text.push_str(&format!(
            "applied check {id} on {}\n{}",
            crate::report::fold_hosts(&applied),
            done.drift.text_as("CHANGED")
        ));
        if let Some(why) = done.stopped {
            text.push_str(&format!("stopped: {why}\n"));
        }
    }
    if moved.is_empty() {
        return Ok((rule, text));
    }
    let names: Vec<String> = moved.iter().map(|t| t.name.clone()).collect();
    text.push_str(&format!(
        "NOT APPLIED {}: not what check {id} saw there any more (changed since, or \
         unreachable); check again and ask for a fresh approval\n",
        crate::report::fold_hosts(&names)
    ));
    Err(text)
}

/// Whether `asked` is still exactly what `approval` approved, and the approval is usable.
fn bound(approval: &Approval, asked: &Asked<'_>) -> Result<(), String> {
    let (id, c) = (&approval.id, &approval.check);
    let now = approvals::now();
    let lifetime = asked.rule.lifetime()?.as_secs();
    let until = match (approval.approved_at, approval.expires_at) {
        (Some(at), Some(until)) => until.min(at + lifetime),
        _ => 0,
    };
    let why = if approval.used_at.is_some() {
        "was used already: an approval is used once; check again and ask for a fresh one".into()
    } else if approval.approved_at.is_none() {
        format!("is not approved: an operator approves it with `wisp approve {id}`")
    } else if now >= until {
        format!(
            "expired at {}: check again and ask for a fresh one",
            wisp_store::clock::timestamp(until)
        )
    } else if asked.rule.apply == Apply::Never {
        format!("plan rule {:?} never applies plans", asked.rule.name)
    } else if asked.file.display().to_string() != c.plan_file {
        format!("was for {}, not {}", c.plan_file, asked.file.display())
    } else if asked.plan.hash != c.plan_hash {
        format!(
            "was for another version of {}: the plan or a file it is made of changed since the check",
            c.plan_file
        )
    } else if asked.names != c.hosts {
        format!(
            "was for {} ({} hosts), not {} ({} hosts)",
            crate::report::fold_hosts(&c.hosts),
            c.hosts.len(),
            crate::report::fold_hosts(&asked.names),
            asked.names.len()
        )
    } else if canonical(&asked.vars) != c.vars || asked.vars_hash() != c.vars_hash {
        "was for other vars: the vars given or the hosts' inventory vars changed since the check"
            .into()
    } else {
        return Ok(());
    };
    Err(format!("{REFUSED}approval {id} {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_vars_hash_alike_whatever_the_order_of_their_keys() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "s"}], "a": null}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a": null, "b": [1, {"x": "s", "y": 2}]}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), r#"{"a":null,"b":[1,{"x":"s","y":2}]}"#);
        let c: Value =
            serde_json::from_str(r#"{"a": null, "b": [{"x": "s", "y": 2}, 1]}"#).unwrap();
        assert_ne!(canonical(&a), canonical(&c));
    }
}
