//! The server's jobs: every `run` is one, numbered, so that long work can go on while the
//! agent does something else (`background`), be followed (`job`: how many hosts have ended),
//! stopped (`cancel`: the runners kill the command's process tree), and read whole page by
//! page when the folded answer had to be cut. The newest [`KEPT`] jobs are kept in memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::JsonObject;
use serde_json::Value;
use tokio::sync::watch;
use wisp_events::HostResult;
use wisp_events::interrupt::Interrupt;

use super::State;
use super::fold::Outputs;
use crate::jobs::Job;
use crate::report::{Reporter, fold_hosts};

/// How many ended jobs are kept.
const KEPT: usize = 32;
/// The most bytes of output a `job` page holds.
const PAGE: usize = 16 * 1024;

/// One job: what it runs where, what its hosts said, and how it ended.
#[derive(Debug)]
pub(super) struct Entry {
    what: String,
    hosts: usize,
    started: Instant,
    outputs: Outputs,
    ended: Mutex<Option<Ended>>,
    stop: watch::Sender<Interrupt>,
}

/// How a job ended: each host's result, why the rollout stopped early, how long it took.
#[derive(Debug)]
struct Ended {
    results: Vec<HostResult>,
    stopped: Option<String>,
    took: Duration,
}

impl Entry {
    /// The results folded, each group bounded, and whether that cut anything.
    fn answer(&self) -> Option<(String, bool)> {
        let ended = self.ended.lock().ok()?;
        let Ended {
            results, stopped, ..
        } = ended.as_ref()?;
        let mut text = self.outputs.fold(results);
        let whole = self.outputs.fold_whole(results);
        let cut = text != whole;
        if let Some(why) = stopped {
            text.push_str(&format!("stopped: {why}\n"));
        }
        Some((text, cut))
    }
}

/// The jobs of one server.
#[derive(Debug, Default)]
pub(super) struct Jobs {
    next: AtomicU64,
    all: Mutex<BTreeMap<u64, Arc<Entry>>>,
}

impl Jobs {
    /// Starts `job` on `targets`; returns its number and the task that runs it.
    pub(super) fn start(
        &self,
        state: &State,
        targets: Vec<crate::fleet::Target>,
        job: Job,
        rollout: super::super::options::RolloutArgs,
        what: String,
    ) -> (u64, tokio::task::JoinHandle<()>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (stop, interrupt) = watch::channel(Interrupt::None);
        let entry = Arc::new(Entry {
            what,
            hosts: targets.len(),
            started: Instant::now(),
            outputs: Outputs::default(),
            ended: Mutex::new(None),
            stop,
        });
        if let Ok(mut all) = self.all.lock() {
            all.insert(id, Arc::clone(&entry));
            // The oldest ended jobs go first; running ones stay.
            while all.len() > KEPT {
                let Some(old) = all
                    .iter()
                    .find(|(_, e)| e.ended.lock().is_ok_and(|d| d.is_some()))
                    .map(|(k, _)| *k)
                else {
                    break;
                };
                all.remove(&old);
            }
        }
        let state = Arc::clone(state);
        let task = tokio::spawn(async move {
            let sink = entry.outputs.sink();
            let fanned = fan(&state, targets, job, &rollout, sink, interrupt).await;
            if let Ok(mut ended) = entry.ended.lock() {
                *ended = Some(Ended {
                    results: fanned.results,
                    stopped: fanned.stopped,
                    took: entry.started.elapsed(),
                });
            }
        });
        (id, task)
    }

    fn get(&self, id: u64) -> Result<Arc<Entry>, String> {
        self.all
            .lock()
            .ok()
            .and_then(|all| all.get(&id).cloned())
            .ok_or_else(|| format!("no job {id} (the server keeps the newest {KEPT})"))
    }

    /// What a foreground `run` answers: the folded results, and where the rest is when they
    /// had to be cut.
    pub(super) fn answer(&self, id: u64) -> Result<String, String> {
        let (mut text, cut) = self.get(id)?.answer().ok_or("the job has not ended")?;
        if cut {
            text.push_str(&format!(
                "(output cut; job {id} holds all of it: call `job` with id {id} and a page)\n"
            ));
        }
        Ok(text)
    }

    /// How many of job `id`'s hosts have ended, of how many.
    pub(super) fn progress(&self, id: u64) -> (usize, usize) {
        self.get(id)
            .map_or((0, 0), |e| (e.outputs.ended(), e.hosts))
    }

    /// Cancels job `id`.
    pub(super) fn stop(&self, id: u64) {
        if let Ok(e) = self.get(id) {
            e.stop.send_replace(Interrupt::Cancel);
        }
    }

