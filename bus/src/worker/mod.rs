//! `wisp worker`: pulls items from the bus and runs each with the jobs a local run uses
//! (given by the `wisp` crate as a [`RunItem`]).
//!
//! One item at a time per free slot (no prefetch: an item waiting in a worker's buffer would
//! see its ack wait run out there). Each item is checked (signature, expiry, region), claimed,
//! run with a forwarding reporter whose calls go back on the events stream, and acked once
//! its result is stored. See [`super`] for the delivery rules.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use tokio::sync::watch;

mod cancels;
mod claim;
mod consumer;

use super::auth::{WorkerKey, WorkerKeys};
use super::events::Events;
use super::item::{Back, Item, SIGNATURE_HEADER, Verifier, now_ms};
use super::ledger::{Entry, Ledger};
use super::{Bus, BusError, Claims, log};
use cancels::{Runs, listen_for_cancels};
use claim::{Beat, Claim, claim, keep_alive, put_claim};
use consumer::{CONSUMER_CHECK, recheck, work_consumer};
use wisp_events::interrupt::Interrupt;
use wisp_events::{HostResult, Sink};

/// How a worker runs one item's work on its host: the jobs of a local run, reaching the host
/// with the worker's own keys and known_hosts and pushing its own runners. Every event goes to
/// `sink` (secrets already hidden there); `secrets` are the plan's, opened on this worker;
/// `interrupt` rises when the run is cancelled or the claim is lost.
pub trait RunItem: Send + Sync {
    /// Runs `item`'s work; its host's result.
    fn run(
        &self,
        item: &Item,
        secrets: wisp_secrets::SecretValues,
        sink: Sink,
        interrupt: watch::Receiver<Interrupt>,
    ) -> std::pin::Pin<Box<dyn Future<Output = HostResult> + Send>>;
}

/// How long a worker waits for the bus to store what it sent about an item; a server that
/// is gone does not answer, and a stopping worker must still stop.
pub(super) const FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// What a worker is.
pub struct Worker {
    /// Its name, in claims, logs and what it reports.
    pub name: String,
    /// The region whose items it takes (`any` without one).
    pub region: String,
    /// Items at once.
    pub forks: usize,
    /// How long an item may go without a sign of life before it is delivered again.
    pub ack_wait: Duration,
    /// The job keys it trusts.
    pub verifier: Verifier,
    /// Its own key: every event, claim and consumer it writes is signed with it.
    pub key: Arc<WorkerKey>,
    /// The worker keys whose claims and consumers it accepts (its own among them).
    pub workers: WorkerKeys,
    /// The age identities that open plans' secrets (`--identity`).
    pub identities: Vec<age::x25519::Identity>,
    /// How it runs an item's work on its host.
    pub jobs: Arc<dyn RunItem>,
    /// Where it records the items it ran (`--ledger`).
    pub ledger: std::path::PathBuf,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Runs until `stop` turns true, then finishes the items it has started and returns (or
/// returns at once on a second stop, or when its consumer turns out not to be wisp's).
pub async fn serve(
    bus: Bus,
    worker: Worker,
    mut stop: watch::Receiver<u8>,
) -> Result<(), BusError> {
    let ledger = Arc::new(Ledger::open(&worker.ledger, now_ms())?);
    let worker = Arc::new(worker);
    let mut consumer = work_consumer(&bus, &worker).await?;
    let runs = Arc::new(Runs::default());
    tokio::spawn(listen_for_cancels(
        bus.clone(),
        Arc::clone(&worker),
        Arc::clone(&runs),
    ));
    say_started(&worker, &bus, &ledger);
    let slots = Arc::new(tokio::sync::Semaphore::new(worker.forks.max(1)));
    let mut down = bus.down.clone();
    let mut failing = None::<std::time::Instant>;
    let mut refused = None;
    let mut checked = std::time::Instant::now();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p,
            _ = stop.wait_for(|s| *s > 0) => break,
        };
        let Ok(permit) = permit else { break };
        // Back from a lost connection: whoever could reach the server meanwhile could have
        // replaced the consumer, so it is checked again.
        if down.has_changed().unwrap_or(false)
            && !*down.borrow_and_update()
            && let Err(e) = refresh(&bus, &worker, &mut consumer).await
        {
            refused = Some(e);
            break;
        }
        let fetched = tokio::select! {
            f = consumer.fetch().max_messages(1).expires(Duration::from_secs(2)).messages() => f,
            _ = stop.wait_for(|s| *s > 0) => break,
        };
        let next = match fetched {
            Ok(mut batch) => tokio::select! {
                n = batch.next() => n.map(|m| m.map_err(|e| e.to_string())),
                _ = stop.wait_for(|s| *s > 0) => break,
            },
            Err(e) => Some(Err(e.to_string())),
        };
        match next {
            Some(Ok(msg)) => {
                failing = None;
                let (bus, worker, runs, ledger) = (
                    bus.clone(),
                    Arc::clone(&worker),
                    Arc::clone(&runs),
                    Arc::clone(&ledger),
                );
                tokio::spawn(async move {
                    handle(&bus, &worker, &runs, &ledger, msg).await;
                    drop(permit);
                });
            }
            Some(Err(e)) => {
                // Said once per ten seconds of failing, not once per try.
                if failing.is_none_or(|since| since.elapsed() > Duration::from_secs(10)) {
                    log(&worker.name, &format!("cannot pull from {}: {e}", bus.url));
                    failing = Some(std::time::Instant::now());
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s > 0) => break,
                }
                // The stream or the consumer may be gone: made again (and checked) once the
                // server answers.
                if let Err(e) = refresh(&bus, &worker, &mut consumer).await {
                    refused = Some(e);
                    break;
                }
            }
            None => {
                // Idle: is the consumer still the one a worker made? Someone who deleted it
                // and made another with the same name (another filter) would otherwise hold
                // back every item without a single error.
                if checked.elapsed() > CONSUMER_CHECK {
                    checked = std::time::Instant::now();
                    if let Err(e) = refresh(&bus, &worker, &mut consumer).await {
                        refused = Some(e);
                        break;
                    }
                }
            }
        }
    }
    if let Some(e) = &refused {
        log(&worker.name, &format!("stopping: {e}"));
    }
    wind_down(&worker, &slots, &mut stop).await;
    match refused {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Says where the worker takes items from, with which key and ledger.
fn say_started(worker: &Worker, bus: &Bus, ledger: &Ledger) {
    log(
        &worker.name,
        &format!(
            "taking items for region {} from {} (key {}, ledger {})",
            worker.region,
            bus.url,
            worker.key.id(),
            ledger.path().display()
        ),
    );
}

/// The work consumer checked again (made again when gone); a foreign one is an error.
async fn refresh(
    bus: &Bus,
    worker: &Worker,
    consumer: &mut jetstream::consumer::PullConsumer,
) -> Result<(), BusError> {
    if let Some(c) = recheck(bus, worker).await? {
        *consumer = c;
    }
    Ok(())
}

/// Waits for the items started to finish, or for a second stop, which cuts them off.
async fn wind_down(
    worker: &Worker,
    slots: &tokio::sync::Semaphore,
    stop: &mut watch::Receiver<u8>,
) {
    log(&worker.name, "stopping: finishing the items it started");
    let all = u32::try_from(worker.forks.max(1)).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => {}
        _ = stop.wait_for(|s| *s > 1) => {
            log(&worker.name, "stopping now: the items still running are cut off");
        }
    }
}

