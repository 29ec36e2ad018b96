//! `wisp worker`: pulls items from the bus and runs each with the jobs a local run uses.
//!
//! One item at a time per free slot (no prefetch: an item waiting in a worker's buffer would
//! see its ack wait run out there). Each item is checked (signature, expiry, region), claimed,
//! run with a forwarding reporter whose calls go back on the events stream, and acked once
//! its result is stored. See [`super`] for the delivery rules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::cancels::{Runs, listen_for_cancels};
use super::events::Events;
use super::item::{Back, HostSpec, Item, SIGNATURE_HEADER, Verifier, Work, now_ms};
use super::{Bus, BusError, ClaimError, WORK_STREAM};
use crate::fleet::Target;
use crate::interrupt::Interrupt;
use crate::jobs::{Job, apply::Resume};
use crate::report::forward::Event;
use crate::report::{HostOutcome, HostResult, Reporter};

/// Turns a host into a target this worker can reach (its own keys and known_hosts), with
/// `become_root` as the item asks.
pub type Reach = Arc<dyn Fn(&HostSpec, bool) -> Result<Target, String> + Send + Sync>;

/// What a worker is.
pub struct Worker {
    /// Its name, in claims and in what it reports.
    pub name: String,
    /// The region whose items it takes (`any` without one).
    pub region: String,
    /// Items at once.
    pub forks: usize,
    /// How long an item may go without a sign of life before it is delivered again.
    pub ack_wait: Duration,
    /// The job keys it trusts.
    pub verifier: Verifier,
    /// The age identities that open plans' secrets (`--identity`).
    pub identities: Vec<age::x25519::Identity>,
    /// The runners it pushes (checked against its own trusted keys when it started).
    pub runners: wisp_transports::RunnerBinaries,
    /// How it reaches hosts.
    pub reach: Reach,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// A claim on an item: who runs it, for which stream message, and when it last said so.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    worker: String,
    seq: u64,
    beat_ms: u64,
    done: bool,
}

/// Says something on stderr, prefixed with the worker's name, on one line: what it says
/// often holds what a bus client chose (a subject, an item's host), shown escaped.
pub(super) fn log(worker: &str, text: &str) {
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("wisp worker {worker}: {}\n", crate::report::visible(text)),
    );
}

