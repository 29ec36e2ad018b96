//! `wisp history` and `wisp show`: runs read back from the state store.

use std::io::Write;

use clap::Args;

use super::options::StateArgs;
use super::{state_error, usage_error};
use wisp_events::exit::ExitStatus;
use wisp_store::{RunRow, Store};

#[derive(Debug, Args)]
pub(super) struct HistoryArgs {
    /// How many runs to list.
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: usize,
    /// The calls made under a policy instead (`wisp mcp`'s tools, `wisp run --policy`):
    /// who asked what, the rule that allowed it or why it was refused, and how it ended.
    #[arg(long)]
    calls: bool,
    #[command(flatten)]
    state: StateArgs,
}

#[derive(Debug, Args)]
pub(super) struct ShowArgs {
    /// The run: its number in `wisp history`, or `last`.
    #[arg(default_value = "last")]
    run: String,
    /// Only this host.
    #[arg(long, value_name = "HOST")]
    host: Option<String>,
    /// The run's journal lines, as recorded, one JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    state: StateArgs,
}

fn open(state: &StateArgs) -> Result<Store, ExitStatus> {
    let Some(path) = state.path() else {
        return Err(usage_error(
            "no state store to read (--no-state, or no HOME): name one with --state FILE",
        ));
    };
    if !path.exists() {
        return Err(usage_error(&format!(
            "no state store at {} yet: runs are recorded there once wisp has run",
            path.display()
        )));
    }
    Store::open(&path).map_err(|e| state_error(&e))
}

