//! `wisp drift`: a plan in check mode on every host, recorded, with identical drift folded;
//! `--history` reads back since when each host drifts.

use clap::Args;

use super::apply::{Mode, PlanArgs, run_plan};
use wisp_events::exit::ExitStatus;

#[derive(Debug, Args)]
pub(super) struct DriftArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Run nothing: show, from the state store, each host's last drift check of this plan and
    /// since when it has drifted from its last clean one.
    #[arg(long)]
    history: bool,
}

pub(super) fn main(a: DriftArgs) -> ExitStatus {
    if a.history {
        return super::history::drift_history(&a.plan.plan, &a.plan.common.state);
    }
    let mode = Mode {
        check: true,
        diff: true,
        drift: true,
    };
    run_plan(a.plan, mode)
}
