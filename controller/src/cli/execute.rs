//! Running a fleet job: targets resolved, runners checked, then the async runtime with its
//! interrupts, the reporter and the journal around [`crate::jobs::run`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wisp_transports::Launch;

use super::common::Common;
use super::connect::{TargetsError, targets};
use super::{parse_error, usage_error};
use crate::exit::ExitStatus;
use crate::fleet::Target;
use crate::interrupt::Interrupt;
use crate::jobs::{self, Job};
use crate::report::{Reporter, exit_status};

/// Resolves `spec` to targets, builds the job for them with `make_job`, checks the runners,
/// and runs the job on every target.
pub(super) fn fleet(
    common: Common,
    spec: &str,
    output_dir: Option<PathBuf>,
    make_job: impl FnOnce(&[Target]) -> Result<Job, ExitStatus>,
) -> ExitStatus {
    let targets_spec = spec.to_owned();
    let targets = match targets(spec, &common) {
        Ok(t) => t,
        Err(TargetsError::Options(e)) => return usage_error(&e),
        Err(TargetsError::Inventory(e)) => return parse_error(&e),
    };
    let job = match make_job(&targets) {
        Ok(job) => job,
        Err(status) => return status,
    };
    // Every runner is read and its signature checked before any host is contacted.
    let runners =
        match crate::runners::Trust::load(&common.trusted_key, common.insecure_unsigned_runner)
            .and_then(|trust| {
                crate::runners::locate(common.runner.as_deref(), &trust, common.verbose)
            }) {
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
    let status = runtime.block_on(async move {
        let launch = Launch::new(runners, common.ttl, common.connect_timeout);
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let journal = open_journal();
        journal.record(run_line(&job, &targets_spec, &names));
        let run_started = std::time::Instant::now();
        let mut reporter = Reporter::new(common.json, &names).with_journal(journal);
        if let Job::Plan { plan, .. } = &job {
            reporter = reporter.with_secrets(&plan.secrets);
        }
        let reporter = Arc::new(reporter);
        let (tx, rx) = watch::channel(Interrupt::None);
        let tx = Arc::new(tx);
        tokio::spawn(crate::interrupt::watch_signals(Arc::clone(&tx)));
        // --run-timeout: the same orderly cancel as Ctrl-C, but the hosts it stops failed.
        let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(limit) = common.run_timeout {
            tokio::spawn(crate::interrupt::run_timeout(
                limit,
                Arc::clone(&tx),
                Arc::clone(&timed_out),
            ));
        }
        let forks = usize::try_from(common.forks).unwrap_or(usize::MAX);
        let results = jobs::run(
            targets,
            job,
            &launch,
            forks,
            output_dir,
            Arc::clone(&reporter),
            rx.clone(),
        )
        .await;
        let mut results = results;
        let timed_out = timed_out.load(std::sync::atomic::Ordering::SeqCst);
        if timed_out {
            for r in results
                .iter_mut()
                .filter(|r| r.outcome == crate::report::HostOutcome::Interrupted)
            {
                r.outcome = crate::report::HostOutcome::Failed;
                r.detail = "run timeout".into();
            }
        }
        let interrupted = *rx.borrow() != Interrupt::None && !timed_out;
        let status = exit_status(&results, interrupted);
        reporter.recap(&results, status);
        for r in &results {
            reporter.journal().record(serde_json::json!({
                "kind": "host", "host": r.host, "outcome": r.outcome.label(), "detail": r.detail,
                "elapsed_ms": u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
                "sandbox": r.sandbox,
            }));
        }
        reporter.journal().record(serde_json::json!({
            "kind": "end", "exit": status as u8,
            "elapsed_ms": u64::try_from(run_started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }));
        status
    });
    // Host tasks that were cut off by a second Ctrl-C must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    status
}

/// The journal for this run; when none can be made, says so once and runs unjournalled.
fn open_journal() -> crate::journal::Journal {
    use crate::journal::{Journal, dir};
    let Some(dir) = dir() else {
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!("wisp: no HOME or XDG_STATE_HOME: this run is not journalled\n"),
        );
        return Journal::disabled();
    };
    Journal::create(&dir).unwrap_or_else(|e| {
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!(
                "wisp: cannot open a journal in {}: {e}; this run is not journalled (set \
                 WISP_JOURNAL_DIR to a writable directory)\n",
                dir.display()
            ),
        );
        Journal::disabled()
    })
}

/// The journal's first line: what was asked, of which hosts. Command arguments stay out (they
/// may hold secrets); the program does not.
fn run_line(job: &Job, spec: &str, hosts: &[String]) -> serde_json::Value {
    let mut line = serde_json::json!({
        "kind": "run", "wisp": env!("CARGO_PKG_VERSION"), "targets": spec, "hosts": hosts,
    });
    match job {
        Job::Exec { args, .. } => {
            line["command"] = "run".into();
            line["program"] = args.command_line().first().cloned().into();
        }
        Job::Plan { plan, options } => {
            line["command"] = "apply".into();
            line["plan"] = plan.path.display().to_string().into();
            line["check"] = options.check.into();
            line["diff"] = options.diff.into();
        }
        Job::Facts => line["command"] = "facts".into(),
        Job::Ping => line["command"] = "ping".into(),
    }
    line
}
