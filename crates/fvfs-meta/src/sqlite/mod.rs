//! The embedded metadata store: one SQLite database in WAL mode.
//!
//! Concurrency: all writes go through one connection behind a mutex, each in a
//! `BEGIN IMMEDIATE` transaction, so writers in this process never meet SQLITE_BUSY; a
//! small pool of read connections serves lookups concurrently (WAL readers see the last
//! commit). Other processes (fsck, status while mounted) wait up to the busy timeout.
//! Every trait method is one transaction.

mod admin;
mod alloc;
mod backup;
mod data;
mod namespace;
pub mod schema;
mod tiers;

use crate::error::{MetaError, Result};
use crate::store::MetaStore;
use crate::types::*;
use fvfs_types::{BlockId, Ino, Settings};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
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
        keep_private(path);
        let readers = (0..READERS)
            .map(|_| open_conn(path, false).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one write transaction; commits on Ok, rolls back on Err.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
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

impl MetaStore for SqliteStore {
    fn format(&self, settings: &Settings, uid: u32, gid: u32, now: i64) -> Result<()> {
        let path = self.path.display().to_string();
        self.write(|tx| admin::format(tx, &path, settings, uid, gid, now))
    }
    fn settings(&self) -> Result<Settings> {
        let path = self.path.display().to_string();
        self.read(|tx| admin::settings(tx, &path))
    }
    fn describe(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
    fn sync(&self) -> Result<()> {
        // Hold the writer so no commit is half-appended while the WAL is flushed.
        let _writer = self.writer.lock();
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        match std::fs::OpenOptions::new().read(true).open(&wal) {
            Ok(f) => f.sync_data().map_err(|source| MetaError::Io {
                path: wal.display().to_string(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(MetaError::Io {
                path: wal.display().to_string(),
                source,
            }),
        }
    }

    fn snapshot(&self, dest: &Path) -> Result<()> {
        backup::snapshot(self, dest)
    }

    fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.read(|tx| namespace::getattr(tx, ino))
    }
    fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr> {
        self.read(|tx| namespace::lookup(tx, parent, name))
    }
    fn create(&self, parent: Ino, name: &[u8], new: &NewInode<'_>) -> Result<Attr> {
        self.write(|tx| namespace::create(tx, parent, name, new))
    }
    fn link(&self, ino: Ino, newparent: Ino, newname: &[u8], now: i64) -> Result<Attr> {
        self.write(|tx| namespace::link(tx, ino, newparent, newname, now))
    }
    fn unlink(&self, parent: Ino, name: &[u8], now: i64) -> Result<Unlinked> {
        self.write(|tx| namespace::unlink(tx, parent, name, now))
    }
    fn rmdir(&self, parent: Ino, name: &[u8], now: i64) -> Result<Ino> {
        self.write(|tx| namespace::rmdir(tx, parent, name, now))
    }
    fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: RenameFlags,
        now: i64,
    ) -> Result<Option<Unlinked>> {
        self.write(|tx| namespace::rename(tx, parent, name, newparent, newname, flags, now))
    }
    fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        self.read(|tx| namespace::readlink(tx, ino))
    }
    fn readdir(&self, ino: Ino, cookie: u64, limit: usize) -> Result<Vec<DirEntry>> {
        self.read(|tx| namespace::readdir(tx, ino, cookie, limit))
    }
    fn readdir_by_name(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<DirEntry>> {
        self.read(|tx| namespace::readdir_by_name(tx, ino, after, limit))
    }
    fn setattr(&self, ino: Ino, set: &SetAttr, now: i64) -> Result<Attr> {
        self.write(|tx| namespace::setattr(tx, ino, set, now))
    }

    fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.read(|tx| namespace::get_xattr(tx, ino, name))
    }
    fn set_xattr(
        &self,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| namespace::set_xattr(tx, ino, name, value, mode, now))
    }
    fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.read(|tx| namespace::list_xattr(tx, ino))
    }
    fn remove_xattr(&self, ino: Ino, name: &[u8], now: i64) -> Result<()> {
        self.write(|tx| namespace::remove_xattr(tx, ino, name, now))
    }
    fn setattr_xattr(
        &self,
        ino: Ino,
        set: &SetAttr,
        change: XattrChange<'_>,
        now: i64,
    ) -> Result<Attr> {
        self.write(|tx| namespace::setattr_xattr(tx, ino, set, change, now))
    }

    fn read_chunk(&self, ino: Ino, chunk: u64) -> Result<Vec<Slice>> {
        self.read(|tx| data::read_chunk(tx, ino, chunk))
    }
    fn commit(&self, ino: Ino, c: &Commit<'_>) -> Result<(Attr, Vec<u64>)> {
        self.write(|tx| data::commit(tx, ino, c))
    }
    fn replace_chunk(
        &self,
        ino: Ino,
        chunk: u64,
        slices: &[NewSlice],
        new_blocks: &[NewBlock],
        replicate_to: u32,
    ) -> Result<()> {
        self.write(|tx| data::replace_chunk(tx, ino, chunk, slices, new_blocks, replicate_to))
    }
    fn truncate(&self, ino: Ino, size: u64, now: i64) -> Result<Attr> {
        self.write(|tx| data::truncate(tx, ino, size, now))
    }
    fn replace_content(&self, ino: Ino, from: Ino, mtime: i64, now: i64) -> Result<Attr> {
        self.write(|tx| data::replace_content(tx, ino, from, mtime, now))
    }
    fn get_block(&self, id: &BlockId) -> Result<Option<BlockRow>> {
        self.read(|tx| data::get_block(tx, id))
    }
    fn chunk_slice_count(&self, ino: Ino, chunk: u64) -> Result<u64> {
        self.read(|tx| data::chunk_slice_count(tx, ino, chunk))
    }

    fn purge_inode(&self, ino: Ino) -> Result<()> {
        self.write(|tx| data::purge_inode(tx, ino))
    }
    fn orphans(&self) -> Result<Vec<Ino>> {
        self.read(data::orphans)
    }
    fn entries_with_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Ino, Vec<u8>, Ino)>> {
        self.read(|tx| data::entries_with_prefix(tx, prefix, limit))
    }
    fn garbage_blocks(&self, limit: usize, freed_before: i64) -> Result<Vec<BlockRow>> {
        self.read(|tx| data::garbage_blocks(tx, limit, freed_before))
    }
    fn forget_blocks(&self, ids: &[BlockId]) -> Result<Vec<BlockId>> {
        self.write(|tx| data::forget_blocks(tx, ids))
    }

    fn set_settings(&self, settings: &Settings) -> Result<()> {
        self.write(|tx| tiers::set_settings(tx, settings))
    }
    fn insert_tier(&self, settings: &Settings, position: u32) -> Result<()> {
        self.write(|tx| tiers::insert_tier(tx, settings, position))
    }
    fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>> {
        self.read(|tx| tiers::queue_due(tx, now, limit))
    }
    fn queue_list(&self, limit: usize) -> Result<(Vec<QueueEntry>, u64)> {
        self.read(|tx| tiers::queue_list(tx, limit))
    }
    fn queue_done(&self, entry: u64, block: &BlockId, tier: u32) -> Result<()> {
        self.write(|tx| tiers::queue_done(tx, entry, block, tier))
    }
    fn queue_retry(&self, entry: u64, due: i64, error: &str) -> Result<()> {
        self.write(|tx| tiers::queue_retry(tx, entry, due, error))
    }
    fn queue_drop(&self, entry: u64) -> Result<()> {
        self.write(|tx| tiers::queue_drop(tx, entry))
    }
    fn queue_make_due(&self, now: i64) -> Result<u64> {
        self.write(|tx| tiers::queue_make_due(tx, now))
    }
    fn queue_missing(&self, tier: u32, now: i64) -> Result<u64> {
        self.write(|tx| tiers::queue_missing(tx, tier, now))
    }
    fn queue_add(&self, blocks: &[BlockId], mask: u32, now: i64) -> Result<()> {
        self.write(|tx| tiers::enqueue(tx, blocks, mask, now))
    }
    fn set_block_tiers(&self, id: &BlockId, set: u32, clear: u32) -> Result<u32> {
        self.write(|tx| tiers::set_block_tiers(tx, id, set, clear))
    }
    fn tier_usage(&self, n: usize) -> Result<Vec<TierUsage>> {
        self.read(|tx| tiers::tier_usage(tx, n))
    }
    fn evict_candidates(
        &self,
        tier: u32,
        durable: u32,
        limit: usize,
    ) -> Result<Vec<EvictCandidate>> {
        self.read(|tx| tiers::evict_candidates(tx, tier, durable, limit))
    }
    fn record_access(&self, batch: &[(BlockId, i64, u32)]) -> Result<()> {
        self.write(|tx| tiers::record_access(tx, batch))
    }
    fn pin_file(&self, ino: Ino, pin: bool) -> Result<Vec<BlockRow>> {
        self.write(|tx| tiers::pin_file(tx, ino, pin))
    }
    fn is_pinned(&self, ino: Ino) -> Result<bool> {
        self.read(|tx| tiers::is_pinned(tx, ino))
    }
    fn file_blocks(&self, ino: Ino) -> Result<Vec<BlockRow>> {
        self.read(|tx| tiers::file_blocks(tx, ino))
    }
    fn bump_counter(&self, name: &str, delta: i64) -> Result<()> {
        self.write(|tx| tiers::bump_counter(tx, name, delta))
    }
    fn counters(&self) -> Result<Vec<(String, i64)>> {
        self.read(tiers::counters)
    }

    fn register_session(&self, host: &str, pid: u32, mountpoint: &str, now: i64) -> Result<u64> {
        self.write(|tx| admin::register_session(tx, host, pid, mountpoint, now))
    }
    fn heartbeat(&self, session: u64, now: i64) -> Result<()> {
        self.write(|tx| admin::heartbeat(tx, session, now))
    }
    fn end_session(&self, session: u64) -> Result<()> {
        self.write(|tx| admin::end_session(tx, session))
    }
    fn sessions(&self) -> Result<Vec<Session>> {
        self.read(admin::sessions)
    }

    fn stats(&self) -> Result<Stats> {
        self.read(admin::stats)
    }
    fn blocks_page(&self, after: Option<BlockId>, limit: usize) -> Result<Vec<BlockRow>> {
        self.read(|tx| admin::blocks_page(tx, after, limit))
    }
    fn refcount_mismatches(&self) -> Result<Vec<(BlockId, u64, u64)>> {
        self.read(admin::refcount_mismatches)
    }
    fn dangling_block_refs(&self) -> Result<Vec<(Ino, u64, BlockId)>> {
        self.read(admin::dangling_block_refs)
    }
    fn nlink_mismatches(&self) -> Result<Vec<(Ino, u32, u32)>> {
        self.read(admin::nlink_mismatches)
    }
    fn dangling_dentries(&self) -> Result<Vec<(Ino, Vec<u8>, Ino)>> {
        self.read(admin::dangling_dentries)
    }
    fn set_refcount(&self, id: &BlockId, refcount: u64) -> Result<()> {
        self.write(|tx| admin::set_refcount(tx, id, refcount))
    }
    fn set_nlink(&self, ino: Ino, nlink: u32) -> Result<()> {
        self.write(|tx| admin::set_nlink(tx, ino, nlink))
    }
    fn remove_dentry(&self, parent: Ino, name: &[u8]) -> Result<()> {
        self.write(|tx| admin::remove_dentry(tx, parent, name))
    }
    fn drop_slices_referencing(&self, id: &BlockId) -> Result<u64> {
        self.write(|tx| admin::drop_slices_referencing(tx, id))
    }
    fn inodes_referencing(&self, id: &BlockId, limit: usize) -> Result<Vec<Ino>> {
        self.read(|tx| admin::inodes_referencing(tx, id, limit))
    }
}

#[cfg(test)]
mod tests;
