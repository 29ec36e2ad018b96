//! `wisp run`: an ad-hoc command on every matching host.

use std::path::PathBuf;

use clap::Args;
use wisp_protocol::message::Limits;
use wisp_protocol::ops::ExecArgs;

use super::options::RunOptions;
use super::{execute, usage_error};
use crate::jobs::Job;
use crate::policy::Policy;
use wisp_events::exit::ExitStatus;
use wisp_plan::limits::LimitArgs;

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// Hosts to run on (see "Targets" in `wisp --help`).
    pub(super) targets: String,
    #[command(flatten)]
    pub(super) common: RunOptions,
    #[command(flatten)]
    pub(super) exec: ExecOptions,
    /// List the hosts TARGETS selects (from the inventory, after --limit); contact none.
    #[arg(long)]
    pub(super) list_hosts: bool,
    /// Run only what this policy file allows: the program (by its path, found on the host's
    /// PATH and symlinks followed), its arguments, the hosts, their number, the batches, and
    /// the sandbox floor it gets. A refused call contacts no host (exit 8).
    #[arg(long, value_name = "FILE")]
    pub(super) policy: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(
        last = true,
        required_unless_present = "list_hosts",
        value_name = "COMMAND"
    )]
    pub(super) command: Vec<String>,
}

/// How a command runs: what `wisp run` and `wisp retry` of a run share.
#[derive(Debug, Args)]
pub(super) struct ExecOptions {
    /// Keep at most this many bytes of each output stream per host (`65536`, `1M`); the
    /// rest is dropped (and the recap says so). The controller holds any runner to it too.
    #[arg(long, value_name = "SIZE", value_parser = wisp_plan::quantity::parse_size)]
    pub(super) max_output: Option<u64>,
    /// Working directory for the command.
    #[arg(long, value_name = "DIR")]
    pub(super) cwd: Option<String>,
    /// Also save each host's stdout and stderr, byte for byte, as DIR/HOST.stdout and
    /// DIR/HOST.stderr.
    #[arg(long, value_name = "DIR")]
    pub(super) output_dir: Option<PathBuf>,
    /// Set an environment variable for the command (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub(super) env: Vec<(String, String)>,
    // Last among the options: its help heading applies to everything after it.
    #[command(flatten)]
    pub(super) limits: LimitArgs,
}

/// Checks the command and its limits before any host is contacted, then runs it.
pub(super) fn main(a: RunArgs) -> ExitStatus {
    if a.list_hosts {
        return super::connect::list_hosts(&a.targets, &a.common);
    }
    let output_dir = a.exec.output_dir.clone();
    if let Some(path) = a.policy.clone() {
        return under_policy(&path, a, output_dir);
    }
    match exec_job(a.exec, a.command) {
        Ok(job) => execute::fleet(a.common, &a.targets, output_dir, |_| Ok(job)),
        Err(status) => status,
    }
}

/// `wisp run --policy`: the call checked against the policy once its hosts are known, before
/// any is contacted; the command then runs under the rule's sandbox floor, and the runner
/// execs only a program the rule names. The call is recorded, allowed or refused.
fn under_policy(path: &std::path::Path, mut a: RunArgs, output_dir: Option<PathBuf>) -> ExitStatus {
    let policy = match Policy::load(path) {
        Ok(p) => p,
        Err(e) => return usage_error(&e),
    };
    let audit = Audit {
        store: a.common.state.path(),
        args: serde_json::json!({"targets": a.targets, "argv": a.command}).to_string(),
    };
    let refused = |e: &str| {
        let _ = usage_error(&format!("refused by the policy: {e}"));
        audit.record(None, "refused", e);
        ExitStatus::Refused
    };
    if a.common.insecure_unsigned_runner {
        return refused(UNSIGNED);
    }
    let rollout = &mut a.common.rollout;
    let given = (rollout.serial.is_some(), rollout.max_fail.is_some());
    if let Err(e) = policy.rollout(&mut rollout.serial, &mut rollout.max_fail, given) {
        return refused(&e);
    }
    let inventory = a.common.inventory.clone();
    let (exec, command) = (a.exec, a.command);
    let chosen = std::cell::RefCell::new(None);
    let status = execute::fleet(a.common, &a.targets, output_dir, |targets| {
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let inv = match &inventory {
            Some(p) => {
                wisp_inventory::Inventory::load(p).map_err(|e| usage_error(&e.to_string()))?
            }
            None => wisp_inventory::Inventory::of_hosts(names.clone()),
        };
        let select = |pattern: &str| wisp_inventory::select(&inv, pattern);
        let rule = policy
            .allow(&command, &names, select)
            .map_err(|e| refused(&e))?;
        let mut exec = exec;
        exec.limits = rule.limits(&exec.limits).map_err(|e| refused(&e))?;
        let mut job = exec_job(exec, command)?;
        if let Job::Exec { args, .. } = &mut job {
            args.programs = rule.programs.clone();
        }
        *chosen.borrow_mut() = Some(rule.name.clone());
        Ok(job)
    });
    if let Some(rule) = chosen.take() {
        audit.record(Some(rule), "allowed", &format!("exit {}", status as u8));
    }
    status
}

/// Why a policy will not run with an unsigned runner.
pub(super) const UNSIGNED: &str = "--insecure-unsigned-runner: the runner keeps the policy's \
     programs, so it must be a signed one";

/// Where a `--policy` call is recorded, and what it asked.
struct Audit {
    store: Option<PathBuf>,
    args: String,
}

impl Audit {
    fn record(&self, rule: Option<String>, decision: &str, outcome: &str) {
        let Some(path) = &self.store else {
            return;
        };
        let call = wisp_store::calls::Call {
            via: "cli".into(),
            client: std::env::var("USER").unwrap_or_else(|_| "a user".into()),
            tool: "run".into(),
            args: self.args.clone(),
            rule,
            decision: decision.into(),
            outcome: outcome.into(),
        };
        if let Err(e) = wisp_store::Store::open(path).and_then(|s| s.record_call(&call)) {
            let _ = usage_error(&e.to_string());
        }
    }
}

/// The job that runs `command` with `o`, checked for this machine's architecture.
pub(super) fn exec_job(o: ExecOptions, command: Vec<String>) -> Result<Job, ExitStatus> {
    let args = ExecArgs {
        argv: Some(command),
        env: o.env.into_iter().collect(),
        cwd: o.cwd,
        max_output: o.max_output,
        ..ExecArgs::default()
    };
    if let Err(e) = args.validate() {
        return Err(usage_error(&e));
    }
    // Checked here, before any host is contacted, for this machine's architecture; a seccomp
    // file is compiled again for each host's. (A file named per architecture is only compiled
    // per host.)
    let per_host_file = o
        .limits
        .seccomp
        .as_deref()
        .is_some_and(|s| s.contains("{arch}"));
    let limits = match o.limits.to_limits(std::env::consts::ARCH) {
        Ok(l) => l,
        Err(_) if per_host_file => Limits::default(),
        Err(e) => return Err(usage_error(&e)),
    };
    let per_arch = o.limits.per_arch().then(|| Box::new(o.limits.clone()));
    Ok(Job::Exec {
        args,
        limits: Box::new(limits),
        per_arch,
    })
}

/// `NAME=VALUE` (the user-facing message by design: clap shows it after the flag).
fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{text:?}: expected NAME=VALUE")),
    }
}