/// One delivered item, from its checks to its ack.
async fn handle(bus: &Bus, worker: &Worker, runs: &Runs, ledger: &Ledger, msg: jetstream::Message) {
    let Some((item, events, secrets)) = accept(bus, worker, ledger, &msg).await else {
        return;
    };
    let Ok(claims) = bus.claims().await else {
        let _ = msg
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
        return;
    };
    let seq = msg.info().map_or(0, |i| i.stream_sequence);
    let mine = Claim {
        item: item.id.clone(),
        worker: worker.name.clone(),
        seq,
        beat_ms: now_ms(),
        done: false,
    };
    let refuse = refuser(worker, &msg);
    let (revision, took_over) =
        match claim(&claims, worker, &item, &mine, &events, &msg, &refuse).await {
            Some(claimed) => claimed,
            None => return,
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
    let held = Held {
        msg: &msg,
        claims: &claims,
        mine: &mine,
        revision,
    };
    let (result, revision) = run_claimed(worker, runs, &item, secrets, &events, &held).await;
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
        result: (&result).into(),
    });
    finish(worker, &item, &events, Held { revision, ..held }).await;
}

/// Logs an item turned away, naming its subject and stream message.
fn refuser(worker: &Worker, msg: &jetstream::Message) -> impl Fn(String) + Sync + use<> {
    let seq = msg.info().map_or(0, |i| i.stream_sequence);
    let subject = msg.subject.to_string();
    let name = worker.name.clone();
    move |why: String| {
        log(
            &name,
            &format!("REFUSED the item on {subject} (stream message {seq}): {why}"),
        );
    }
}

