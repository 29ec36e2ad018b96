//! `wisp apply`: a plan, checked and given its secrets before anything connects, on every
//! matching host.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::options::RunOptions;
use super::{execute, parse_error, usage_error};
use crate::fleet::Target;
use crate::jobs::Job;
use crate::jobs::apply::{ApplyOptions, Compiled, Resume};
use wisp_events::exit::ExitStatus;
use wisp_inventory::Inventory;
use wisp_plan::{Fleet, Plan};
use wisp_protocol::error::chain as error_chain;

#[derive(Debug, Args)]
pub(super) struct ApplyArgs {
    #[command(flatten)]
    pub(super) plan: PlanArgs,
    /// Report what would change, and change nothing (exec tasks are skipped).
    #[arg(long)]
    pub(super) check: bool,
    /// Show a unified diff for every file whose content changes (or would).
    #[arg(long)]
    pub(super) diff: bool,
    /// List the tasks that would run (after --tags, --skip-tags, --start-at-task), with
    /// their lines and tags; contact no host.
    #[arg(long)]
    pub(super) list_tasks: bool,
    /// List the hosts the plan would run on; contact none.
    #[arg(long)]
    pub(super) list_hosts: bool,
    /// An Ansible playbook: list each module, arg and keyword it uses that wisp does not
    /// implement, with its file and line (exit 4 when there is one); contact no host.
    #[arg(long)]
    pub(super) check_support: bool,
    /// Run this Ansible role (a folder with tasks/, handlers/, defaults/...) as a play; the
    /// first argument then names the hosts: `wisp apply --role roles/web 'web*'`.
    #[arg(long, value_name = "DIR")]
    pub(super) role: Option<PathBuf>,
}

/// A plan and how to run it: what `wisp apply` and `wisp drift` share.
#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    /// The plan file: a wisp plan (TOML) or an Ansible playbook (`.yml`, `.yaml`).
    pub(super) plan: PathBuf,
    /// Hosts to run on [default: the plan's `targets`].
    pub(super) targets: Option<String>,
    #[command(flatten)]
    pub(super) common: RunOptions,
    #[command(flatten)]
    pub(super) options: PlanOptions,
}

/// How a plan gets its secrets and facts: what `apply`, `drift` and `retry` share.
#[derive(Debug, Args)]
pub(super) struct PlanOptions {
    /// The secrets file for {{ secret.NAME }} [default: the plan's `secrets`].
    #[arg(long, value_name = "FILE")]
    pub(super) secrets: Option<PathBuf>,
    #[command(flatten)]
    pub(super) identity: super::secrets::IdentityArg,
    /// Use facts from the state store read less than D ago (from the same host key: a
    /// re-keyed host is read again) instead of reading them now [default: always read].
    #[arg(long, value_name = "DURATION", value_parser = wisp_plan::quantity::parse_duration)]
    pub(super) facts_ttl: Option<std::time::Duration>,
    /// Read facts now even when --facts-ttl would allow cached ones.
    #[arg(long)]
    pub(super) refresh_facts: bool,
    /// Vars above every other: `NAME=VALUE` (several, space-separated; values are text),
    /// `@FILE` (YAML or JSON), or a JSON object. Repeatable; later ones win.
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub(super) extra_vars: Vec<String>,
    /// Run only the tasks tagged with one of these (comma-separated); tasks tagged `always`
    /// run too.
    #[arg(long, value_name = "TAGS", value_delimiter = ',')]
    pub(super) tags: Vec<String>,
    /// Do not run the tasks tagged with one of these (comma-separated).
    #[arg(long, value_name = "TAGS", value_delimiter = ',')]
    pub(super) skip_tags: Vec<String>,
    /// Start at the first task of this name; the ones before it do not run.
    #[arg(long, value_name = "NAME")]
    pub(super) start_at_task: Option<String>,
}

/// `wisp apply`.
pub(super) fn main(a: ApplyArgs) -> ExitStatus {
    let mode = a.mode();
    if a.list_tasks {
        return match load(&a.plan.plan, &a.plan.options) {
            Ok(plan) => list_tasks(&plan),
            Err(status) => status,
        };
    }
    if a.list_hosts {
        return list_hosts(a.plan);
    }
    run_plan(a.plan, mode)
}

impl ApplyArgs {
    /// `--check` and `--diff`.
    pub(super) fn mode(&self) -> Mode {
        Mode {
            check: self.check,
            diff: self.diff,
            drift: false,
        }
    }