    /// Stops every running job (the server is going) and waits, for a while, for them to end.
    pub(super) async fn cancel_all(&self) {
        let running: Vec<Arc<Entry>> = match self.all.lock() {
            Ok(all) => all.values().cloned().collect(),
            Err(_) => return,
        };
        for e in &running {
            e.stop.send_replace(Interrupt::Cancel);
        }
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_secs(10)
            && running
                .iter()
                .any(|e| e.ended.lock().is_ok_and(|d| d.is_none()))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs `job` on `targets` until done or `interrupt` says, every event (its secrets hidden)
/// to `sink`.
pub(super) async fn fan(
    state: &State,
    targets: Vec<crate::fleet::Target>,
    job: Job,
    rollout: &super::super::options::RolloutArgs,
    sink: wisp_events::Sink,
    interrupt: watch::Receiver<Interrupt>,
) -> crate::fleet::Fanned {
    let mut reporter = Reporter::forwarding(sink);
    if let Job::Plan { plan, .. } = &job {
        reporter = reporter.with_secrets(&plan.secrets);
    }
    let forks = usize::try_from(state.common.forks).unwrap_or(usize::MAX);
    crate::jobs::run(
        targets,
        job,
        &state.launch,
        &rollout.rollout(forks),
        crate::jobs::Keep {
            output_dir: None,
            warm: state.warm.clone(),
        },
        Arc::new(reporter),
        interrupt,
    )
    .await
}

/// How a client follows a call it waits for: progress notifications when it asked for them
/// (a progress token), and its cancellation of the call.
pub(super) struct Follow<'a> {
    /// Where progress goes, when the client asked for it.
    pub(super) progress: Option<(rmcp::Peer<rmcp::RoleServer>, rmcp::model::ProgressToken)>,
    /// Ends when the client cancels the call.
    pub(super) cancelled: std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
}

impl Follow<'_> {
    /// Waits for job `id`'s task, telling each time more of its hosts have ended (and once at
    /// the start and the end); a cancelled call cancels the job, whose task then ends.
    pub(super) async fn wait(
        mut self,
        state: &State,
        id: u64,
        mut task: tokio::task::JoinHandle<()>,
    ) -> Result<(), String> {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let (mut cancelled, mut told) = (false, None);
        loop {
            tokio::select! {
                done = &mut task => {
                    tell(self.progress.as_ref(), state.jobs.progress(id)).await;
                    return done.map_err(|e| format!("job {id} broke: {e}"));
                }
                () = &mut self.cancelled, if !cancelled => {
                    cancelled = true;
                    state.jobs.stop(id);
                }
                _ = tick.tick() => {
                    let now = state.jobs.progress(id);
                    if told != Some(now) {
                        told = Some(now);
                        tell(self.progress.as_ref(), now).await;
                    }
                }
            }
        }
    }
}

/// One progress notification, when the client asked for them.
async fn tell(
    to: Option<&(rmcp::Peer<rmcp::RoleServer>, rmcp::model::ProgressToken)>,
    (ended, total): (usize, usize),
) {
    if let Some((peer, token)) = to {
        #[allow(clippy::cast_precision_loss)] // host counts are small
        let note = rmcp::model::ProgressNotificationParam::new(token.clone(), ended as f64)
            .with_total(total as f64)
            .with_message(format!("{ended} of {total} hosts ended"));
        let _ = peer.notify_progress(note).await;
    }
}

fn id_arg(args: &JsonObject) -> Result<u64, String> {
    args.get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| "needs id, a job's number".to_owned())
}

/// `job`: how a job is going, or, once it ended, its whole output, one page at a time.
pub(super) fn status(state: &State, args: &JsonObject) -> Result<String, String> {
    let id = id_arg(args)?;
    let e = state.jobs.get(id)?;
    let ended = e.ended.lock().map_err(|_| "the job is unusable")?;
    let Some(Ended {
        results,
        stopped,
        took,
    }) = ended.as_ref()
    else {
        return Ok(format!(
            "job {id}: {}: running for {:.1?}, {} of {} hosts ended\n",
            e.what,
            e.started.elapsed(),
            e.outputs.ended(),
            e.hosts
        ));
    };
    let whole = e.outputs.fold_whole(results);
    let pages = paged(&whole);
    let page = args.get("page").and_then(Value::as_u64).unwrap_or(1).max(1);
    let index = usize::try_from(page - 1).unwrap_or(usize::MAX);
    let Some(body) = pages.get(index) else {
        return Err(format!("job {id} has {} pages", pages.len()));
    };
    let mut text = format!(
        "job {id}: {}: ended in {took:.1?}, page {page} of {}\n{body}",
        e.what,
        pages.len()
    );
    if let Some(why) = stopped {
        text.push_str(&format!("stopped: {why}\n"));
    }
    Ok(text)
}

/// `cancel`: a running job's commands killed on every host, its hosts not yet started left.
pub(super) fn cancel(state: &State, args: &JsonObject) -> Result<String, String> {
    let id = id_arg(args)?;
    let e = state.jobs.get(id)?;
    if e.ended.lock().is_ok_and(|d| d.is_some()) {
        return Err(format!("job {id} has ended; nothing to cancel"));
    }
    e.stop.send_replace(Interrupt::Cancel);
    Ok(format!(
        "job {id}: cancelling: each host's runner kills the command's process tree; `job` \
         with id {id} tells when it has ended\n"
    ))
}

/// `text` in pages of at most [`PAGE`] bytes, cut at line ends (a longer line alone).
fn paged(text: &str) -> Vec<String> {
    let mut pages = vec![String::new()];
    for line in text.split_inclusive('\n') {
        let last = pages.last_mut().map_or(0, |p| p.len());
        if last > 0 && last + line.len() > PAGE {
            pages.push(String::new());
        }
        if let Some(p) = pages.last_mut() {
            p.push_str(line);
        }
    }
    pages
}

/// How the hosts of a run are named in its job: folded, and how many.
pub(super) fn what(argv: &[String], names: &[String]) -> String {
    format!(
        "{} on {} ({} hosts)",
        argv.first().map_or("", String::as_str),
        fold_hosts(names),
        names.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_hold_whole_lines_and_nothing_is_lost() {
        let text: String = (0..3000).map(|i| format!("line {i}\n")).collect();
        let pages = paged(&text);
        assert!(pages.len() > 1);
        assert!(pages.iter().all(|p| p.len() <= PAGE && p.ends_with('\n')));
        assert_eq!(pages.concat(), text);
        assert_eq!(paged(""), vec![String::new()]);
    }
}
