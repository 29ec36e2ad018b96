//! The items a worker ran, on its own disk: one line per item (`id seq expires_ms`), kept
//! until the item expires. A copy of an item put on the stream again (another stream
//! message, same id) is a replay, refused whatever the claims stream says, since a bus client
//! may be able to erase claims but not this file. The stream delivering the same message
//! again (the same sequence, after a worker died) is not a replay.
//!
//! Workers sharing a state directory share the file: each appends under an exclusive lock
//! and reads what the others appended since it last looked, so it costs one short read per
//! item, not a read of the whole file.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::fcntl::{Flock, FlockArg};

use super::BusError;

/// The items run, by id: the stream sequence each ran from and when it expires.
#[derive(Debug)]
pub(super) struct Ledger {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// How far the file has been read.
    offset: u64,
    ran: HashMap<String, (u64, u64)>,
}

/// What the ledger says of an item.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Entry {
    /// Not run here before: now recorded.
    New,
    /// Run here from this same stream message: a redelivery.
    Again,
    /// Run here from another stream message (its sequence): a replay.
    Replayed(u64),
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
}

impl Ledger {
    /// Opens (or makes, 0600, in a 0700 directory) the ledger at `path`, dropping the items
    /// that have expired.
    pub(super) fn open(path: &Path, now_ms: u64) -> Result<Ledger, BusError> {
        let bad = |e: std::io::Error| BusError::Key {
            path: path.to_owned(),
            why: format!("the worker's ledger of items it ran: {e}"),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(bad)?;
        }
        let file = open(path).map_err(bad)?;
        let mut file =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| bad(e.into()))?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(bad)?;
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| parse(l).is_some_and(|(_, _, expires)| expires >= now_ms))
            .collect();
        // Rewritten in place under the lock: the expired lines go.
        if kept.len() < text.lines().count() {
            let mut body = kept.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            file.set_len(0).map_err(bad)?;
            file.write_all(body.as_bytes()).map_err(bad)?;
            file.sync_data().map_err(bad)?;
            text = body;
        }
        let ran = text
            .lines()
            .filter_map(parse)
            .map(|(id, seq, exp)| (id, (seq, exp)))
            .collect();
        Ok(Ledger {
            path: path.to_owned(),
            state: Mutex::new(State {
                offset: text.len() as u64,
                ran,
            }),
        })
    }

    /// Where it is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Records that item `id` runs from stream message `seq`, unless it ran before.
    pub(super) fn record(&self, id: &str, seq: u64, expires_ms: u64) -> Result<Entry, String> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| "ledger state poisoned".to_owned())?;
        let file = open(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut file = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("{}: {e}", self.path.display()))?;
        // What other workers of this directory appended since (all of it again when one of
        // them, starting, dropped the expired lines and the file shrank).
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        if len < state.offset {
            state.offset = 0;
        }
        file.seek(SeekFrom::Start(state.offset))
            .map_err(|e| e.to_string())?;
        let mut news = String::new();
        file.read_to_string(&mut news).map_err(|e| e.to_string())?;
        state.offset += news.len() as u64;
        for (other, s, e) in news.lines().filter_map(parse) {
            state.ran.insert(other, (s, e));
        }
        match state.ran.get(id) {
            Some((s, _)) if *s == seq => return Ok(Entry::Again),
            Some((s, _)) => return Ok(Entry::Replayed(*s)),
            None => {}
        }
        // Written, not synced: it outlives the worker's process (a crash, a kill), not the
        // machine's power, and an item's expiry (minutes) bounds what a lost line allows. An
        // fsync per item cost a fleet run a tenth of its time.
        let line = format!("{id} {seq} {expires_ms}\n");
        file.write_all(line.as_bytes())
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        state.offset += line.len() as u64;
        state.ran.insert(id.to_owned(), (seq, expires_ms));
        Ok(Entry::New)
    }
}

/// One line: id, stream sequence, expiry.
fn parse(line: &str) -> Option<(String, u64, u64)> {
    let mut words = line.split(' ');
    let id = words.next()?;
    let seq = words.next()?.parse().ok()?;
    let expires = words.next()?.parse().ok()?;
    (!id.is_empty()).then(|| (id.to_owned(), seq, expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_is_known_across_workers_and_restarts_until_it_expires() {
        let dir =
            std::env::temp_dir().join(format!("wisp-ledger-{}", super::super::item::random_id()));
        let path = dir.join("ran");
        let a = Ledger::open(&path, 1000).unwrap();
        let b = Ledger::open(&path, 1000).unwrap();
        assert_eq!(a.record("item1", 7, 5000), Ok(Entry::New));
        // The same message again (a redelivery), on this worker or another.
        assert_eq!(a.record("item1", 7, 5000), Ok(Entry::Again));
        assert_eq!(b.record("item1", 7, 5000), Ok(Entry::Again));
        // Another message with the same id: a replay, seen by the other worker too.
        assert_eq!(b.record("item1", 9, 5000), Ok(Entry::Replayed(7)));
        assert_eq!(b.record("item2", 3, 2000), Ok(Entry::New));
        // After a restart, while it has not expired.
        let c = Ledger::open(&path, 3000).unwrap();
        assert_eq!(c.record("item1", 9, 5000), Ok(Entry::Replayed(7)));
        // item2 expired at 2000 and is gone from the file.
        assert!(!std::fs::read_to_string(&path).unwrap().contains("item2"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