/// Runs until `stop` turns true, then finishes the items it has started and returns.
pub async fn serve(
    bus: Bus,
    worker: Worker,
    mut stop: watch::Receiver<bool>,
) -> Result<(), BusError> {
    let worker = Arc::new(worker);
    let setup = |why: String| BusError::Setup {
        what: "the work consumer",
        url: bus.url.clone(),
        why,
    };
    let stream = bus
        .js
        .get_stream(WORK_STREAM)
        .await
        .map_err(|e| setup(e.to_string()))?;
    let durable = format!("wisp-{}", worker.region);
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: format!("wisp.work.{}.>", worker.region),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: worker.ack_wait,
                max_deliver: -1,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| setup(e.to_string()))?;
    let runs = Arc::new(Runs::default());
    tokio::spawn(listen_for_cancels(
        bus.clone(),
        Arc::clone(&worker),
        Arc::clone(&runs),
    ));
    log(
        &worker.name,
        &format!("taking items for region {} from {}", worker.region, bus.url),
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(worker.forks.max(1)));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Ok(permit) = permit else { break };
        let batch = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(2))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                log(&worker.name, &format!("cannot pull from {}: {e}", bus.url));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match batch.next().await {
            Some(Ok(msg)) => {
                let (bus, worker, runs) = (bus.clone(), Arc::clone(&worker), Arc::clone(&runs));
                tokio::spawn(async move {
                    handle(&bus, &worker, &runs, msg).await;
                    drop(permit);
                });
            }
            Some(Err(e)) => {
                log(&worker.name, &format!("pulling: {e}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            None => {}
        }
    }
    log(&worker.name, "stopping: finishing the items it started");
    let all = u32::try_from(worker.forks.max(1)).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

/// One delivered item, from its checks to its ack.
async fn handle(bus: &Bus, worker: &Worker, runs: &Runs, msg: jetstream::Message) {
    let seq = msg.info().map_or(0, |i| i.stream_sequence);
    let subject = msg.subject.to_string();
    let refuse = |why: String| {
        log(
            &worker.name,
            &format!("REFUSED the item on {subject} (stream message {seq}): {why}"),
        );
    };
    let sig = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(SIGNATURE_HEADER))
        .map(|v| v.as_str().to_owned());
    if let Err(why) = worker.verifier.check(&msg.payload, sig.as_deref()) {
        refuse(why);
        let _ = msg.ack_with(AckKind::Term).await;
        return;
    }
    let item: Item = match serde_json::from_slice(&msg.payload) {
        Ok(item) => item,
        Err(e) => {
            refuse(format!("signed, but not an item: {e}"));
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let events = Events::new(bus, &item);
    let mut why = super::item::check_fresh(&item, now_ms()).err();
    if why.is_none() && item.region != worker.region {
        why = Some(format!(
            "for region {}, on a subject of region {}",
            item.region, worker.region
        ));
    }
    if let Some(why) = why {
        turn_away(worker, &events, &msg, &refuse, why).await;
        return;
    }
    // A plan's secrets open with this worker's identity, or the item is not for it.
    let secrets = match item.open_secrets(&worker.identities) {
        Ok(values) => values,
        Err(e) => {
            let why = format!(
                "its secrets do not open with this worker's --identity ({e}); give \
                 the worker an identity the controller's --worker-recipients lists"
            );
            turn_away(worker, &events, &msg, &refuse, why).await;
            return;
        }
    };
    let Ok(claims) = bus.claims().await else {
        let _ = msg
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
        return;
    };
    let mine = Claim {
        worker: worker.name.clone(),
        seq,
        beat_ms: now_ms(),
        done: false,
    };
    let encode = |c: &Claim| serde_json::to_vec(c).unwrap_or_default();
    let (revision, took_over) = match claims.put(&item.id, encode(&mine), 0).await {
        Ok(revision) => (revision, None),
        Err(ClaimError::Raced) => {
            let entry = claims.get(&item.id).await.ok().flatten();
            let held: Option<(u64, Claim)> =
                entry.and_then(|(seq, body)| Some((seq, serde_json::from_slice(&body).ok()?)));
            let Some((held_seq, held)) = held else {
                let _ = msg
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
                return;
            };
            if held.seq != seq {
                let why = format!(
                    "replayed: item {} already ran from stream message {} (claimed by {})",
                    item.id, held.seq, held.worker
                );
                turn_away(worker, &events, &msg, &refuse, why).await;
                return;
            }
            if held.done {
                // Its result is stored; only the ack was lost.
                let _ = msg.double_ack().await;
                return;
            }
            let stale = now_ms().saturating_sub(held.beat_ms)
                > u64::try_from((worker.ack_wait * 2).as_millis()).unwrap_or(u64::MAX);
            if !stale {
                // Its worker is alive: never run an item twice at once.
                let _ = msg.ack_with(AckKind::Nak(Some(worker.ack_wait))).await;
                return;
            }
            if !item.work.idempotent() && !item.redeliver_exec {
                log(
                    &worker.name,
                    &format!(
                        "{}: exec item lost with worker {}; not run again",
                        item.host.name, held.worker
                    ),
                );
                let lost = Claim {
                    done: true,
                    ..held.clone()
                };
                let _ = claims.put(&item.id, encode(&lost), held_seq).await;
                events.send(&Back::Lost {
                    worker: held.worker,
                    by: worker.name.clone(),
                });
                events.flush().await;
                let _ = msg.ack_with(AckKind::Term).await;
                return;
            }
            match claims.put(&item.id, encode(&mine), held_seq).await {
                Ok(revision) => (revision, Some(held.worker)),
                // Another worker took it over first.
                Err(_) => return,
            }
        }
        Err(ClaimError::Bus(e)) => {
            log(&worker.name, &format!("cannot claim item {}: {e}", item.id));
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
    };
    let note = took_over
        .as_deref()
        .map(|w| format!(", taken over from {w}"))
        .unwrap_or_default();
    log(
        &worker.name,
        &format!("{}: running item {}{note}", item.host.name, item.id),
    );
    events.send(&Back::Claimed {
        worker: worker.name.clone(),
        at_ms: now_ms(),
        took_over,
    });
    let msg = Arc::new(msg);
    let mut interrupt = runs.watch(&item.run);
    // Signs of life while it runs; a claim taken over under us (we were thought dead) stops
    // the item at once, so it never runs twice at once.
    let (beat_stop, mut beat_stopped) = watch::channel(false);
    let (lost_tx, lost_rx) = watch::channel(Interrupt::None);
    let beat = {
        let (msg, claims, id, name) = (
            Arc::clone(&msg),
            claims.clone(),
            item.id.clone(),
            worker.name.clone(),
        );
        let every = worker.ack_wait / 3;
        let mut claim = mine.clone();
        tokio::spawn(async move {
            let mut revision = revision;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = beat_stopped.wait_for(|s| *s) => return revision,
                }
                let _ = msg.ack_with(AckKind::Progress).await;
                claim.beat_ms = now_ms();
                match claims
                    .put(
                        &id,
                        serde_json::to_vec(&claim).unwrap_or_default(),
                        revision,
                    )
                    .await
                {
                    Ok(r) => revision = r,
                    Err(ClaimError::Bus(e)) => {
                        // The bus is away: the claim goes stale only if this lasts.
                        log(&name, &format!("item {id}: cannot refresh its claim: {e}"));
                    }
                    Err(ClaimError::Raced) => {
                        log(
                            &name,
                            &format!("item {id}: its claim was taken over; stopping it"),
                        );
                        let _ = lost_tx.send(Interrupt::Disconnect);
                        return revision;
                    }
                }
            }
        })
    };
    let result = run_item(worker, &item, secrets, &events, &mut interrupt, lost_rx).await;
    let _ = beat_stop.send(true);
    let revision = beat.await.unwrap_or(revision);
    log(
        &worker.name,
        &format!(
            "{}: {} ({})",
            item.host.name,
            result.outcome.label(),
            result.detail
        ),
    );
    events.send(&Back::Finished {
        worker: worker.name.clone(),
        at_ms: now_ms(),
        result,
    });
    events.flush().await;
    let done = Claim {
        done: true,
        beat_ms: now_ms(),
        ..mine
    };
    let _ = claims.put(&item.id, encode(&done), revision).await;
    if let Err(e) = msg.double_ack().await {
        log(&worker.name, &format!("item {}: ack failed: {e}", item.id));
    }
}

/// Turns a signed item away: logged here (by `refuse`), told to its run, and removed from
/// the stream so no other worker draws it again.
async fn turn_away(
    worker: &Worker,
    events: &Events,
    msg: &jetstream::Message,
    refuse: &(dyn Fn(String) + Sync),
    why: String,
) {
    refuse(why.clone());
    events.send(&Back::Refused {
        worker: worker.name.clone(),
        reason: why,
    });
    events.flush().await;
    let _ = msg.ack_with(AckKind::Term).await;
}

/// Runs one item's job on its host, reporting through `events`.
async fn run_item(
    worker: &Worker,
    item: &Item,
    secrets: crate::secrets::SecretValues,
    events: &Events,
    interrupt: &mut watch::Receiver<Interrupt>,
    mut lost: watch::Receiver<Interrupt>,
) -> HostResult {
    // Output that shows a secret is hidden here, before it travels.
    let redactor = crate::secrets::Redactor::new(&secrets);
    let for_streams = secrets.clone();
    let name = item.host.name.clone();
    let target = match (worker.reach)(&item.host, item.start.become_root) {
        Ok(t) => t,
        Err(e) => {
            let message = format!("worker {}: {e}", worker.name);
            events.send(&Back::Report {
                event: Event::Unreachable {
                    host: name.clone(),
                    message: message.clone(),
                },
            });
            return HostResult::new(&name, HostOutcome::Unreachable, &message);
        }
    };
    let job = match &item.work {
        Work::Exec { args, limits } => Job::Exec {
            args: args.clone(),
            limits: limits.clone(),
            per_arch: None,
        },
        Work::Facts => Job::Facts,
        Work::Ping => Job::Ping,
        Work::Plan {
            plan,
            options,
            resume,
        } => Job::Plan {
            plan: Arc::new(crate::plan::Plan {
                secrets,
                ..(**plan).clone()
            }),
            options: *options,
            resume: resume.as_ref().map(|(run, from, changed)| {
                Arc::new(Resume {
                    run: *run,
                    hosts: HashMap::from([(name.clone(), (*from, changed.clone()))]),
                })
            }),
        },
    };
    let sink = events.sink(redactor);
    // The reporter hides them in the output streams too, before lines are cut.
    let reporter = Arc::new(Reporter::forwarding(sink).with_secrets(&for_streams));
    let launch = wisp_transports::Launch::new(
        worker.runners.clone(),
        Duration::from_millis(item.start.ttl_ms),
        Duration::from_millis(item.start.connect_timeout_ms),
    );
    // The run's interrupt, or our claim lost: whichever is higher.
    let (tx, rx) = watch::channel(*interrupt.borrow());
    let follow = {
        let mut interrupt = interrupt.clone();
        tokio::spawn(async move {
            loop {
                let level = (*interrupt.borrow()).max(*lost.borrow());
                tx.send_if_modified(|i| {
                    let raise = level > *i;
                    if raise {
                        *i = level;
                    }
                    raise
                });
                tokio::select! {
                    r = interrupt.changed() => if r.is_err() { return },
                    r = lost.changed() => if r.is_err() { return },
                }
            }
        })
    };
    let rollout = crate::rollout::Rollout {
        forks: 1,
        ..Default::default()
    };
    let fanned = crate::jobs::run(vec![target], job, &launch, &rollout, None, reporter, rx).await;
    follow.abort();
    fanned
        .results
        .into_iter()
        .next()
        .unwrap_or_else(|| HostResult::new(&name, HostOutcome::Failed, "no result"))
}
