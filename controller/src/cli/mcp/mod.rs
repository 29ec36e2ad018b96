//! `wisp mcp`: the fleet as Model Context Protocol tools on stdio, for an AI agent, every
//! call held to a policy (`--policy`) before any host is contacted. stdout carries the
//! protocol alone; what wisp says about itself goes to stderr.
//!
//! `tools` lists the tools and answers `inventory`, `facts` and `run`; `jobs` holds the runs
//! (`job`, `cancel`); `plans` is `check`, `apply` and `drift`; `fold` tells hosts that said
//! the same once; `server` dispatches each call and audits it.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use rmcp::ServiceExt;
use wisp_events::exit::ExitStatus;

use super::options::RunOptions;
use super::usage_error;
use crate::jobs::warm::Warm;
use crate::policy::Policy;

mod fold;
mod jobs;
mod plans;
mod server;
mod tools;

#[derive(Debug, Args)]
pub(super) struct McpArgs {
    /// The policy every call is held to: which programs may run on which hosts, with which
    /// arguments, under which sandbox floor, on how many hosts at once (see `wisp run
    /// --policy`), and which plans may be checked on which hosts and how they may then be
    /// applied (`[[plan]]` rules). Required: an agent gets nothing a policy does not give it.
    #[arg(long, value_name = "FILE")]
    pub(super) policy: PathBuf,
    /// Keep up to N runner sessions open between calls, one per host, so that the next call
    /// on a host skips SSH set-up and the push; 0 opens and closes one per call.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub(super) warm: usize,
    /// Close a kept session unused this long (a session is never reused past half the
    /// runner's --ttl either).
    #[arg(long, value_name = "DURATION", default_value = "5m",
          value_parser = wisp_plan::quantity::parse_duration)]
    pub(super) warm_idle: std::time::Duration,
    #[command(flatten)]
    pub(super) common: RunOptions,
}

/// Serves the tools on stdin/stdout until the client goes away.
pub(super) fn main(a: McpArgs) -> ExitStatus {
    let policy = match Policy::load(&a.policy) {
        Ok(p) => p,
        Err(e) => return usage_error(&e),
    };
    if a.common.insecure_unsigned_runner {
        return usage_error(super::run::UNSIGNED);
    }
    let runners =
        match wisp_runners::Trust::load(&a.common.trusted_key, a.common.insecure_unsigned_runner)
            .and_then(|trust| wisp_runners::locate(a.common.runner.as_deref(), &trust, false))
        {
            Ok(r) => r,
            Err(e) => return usage_error(&e.to_string()),
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage_error(&format!("cannot start the async runtime: {e}")),
    };
    let launch =
        wisp_transports::Launch::new(runners.binaries, a.common.ttl, a.common.connect_timeout);
    let store = match a.common.state.path().map(|p| wisp_store::Store::open(&p)) {
        Some(Ok(s)) => Some(std::sync::Mutex::new(s)),
        Some(Err(e)) => return usage_error(&e.to_string()),
        None => None,
    };
    let warm = (a.warm > 0).then(|| Arc::new(Warm::new(a.warm, a.warm_idle, a.common.ttl)));
    let server = server::Fleet::new(Shared {
        common: a.common,
        policy,
        launch,
        store,
        warm: warm.clone(),
        jobs: jobs::Jobs::default(),
    });
    let state = server.state();
    runtime.block_on(async move {
        let sweeper = warm.clone().map(|w| {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(w.sweep_every()).await;
                    w.sweep().await;
                }
            })
        });
        let status = match server.serve(rmcp::transport::stdio()).await {
            Ok(running) => match running.waiting().await {
                Ok(_) => ExitStatus::Ok,
                Err(e) => usage_error(&format!("mcp: {e}")),
            },
            Err(e) => usage_error(&format!("mcp: the client did not start: {e}")),
        };
        if let Some(s) = sweeper {
            s.abort();
        }
        // Work the agent left running is cancelled: its runners kill it and go.
        state.jobs.cancel_all().await;
        // The kept runners say goodbye and remove themselves.
        if let Some(w) = warm {
            w.close().await;
        }
        status
    })
}

/// The server's state, shared by its calls.
pub(super) struct Shared {
    pub(super) common: RunOptions,
    pub(super) policy: Policy,
    pub(super) launch: wisp_transports::Launch,
    /// Where every call is recorded (`--no-state`: nowhere).
    pub(super) store: Option<std::sync::Mutex<wisp_store::Store>>,
    /// Runner sessions kept between calls (`--warm`).
    pub(super) warm: Option<Arc<Warm>>,
    /// The runs, as jobs.
    jobs: jobs::Jobs,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

pub(super) type State = Arc<Shared>;
