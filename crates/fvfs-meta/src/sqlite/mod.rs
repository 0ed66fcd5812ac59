//! The embedded metadata store: one SQLite database in WAL mode.
//!
//! Concurrency: all writes go through one connection behind a mutex, each in a
//! `BEGIN IMMEDIATE` transaction, so writers in this process never meet SQLITE_BUSY; a
//! small pool of read connections serves lookups concurrently (WAL readers see the last
//! commit). Other processes (fsck, status while mounted) wait up to the busy timeout.
//! Every trait method is one transaction. Checkpoints run on a thread of their own (every
//! 256 write transactions), so no writer waits for their fsyncs.
//!
//! Each sub-trait of [`crate::MetaStore`] is implemented in the file of its concern:
//! `namespace.rs`, `data.rs`, `tiers.rs`, `admin.rs` (with `backup.rs`), `check.rs`,
//! `holders.rs`, `hsm.rs`, `journal.rs`, `music.rs`; `schema.rs` holds the tables and migrations, `alloc.rs` the `st_blocks`
//! accounting shared by the data operations.

mod admin;
mod alloc;
mod backup;
mod check;
mod data;
mod holders;
mod hsm;
mod journal;
mod music;
mod music_cache;
mod namespace;
pub mod schema;
mod tiers;

use crate::error::{MetaError, Result};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const READERS: usize = 4;
/// Write transactions after which the checkpoint thread copies the WAL into the database
/// (SQLite's own default, 1000 pages, is a few hundred small transactions). Often enough
/// that the WAL restarts within its file's size: an append past its end would make every
/// `fdatasync` flush the file size too.
const CHECKPOINT_COMMITS: u64 = 256;
/// The writer's own checkpoint threshold, in pages: a safety limit for when the background
/// checkpoint does not run. Below it no commit pays a checkpoint (and its two fsyncs).
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16384;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// The `-wal` file, kept open for `sync` (so an fsync needs no free descriptor), with
    /// its (device, inode): reopened if SQLite replaced the file.
    wal: Mutex<Option<(std::fs::File, (u64, u64))>>,
    /// Wakes the checkpoint thread (started at the first wake; it ends with the store).
    checkpointer: Mutex<Option<std::sync::mpsc::SyncSender<()>>>,
    /// Write transactions since the checkpoint thread was last woken.
    commits: AtomicU64,
    /// Checkpoints the thread completed.
    checkpoints: Arc<AtomicU64>,
}

/// The checkpoint thread: one PASSIVE checkpoint per wake, until the store is dropped.
fn checkpoint_loop(path: &Path, wakes: &std::sync::mpsc::Receiver<()>, done: &AtomicU64) {
    let conn = match open_conn(path, false) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "the metadata checkpoint thread cannot open the database");
            return;
        }
    };
    while wakes.recv().is_ok() {
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => {
                done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "checkpointing the metadata WAL failed"),
        }
    }
}

fn open_conn(path: &Path, create: bool) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::CannotOpen => {
            MetaError::NotFormatted(path.display().to_string())
        }
        e => MetaError::Db(e),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a commit survives a crash of the process at once and power
    // loss after the next `sync` (which fsyncs the WAL) or checkpoint.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The database holds every name and attribute of the filesystem: its files (and SQLite's
/// `-wal`/`-shm`, which take the database's mode) are made owner-only, also those of a
/// filesystem created before this rule. Best effort: a failure is logged, not fatal.
fn keep_private(db: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        let Ok(m) = std::fs::metadata(&p) else {
            continue;
        };
        let mode = m.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o700)) {
                Ok(()) => {
                    tracing::info!(path = %p.display(), was = format!("{mode:o}"), "made the metadata file owner-only")
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "cannot make the metadata file owner-only")
                }
            }
        }
    }
}

impl SqliteStore {
    /// Opens (and with `create`, creates) the database and migrates its schema.
    pub fn open(path: &Path, create: bool) -> Result<SqliteStore> {
        if create {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| MetaError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
        } else if !path.exists() {
            return Err(MetaError::NotFormatted(path.display().to_string()));
        }
        let mut writer = open_conn(path, create)?;
        schema::migrate(&mut writer)?;
        writer.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
        keep_private(path);
        let readers = (0..READERS)
            .map(|_| open_conn(path, false).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            wal: Mutex::new(None),
            checkpointer: Mutex::new(None),
            commits: AtomicU64::new(0),
            checkpoints: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `-wal` file beside the database.
    fn wal_path(&self) -> PathBuf {
        PathBuf::from(format!("{}-wal", self.path.display()))
    }

    /// Frees the page caches of the connections not in use now (`sqlite3_db_release_memory`
    /// through `PRAGMA shrink_memory`); a busy connection keeps its cache.
    fn shrink_memory(&self) {
        let conns = std::iter::once(&self.writer).chain(self.readers.iter());
        for c in conns {
            if let Some(conn) = c.try_lock() {
                let _ = conn.execute_batch("PRAGMA shrink_memory");
            }
        }
    }

    /// Asks the checkpoint thread for a PASSIVE checkpoint on its own connection: the
    /// writers go on appending meanwhile and none waits for the checkpoint's fsyncs. A
    /// wake while one runs is remembered once.
    fn wake_checkpointer(&self) {
        let mut tx = self.checkpointer.lock();
        if tx.is_none() {
            let (send, recv) = std::sync::mpsc::sync_channel::<()>(1);
            let (path, done) = (self.path.clone(), self.checkpoints.clone());
            let spawned = std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || checkpoint_loop(&path, &recv, &done));
            match spawned {
                Ok(_) => *tx = Some(send),
                Err(e) => {
                    // The writer's own checkpoints (WRITER_AUTOCHECKPOINT_PAGES) remain.
                    tracing::warn!(error = %e, "cannot start the metadata checkpoint thread");
                    return;
                }
            }
        }
        if let Some(tx) = tx.as_ref() {
            let _ = tx.try_send(());
        }
    }

    /// Checkpoints completed by the checkpoint thread.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints.load(Ordering::Relaxed)
    }

    /// Runs `f` in one write transaction; commits on Ok, rolls back on Err.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        drop(conn);
        if self.commits.fetch_add(1, Ordering::Relaxed) + 1 >= CHECKPOINT_COMMITS {
            self.commits.store(0, Ordering::Relaxed);
            self.wake_checkpointer();
        }
        Ok(out)
    }

    /// Runs `f` on a read connection inside one read transaction (a consistent snapshot).
    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let mut guard = None;
        for i in 0..self.readers.len() {
            if let Some(g) = self.readers[(start + i) % self.readers.len()].try_lock() {
                guard = Some(g);
                break;
            }
        }
        let mut conn = match guard {
            Some(g) => g,
            None => self.readers[start % self.readers.len()].lock(),
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

#[cfg(test)]
mod holder_tests;
#[cfg(test)]
mod music_tests;
#[cfg(test)]
pub(crate) mod tests;
