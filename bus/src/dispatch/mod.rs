//! The controller's side of a run through workers: under the same fan-out as a local run
//! (batches, budgets, `--forks` items out at once, the caller's), each host's work is an item
//! put on the bus, and the events workers send back about it are admitted and emitted on the
//! run's reporter.
//!
//! Only what a trusted worker signed is heard, and of that only what the worker whose claim
//! was heard says about the item's own host: an event signed by no trusted key, for another
//! run or item, out of order, from another worker than the claimant, or about another host
//! is refused, journalled and said once per host.

mod heard;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::auth::{Domain, WORKER_SIGNATURE_HEADER, WorkerKeys};
use super::events::{ENVELOPE_FORMAT, Envelope};
use super::item::{Back, Cancel, HostSpec, Item, SIGNATURE_HEADER, Signer, Start, Work, now_ms};
use super::{Bus, EVENTS_STREAM, WORK_STREAM, work_subject};
use heard::{Heard, replay};
use wisp_events::interrupt::Interrupt;
use wisp_events::{Emit, Event, HostOutcome, HostResult};

/// How long the controller waits for a lost NATS connection to come back before it gives
/// up on the hosts still out.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(5);

/// A run through the bus.
#[derive(Debug)]
pub struct Dispatch {
    pub bus: Bus,
    pub signer: Signer,
    /// The run's id on the bus.
    pub run: String,
    pub start: Start,
    pub redeliver_exec: bool,
    /// The plan's secrets sealed to the workers (base64 age), when it has any.
    pub secrets: Option<String>,
    /// The worker keys whose events are heard (`--trust-workers`).
    pub workers: WorkerKeys,
    /// How long an item may wait for a worker (`--item-expiry`).
    pub item_expiry: Duration,
}

/// What reaches an item's waiter: an event with the key that signed it, or why a message on
/// its subject was refused.
enum Inbound {
    Signed {
        key: String,
        worker: String,
        seq: u64,
        back: Back,
    },
    Refused(String),
}

/// Each item's events, by item id.
type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Inbound>>>>;

/// A run's dispatch under way: the run's events followed and its interrupts passed on, ready
/// to hand each host's work to the workers. The fan-out (batches, budgets, `--forks`) is the
/// caller's: it calls [`Dispatcher::host`] for each host, as a local run calls its jobs.
pub struct Dispatcher {
    d: Arc<Dispatch>,
    routes: Routes,
    router: Option<tokio::task::JoinHandle<()>>,
    work: Arc<Work>,
    hosts: Arc<HashMap<String, (HostSpec, String)>>,
    emit: Arc<dyn Emit>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("run", &self.d.run)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Follows the run's events and passes its interrupts on; `work` for each of `hosts`
    /// (address and region by name), every event admitted handed to `emit`.
    pub async fn start(
        d: Dispatch,
        hosts: HashMap<String, (HostSpec, String)>,
        work: Work,
        emit: Arc<dyn Emit>,
        interrupt: watch::Receiver<Interrupt>,
    ) -> Dispatcher {
        let d = Arc::new(d);
        let routes: Routes = Arc::default();
        let router = match route(&d, Arc::clone(&routes)).await {
            Ok(r) => Some(r),
            Err(e) => {
                emit.emit(Event::unreachable("wisp", &e));
                None
            }
        };
        tokio::spawn(pass_on_interrupts(Arc::clone(&d), interrupt));
        Dispatcher {
            d,
            routes,
            router,
            work: Arc::new(work),
            hosts: Arc::new(hosts),
            emit,
        }
    }

    /// One host's part: its item queued, then its events admitted until its result.
    pub fn host(
        &self,
        name: String,
        interrupt: watch::Receiver<Interrupt>,
    ) -> impl Future<Output = HostResult> + Send + 'static {
        let (d, routes, work, hosts, emit) = (
            Arc::clone(&self.d),
            Arc::clone(&self.routes),
            Arc::clone(&self.work),
            Arc::clone(&self.hosts),
            Arc::clone(&self.emit),
        );
        let routed = self.router.is_some();
        async move {
            let started = std::time::Instant::now();
            let mut result = if routed {
                one_host(&d, &routes, &name, &hosts, &work, emit.as_ref(), interrupt).await
            } else {
                HostResult::new(&name, HostOutcome::Unreachable, "no events from NATS")
            };
            result.host.clone_from(&name);
            if result.elapsed.is_zero() {
                result.elapsed = started.elapsed();
            }
            result
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        if let Some(router) = self.router.take() {
            router.abort();
        }
    }
}

