//! What the controller hears about one item: events admitted only from the worker whose
//! signed claim it heard, in order, about the item's own host; then replayed on the run's
//! reporter or journalled.

use super::Inbound;
use crate::item::Back;
use wisp_events::{Emit, Event, HostOutcome, HostResult};
use wisp_store::record::{WorkerEvent, WorkerLine};

/// What has been heard about one item: which worker's key claimed it, how far its events
/// have got, and how many messages were refused.
pub(super) struct Heard<'a> {
    host: &'a str,
    item: &'a str,
    /// The key whose signed claim was heard, and the sequence of its last event heard.
    pub(super) claimant: Option<(String, u64)>,
    refused: usize,
}

impl<'a> Heard<'a> {
    pub(super) fn new(host: &'a str, item: &'a str) -> Self {
        Heard {
            host,
            item,
            claimant: None,
            refused: 0,
        }
    }

    /// The event to act on, or why it is refused. A claim binds the item to the key that
    /// signed it (a takeover, to the new one); the rest must come from that key, in order,
    /// and be about this host. A refusal or a loss may come from any trusted worker (a
    /// worker that did not claim it is the one that says so).
    pub(super) fn admit(&mut self, inbound: Inbound) -> Result<Back, String> {
        let (key, worker, seq, back) = match inbound {
            Inbound::Refused(why) => return Err(why),
            Inbound::Signed {
                key,
                worker,
                seq,
                back,
            } => (key, worker, seq, back),
        };
        let bind = match (&back, &self.claimant) {
            (
                Back::Claimed {
                    took_over: None, ..
                },
                None,
            ) => true,
            // A takeover of a stale claim (by another worker, or by a restarted one).
            (
                Back::Claimed {
                    took_over: Some(_), ..
                },
                _,
            ) => true,
            (Back::Claimed { .. }, Some(_)) => {
                return Err(format!("a second claim, by worker {worker} (key {key})"));
            }
            // Said by the worker that turned the item away or found it lost, which need not
            // be the one that claimed it.
            (Back::Refused { .. } | Back::Lost { .. }, _) => false,
            (_, Some((held, last))) if *held == key => {
                if seq <= *last {
                    return Err(format!(
                        "event {seq} of worker {worker} again (a replay, or out of order)"
                    ));
                }
                true
            }
            (_, Some((held, _))) => {
                return Err(format!(
                    "from worker {worker} (key {key}), not from the claimant (key {held})"
                ));
            }
            (_, None) => return Err(format!("from worker {worker} before any claim")),
        };
        if let Back::Report { event } = &back {
            about_this_host(event, self.host)?;
        }
        if let Back::Finished { result, .. } = &back
            && result.host != self.host
        {
            return Err(format!("a result for host {}", result.host));
        }
        if bind {
            self.claimant = Some((key, seq));
        }
        Ok(back)
    }

    /// A refused message: journalled, and said on the terminal the first time for a host.
    pub(super) fn refused(&mut self, reporter: &dyn Emit, why: &str) {
        self.refused += 1;
        reporter.emit(worker_event(
            self.host,
            self.item,
            WorkerEvent::RefusedEvent {
                why: why.to_owned(),
            },
        ));
        if self.refused == 1 {
            reporter.emit(Event::Warning {
                message: format!(
                    "{}: refused an event on the bus ({why}); only the worker that claimed the \
                     item is heard, about its own host",
                    self.host
                ),
            });
        }
    }
}

/// Refuses a worker's event that is not a job's event about `host`: a row for another host,
/// or an event only the controller makes (a run's start or end, an audit line, a host's end),
/// never reaches the store.
fn about_this_host(event: &Event, host: &str) -> Result<(), String> {
    if !event.is_job_event() {
        return Err(format!(
            "a {} event, which only the controller makes",
            event.name()
        ));
    }
    if event.host() != Some(host) {
        return Err(format!("an event about host {:?}", event.host()));
    }
    Ok(())
}

/// A worker's part in `host`'s item `item`, as an event.
fn worker_event(host: &str, item: &str, event: WorkerEvent) -> Event {
    Event::Worker(WorkerLine {
        host: host.to_owned(),
        item: item.to_owned(),
        event,
    })
}

