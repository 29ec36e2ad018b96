//! Running a fleet job: targets resolved, runners checked, then the async runtime with its
//! interrupts, the reporter and the journal around [`crate::jobs::run`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wisp_transports::Launch;

use super::connect::{TargetsError, resolve};
use super::options::RunOptions;
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
    common: RunOptions,
    spec: &str,
    output_dir: Option<PathBuf>,
    make_job: impl FnOnce(&[Target]) -> Result<Job, ExitStatus>,
) -> ExitStatus {
    let ready = match prepare(&common, spec, output_dir.is_some(), make_job) {
        Ok(r) => r,
        Err(status) => return status,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage_error(&format!("cannot start the async runtime: {e}")),
    };
    let status = runtime.block_on(run(common, spec.to_owned(), output_dir, ready));
    // Host tasks that were cut off by a second Ctrl-C must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    status
}

/// What a run needs before it touches a host, each part checked.
struct Ready {
    targets: Vec<Target>,
    job: Job,
    handoff: Option<super::worker::Handoff>,
    runners: wisp_runners::Located,
    store: Option<wisp_store::Store>,
}

/// Everything that can refuse a run, refused before any host is contacted: the targets, the
/// descriptors they need, the job, the hand-off to workers, the runners' signatures and the
/// store (a run that cannot be recorded does not start).
fn prepare(
    common: &RunOptions,
    spec: &str,
    output_dir: bool,
    make_job: impl FnOnce(&[Target]) -> Result<Job, ExitStatus>,
) -> Result<Ready, ExitStatus> {
    let targets = match resolve(spec, common) {
        Ok(t) => t,
        Err(TargetsError::Options(e)) => return Err(usage_error(&e)),
        Err(TargetsError::Inventory(e)) => return Err(parse_error(&e)),
    };
    // The run either fits in this process's descriptors or does not start.
    let at_once = targets
        .len()
        .min(usize::try_from(common.forks).unwrap_or(usize::MAX));
    crate::fds::prepare(at_once).map_err(|e| usage_error(&e))?;
    let job = make_job(&targets)?;
    // Through workers, which push their own runners.
    let handoff = match common.bus.nats.as_deref() {
        Some(url) => Some(super::worker::handoff(
            common, url, &targets, &job, output_dir,
        )?),
        None => None,
    };
    let runners = if handoff.is_some() {
        wisp_runners::Located::none()
    } else {
        wisp_runners::Trust::load(&common.trusted_key, common.insecure_unsigned_runner)
            .and_then(|trust| {
                wisp_runners::locate(common.runner.as_deref(), &trust, common.verbose)
            })
            .map_err(|e| usage_error(&e.to_string()))?
    };
    let store = match common.state.path().map(|p| wisp_store::Store::open(&p)) {
        Some(Ok(store)) => Some(store),
        Some(Err(e)) => return Err(state_error(&e)),
        None => None,
    };
    Ok(Ready {
        targets,
        job,
        handoff,
        runners,
        store,
    })
}