/// Follows the run's events subject and hands each event to its item's waiter.
async fn route(d: &Dispatch, routes: Routes) -> Result<tokio::task::JoinHandle<()>, String> {
    let err = |e: String| format!("cannot follow the run's events on {}: {e}", d.bus.url);
    let stream = d
        .bus
        .js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| err(e.to_string()))?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: format!("wisp.events.{}.>", d.run),
            ..Default::default()
        })
        .await
        .map_err(|e| err(e.to_string()))?;
    let mut messages = consumer.messages().await.map_err(|e| err(e.to_string()))?;
    let (run, workers) = (d.run.clone(), d.workers.clone());
    Ok(tokio::spawn(async move {
        while let Some(msg) = messages.next().await {
            let Ok(msg) = msg else { continue };
            let Some(id) = msg.subject.rsplit('.').next().map(str::to_owned) else {
                continue;
            };
            let tx = routes.lock().ok().and_then(|r| r.get(&id).cloned());
            // Not an item of this run waiting for its events: nothing to hear.
            let Some(tx) = tx else { continue };
            let _ = tx.send(inbound(&msg, &run, &id, &workers));
        }
    }))
}

/// One message on an item's events subject, checked: signed by a trusted worker, in the
/// envelope format, naming this run and this item.
fn inbound(
    msg: &async_nats::jetstream::Message,
    run: &str,
    id: &str,
    workers: &WorkerKeys,
) -> Inbound {
    let signature = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(WORKER_SIGNATURE_HEADER))
        .map(|v| v.as_str());
    let key = match workers.check(Domain::Event, &msg.payload, signature) {
        Ok(key) => key.to_owned(),
        Err(why) => return Inbound::Refused(why),
    };
    let envelope: Envelope<Back> = match serde_json::from_slice(&msg.payload) {
        Ok(e) => e,
        Err(e) => return Inbound::Refused(format!("signed, but not an event: {e}")),
    };
    if envelope.v != ENVELOPE_FORMAT {
        return Inbound::Refused(format!("event format {}", envelope.v));
    }
    if envelope.run != run || envelope.item != id {
        return Inbound::Refused(format!(
            "an event of run {} item {}, moved here",
            envelope.run, envelope.item
        ));
    }
    Inbound::Signed {
        key,
        worker: envelope.worker,
        seq: envelope.seq,
        back: envelope.back,
    }
}

/// Ctrl-C (and `--run-timeout`) reach the workers as signed cancels; items not yet taken are
/// removed from the stream.
async fn pass_on_interrupts(d: Arc<Dispatch>, mut interrupt: watch::Receiver<Interrupt>) {
    let mut sent = Interrupt::None;
    loop {
        let now = *interrupt.borrow_and_update();
        if now > sent {
            if sent == Interrupt::None
                && let Ok(stream) = d.bus.js.get_stream(WORK_STREAM).await
            {
                let _ = stream
                    .purge()
                    .filter(format!("wisp.work.*.{}", d.run))
                    .await;
            }
            let cancel = Cancel {
                run: d.run.clone(),
                level: if now == Interrupt::Disconnect {
                    "disconnect"
                } else {
                    "cancel"
                }
                .into(),
                expires_ms: now_ms() + 60_000,
            };
            if let Ok(body) = serde_json::to_vec(&cancel)
                && let Ok(sig) = d.signer.sign(&body)
            {
                let mut headers = HeaderMap::new();
                headers.insert(SIGNATURE_HEADER, sig.as_str());
                let _ = d
                    .bus
                    .client
                    .publish_with_headers(format!("wisp.cancel.{}", d.run), headers, body.into())
                    .await;
                let _ = d.bus.client.flush().await;
            }
            sent = now;
        }
        if interrupt.changed().await.is_err() {
            return;
        }
    }
}

/// A new item of this run for `host`, with a fresh id, expiring `--item-expiry` from now.
fn item_for(d: &Dispatch, host: &HostSpec, region: &str, work: &Work) -> Item {
    let issued = now_ms();
    Item {
        format: super::item::FORMAT,
        id: super::item::random_id(),
        run: d.run.clone(),
        issued_ms: issued,
        expires_ms: issued + u64::try_from(d.item_expiry.as_millis()).unwrap_or(u64::MAX),
        region: region.to_owned(),
        host: host.clone(),
        work: work.clone(),
        start: d.start,
        redeliver_exec: d.redeliver_exec,
        secrets: d.secrets.clone(),
    }
}

