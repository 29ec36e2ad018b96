//! What a worker sends back about one item, in order, on `wisp.events.<run>.<item>`: each
//! message an [`Envelope`] naming the run, the item, the worker and its place in the item's
//! sequence, signed by the worker's key (see [`super::auth`]); published without waiting,
//! the stream's acknowledgements collected, and a flush that waits until everything before
//! it is stored.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::Bus;
use super::auth::{Domain, WORKER_SIGNATURE_HEADER, WorkerKey};
use super::item::{Back, Item};
use wisp_events::Sink;

/// The envelope format; a controller refuses any other.
pub(super) const ENVELOPE_FORMAT: u32 = 2;

/// One event as it travels: what is signed is its JSON, so the run, the item and the
/// sequence cannot be changed, and an event cannot be moved to another item or replayed
/// within its own.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Envelope<B> {
    /// [`ENVELOPE_FORMAT`].
    pub v: u32,
    pub run: String,
    pub item: String,
    /// The worker's name (its key is what counts; the name is for people).
    pub worker: String,
    /// 1, 2, 3... for this worker's events about this item.
    pub seq: u64,
    pub back: B,
}

/// What the publisher of one item's events is given.
enum Out {
    /// A [`Back`], as JSON (a report already redacted).
    Back(serde_json::Value),
    /// Answer once everything before is stored in the stream.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// What goes back about one item, in order, on its events subject.
pub(super) struct Events {
    tx: mpsc::UnboundedSender<Out>,
}

impl Events {
    pub(super) fn new(bus: &Bus, item: &Item, worker: &str, key: Arc<WorkerKey>) -> Events {
        let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
        let subject = format!("wisp.events.{}.{}", item.run, item.id);
        let (run, id, worker) = (item.run.clone(), item.id.clone(), worker.to_owned());
        let js = bus.js.clone();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            let mut seq = 0u64;
            while let Some(out) = rx.recv().await {
                match out {
                    Out::Back(back) => {
                        seq += 1;
                        let envelope = Envelope {
                            v: ENVELOPE_FORMAT,
                            run: run.clone(),
                            item: id.clone(),
                            worker: worker.clone(),
                            seq,
                            back,
                        };
                        let Ok(body) = serde_json::to_vec(&envelope) else {
                            continue;
                        };
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert(
                            WORKER_SIGNATURE_HEADER,
                            key.sign(Domain::Event, &body).as_str(),
                        );
                        match js
                            .publish_with_headers(subject.clone(), headers, body.into())
                            .await
                        {
                            Ok(ack) => pending.push(ack),
                            Err(e) => {
                                super::log("events", &format!("cannot publish on {subject}: {e}"))
                            }
                        }
                    }
                    Out::Flush(answer) => {
                        for ack in pending.drain(..) {
                            let _ = ack.await;
                        }
                        let _ = answer.send(());
                    }
                }
                // Keep the stream's acks from piling up.
                if pending.len() >= 64 {
                    for ack in pending.drain(..) {
                        let _ = ack.await;
                    }
                }
            }
        });
        Events { tx }
    }

    pub(super) fn send(&self, back: &Back) {
        if let Ok(value) = serde_json::to_value(back) {
            let _ = self.tx.send(Out::Back(value));
        }
    }

    /// A reporter sink that sends each call as a [`Back::Report`], every secret in it
    /// hidden by `redactor` first.
    pub(super) fn sink(&self, redactor: wisp_secrets::Redactor) -> Sink {
        let tx = self.tx.clone();
        Sink(Arc::new(move |event| {
            let Ok(mut value) = serde_json::to_value(Back::Report { event }) else {
                return;
            };
            redactor.redact_json(&mut value);
            let _ = tx.send(Out::Back(value));
        }))
    }

    /// Waits until everything sent so far is stored in the stream, for at most `limit` (a
    /// server that is gone never answers).
    pub(super) async fn flush(&self, limit: std::time::Duration) {
        let (answer, stored) = tokio::sync::oneshot::channel();
        if self.tx.send(Out::Flush(answer)).is_ok() {
            let _ = tokio::time::timeout(limit, stored).await;
        }
    }
}