/// The run itself: the bus reached (when through workers), the run recorded, the job run on
/// every target under the run's interrupts, and its end reported and recorded.
async fn run(
    common: RunOptions,
    spec: String,
    output_dir: Option<PathBuf>,
    ready: Ready,
) -> ExitStatus {
    let Ready {
        targets,
        job,
        handoff,
        runners,
        store,
    } = ready;
    let launch = Launch::new(runners.binaries, common.ttl, common.connect_timeout);
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    // The bus is reached before the run is recorded: a run that cannot be handed out does
    // not start.
    let dispatch = match handoff {
        Some(h) => match reach_bus(h).await {
            Ok(d) => Some(d),
            Err(status) => return status,
        },
        None => None,
    };
    let run_started = std::time::Instant::now();
    let reporter = match reporter(&common, &job, &names, store) {
        Ok(r) => r,
        Err(status) => return status,
    };
    if let Err(e) = reporter.begin(run_line(&job, &spec, &names, &common)) {
        return state_error(&e);
    }
    for event in audit_events(&job, &common, &runners.checks) {
        reporter.emit(event);
    }
    let reporter = Arc::new(reporter);
    let (rx, timed_out) = interrupts(&common);
    let rollout = common
        .rollout
        .rollout(usize::try_from(common.forks).unwrap_or(usize::MAX));
    let fanned = match dispatch {
        Some((dispatch, hosts, work)) => {
            reporter.emit(Event::Bus {
                nats: dispatch.bus.url.clone(),
                bus_run: dispatch.run.clone(),
            });
            let reporter = Arc::clone(&reporter);
            crate::bus::run(
                dispatch,
                targets,
                hosts,
                work,
                &rollout,
                reporter,
                rx.clone(),
            )
            .await
        }
        None => {
            let reporter = Arc::clone(&reporter);
            jobs::run(
                targets,
                job,
                &launch,
                &rollout,
                jobs::Keep {
                    output_dir,
                    warm: None,
                },
                reporter,
                rx.clone(),
            )
            .await
        }
    };
    let timed_out = timed_out.load(std::sync::atomic::Ordering::SeqCst);
    let interrupted = *rx.borrow() != Interrupt::None && !timed_out;
    let status = end(&reporter, fanned, timed_out, interrupted);
    reporter.emit(Event::RunEnded {
        exit: status as u8,
        elapsed_ms: u64::try_from(run_started.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
    status
}

/// The bus of a hand-off, reached; an open bus is a setting to fix (exit 5), anything else a
/// server not reached (exit 3).
async fn reach_bus(
    h: super::worker::Handoff,
) -> Result<
    (
        wisp_bus::dispatch::Dispatch,
        std::collections::HashMap<String, (wisp_bus::item::HostSpec, String)>,
        wisp_bus::wire::Work,
    ),
    ExitStatus,
> {
    match wisp_bus::Bus::connect(&h.connect).await {
        Ok(bus) => Ok((
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
            if matches!(e, wisp_bus::BusError::Open { .. }) {
                return Err(status);
            }
            Err(ExitStatus::Unreachable)
        }
    }
}

/// The run's reporter: its renderer, `--fold`, the plan's secrets hidden, drift collected,
/// and the journal (with the store, when there is one).
fn reporter(
    common: &RunOptions,
    job: &Job,
    names: &[String],
    store: Option<wisp_store::Store>,
) -> Result<Reporter, ExitStatus> {
    let mut journal = open_journal();
    if let Some(store) = store {
        journal = journal.with_store(store);
    }
    let mut reporter = Reporter::new(common.json, names).with_journal(journal);
    if common.fold {
        reporter = reporter.folding();
    }
    if let Job::Plan { plan, options, .. } = job {
        reporter = reporter.with_secrets(&plan.secrets);
        if options.drift {
            reporter = reporter.for_drift();
        }
    }
    Ok(reporter)
}

/// The run's interrupt channel, moved by SIGINT/SIGTERM and by `--run-timeout` (which also
/// sets the flag: the hosts it stops failed).
fn interrupts(
    common: &RunOptions,
) -> (
    watch::Receiver<Interrupt>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let (tx, rx) = watch::channel(Interrupt::None);
    let tx = Arc::new(tx);
    tokio::spawn(wisp_events::interrupt::watch_signals(Arc::clone(&tx)));
    let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(limit) = common.run_timeout {
        tokio::spawn(wisp_events::interrupt::run_timeout(
            limit,
            tx,
            Arc::clone(&timed_out),
        ));
    }
    (rx, timed_out)
}

/// The run's end: hosts a run timeout stopped turned failed, then the drift report or the
/// recap; the exit status.
fn end(
    reporter: &Reporter,
    fanned: crate::fleet::Fanned,
    timed_out: bool,
    interrupted: bool,
) -> ExitStatus {
    let (mut results, stopped) = (fanned.results, fanned.stopped);
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
    if let Some(status) = reporter.drift_report(&results, interrupted) {
        return status;
    }
    let status = exit_status(&results, interrupted);
    reporter.recap(&results, status, stopped.as_deref());
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
fn audit_events(job: &Job, common: &RunOptions, runner_checks: &[String]) -> Vec<Event> {
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

/// Who is running wisp: `$USER`, else `$LOGNAME`, else the uid.
pub(super) fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", own_uid()))
}

/// The journal's first line: what was asked, of which hosts. Command arguments stay out (they
/// may hold secrets); the program does not.
fn run_line(job: &Job, spec: &str, hosts: &[String], common: &RunOptions) -> RunStart {
    let user = user();
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