    /// Whether it names an Ansible playbook or role rather than a wisp plan.
    pub(super) fn is_ansible(&self) -> bool {
        self.check_support
            || self.role.is_some()
            || wisp_plan::ansible::is_playbook(&self.plan.plan)
    }
}

/// `--list-tasks`: each task that would run, with its line, op and tags.
pub(super) fn list_tasks(plan: &Plan) -> ExitStatus {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for w in plan.walk() {
        let line = match w {
            wisp_plan::Walk::Task(t) => {
                let tags = if t.flow.tags.is_empty() {
                    String::new()
                } else {
                    format!("  tags: {}", t.flow.tags.join(","))
                };
                format!(
                    "{}:{}  {}  ({}){tags}",
                    plan.path.display(),
                    t.line,
                    t.name,
                    t.op
                )
            }
            wisp_plan::Walk::Block(b) => format!(
                "{}:{}  block{}",
                plan.path.display(),
                b.line,
                b.name
                    .as_deref()
                    .map(|n| format!(" {n}"))
                    .unwrap_or_default()
            ),
        };
        let _ = writeln!(out, "{line}");
    }
    ExitStatus::Ok
}

/// `--list-hosts`: the hosts the plan would run on, contacting none.
fn list_hosts(mut a: PlanArgs) -> ExitStatus {
    a.common.playbook_dir = Some(plan_dir(&a.plan));
    let plan = match load(&a.plan, &a.options) {
        Ok(p) => p,
        Err(status) => return status,
    };
    let Some(spec) = a.targets.clone().or_else(|| plan.targets.clone()) else {
        return usage_error("name the hosts (or set `targets` in the plan)");
    };
    super::connect::list_hosts(&spec, &a.common)
}

/// How a plan runs: `--check`, `--diff`, or as a drift check (check mode with diffs, collected
/// into one report).
#[derive(Debug, Clone, Copy)]
pub(super) struct Mode {
    pub(super) check: bool,
    pub(super) diff: bool,
    pub(super) drift: bool,
}

/// Loads and checks the plan, then runs it on its hosts.
pub(super) fn run_plan(mut a: PlanArgs, mode: Mode) -> ExitStatus {
    a.common.playbook_dir = Some(plan_dir(&a.plan));
    let plan = match load(&a.plan, &a.options) {
        Ok(p) => p,
        Err(status) => return status,
    };
    let Some(spec) = a.targets.clone().or_else(|| plan.targets.clone()) else {
        return usage_error(&format!(
            "name the hosts to apply {} to (or set `targets` in the plan)",
            a.plan.display()
        ));
    };
    run_loaded(plan, &spec, a.common, &a.options, mode, None)
}

/// Loads and checks the plan at `path`, with its secrets opened; an error is told on stderr.
pub(super) fn load(path: &std::path::Path, o: &PlanOptions) -> Result<Plan, ExitStatus> {
    load_quiet(path, o).map_err(|e| match e {
        LoadError::Options(m) => usage_error(&m),
        LoadError::Plan(m) => parse_error(&m),
    })
}

/// Why a plan could not be loaded: the options (exit 5) or the plan (exit 4).
#[derive(Debug)]
pub(super) enum LoadError {
    Options(String),
    Plan(String),
}

impl From<LoadError> for String {
    fn from(e: LoadError) -> String {
        match e {
            LoadError::Options(m) | LoadError::Plan(m) => m,
        }
    }
}

/// [`load`], the error returned instead of told.
pub(super) fn load_quiet(path: &std::path::Path, o: &PlanOptions) -> Result<Plan, LoadError> {
    let extra = wisp_plan::extra_vars(&o.extra_vars).map_err(LoadError::Options)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError::Plan(format!("{}: cannot read the plan: {e}", path.display())))?;
    let mut plan =
        Plan::parse_with(&text, path, extra).map_err(|e| LoadError::Plan(error_chain(&e)))?;
    let selection = wisp_plan::Selection {
        tags: o.tags.clone(),
        skip_tags: o.skip_tags.clone(),
        start_at: o.start_at_task.clone(),
    };
    plan.select(&selection).map_err(LoadError::Options)?;
    if !plan.secret_refs.is_empty() {
        // Opened before anything connects: a missing secret is a plan error.
        let Some(file) = o.secrets.clone().or_else(|| plan.secrets_file.clone()) else {
            return Err(LoadError::Options(format!(
                "{} uses secrets: name the file with --secrets FILE or `secrets = \"...\"` in the plan",
                path.display()
            )));
        };
        let values = wisp_secrets::identities(o.identity.identity.as_deref())
            .and_then(|ids| wisp_secrets::open(&file, &ids))
            .map_err(|e| LoadError::Options(error_chain(&e)))?;
        plan.attach_secrets(values, &file)
            .map_err(|e| LoadError::Plan(error_chain(&e)))?;
    }
    Ok(plan)
}

