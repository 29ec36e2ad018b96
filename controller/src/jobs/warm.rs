//! Warm sessions: runners kept open between calls (`wisp mcp`), so that the next command on
//! the same host skips SSH set-up, the handshake and the push.
//!
//! Bounded three ways: at most `max` sessions are kept, one per host; a session idle for
//! `idle` is closed; and a session is never reused past half its runner's TTL (the runner's
//! watchdog ends it at the TTL, whatever it is doing), so a command taken from here has at
//! least half the TTL to run. A session whose connection went away meanwhile is dropped
//! when it is next looked at. Closing a session is the runner's clean EXIT: it removes itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::session::Session;

/// How long a runner gets to say goodbye when a warm session is closed.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Sessions parked between calls, by host.
#[derive(Debug)]
pub struct Warm {
    max: usize,
    idle: Duration,
    /// Half the runners' TTL: the oldest a session may be and still be taken.
    reuse_within: Duration,
    parked: Mutex<HashMap<String, Parked>>,
}

#[derive(Debug)]
struct Parked {
    session: Session,
    opened: Instant,
    since: Instant,
}

impl Warm {
    /// At most `max` sessions, each closed after `idle` unused, none reused past half `ttl`.
    pub fn new(max: usize, idle: Duration, ttl: Duration) -> Warm {
        Warm {
            max,
            idle,
            reuse_within: ttl / 2,
            parked: Mutex::new(HashMap::new()),
        }
    }

    /// The session parked for `key` (a host and how it is reached), when it is still fit to
    /// use, with when it was opened.
    pub fn take(&self, key: &str) -> Option<(Session, Instant)> {
        let p = self.parked.lock().ok()?.remove(key)?;
        if p.session.is_alive() && p.opened.elapsed() < self.reuse_within {
            return Some((p.session, p.opened));
        }
        // Unfit: its runner is gone or about to go; dropping it closes what is left.
        None
    }

    /// Parks `session` for `key`; closes it instead when there is no room or it is too old.
    pub async fn put(&self, key: String, session: Session, opened: Instant) {
        let refused = {
            let Ok(mut parked) = self.parked.lock() else {
                return;
            };
            let fits = (parked.len() < self.max || parked.contains_key(&key))
                && opened.elapsed() < self.reuse_within;
            if fits {
                parked
                    .insert(
                        key,
                        Parked {
                            session,
                            opened,
                            since: Instant::now(),
                        },
                    )
                    .map(|old| old.session)
            } else {
                Some(session)
            }
        };
        if let Some(s) = refused {
            s.close(CLOSE_GRACE).await;
        }
    }

    /// Closes the sessions idle too long or too old to reuse; returns how many are kept.
    pub async fn sweep(&self) -> usize {
        let (stale, kept) = {
            let Ok(mut parked) = self.parked.lock() else {
                return 0;
            };
            let keys: Vec<String> = parked
                .iter()
                .filter(|(_, p)| {
                    p.since.elapsed() >= self.idle
                        || p.opened.elapsed() >= self.reuse_within
                        || !p.session.is_alive()
                })
                .map(|(k, _)| k.clone())
                .collect();
            let stale: Vec<Session> = keys
                .iter()
                .filter_map(|k| parked.remove(k))
                .map(|p| p.session)
                .collect();
            (stale, parked.len())
        };
        close_all(stale).await;
        kept
    }

    /// Closes every parked session.
    pub async fn close(&self) {
        let all: Vec<Session> = match self.parked.lock() {
            Ok(mut parked) => parked.drain().map(|(_, p)| p.session).collect(),
            Err(_) => return,
        };
        close_all(all).await;
    }

    /// How many sessions are parked.
    pub fn len(&self) -> usize {
        self.parked.lock().map_or(0, |p| p.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How often [`Warm::sweep`] should run: often enough to close idle sessions close to
    /// their time.
    pub fn sweep_every(&self) -> Duration {
        (self.idle / 4).clamp(Duration::from_millis(200), Duration::from_secs(30))
    }
}

/// Closes `sessions`, all at once.
async fn close_all(sessions: Vec<Session>) {
    let mut closing = tokio::task::JoinSet::new();
    for s in sessions {
        closing.spawn(s.close(CLOSE_GRACE));
    }
    while closing.join_next().await.is_some() {}
}