/// One host: its item queued, then its events replayed until its result comes back.
async fn one_host(
    d: &Dispatch,
    routes: &Routes,
    name: &str,
    hosts: &HashMap<String, (HostSpec, String)>,
    work: &Work,
    reporter: &dyn Emit,
    mut interrupt: watch::Receiver<Interrupt>,
) -> HostResult {
    let Some((host, region)) = hosts.get(name) else {
        return HostResult::new(name, HostOutcome::Failed, "no address for the bus");
    };
    let item = item_for(d, host, region, work);
    let id = item.id.clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    if let Ok(mut r) = routes.lock() {
        r.insert(id.clone(), tx);
    }
    let result = async {
        if let Err(e) = queue(d, &item).await {
            reporter.emit(Event::unreachable(name, &e));
            return HostResult::new(name, HostOutcome::Unreachable, "not queued");
        }
        let mut down = d.bus.down.clone();
        let mut heard = Heard::new(name, &id);
        // No worker takes an item after its expiry: waiting longer for one is waiting
        // forever (no worker of its region, or none that can reach the bus).
        let unclaimed = tokio::time::sleep(d.item_expiry + Duration::from_secs(5));
        tokio::pin!(unclaimed);
        loop {
            tokio::select! {
                inbound = rx.recv() => {
                    let Some(inbound) = inbound else {
                        return HostResult::new(name, HostOutcome::Unreachable, "events stopped");
                    };
                    let back = match heard.admit(inbound) {
                        Ok(back) => back,
                        Err(why) => {
                            heard.refused(reporter, &why);
                            continue;
                        }
                    };
                    if let Some(result) = replay(back, name, &id, reporter) {
                        return result;
                    }
                }
                () = &mut unclaimed, if heard.claimant.is_none() => {
                    let message = format!(
                        "no worker took its item within its expiry ({:?}): are workers of \
                         region {region} running, reaching {}, and trusting this job key?",
                        d.item_expiry, d.bus.url
                    );
                    reporter.emit(Event::unreachable(name, &message));
                    return HostResult::new(name, HostOutcome::Unreachable, "no worker took it");
                }
                _ = interrupt.changed() => {
                    let now = *interrupt.borrow();
                    if now == Interrupt::Disconnect {
                        return HostResult::new(name, HostOutcome::Interrupted, "disconnected before it answered the cancel");
                    }
                    if now == Interrupt::Cancel && heard.claimant.is_none() {
                        // Purged from the stream before a worker took it (a claim on its way
                        // is cancelled by the same broadcast).
                        return HostResult::new(name, HostOutcome::Interrupted, "not started");
                    }
                }
                _ = down.changed() => {
                    if !*down.borrow() {
                        continue;
                    }
                    // Down: give it the grace to come back, else give the host up.
                    let back = tokio::time::timeout(RECONNECT_GRACE, down.wait_for(|d| !*d)).await;
                    if !matches!(back, Ok(Ok(_))) {
                        let message = format!(
                            "lost the NATS server at {}: this host's result is unknown (its \
                             worker finishes what it started; `wisp retry` runs it again)",
                            d.bus.url
                        );
                        reporter.emit(Event::unreachable(name, &message));
                        return HostResult::new(name, HostOutcome::Unreachable, "NATS lost");
                    }
                }
            }
        }
    }
    .await;
    if let Ok(mut r) = routes.lock() {
        r.remove(&id);
    }
    result
}

/// Signs the item and puts it on the work stream, waiting for the stream to store it.
async fn queue(d: &Dispatch, item: &Item) -> Result<(), String> {
    let body = serde_json::to_vec(item).map_err(|e| e.to_string())?;
    let sig = d.signer.sign(&body).map_err(|e| e.to_string())?;
    let mut headers = HeaderMap::new();
    headers.insert(SIGNATURE_HEADER, sig.as_str());
    let subject = work_subject(&item.region, &item.run);
    let err = |e: String| format!("cannot queue its item on NATS at {}: {e}", d.bus.url);
    let ack = d
        .bus
        .js
        .publish_with_headers(subject, headers, body.into())
        .await
        .map_err(|e| err(e.to_string()))?;
    ack.await.map_err(|e| err(e.to_string()))?;
    Ok(())
}
