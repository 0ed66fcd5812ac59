//! The embedded metadata engine: one SQLite database in WAL mode, behind the
//! engine-neutral operations of `crate::sql` ([`SqliteStore`]).
//!
//! Concurrency: all writes go through one connection behind a mutex, each in a
//! `BEGIN IMMEDIATE` transaction, so writers in this process never meet SQLITE_BUSY and a
//! write closure runs exactly once; a small pool of read connections serves lookups
//! concurrently (WAL readers see the last commit). Other processes (fsck, status while
//! mounted) wait up to the busy timeout. Every trait method is one transaction.
//!
//! What is SQLite's own lives here: `schema.rs` (DDL and migrations), `tx.rs` (the
//! [`crate::sql::Tx`] over a rusqlite transaction), `backup.rs` (snapshots), `ship.rs` and
//! `ship_batch.rs` (log shipping: the WAL frames of every commit, for the durable tier).

mod backup;
pub mod schema;
pub mod ship;
pub mod ship_batch;
mod tx;

use crate::error::{MetaError, Result};
use crate::sql::{Engine, SqlStore, Tx};
use crate::types::LogFrames;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The metadata store on SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite engine: the database file and its connections.
pub struct Sqlite {
    path: PathBuf,
    /// Declared before `tap`: the connection (whose WAL hook points into `tap`) is
    /// dropped first.
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// The `-wal` file, kept open for `sync` (so an fsync needs no free descriptor), with
    /// its (device, inode): reopened if SQLite replaced the file.
    wal: Mutex<Option<(std::fs::File, (u64, u64))>>,
    /// Log shipping (off until `begin_log_shipping`).
    tap: Box<ship::Tap>,
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
        e => MetaError::from(e),
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

impl SqlStore<Sqlite> {
    /// Opens (and with `create`, creates) the database and migrates its schema.
    pub fn open(path: &Path, create: bool) -> Result<SqliteStore> {
        Sqlite::open(path, create).map(SqlStore::from_engine)
    }

    pub fn path(&self) -> &Path {
        &self.engine().path
    }
}

impl Sqlite {
    /// Opens (and with `create`, creates) the database and migrates its schema.
    pub fn open(path: &Path, create: bool) -> Result<Sqlite> {
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
        keep_private(path);
        let readers = (0..READERS)
            .map(|_| open_conn(path, false).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            wal: Mutex::new(None),
            tap: Box::default(),
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

    /// Runs `f` in one write transaction; commits on Ok, rolls back on Err.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        self.after_commit(&conn);
        Ok(out)
    }

    /// Runs `f` on a read connection inside one read transaction (a consistent snapshot).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
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

impl Engine for Sqlite {
    fn write(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()> {
        Sqlite::write(self, |tx| f(&tx::SqliteTx(tx)))
    }

    fn read(&self, f: &mut dyn FnMut(&dyn Tx) -> Result<()>) -> Result<()> {
        Sqlite::read(self, |tx| f(&tx::SqliteTx(tx)))
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn describe(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    fn sync(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        // Not under the writer's lock: a commit that completed before this call is in the
        // file's page cache and the flush takes it; one appended meanwhile may be flushed
        // in part, which SQLite's recovery ignores (its commit frame is missing or fails
        // the checksum). So commits go on while the device flushes.
        let wal = self.wal_path();
        let io = |source| MetaError::Io {
            path: wal.display().to_string(),
            source,
        };
        let id = match std::fs::metadata(&wal) {
            Ok(m) => (m.dev(), m.ino()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        let mut cached = self.wal.lock();
        if cached.as_ref().is_none_or(|(_, was)| *was != id) {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .open(&wal)
                .map_err(io)?;
            *cached = Some((f, id));
        }
        cached
            .as_ref()
            .expect("set above")
            .0
            .sync_data()
            .map_err(io)
    }

    fn release_memory(&self) {
        self.shrink_memory();
    }

    fn snapshot(&self, dest: &Path) -> Result<()> {
        backup::snapshot(self, dest)
    }

    fn begin_log_shipping(&self, dest: &Path) -> Result<Option<u32>> {
        Sqlite::begin_log_shipping(self, dest).map(Some)
    }

    fn take_log(&self) -> Result<Vec<LogFrames>> {
        Sqlite::take_log(self)
    }

    fn leave_checkpoints(&self) -> Result<()> {
        Sqlite::leave_checkpoints(self)
    }

    fn tables(&self, tx: &dyn Tx) -> Result<Vec<String>> {
        tx::tables(tx)
    }

    fn columns(&self, tx: &dyn Tx, table: &str) -> Result<(Vec<String>, Vec<String>)> {
        tx::columns(tx, table)
    }
}
