//! What a worker sends back about one item, in order, on `wisp.events.<run>.<item>`: each
//! message published without waiting, the stream's acknowledgements collected, and a flush
//! that waits until everything before it is stored.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::Bus;
use super::item::{Back, Item};
use crate::report::forward::Sink;

/// What the publisher of one item's events is given.
enum Out {
    Body(Vec<u8>),
    /// Answer once everything before is stored in the stream.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// What goes back about one item, in order, on its events subject.
pub(super) struct Events {
    tx: mpsc::UnboundedSender<Out>,
}

impl Events {
    pub(super) fn new(bus: &Bus, item: &Item) -> Events {
        let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
        let subject = format!("wisp.events.{}.{}", item.run, item.id);
        let js = bus.js.clone();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            while let Some(out) = rx.recv().await {
                match out {
                    Out::Body(body) => match js.publish(subject.clone(), body.into()).await {
                        Ok(ack) => pending.push(ack),
                        Err(e) => super::worker::log(
                            "events",
                            &format!("cannot publish on {subject}: {e}"),
                        ),
                    },
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
        if let Ok(body) = serde_json::to_vec(back) {
            let _ = self.tx.send(Out::Body(body));
        }
    }

    /// A reporter sink that sends each call as a [`Back::Report`], every secret in it
    /// hidden by `redactor` first.
    pub(super) fn sink(&self, redactor: crate::secrets::Redactor) -> Sink {
        let tx = self.tx.clone();
        Sink(Arc::new(move |event| {
            let Ok(mut value) = serde_json::to_value(Back::Report { event }) else {
                return;
            };
            redactor.redact_json(&mut value);
            if let Ok(body) = serde_json::to_vec(&value) {
                let _ = tx.send(Out::Body(body));
            }
        }))
    }

    /// Waits until everything sent so far is stored in the stream.
    pub(super) async fn flush(&self) {
        let (answer, stored) = tokio::sync::oneshot::channel();
        if self.tx.send(Out::Flush(answer)).is_ok() {
            let _ = stored.await;
        }
    }
}