/// Acts on one admitted event: replayed on the reporter or journalled; the host's result
/// when it ends the item.
pub(super) fn replay(back: Back, name: &str, id: &str, reporter: &dyn Emit) -> Option<HostResult> {
    match back {
        Back::Claimed {
            worker,
            at_ms,
            took_over,
        } => {
            reporter.emit(worker_event(
                name,
                id,
                WorkerEvent::Claimed {
                    worker,
                    at_ms,
                    took_over,
                },
            ));
            None
        }
        Back::Report { event } => {
            reporter.emit(event);
            None
        }
        Back::Finished {
            worker,
            at_ms,
            result,
        } => {
            let outcome = result.outcome.label().to_owned();
            reporter.emit(worker_event(
                name,
                id,
                WorkerEvent::Finished {
                    worker,
                    at_ms,
                    outcome,
                },
            ));
            Some(result.into())
        }
        Back::Lost { worker, by } => {
            reporter.emit(worker_event(
                name,
                id,
                WorkerEvent::Lost {
                    worker: worker.clone(),
                    by,
                },
            ));
            let message = format!(
                "lost with worker {worker}: the command may have run, in part or whole; an \
                 exec item is not run again (--redeliver-exec allows it)"
            );
            reporter.emit(Event::unreachable(name, &message));
            Some(HostResult::new(
                name,
                HostOutcome::Unreachable,
                &format!("lost with worker {worker}"),
            ))
        }
        Back::Refused { worker, reason } => {
            let message = format!("worker {worker} refused the item: {reason}");
            reporter.emit(Event::unreachable(name, &message));
            Some(HostResult::new(
                name,
                HostOutcome::Failed,
                "refused by its worker",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Inbound;
    use super::*;

    fn signed(key: &str, seq: u64, back: Back) -> Inbound {
        Inbound::Signed {
            key: key.into(),
            worker: format!("worker {key}"),
            seq,
            back,
        }
    }

    fn claimed(took_over: Option<&str>) -> Back {
        Back::Claimed {
            worker: "w".into(),
            at_ms: 0,
            took_over: took_over.map(str::to_owned),
        }
    }

    fn line(host: &str) -> Back {
        Back::Report {
            event: Event::output(host, wisp_protocol::message::EventKind::Stdout, "hi"),
        }
    }

    #[test]
    fn only_the_claimant_is_heard_in_order_about_its_own_host() {
        let mut h = Heard::new("web01", "item1");
        // Nothing before a claim; a refusal from anyone.
        assert!(h.admit(signed("A", 1, line("web01"))).is_err());
        assert!(h.admit(Inbound::Refused("unsigned".into())).is_err());
        assert!(h.admit(signed("A", 1, claimed(None))).is_ok());
        assert!(h.admit(signed("A", 2, line("web01"))).is_ok());
        // The same event again, and one out of order.
        assert!(h.admit(signed("A", 2, line("web01"))).is_err());
        assert!(h.admit(signed("A", 1, line("web01"))).is_err());
        // Another trusted worker, and another host.
        assert!(h.admit(signed("B", 9, line("web01"))).is_err());
        assert!(h.admit(signed("B", 9, claimed(None))).is_err());
        assert!(h.admit(signed("A", 3, line("web02"))).is_err());
        // Only a job's events, about this host: not the run's own, not another host's.
        let report = |event: Event| Back::Report { event };
        let audit = Event::Audit {
            act: "runner".into(),
            detail: "x".into(),
        };
        let end = Event::host_ended(&HostResult::new("web01", HostOutcome::Ok, ""), false);
        let later = |host: &str| -> Event {
            serde_json::from_str(&format!(r#"{{"event":"later","host":"{host}"}}"#)).unwrap()
        };
        assert!(h.admit(signed("A", 4, report(audit))).is_err());
        assert!(h.admit(signed("A", 5, report(end))).is_err());
        assert!(h.admit(signed("A", 6, report(later("web02")))).is_err());
        assert!(h.admit(signed("A", 7, report(later("web01")))).is_ok());
        let finished = |host: &str| Back::Finished {
            worker: "w".into(),
            at_ms: 0,
            result: (&HostResult::new(host, HostOutcome::Ok, "exit 0")).into(),
        };
        assert!(h.admit(signed("A", 8, finished("web02"))).is_err());
        // A takeover moves the item to the new worker; the old one is no longer heard.
        assert!(h.admit(signed("B", 1, claimed(Some("A")))).is_ok());
        assert!(h.admit(signed("A", 9, line("web01"))).is_err());
        assert!(h.admit(signed("B", 2, finished("web01"))).is_ok());
    }
}
