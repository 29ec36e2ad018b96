//! The state store: one SQLite database in WAL mode holding every run, each host's result,
//! each task's result, an append-only event log, facts and audit rows. It is the source of
//! truth `wisp history` and `wisp show` read; the JSON-lines journal is an export of the same
//! lines.
//!
//! Where: `--state FILE`, else `$WISP_STATE`, else `$XDG_STATE_HOME/wisp/wisp.db`, else
//! `~/.local/state/wisp/wisp.db` (the folder 0700, the file 0600).
//!
//! What never enters it: file contents, template values, passwords and secret values, and a
//! run's command arguments. Rows are made from journal lines after the run's redactor has run
//! over them. Two tables keep what an agent asked, since that is what they audit: `calls` its
//! arguments (values named like secrets redacted), `approvals` the vars of a plan check and
//! the diffs it showed (redacted as a run's are).
//!
//! When it fails: a store that cannot be opened, migrated or written when a run starts stops
//! the run before any host is contacted (exit 6, the message names the file and the way out);
//! a write that fails mid-run is reported once on stderr and the run goes on, its results
//! still in the output and the journal file, because stopping then would leave hosts
//! half-done. Several wisp processes share one store: WAL lets readers and one writer work
//! at once, and a writer waits up to [`BUSY_TIMEOUT`] for another's short transaction.

pub mod approvals;
pub mod calls;
pub mod clock;
pub mod journal;
mod read;
pub mod record;
mod retry;
mod schema;
mod write;

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
    /// A store another user could change: theirs, writable by others, reached through a
    /// link, or in a directory others can write.
    #[error("state store {}: {why}", path.display())]
    Unsafe {
        /// The database file.
        path: PathBuf,
        /// What is wrong, and the fix.
        why: String,
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
        let unsafe_store = |why: String| StoreError::Unsafe {
            path: path.to_owned(),
            why,
        };
        check_private(path).map_err(unsafe_store)?;
        // Made 0600 before SQLite sees it; an existing file keeps its mode. Never through a
        // link: a link planted at the path would have root create or write another file.
        let nofollow = nix::fcntl::OFlag::O_NOFOLLOW.bits();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nofollow)
            .open(path)
            .or_else(|e| match e.kind() {
                // A read-only store still opens, to be refused below with SQLite's reason.
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(nofollow)
                        .open(path)
                }
                _ => Err(e),
            })
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    unsafe_store(LINKED.into())
                } else {
                    io(e)
                }
            })?;
        // The file as opened, not as it was looked at before.
        let meta = file.metadata().map_err(io)?;
        private_file(&meta).map_err(unsafe_store)?;
        let flags = rusqlite::OpenFlags::default() | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|source| StoreError::Sqlite {
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
        self.migrate()?;
        // Who made it: the first user to open it (a store from before this row, the user who
        // owns it, which open checked). A read-only store keeps what it has.
        let _ = c.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('creator_uid', ?1)",
            [nix::unistd::geteuid().as_raw()],
        );
        Ok(())
    }

    /// The uid of the user who made the store, when it says.
    pub fn creator_uid(&self) -> Option<u32> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'creator_uid'",
                [],
                |r| r.get::<_, String>(0),
            )
            .ok()
            .and_then(|v| v.parse().ok())
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

const LINKED: &str = "it is a symbolic link: wisp opens a store only at its real path (give \
                      that path with --state FILE)";

/// Refuses a store that someone other than this user (or root) could change: its directory
/// must be this user's or root's and writable by no one else (so no one can plant the file,
/// its `-wal` or `-shm` journal, or a link in their place), and each of those files that
/// exists must be a plain file of this user's that only this user can write.
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let euid = nix::unistd::geteuid().as_raw();
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_owned(),
        None => PathBuf::from("."),
    };
    let meta = std::fs::metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(format!(
            "its directory {} belongs to uid {}, not to you (uid {euid}): whoever owns it can \
             replace the store; keep the store in a directory of your own (--state FILE)",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "its directory {} is writable by other users (mode {:o}): they could plant the \
             store, its journal files or a link in their place; keep the store in a directory \
             only you can write (--state FILE)",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    for file in [
        path.to_owned(),
        dir.join(format!("{name}-wal")),
        dir.join(format!("{name}-shm")),
    ] {
        match std::fs::symlink_metadata(&file) {
            Ok(meta) => private_file(&meta).map_err(|why| {
                if file == path {
                    why
                } else {
                    format!("{}: {why}", file.display())
                }
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", file.display())),
        }
    }
    Ok(())
}

/// A store file this user owns and only this user can write.
fn private_file(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let euid = nix::unistd::geteuid().as_raw();
    if meta.file_type().is_symlink() {
        return Err(LINKED.into());
    }
    if !meta.file_type().is_file() {
        return Err("it is not a plain file".into());
    }
    if meta.uid() != euid {
        return Err(format!(
            "it belongs to uid {}, not to you (uid {euid}): its rows could have been written \
             by that user; use a store of your own (--state FILE)",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "it is writable by other users (mode {:o}): anyone who can write it can change \
             what `wisp retry` runs; make it yours alone (chmod 600 on it and its -wal and \
             -shm files)",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Whether `e` says another connection holds the lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests;
