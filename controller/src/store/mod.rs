//! The state store: one SQLite database in WAL mode holding every run, each host's result,
//! each task's result, an append-only event log, facts and audit rows. It is the source of
//! truth `wisp history` and `wisp show` read; the JSON-lines journal is an export of the same
//! lines.
//!
//! Where: `--state FILE`, else `$WISP_STATE`, else `$XDG_STATE_HOME/wisp/wisp.db`, else
//! `~/.local/state/wisp/wisp.db` (the folder 0700, the file 0600).
//!
//! What never enters it: file contents, template values, command arguments, passwords and
//! secret values. Rows are made from journal lines after the run's redactor has run over them.
//!
//! When it fails: a store that cannot be opened, migrated or written when a run starts stops
//! the run before any host is contacted (exit 6, the message names the file and the way out);
//! a write that fails mid-run is reported once on stderr and the run goes on, its results
//! still in the output and the journal file, because stopping then would leave hosts
//! half-done. Several wisp processes share one store: WAL lets readers and one writer work
//! at once, and a writer waits up to [`BUSY_TIMEOUT`] for another's short transaction.

mod read;
mod record;
mod retry;
mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

pub use read::{HostDrift, HostRow, RunRow, TaskRow};
pub use retry::{RETRIED_OUTCOMES, RetrySource, TaskStep};

/// How long a writer waits for another process's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder or file could not be made or opened.
    #[error(
        "cannot open the state store {} (make it writable, or use --state FILE or --no-state)",
        path.display()
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite refused: read-only, locked, full, damaged or not a database.
    #[error("state store {}: {what}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What wisp was doing, with the way out when there is one.
        what: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A store written by a newer wisp.
    #[error(
        "state store {}: schema version {found} is newer than this wisp's {known}; use a newer \
         wisp, or --state FILE for another store",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The newest this wisp knows.
        known: u32,
    },
    /// `wisp show RUN` of a run the store does not have.
    #[error("state store {}: no run {run}", path.display())]
    NoRun {
        /// The database file.
        path: PathBuf,
        /// What was asked for.
        run: String,
    },
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// wisp's folder in the XDG state directory: `$XDG_STATE_HOME/wisp`, else
/// `~/.local/state/wisp`; `None` without either.
pub fn state_dir() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| Path::new(d).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".local/state"))
        })?;
    Some(state.join("wisp"))
}

/// Where the store is when no `--state` is given: `$WISP_STATE`, else [`state_dir`].
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WISP_STATE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    Some(state_dir()?.join("wisp.db"))
}

impl Store {
    /// Opens (creating when needed) and migrates the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let io = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        // Made 0600 before SQLite sees it; an existing file keeps its mode.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .or_else(|e| match e.kind() {
                // A read-only store still opens, to be refused below with SQLite's reason.
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    std::fs::File::open(path)
                }
                _ => Err(e),
            })
            .map_err(io)?;
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: path.to_owned(),
            what: "cannot open it".into(),
            source,
        })?;
        let store = Store {
            conn,
            path: path.to_owned(),
        };
        store.prepare()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, what: &str, source: rusqlite::Error) -> StoreError {
        let advice = match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                "; it is damaged or not a wisp store: move it aside (a new one is made), or use \
                 --state FILE or --no-state"
            }
            Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) => {
                "; it is read-only here: fix its permissions, or use --state FILE or --no-state"
            }
            Some(rusqlite::ErrorCode::DiskFull) => {
                "; the disk is full: free space, or use --state FILE or --no-state"
            }
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                "; another process held it too long"
            }
            _ => "",
        };
        StoreError::Sqlite {
            path: self.path.clone(),
            what: format!("{what}{advice}"),
            source,
        }
    }

    /// WAL, the busy timeout, and the schema brought up to date.
    fn prepare(&self) -> Result<(), StoreError> {
        let c = &self.conn;
        c.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.fail("cannot set its busy timeout", e))?;
        // SQLite may answer BUSY without calling the busy handler when waiting could deadlock
        // (several processes opening one store at once, one of them making or closing it), so
        // this step waits out a busy store itself, for as long as the busy timeout.
        let started = std::time::Instant::now();
        let mode: String = loop {
            match c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other.map_err(|e| self.fail("cannot switch it to WAL mode", e))?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(self.fail(
                "cannot switch it to WAL mode",
                rusqlite::Error::InvalidQuery,
            ));
        }
        // WAL with NORMAL sync: a commit is durable across a wisp crash, and across power loss
        // up to the last checkpoint.
        c.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.fail("cannot set synchronous mode", e))?;
        // No checkpoint when a run's connection closes: the WAL is folded into the database
        // by SQLite's automatic checkpoints (every 1000 pages), so a short run pays no fsync
        // for it. A run killed at any point still leaves a readable store.
        c.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(|e| self.fail("cannot configure it", e))?;
        self.migrate()
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let known = u32::try_from(schema::MIGRATIONS.len()).unwrap_or(u32::MAX);
        let version = |c: &Connection| -> rusqlite::Result<u32> {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
        };
        let found = version(&self.conn).map_err(|e| self.fail("cannot read its version", e))?;
        if found > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                known,
            });
        }
        if found == known {
            return Ok(());
        }
        // IMMEDIATE: two processes starting on a new store migrate one after the other.
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(|e| self.fail("cannot start its migration", e))?;
        let now = version(&tx).map_err(|e| self.fail("cannot read its version", e))?;
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(now as usize) {
            tx.execute_batch(sql)
                .and_then(|()| tx.pragma_update(None, "user_version", i + 1))
                .map_err(|e| self.fail(&format!("cannot migrate it to version {}", i + 1), e))?;
        }
        tx.commit()
            .map_err(|e| self.fail("cannot commit its migration", e))
    }
}

