//! Cancels on `wisp.cancel.<run>`: a worker moves the interrupt of every item of the run a
//! cancel names, when the cancel is signed by a key it trusts and has not expired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::watch;

use super::Worker;
use crate::item::{Cancel, SIGNATURE_HEADER, now_ms};
use crate::{Bus, log};
use wisp_events::interrupt::Interrupt;

/// The interrupt of each run this worker has items of, and the runs already cancelled.
#[derive(Debug, Default)]
pub(super) struct Runs {
    by_run: Mutex<HashMap<String, watch::Sender<Interrupt>>>,
}

impl Runs {
    /// The interrupt channel for `run` (made when first asked for).
    pub(super) fn watch(&self, run: &str) -> watch::Receiver<Interrupt> {
        let Ok(mut runs) = self.by_run.lock() else {
            return watch::channel(Interrupt::None).1;
        };
        runs.entry(run.to_owned())
            .or_insert_with(|| watch::channel(Interrupt::None).0)
            .subscribe()
    }

    fn interrupt(&self, run: &str, level: Interrupt) {
        if let Ok(mut runs) = self.by_run.lock() {
            let tx = runs
                .entry(run.to_owned())
                .or_insert_with(|| watch::channel(Interrupt::None).0);
            tx.send_if_modified(|i| {
                let raise = level > *i;
                if raise {
                    *i = level;
                }
                raise
            });
        }
    }
}

/// Cancels signed by a trusted key move the interrupt of the run they name.
pub(super) async fn listen_for_cancels(bus: Bus, worker: Arc<Worker>, runs: Arc<Runs>) {
    let Ok(mut sub) = bus.client.subscribe("wisp.cancel.>").await else {
        log(&worker.name, "cannot listen for cancels");
        return;
    };
    while let Some(msg) = sub.next().await {
        let sig = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(SIGNATURE_HEADER))
            .map(|v| v.as_str().to_owned());
        let checked = worker
            .verifier
            .check(&msg.payload, sig.as_deref())
            .and_then(|()| {
                serde_json::from_slice::<Cancel>(&msg.payload).map_err(|e| e.to_string())
            })
            .and_then(|c| {
                if now_ms() > c.expires_ms {
                    Err("an expired cancel".into())
                } else {
                    Ok(c)
                }
            });
        match checked {
            Ok(cancel) => {
                let level = if cancel.level == "disconnect" {
                    Interrupt::Disconnect
                } else {
                    Interrupt::Cancel
                };
                log(
                    &worker.name,
                    &format!("run {}: {}", cancel.run, cancel.level),
                );
                runs.interrupt(&cancel.run, level);
            }
            Err(why) => log(
                &worker.name,
                &format!("refused a cancel on {}: {why}", msg.subject),
            ),
        }
    }
}
