//! `wisp approvals` and `wisp approve ID`: an operator reads what an agent's plan check would
//! change (`wisp mcp`'s `check`) and approves exactly that, for a while, once.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use super::options::StateArgs;
use super::{state_error, usage_error};
use crate::report::{fold_hosts, visible};
use wisp_events::exit::ExitStatus;
use wisp_store::approvals::{Approval, now};
use wisp_store::clock::timestamp;

#[derive(Debug, Args)]
pub(super) struct ApprovalsArgs {
    /// How many checks to list.
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: usize,
    /// Every check, not only those waiting for an approval.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    state: StateArgs,
}

#[derive(Debug, Args)]
pub(super) struct ApproveArgs {
    /// The check's id, as `wisp approvals` lists it.
    id: String,
    /// How long the approval may be used (`15m`, `1h`); the plan rule's `approval_for`
    /// bounds it too.
    #[arg(long = "for", value_name = "DURATION", default_value = "1h",
          value_parser = wisp_plan::quantity::parse_duration)]
    lasts: std::time::Duration,
    /// Approve without asking (for scripts); without it, wisp shows the check and asks on the
    /// terminal.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    state: StateArgs,
}

fn open(state: &StateArgs) -> Result<wisp_store::Store, ExitStatus> {
    let Some(path) = state.path() else {
        return Err(usage_error(
            "no state store (--no-state, or no HOME): name the one `wisp mcp` uses with --state FILE",
        ));
    };
    wisp_store::Store::open(&path).map_err(|e| state_error(&e))
}

/// One line per check: its id, state, who asked, when, the plan and its hosts.
fn line(a: &Approval, at: u64) -> String {
    let c = &a.check;
    format!(
        "{}  {:<8}  {}  {}  {}  on {} ({} hosts)  rule {:?}",
        a.id,
        a.state(at),
        timestamp(a.at),
        c.asked_by,
        c.plan_file,
        fold_hosts(&c.hosts),
        c.hosts.len(),
        c.rule
    )
}

/// `wisp approvals`.
pub(super) fn list(a: &ApprovalsArgs) -> ExitStatus {
    let store = match open(&a.state) {
        Ok(s) => s,
        Err(status) => return status,
    };
    let rows = match store.approvals(a.limit) {
        Ok(r) => r,
        Err(e) => return state_error(&e),
    };
    let at = now();
    let mut out = std::io::stdout().lock();
    for r in rows.iter().filter(|r| a.all || r.state(at) == "pending") {
        let _ = writeln!(out, "{}", visible(&line(r, at)));
    }
    ExitStatus::Ok
}

/// `wisp approve ID`: the whole check shown, then approved when the operator says so.
pub(super) fn approve(a: &ApproveArgs) -> ExitStatus {
    let store = match open(&a.state) {
        Ok(s) => s,
        Err(status) => return status,
    };
    let found = match store.approval(&a.id) {
        Ok(Some(found)) => found,
        Ok(None) => return usage_error(&format!("no check {:?} (see `wisp approvals`)", a.id)),
        Err(e) => return state_error(&e),
    };
    let at = now();
    if found.state(at) != "pending" {
        return usage_error(&format!(
            "check {} is {}, not waiting for an approval",
            a.id,
            found.state(at)
        ));
    }
    let c = &found.check;
    let mut out = std::io::stdout().lock();
    let shown = format!(
        "check {}\n  asked by  {}\n  at        {}\n  plan      {} (sha256 {})\n  vars      {}\n  \
         targets   {} = {} ({} hosts)\n  rule      {:?}\n\n{}",
        found.id,
        c.asked_by,
        timestamp(found.at),
        c.plan_file,
        c.plan_hash,
        c.vars,
        c.targets,
        fold_hosts(&c.hosts),
        c.hosts.len(),
        c.rule,
        c.report
    );
    // Who asked is the client's word, and the report holds the hosts' words: escaped, so
    // neither can drive the approver's terminal.
    for l in shown.lines() {
        let _ = writeln!(out, "{}", visible(l));
    }
    let _ = out.flush();
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            return usage_error("not approved: approve on a terminal, or pass --yes");
        }
        let _ = write!(out, "Approve this change for {:?}? [y/N] ", a.lasts);
        let _ = out.flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            let _ = writeln!(out, "not approved");
            return ExitStatus::Refused;
        }
    }
    let by = super::execute::user();
    match store.approve(&a.id, &by, at + a.lasts.as_secs()) {
        Ok(true) => {
            let _ = writeln!(
                out,
                "approved by {by} until {}: the agent may apply check {} once",
                timestamp(at + a.lasts.as_secs()),
                a.id
            );
            ExitStatus::Ok
        }
        Ok(false) => usage_error(&format!("check {} was approved or used meanwhile", a.id)),
        Err(e) => state_error(&e),
    }
}
