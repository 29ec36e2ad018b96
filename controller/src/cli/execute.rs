//! Running a fleet job: targets resolved, runners checked, then the async runtime with its
//! interrupts, the reporter and the journal around [`crate::jobs::run`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wisp_transports::Launch;

use super::common::Common;
use super::connect::{TargetsError, targets};
use super::{parse_error, state_error, usage_error};
use crate::fleet::Target;
use crate::jobs::{self, Job};
use crate::report::{Event, Reporter, exit_status};
use wisp_events::exit::ExitStatus;
use wisp_events::interrupt::Interrupt;
use wisp_store::record::{PlanRun, RunStart};

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
    // Before anything is opened: the run either fits in this process's descriptors or does
    // not start.
    let at_once = targets
        .len()
        .min(usize::try_from(common.forks).unwrap_or(usize::MAX));
    if let Err(e) = crate::fds::prepare(at_once) {
        return usage_error(&e);
    }
    let job = match make_job(&targets) {
        Ok(job) => job,
        Err(status) => return status,
    };
    // Through workers: checked here, before anything connects; the workers push their own
    // runners.
    let handoff = match common.bus.nats.as_deref() {
        Some(url) => {
            match super::worker::handoff(&common, url, &targets, &job, output_dir.is_some()) {
                Ok(h) => Some(h),
                Err(status) => return status,
            }
        }
        None => None,
    };
    // Every runner is read and its signature checked before any host is contacted.
    let runners = if handoff.is_some() {
        wisp_runners::Located::none()
    } else {
        match wisp_runners::Trust::load(&common.trusted_key, common.insecure_unsigned_runner)
            .and_then(|trust| {
                wisp_runners::locate(common.runner.as_deref(), &trust, common.verbose)
            }) {
            Ok(r) => r,
            Err(e) => return usage_error(&e.to_string()),
        }
    };
    // The store is opened before any host is contacted: a run that cannot be recorded does
    // not start.
    let store = match common.state.path().map(|p| wisp_store::Store::open(&p)) {
        Some(Ok(store)) => Some(store),
        Some(Err(e)) => return state_error(&e),
        None => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage_error(&format!("cannot start the async runtime: {e}")),
    };
    let status = runtime.block_on(async move {
        let launch = Launch::new(runners.binaries, common.ttl, common.connect_timeout);
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        // The bus is reached before the run is recorded: a run that cannot be handed out
        // does not start.
        let dispatch = match handoff {
            Some(h) => match wisp_bus::Bus::connect(&h.connect).await {
                Ok(bus) => Some((
                    wisp_bus::dispatch::Dispatch {
                        bus,
                        signer: h.signer,
                        run: wisp_bus::item::random_id(),
                        start: h.start,
                        redeliver_exec: h.redeliver_exec,
                        secrets: h.secrets,
                        workers: h.workers,
                        item_expiry: h.item_expiry,
                    },
                    h.hosts,
                    h.work,
                )),
                Err(e) => {
                    let status = usage_error(&wisp_protocol::error::chain(&e));
                    // An open bus is a setting to fix; anything else, a server not reached.
                    if matches!(e, wisp_bus::BusError::Open { .. }) {
                        return status;
                    }
                    return ExitStatus::Unreachable;
                }
            },
            None => None,
        };
        let mut journal = open_journal();
        if let Some(store) = store {
            journal = journal.with_store(store);
        }
        let run_started = std::time::Instant::now();
        let mut reporter = Reporter::new(common.json, &names).with_journal(journal);
        if common.fold {
            reporter = reporter.folding();
        }
        if let Job::Plan { plan, options, .. } = &job {
            reporter = reporter.with_secrets(&plan.secrets);
            if options.drift {
                reporter = reporter.for_drift();
            }
        }
        if let Err(e) = reporter.begin(run_line(&job, &targets_spec, &names, &common)) {
            return state_error(&e);
        }
        for event in audit_events(&job, &common, &runners.checks) {
            reporter.emit(event);
        }
        let reporter = Arc::new(reporter);
        let (tx, rx) = watch::channel(Interrupt::None);
        let tx = Arc::new(tx);
        tokio::spawn(wisp_events::interrupt::watch_signals(Arc::clone(&tx)));
        // --run-timeout: the same orderly cancel as Ctrl-C, but the hosts it stops failed.
        let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(limit) = common.run_timeout {
            tokio::spawn(wisp_events::interrupt::run_timeout(
                limit,
                Arc::clone(&tx),
                Arc::clone(&timed_out),
            ));
        }
        let forks = usize::try_from(common.forks).unwrap_or(usize::MAX);
        let rollout = common.rollout.rollout(forks);
        let fanned = match dispatch {
            Some((dispatch, hosts, work)) => {
                reporter.emit(Event::Bus {
                    nats: dispatch.bus.url.clone(),
                    bus_run: dispatch.run.clone(),
                });
                crate::bus::run(
                    dispatch,
                    targets,
                    hosts,
                    work,
                    &rollout,
                    Arc::clone(&reporter),
                    rx.clone(),
                )
                .await
            }
            None => {
                jobs::run(
                    targets,
                    job,
                    &launch,
                    &rollout,
                    output_dir,
                    Arc::clone(&reporter),
                    rx.clone(),
                )
                .await
            }
        };
        let (mut results, stopped) = (fanned.results, fanned.stopped);
        let timed_out = timed_out.load(std::sync::atomic::Ordering::SeqCst);
        if timed_out {
            for r in results
                .iter_mut()
                .filter(|r| r.outcome == crate::report::HostOutcome::Interrupted)
            {
                r.outcome = crate::report::HostOutcome::Failed;
                r.detail = "run timeout".into();
                reporter.emit(Event::host_ended(r, true));
            }
        }
        let interrupted = *rx.borrow() != Interrupt::None && !timed_out;
        let status = match reporter.drift_report(&results, interrupted) {
            Some(status) => status,
            None => {
                let status = exit_status(&results, interrupted);
                reporter.recap(&results, status, stopped.as_deref());
                status
            }
        };
        reporter.emit(Event::RunEnded {
            exit: status as u8,
            elapsed_ms: u64::try_from(run_started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        status
    });
    // Host tasks that were cut off by a second Ctrl-C must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    status
}

/// The journal for this run; when none can be made, says so once and runs unjournalled.
fn open_journal() -> wisp_store::journal::Journal {
    use wisp_store::journal::{Journal, dir};
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

/// The privileged acts of this run, for the audit trail: becoming root, opening secrets, and
/// the key each pushed runner was checked against.
fn audit_events(job: &Job, common: &Common, runner_checks: &[String]) -> Vec<Event> {
    let audit = |act: &str, detail: String| Event::Audit {
        act: act.to_owned(),
        detail,
    };
    let mut out = Vec::new();
    if common.become_root || common.ask_become_pass {
        let how = if common.ask_become_pass {
            "root, with a sudo password"
        } else {
            "root"
        };
        out.push(audit("become", how.to_owned()));
    }
    if let Job::Plan { plan, .. } = job
        && !plan.secret_refs.is_empty()
    {
        let names: std::collections::BTreeSet<&str> =
            plan.secret_refs.iter().map(|(n, _)| n.as_str()).collect();
        let names: Vec<&str> = names.into_iter().collect();
        out.push(audit("secrets opened", names.join(", ")));
    }
    out.extend(runner_checks.iter().map(|c| audit("runner", c.clone())));
    out
}

/// `path` made absolute against the working directory, as text.
fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// This process's real uid, from `/proc/self/status`.
fn own_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_else(|| "?".into())
}

/// The journal's first line: what was asked, of which hosts. Command arguments stay out (they
/// may hold secrets); the program does not.
fn run_line(job: &Job, spec: &str, hosts: &[String], common: &Common) -> RunStart {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", own_uid()));
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let mut run = RunStart {
        wisp: env!("CARGO_PKG_VERSION").to_owned(),
        targets: spec.to_owned(),
        hosts: hosts.to_vec(),
        user: Some(user),
        machine: Some(machine),
        r#become: common.become_root || common.ask_become_pass,
        become_pass: common.ask_become_pass,
        forks: usize::try_from(common.forks).unwrap_or(usize::MAX),
        inventory: common.inventory.as_deref().map(absolute),
        retry_of: common.retry_of,
        ..RunStart::default()
    };
    run.command = match job {
        Job::Exec { args, .. } => {
            run.program = args.command_line().first().cloned();
            "run"
        }
        Job::Plan { plan, options, .. } => {
            run.plan = Some(PlanRun {
                plan: plan.path.display().to_string(),
                // Where `wisp retry` finds it again, from any directory.
                plan_file: absolute(&plan.path),
                plan_hash: plan.hash.clone(),
                check: options.check,
                diff: options.diff,
            });
            if options.drift { "drift" } else { "apply" }
        }
        Job::Facts => "facts",
        Job::Ping => "ping",
    }
    .to_owned();
    run
}
