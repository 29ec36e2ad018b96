//! Claims on items (see [`crate::bus`]): written and refreshed by the worker that runs an
//! item, each signed by it; a claim no trusted worker signed is no claim.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{FLUSH_LIMIT, Worker, turn_away};
use crate::auth::{Domain, WorkerKey, WorkerKeys};
use crate::events::Events;
use crate::item::{Back, Item, now_ms};
use crate::log;
use crate::{ClaimError, Claims};
use wisp_events::interrupt::Interrupt;

/// A claim on an item: who runs it, for which stream message, and when it last said so.
/// Signed by its worker; a claim no trusted worker signed is no claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Claim {
    /// The item, so a signed claim cannot be moved to another.
    pub(super) item: String,
    pub(super) worker: String,
    pub(super) seq: u64,
    pub(super) beat_ms: u64,
    pub(super) done: bool,
}

/// Writes `claim`, signed, over the claim at `expected`.
pub(super) async fn put_claim(
    claims: &Claims,
    key: &WorkerKey,
    claim: &Claim,
    expected: u64,
) -> Result<u64, ClaimError> {
    let body = serde_json::to_vec(claim).unwrap_or_default();
    let sig = key.sign(Domain::Claim, &body);
    claims.put(&claim.item, body, &sig, expected).await
}

/// The newest claim on `id` when a trusted worker signed it for that item; `Err` carries the
/// sequence of a claim no trusted worker signed (someone wrote over the claims), which is no
/// claim at all.
async fn trusted_claim(
    claims: &Claims,
    workers: &WorkerKeys,
    id: &str,
) -> Result<Option<(u64, Claim)>, Forged> {
    let Ok(Some(stored)) = claims.get(id).await else {
        return Ok(None);
    };
    let checked = workers
        .check(Domain::Claim, &stored.body, stored.signature.as_deref())
        .and_then(|_| serde_json::from_slice::<Claim>(&stored.body).map_err(|e| e.to_string()))
        .and_then(|c| {
            if c.item == id {
                Ok(c)
            } else {
                Err(format!("a claim on item {} moved to {id}", c.item))
            }
        });
    match checked {
        Ok(c) => Ok(Some((stored.seq, c))),
        Err(why) => Err(Forged {
            seq: stored.seq,
            why,
        }),
    }
}

/// A claim no trusted worker wrote.
struct Forged {
    seq: u64,
    why: String,
}

/// Claims the item for this worker: the claim's sequence, and the worker it was taken over
/// from. `None` when it is not this worker's to run (it answered the stream itself).
pub(super) async fn claim(
    claims: &Claims,
    worker: &Worker,
    item: &Item,
    mine: &Claim,
    events: &Events,
    msg: &jetstream::Message,
    refuse: &(dyn Fn(String) + Sync),
) -> Option<(u64, Option<String>)> {
    let nak = || msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1))));
    let mut expected = 0;
    for _ in 0..3 {
        match put_claim(claims, &worker.key, mine, expected).await {
            Ok(revision) => return Some((revision, None)),
            Err(ClaimError::Bus(e)) => {
                log(&worker.name, &format!("cannot claim item {}: {e}", item.id));
                let _ = nak().await;
                return None;
            }
            Err(ClaimError::Raced) => {}
        }
        let (held_seq, held) = match trusted_claim(claims, &worker.workers, &item.id).await {
            Ok(Some(held)) => held,
            // Gone again meanwhile: try afresh.
            Ok(None) => {
                expected = 0;
                continue;
            }
            Err(forged) => {
                log(
                    &worker.name,
                    &format!(
                        "item {}: a claim no trusted worker wrote ({}); writing over it",
                        item.id, forged.why
                    ),
                );
                expected = forged.seq;
                continue;
            }
        };
        if held.seq != mine.seq {
            let why = format!(
                "replayed: item {} already ran from stream message {} (claimed by {})",
                item.id, held.seq, held.worker
            );
            turn_away(worker, events, msg, refuse, why).await;
            return None;
        }
        if held.done {
            // Its result is stored; only the ack was lost.
            let _ = msg.double_ack().await;
            return None;
        }
        let stale = now_ms().saturating_sub(held.beat_ms)
            > u64::try_from((worker.ack_wait * 2).as_millis()).unwrap_or(u64::MAX);
        if !stale {
            // Its worker is alive: never run an item twice at once.
            let _ = msg.ack_with(AckKind::Nak(Some(worker.ack_wait))).await;
            return None;
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
            let _ = put_claim(claims, &worker.key, &lost, held_seq).await;
            events.send(&Back::Lost {
                worker: held.worker,
                by: worker.name.clone(),
            });
            events.flush(FLUSH_LIMIT).await;
            let _ = msg.ack_with(AckKind::Term).await;
            return None;
        }
        return match put_claim(claims, &worker.key, mine, held_seq).await {
            Ok(revision) => Some((revision, Some(held.worker))),
            // Another worker took it over first.
            Err(_) => None,
        };
    }
    let _ = nak().await;
    None
}

/// What the keep-alive of a running item needs.
pub(super) struct Beat {
    pub(super) key: Arc<WorkerKey>,
    pub(super) workers: WorkerKeys,
    pub(super) name: String,
    pub(super) every: Duration,
}

/// Tells the stream the item is alive and refreshes its claim, every `beat.every`, until
/// `stopped`; returns the claim's last sequence. A claim another trusted worker took over
/// moves `lost` (the item stops: we were thought dead); a claim nobody trusted wrote is
/// written over.
#[allow(clippy::too_many_arguments)] // one running item's keep-alive state
pub(super) async fn keep_alive(
    msg: Arc<jetstream::Message>,
    claims: Claims,
    beat: Beat,
    mut claim: Claim,
    mut revision: u64,
    mut stopped: watch::Receiver<bool>,
    lost: watch::Sender<Interrupt>,
) -> u64 {
    let id = claim.item.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep(beat.every) => {}
            _ = stopped.wait_for(|s| *s) => return revision,
        }
        let _ = msg.ack_with(AckKind::Progress).await;
        claim.beat_ms = now_ms();
        match put_claim(&claims, &beat.key, &claim, revision).await {
            Ok(r) => revision = r,
            Err(ClaimError::Bus(e)) => {
                // The bus is away: the claim goes stale only if this lasts.
                log(
                    &beat.name,
                    &format!("item {id}: cannot refresh its claim: {e}"),
                );
            }
            Err(ClaimError::Raced) => match trusted_claim(&claims, &beat.workers, &id).await {
                Err(forged) => {
                    log(
                        &beat.name,
                        &format!(
                            "item {id}: a claim no trusted worker wrote ({}); writing over it",
                            forged.why
                        ),
                    );
                    if let Ok(r) = put_claim(&claims, &beat.key, &claim, forged.seq).await {
                        revision = r;
                    }
                }
                Ok(_) => {
                    log(
                        &beat.name,
                        &format!("item {id}: its claim was taken over; stopping it"),
                    );
                    let _ = lost.send(Interrupt::Disconnect);
                    return revision;
                }
            },
        }
    }
}