/// The checks before a claim: the signature, the item's shape, its expiry and region, the
/// ledger (a replayed copy), and its secrets opening here. An item that fails one is turned
/// away (`None`); one that passes comes back with its events stream and its secrets.
async fn accept(
    bus: &Bus,
    worker: &Worker,
    ledger: &Ledger,
    msg: &jetstream::Message,
) -> Option<(Item, Events, wisp_secrets::SecretValues)> {
    let seq = msg.info().map_or(0, |i| i.stream_sequence);
    let refuse = refuser(worker, msg);
    let sig = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(SIGNATURE_HEADER))
        .map(|v| v.as_str().to_owned());
    if let Err(why) = worker.verifier.check(&msg.payload, sig.as_deref()) {
        refuse(why);
        let _ = msg.ack_with(AckKind::Term).await;
        return None;
    }
    let item: Item = match serde_json::from_slice(&msg.payload) {
        Ok(item) => item,
        Err(e) => {
            refuse(format!("signed, but not an item: {e}"));
            let _ = msg.ack_with(AckKind::Term).await;
            return None;
        }
    };
    let events = Events::new(bus, &item, &worker.name, Arc::clone(&worker.key));
    let mut why = super::item::check_fresh(&item, now_ms()).err();
    if why.is_none() && item.region != worker.region {
        why = Some(format!(
            "for region {}, on a subject of region {}",
            item.region, worker.region
        ));
    }
    if why.is_none() {
        // Another stream message with an id this machine ran: a copy put on the stream
        // again, whatever became of its claim.
        why = match ledger.record(&item.id, seq, item.expires_ms) {
            Ok(Entry::New | Entry::Again) => None,
            Ok(Entry::Replayed(first)) => Some(format!(
                "replayed: item {} already ran here from stream message {first} (ledger {})",
                item.id,
                ledger.path().display()
            )),
            Err(e) => Some(format!("cannot record it in the ledger: {e}")),
        };
    }
    // A plan's secrets open with this worker's identity, or the item is not for it.
    let secrets = match why {
        Some(why) => Err(why),
        None => item.open_secrets(&worker.identities).map_err(|e| {
            format!(
                "its secrets do not open with this worker's --identity ({e}); give \
                 the worker an identity the controller's --worker-recipients lists"
            )
        }),
    };
    match secrets {
        Ok(secrets) => Some((item, events, secrets)),
        Err(why) => {
            turn_away(worker, &events, msg, &refuse, why).await;
            None
        }
    }
}

/// A claimed item's hold on the bus: its message (to ack) and its claim at `revision`.
#[derive(Clone, Copy)]
struct Held<'a> {
    msg: &'a Arc<jetstream::Message>,
    claims: &'a Claims,
    mine: &'a Claim,
    revision: u64,
}

/// Runs a claimed item while its claim beats; returns its result and the claim's revision
/// after the last beat.
async fn run_claimed(
    worker: &Worker,
    runs: &Runs,
    item: &Item,
    secrets: wisp_secrets::SecretValues,
    events: &Events,
    held: &Held<'_>,
) -> (HostResult, u64) {
    let mut interrupt = runs.watch(&item.run);
    // Signs of life while it runs; a claim taken over under us (we were thought dead) stops
    // the item at once, so it never runs twice at once.
    let (beat_stop, beat_stopped) = watch::channel(false);
    let (lost_tx, lost_rx) = watch::channel(Interrupt::None);
    let beat = tokio::spawn(keep_alive(
        Arc::clone(held.msg),
        held.claims.clone(),
        Beat {
            key: Arc::clone(&worker.key),
            workers: worker.workers.clone(),
            name: worker.name.clone(),
            every: worker.ack_wait / 3,
        },
        held.mine.clone(),
        held.revision,
        beat_stopped,
        lost_tx,
    ));
    let result = run_item(worker, item, secrets, events, &mut interrupt, lost_rx).await;
    let _ = beat_stop.send(true);
    let revision = beat.await.unwrap_or(held.revision);
    (result, revision)
}

/// Stored, claimed done, acked: all within [`FLUSH_LIMIT`], so a worker whose server is gone
/// still gets to its end (the stream delivers the item again; its claim tells the next
/// worker what it can).
async fn finish(worker: &Worker, item: &Item, events: &Events, held: Held<'_>) {
    let finish = async {
        events.flush(FLUSH_LIMIT).await;
        let done = Claim {
            done: true,
            beat_ms: now_ms(),
            ..held.mine.clone()
        };
        let _ = put_claim(held.claims, &worker.key, &done, held.revision).await;
        held.msg.double_ack().await
    };
    match tokio::time::timeout(FLUSH_LIMIT, finish).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log(&worker.name, &format!("item {}: ack failed: {e}", item.id)),
        Err(_) => log(
            &worker.name,
            &format!(
                "item {}: the bus did not take its result within {FLUSH_LIMIT:?}",
                item.id
            ),
        ),
    }
}

/// Turns a signed item away: logged here (by `refuse`), told to its run, and removed from
/// the stream so no other worker draws it again.
pub(super) async fn turn_away(
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
    events.flush(FLUSH_LIMIT).await;
    let _ = msg.ack_with(AckKind::Term).await;
}

/// Runs one item's work on its host, reporting through `events`.
async fn run_item(
    worker: &Worker,
    item: &Item,
    secrets: wisp_secrets::SecretValues,
    events: &Events,
    interrupt: &mut watch::Receiver<Interrupt>,
    mut lost: watch::Receiver<Interrupt>,
) -> HostResult {
    // Output that shows a secret is hidden here, before it travels.
    let sink = events.sink(wisp_secrets::Redactor::new(&secrets));
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
    let result = worker.jobs.run(item, secrets, sink, rx).await;
    follow.abort();
    result
}