/// Whether `e` says another connection holds the lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_processes_opening_a_new_store_at_once_all_get_it() {
        // Connections from threads lock the file as processes' do. Bounded: 20 rounds of 8.
        let dir = std::env::temp_dir().join(format!("wisp-store-race-{}", std::process::id()));
        for round in 0..20 {
            let path = dir.join(format!("{round}/wisp.db"));
            let gate = std::sync::Arc::new(std::sync::Barrier::new(8));
            let openers: Vec<_> = (0..8)
                .map(|_| {
                    let (path, gate) = (path.clone(), std::sync::Arc::clone(&gate));
                    std::thread::spawn(move || {
                        gate.wait();
                        Store::open(&path).map(drop).map_err(|e| e.to_string())
                    })
                })
                .collect();
            for o in openers {
                o.join().unwrap().unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_new_store_is_wal_and_at_the_newest_version() {
        let dir = std::env::temp_dir().join(format!("wisp-store-{}", std::process::id()));
        let path = dir.join("sub/wisp.db");
        let store = Store::open(&path).unwrap();
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let v: usize = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema::MIGRATIONS.len());
        drop(store);
        // Opening again changes nothing.
        Store::open(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_event_log_is_append_only() {
        let dir = std::env::temp_dir().join(format!("wisp-store-log-{}", std::process::id()));
        let store = Store::open(&dir.join("wisp.db")).unwrap();
        store
            .conn
            .execute(
                "INSERT INTO events (run_id, at, kind, body) VALUES (1, 'now', 'run', '{}')",
                [],
            )
            .unwrap();
        let e = store.conn.execute("DELETE FROM events", []).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn facts_are_cached_per_host_key_within_their_age() {
        let dir = std::env::temp_dir().join(format!("wisp-store-facts-{}", std::process::id()));
        let mut store = Store::open(&dir.join("wisp.db")).unwrap();
        let run = store
            .begin_run(&serde_json::json!({"kind": "run", "command": "facts"}))
            .unwrap();
        let line = serde_json::json!({
            "kind": "facts", "host": "web1", "host_key": "ssh ssh-ed25519 SHA256:old",
            "facts": {"os_id": "debian"},
        });
        store.record(run, &line).unwrap();
        let hour = Duration::from_secs(3600);
        let cached = store
            .cached_facts("ssh ssh-ed25519 SHA256:old", hour)
            .unwrap();
        assert_eq!(cached.as_deref(), Some(r#"{"os_id":"debian"}"#));
        // The same name with a new key (a reinstalled host) has no facts yet.
        assert_eq!(
            store
                .cached_facts("ssh ssh-ed25519 SHA256:new", hour)
                .unwrap(),
            None
        );
        // Too old: read again.
        assert_eq!(
            store
                .cached_facts("ssh ssh-ed25519 SHA256:old", Duration::ZERO)
                .unwrap(),
            None
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