/// Runs a loaded plan on the hosts `spec` selects (each resumed where `resume` says).
pub(super) fn run_loaded(
    plan: Plan,
    spec: &str,
    common: RunOptions,
    o: &PlanOptions,
    mode: Mode,
    resume: Option<Arc<Resume>>,
) -> ExitStatus {
    let options = ApplyOptions {
        check: mode.check || mode.drift,
        diff: mode.diff || mode.drift,
        drift: mode.drift,
        facts_ttl: o.facts_ttl.filter(|_| !o.refresh_facts),
    };
    let inventory = common.inventory.clone();
    execute::fleet(common, spec, None, move |targets| {
        plan_job(plan, inventory.as_deref(), targets, options, resume).map_err(|e| parse_error(&e))
    })
}

/// The job that runs `plan` on `targets`: its task `targets` selected, rendered as far as it
/// can be before any host is contacted, its templates compiled.
pub(super) fn plan_job(
    mut plan: Plan,
    inventory: Option<&std::path::Path>,
    targets: &[Target],
    options: ApplyOptions,
    resume: Option<Arc<Resume>>,
) -> Result<Job, String> {
    select_task_hosts(&mut plan, inventory, targets)?;
    let mut names: Vec<String> = targets
        .iter()
        .flat_map(|t| t.vars.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    plan.verify(&names).map_err(|e| error_chain(&e))?;
    let compiled = Compiled::new(&plan)
        .map_err(|e| error_chain(&e))?
        .with_fleet(fleet(inventory, targets)?);
    Ok(Job::Plan {
        plan: Arc::new(plan),
        compiled: Arc::new(compiled),
        once: Default::default(),
        peers: Arc::new(
            targets
                .iter()
                .map(|t| (t.name.clone(), Arc::clone(&t.transport)))
                .collect(),
        ),
        options,
        resume,
    })
}

/// The inventory's groups and the run's hosts, for `groups`, `group_names`, `hostvars` and
/// `play_hosts`; without an inventory file every host is in `all` and `ungrouped`.
fn fleet(inventory: Option<&std::path::Path>, targets: &[Target]) -> Result<Fleet, String> {
    let inv = match inventory {
        Some(path) => Inventory::load(path).map_err(|e| e.to_string())?,
        None => Inventory::of_hosts(targets.iter().map(|t| t.name.clone())),
    };
    let resolver = inv.resolver();
    let to_data = |vars: &wisp_inventory::Vars| {
        vars.iter()
            .map(|(k, v)| (k.clone(), wisp_plan::Data::from_json(v)))
            .collect()
    };
    Ok(Fleet {
        groups: resolver.groups().into_iter().collect(),
        member_of: targets
            .iter()
            .map(|t| {
                let groups = resolver.groups_of(&t.name);
                let groups = groups.iter().filter(|g| **g != "ungrouped");
                (t.name.clone(), groups.map(|g| (*g).to_owned()).collect())
            })
            .collect(),
        hostvars: targets
            .iter()
            .map(|t| (t.name.clone(), to_data(&t.vars)))
            .collect(),
        play_hosts: targets.iter().map(|t| t.name.clone()).collect(),
    })
}

/// Task `targets` patterns select among the hosts this run has, by the inventory's rules.
fn select_task_hosts(
    plan: &mut Plan,
    inventory: Option<&std::path::Path>,
    targets: &[Target],
) -> Result<(), String> {
    if !plan.all_tasks().iter().any(|t| t.targets.is_some()) {
        return Ok(());
    }
    let inv = match inventory {
        Some(path) => Inventory::load(path).map_err(|e| e.to_string())?,
        None => Inventory::of_hosts(targets.iter().map(|t| t.name.clone())),
    };
    plan.select_task_hosts(|p| wisp_inventory::select(&inv, p))
        .map_err(|e| error_chain(&e))
}

/// The directory of a plan file, whose `group_vars/` and `host_vars/` apply to its run.
pub(super) fn plan_dir(plan: &std::path::Path) -> PathBuf {
    match plan.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}