/// The one line `wisp history` prints for a run.
fn run_line(r: &RunRow) -> String {
    let end = match (r.exit_code, &r.ended_at) {
        (Some(code), Some(_)) => format!("exit {code}"),
        _ => "not finished".to_owned(),
    };
    let outcomes = if r.outcomes.is_empty() {
        "no host results".to_owned()
    } else {
        r.outcomes
            .iter()
            .map(|(o, n)| format!("{n} {o}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let who = match (&r.user, &r.machine) {
        (Some(u), Some(m)) if !m.is_empty() => format!("{u}@{m}"),
        (Some(u), _) => u.clone(),
        _ => "?".into(),
    };
    let retry = r
        .retry_of
        .map(|n| format!(" (retry of {n})"))
        .unwrap_or_default();
    format!(
        "{:>5}  {}  {who}  {}{retry} {}  {}  {} hosts: {outcomes}  {end}",
        r.id,
        r.started_at,
        r.command,
        r.what.as_deref().unwrap_or("-"),
        r.targets.as_deref().unwrap_or("-"),
        r.hosts,
    )
}

/// One line of a report on the store: what hosts and workers recorded (details, sandbox
/// reports, audit rows) is shown escaped, never obeyed by the terminal.
fn say(out: &mut impl Write, line: &str) {
    let _ = writeln!(out, "{}", crate::report::visible(line));
}

pub(super) fn history(a: &HistoryArgs) -> ExitStatus {
    let store = match open(&a.state) {
        Ok(s) => s,
        Err(status) => return status,
    };
    if a.calls {
        return match store.calls(a.limit) {
            Ok(calls) => {
                let mut out = std::io::stdout().lock();
                for c in &calls {
                    let c2 = &c.call;
                    let rule = c2
                        .rule
                        .as_deref()
                        .map(|r| format!(" (rule {r:?})"))
                        .unwrap_or_default();
                    say(
                        &mut out,
                        &format!(
                            "{:>5}  {}  {} {}  {} {}  {}{rule}: {}",
                            c.id,
                            c.at,
                            c2.via,
                            c2.client,
                            c2.tool,
                            c2.args,
                            c2.decision,
                            c2.outcome
                        ),
                    );
                }
                ExitStatus::Ok
            }
            Err(e) => state_error(&e),
        };
    }
    match store.runs(a.limit) {
        Ok(runs) => {
            let mut out = std::io::stdout().lock();
            for r in &runs {
                say(&mut out, &run_line(r));
            }
            ExitStatus::Ok
        }
        Err(e) => state_error(&e),
    }
}

/// `wisp drift PLAN --history`: per host, its latest check and since when it drifts.
pub(super) fn drift_history(plan: &std::path::Path, state: &StateArgs) -> ExitStatus {
    let store = match open(state) {
        Ok(s) => s,
        Err(status) => return status,
    };
    // Known by the file's absolute path, as the run recorded it.
    let file = std::path::absolute(plan)
        .unwrap_or_else(|_| plan.to_owned())
        .display()
        .to_string();
    let hosts = match store.drift_history(&file) {
        Ok(h) => h,
        Err(e) => return state_error(&e),
    };
    if hosts.is_empty() {
        return usage_error(&format!(
            "no `wisp drift` run of {file} in {}: drift history is kept per plan file",
            store.path().display()
        ));
    }
    let width = hosts.iter().map(|h| h.host.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for h in &hosts {
        let (run, at, what) = &h.last;
        let mut line = format!("{:<width$}  {what:<11} at run {run} ({at})", h.host);
        if let Some((since, since_at)) = &h.drifted_since {
            line.push_str(&format!("; drifted since run {since} ({since_at})"));
        }
        match &h.last_clean {
            Some((clean, clean_at)) if what != "clean" => {
                line.push_str(&format!("; last clean run {clean} ({clean_at})"));
            }
            None if what != "clean" => line.push_str("; never clean"),
            _ => {}
        }
        say(&mut out, &line);
    }
    ExitStatus::Ok
}

pub(super) fn show(a: &ShowArgs) -> ExitStatus {
    let store = match open(&a.state) {
        Ok(s) => s,
        Err(status) => return status,
    };
    let shown = (|| {
        let run = store.run(&a.run)?;
        let mut out = std::io::stdout().lock();
        if a.json {
            for line in store.events(run.id)? {
                let keep = a.host.as_deref().is_none_or(|h| {
                    wisp_store::record::Line::parse(&line)
                        .and_then(|l| l.record.host().map(|of| of == h))
                        .unwrap_or(true)
                });
                if keep {
                    let _ = writeln!(out, "{line}");
                }
            }
            return Ok(());
        }
        say(&mut out, &run_line(&run));
        for (act, detail) in store.audit(run.id)? {
            say(&mut out, &format!("audit: {act}: {detail}"));
        }
        let tasks = store.tasks(run.id, a.host.as_deref())?;
        for h in store.hosts(run.id, a.host.as_deref())? {
            let elapsed = h
                .elapsed_ms
                .map_or(String::new(), |ms| format!(" in {ms} ms"));
            say(
                &mut out,
                &format!(
                    "{}: {} ({}){elapsed}",
                    h.host,
                    h.outcome,
                    h.detail.as_deref().unwrap_or("")
                ),
            );
            for t in tasks.iter().filter(|t| t.host == h.host) {
                let name = t.task.as_deref().unwrap_or("command");
                let op = t.op.as_deref().unwrap_or("");
                let detail = t.detail.as_deref().filter(|d| !d.is_empty());
                let exit = t.exit_code.map(|c| format!(" exit {c}"));
                say(
                    &mut out,
                    &format!(
                        "  {:<8} {name} [{op}]{}{}{}",
                        t.status,
                        if t.changed { " (changed)" } else { "" },
                        exit.unwrap_or_default(),
                        detail.map(|d| format!(": {d}")).unwrap_or_default(),
                    ),
                );
                if let Some(e) = &t.enforcement {
                    say(&mut out, &format!("           enforcement: {e}"));
                }
            }
            if let Some(s) = &h.sandbox {
                say(&mut out, &format!("  sandbox: {s}"));
            }
        }
        Ok(())
    })();
    match shown {
        Ok(()) => ExitStatus::Ok,
        // Asking for a run the store does not have is the operator's mistake, not the store's.
        Err(e @ wisp_store::StoreError::NoRun { .. }) => {
            usage_error(&wisp_protocol::error::chain(&e))
        }
        Err(e) => state_error(&e),
    }
}
