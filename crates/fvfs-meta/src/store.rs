//! The [`MetaStore`] trait: every metadata operation fvfs performs, each one atomic.
//!
//! The trait is synchronous and object-safe: SQLite is in-process, and a PostgreSQL
//! implementation can run its client on a blocking pool behind the same signatures.
//! Names are raw bytes (POSIX names need not be UTF-8). Permission checks are the
//! caller's (fvfs-vfs); the store enforces only structural rules (ENOTEMPTY, EEXIST, …).

use crate::error::{MetaError, Result};
use crate::types::*;
use crate::url::MetaUrl;
use fvfs_types::{BlockId, Ino, Settings};
use std::sync::Arc;

pub trait MetaStore: Send + Sync {
    // ---- settings and lifecycle ----
    /// Writes the settings and creates the root directory. Fails if already formatted.
    fn format(&self, settings: &Settings, root_uid: u32, root_gid: u32, now: i64) -> Result<()>;
    fn settings(&self) -> Result<Settings>;
    /// A human name of the store for messages (no secrets).
    fn describe(&self) -> String;
    /// Makes every committed operation durable against power loss. Every operation is
    /// atomic and survives a crash of the process when it returns; `sync` adds the
    /// device flush (fsync/fsyncdir/close call it).
    fn sync(&self) -> Result<()>;
    /// Writes a consistent copy of the whole metadata database to `dest`, a new local file
    /// (an existing one is an error). The copy is one point in time, standalone (SQLite:
    /// no `-wal`/`-shm`), durable when this returns, and opens with [`open`]. Concurrent
    /// operations go on while it runs. Used by the metadata backup.
    fn snapshot(&self, dest: &std::path::Path) -> Result<()>;

    // ---- namespace ----
    fn getattr(&self, ino: Ino) -> Result<Attr>;
    fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr>;
    /// Creates an inode of any kind and its entry in `parent` (EEXIST if the name exists).
    fn create(&self, parent: Ino, name: &[u8], new: &NewInode<'_>) -> Result<Attr>;
    /// Adds a hard link `newparent/newname` to `ino` (not a directory).
    fn link(&self, ino: Ino, newparent: Ino, newname: &[u8], now: i64) -> Result<Attr>;
    /// Removes a non-directory entry. At nlink 0 the inode becomes an orphan.
    fn unlink(&self, parent: Ino, name: &[u8], now: i64) -> Result<Unlinked>;
    /// Removes an empty directory and its inode.
    fn rmdir(&self, parent: Ino, name: &[u8], now: i64) -> Result<Ino>;
    /// rename(2) with NOREPLACE and EXCHANGE. Returns the inode that lost its last name
    /// by being replaced, if any.
    fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: RenameFlags,
        now: i64,
    ) -> Result<Option<Unlinked>>;
    fn readlink(&self, ino: Ino) -> Result<Vec<u8>>;
    /// Entries after `cookie` (0 = from the start), at most `limit`. Excludes `.`/`..`.
    fn readdir(&self, ino: Ino, cookie: u64, limit: usize) -> Result<Vec<DirEntry>>;
    /// Entries in name (byte) order whose name sorts after `after` (None = from the
    /// start), at most `limit`: one page of a listing by name without reading the rest.
    fn readdir_by_name(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<DirEntry>>;
    /// Changes attributes (not the size: see `truncate`). `now` is the new ctime.
    fn setattr(&self, ino: Ino, set: &SetAttr, now: i64) -> Result<Attr>;

    // ---- xattrs ----
    fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>>;
    fn set_xattr(
        &self,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        now: i64,
    ) -> Result<()>;
    fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>>;
    fn remove_xattr(&self, ino: Ino, name: &[u8], now: i64) -> Result<()>;
    /// Atomically applies `set` (as `setattr`) and one xattr change: the mode and the
    /// POSIX ACL that must agree with it never disagree on disk. `now` is the new ctime.
    fn setattr_xattr(
        &self,
        ino: Ino,
        set: &SetAttr,
        change: XattrChange<'_>,
        now: i64,
    ) -> Result<Attr>;

    // ---- file content ----
    /// Slices of one chunk, oldest first.
    fn read_chunk(&self, ino: Ino, chunk: u64) -> Result<Vec<Slice>>;
    /// Atomically: inserts missing `new_blocks`, adds the slices (incrementing each
    /// referenced block's refcount; a reference to a block without a row is
    /// `MissingBlock`), removes the superseded slices, raises the size to `min_size` if
    /// smaller and sets mtime/ctime when given. Returns the attributes and the ids of the
    /// new slices (in order).
    fn commit(&self, ino: Ino, c: &Commit<'_>) -> Result<(Attr, Vec<u64>)>;
    /// Atomically replaces every slice of a chunk by `slices` (compaction), queueing
    /// replication of `new_blocks` to the tiers of `replicate_to`.
    fn replace_chunk(
        &self,
        ino: Ino,
        chunk: u64,
        slices: &[NewSlice],
        new_blocks: &[NewBlock],
        replicate_to: u32,
    ) -> Result<()>;
    /// Sets the size. Shrinking drops slices past the end and overlays a zero slice on
    /// the cut part of the last chunk, so a later extension reads zeros.
    fn truncate(&self, ino: Ino, size: u64, now: i64) -> Result<Attr>;
    /// Atomically replaces the whole content of regular file `ino` by that of regular
    /// file `from` (an atomic rewrite that keeps `ino` and its links): `ino`'s slices go
    /// (releasing their block references), `from`'s slices move to `ino` with their
    /// references, `ino` takes `from`'s size, the mtime `mtime` and the ctime `now`, and
    /// `from` is left empty (size 0). Returns `ino`'s new attributes.
    fn replace_content(&self, ino: Ino, from: Ino, mtime: i64, now: i64) -> Result<Attr>;
    /// Looks up block rows (for dedup: a present row with refcount > 0 needs no upload).
    fn get_block(&self, id: &BlockId) -> Result<Option<BlockRow>>;
    /// Number of slices of one chunk (to decide on compaction).
    fn chunk_slice_count(&self, ino: Ino, chunk: u64) -> Result<u64>;

    // ---- orphans and garbage ----
    /// Deletes an orphan (nlink 0) inode with its slices and xattrs, releasing block refs.
    /// A no-op for an inode that has links again or is gone.
    fn purge_inode(&self, ino: Ino) -> Result<()>;
    fn orphans(&self) -> Result<Vec<Ino>>;
    /// Directory entries (parent, name, ino) whose name starts with `prefix`, in any
    /// directory, at most `limit`: for the sweep of reserved names (a full scan).
    fn entries_with_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Ino, Vec<u8>, Ino)>>;
    /// Blocks whose refcount reached 0 at or before `freed_before`, at most `limit`.
    fn garbage_blocks(&self, limit: usize, freed_before: i64) -> Result<Vec<BlockRow>>;
    /// Deletes the rows of blocks that still have refcount 0; returns those deleted.
    fn forget_blocks(&self, ids: &[BlockId]) -> Result<Vec<BlockId>>;

    // ---- tiers: replication queue, usage, eviction, pins ----
    /// Replaces the settings (tier changes). The uuid and format version must not change.
    fn set_settings(&self, settings: &Settings) -> Result<()>;
    /// Installs `settings` whose tier list has a new tier at index `position`, shifting
    /// the tier bits of every block and queued entry at or above it, atomically.
    fn insert_tier(&self, settings: &Settings, position: u32) -> Result<()>;
    /// Replication entries due at `now`, oldest due first, at most `limit`.
    fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>>;
    /// Every queued entry (for `fvfsd wal`), at most `limit`, and the total count.
    fn queue_list(&self, limit: usize) -> Result<(Vec<QueueEntry>, u64)>;
    /// The copy is on the tier: drops the entry and sets the block's tier bit.
    fn queue_done(&self, entry: u64, block: &BlockId, tier: u32) -> Result<()>;
    /// A failed attempt: counts it, records the error, schedules the next at `due`.
    fn queue_retry(&self, entry: u64, due: i64, error: &str) -> Result<()>;
    /// Drops an entry without replicating (its block is gone).
    fn queue_drop(&self, entry: u64) -> Result<()>;
    /// Makes every entry due now (`fvfsd flush`). Returns how many are queued.
    fn queue_make_due(&self, now: i64) -> Result<u64>;
    /// Queues replication of every live block missing from `tier` (backfill of a new
    /// tier, or after copies were lost). Returns how many rows were queued.
    fn queue_missing(&self, tier: u32, now: i64) -> Result<u64>;
    /// Queues replication of `blocks` to every tier of `mask` they are not on.
    fn queue_add(&self, blocks: &[BlockId], mask: u32, now: i64) -> Result<()>;
    /// Sets and clears tier bits of a block; returns the new bitmask.
    fn set_block_tiers(&self, id: &BlockId, set: u32, clear: u32) -> Result<u32>;
    /// Bytes and blocks per tier index (live blocks), for tiers 0..n.
    fn tier_usage(&self, n: usize) -> Result<Vec<TierUsage>>;
    /// Live blocks on `tier` that also have a copy on `durable` and no pin, least
    /// recently used first, at most `limit`.
    fn evict_candidates(
        &self,
        tier: u32,
        durable: u32,
        limit: usize,
    ) -> Result<Vec<EvictCandidate>>;
    /// Adds access statistics: (block, time of last access, number of accesses).
    fn record_access(&self, batch: &[(BlockId, i64, u32)]) -> Result<()>;
    /// Pins (`delta` = 1) or unpins (-1) the blocks of one file; returns its block ids.
    /// Pinning a pinned file or unpinning an unpinned one changes nothing.
    fn pin_file(&self, ino: Ino, pin: bool) -> Result<Vec<BlockRow>>;
    /// Whether a file is pinned.
    fn is_pinned(&self, ino: Ino) -> Result<bool>;
    /// The blocks of a file (each once) with their rows, for `fvfsd stat` and warmup.
    fn file_blocks(&self, ino: Ino) -> Result<Vec<BlockRow>>;
    /// Adds to a durable counter (corruptions repaired, blocks evicted, …).
    fn bump_counter(&self, name: &str, delta: i64) -> Result<()>;
    fn counters(&self) -> Result<Vec<(String, i64)>>;

    // ---- sessions ----
    fn register_session(&self, host: &str, pid: u32, mountpoint: &str, now: i64) -> Result<u64>;
    fn heartbeat(&self, session: u64, now: i64) -> Result<()>;
    fn end_session(&self, session: u64) -> Result<()>;
    fn sessions(&self) -> Result<Vec<Session>>;

    // ---- administration (status, fsck) ----
    fn stats(&self) -> Result<Stats>;
    /// Every block row, in id order, `limit` at a time after `after`.
    fn blocks_page(&self, after: Option<BlockId>, limit: usize) -> Result<Vec<BlockRow>>;
    /// The reference counts implied by all slices, for blocks whose stored refcount differs.
    fn refcount_mismatches(&self) -> Result<Vec<(BlockId, u64, u64)>>;
    /// Slice references to blocks that have no row: (ino, slice id, block id).
    fn dangling_block_refs(&self) -> Result<Vec<(Ino, u64, BlockId)>>;
    /// Inodes whose stored link count differs from the entries naming them: (ino, stored, counted).
    fn nlink_mismatches(&self) -> Result<Vec<(Ino, u32, u32)>>;
    /// Entries whose inode does not exist: (parent, name, ino).
    fn dangling_dentries(&self) -> Result<Vec<(Ino, Vec<u8>, Ino)>>;
    /// fsck --repair helpers.
    fn set_refcount(&self, id: &BlockId, refcount: u64) -> Result<()>;
    fn set_nlink(&self, ino: Ino, nlink: u32) -> Result<()>;
    fn remove_dentry(&self, parent: Ino, name: &[u8]) -> Result<()>;
    /// Removes slices that reference `id` and re-points nothing: the affected ranges then
    /// read as zeros. Used by `fsck --repair` for blocks lost from every tier.
    fn drop_slices_referencing(&self, id: &BlockId) -> Result<u64>;
    /// Paths of inodes referencing a block (for reports); best effort, at most `limit`.
    fn inodes_referencing(&self, id: &BlockId, limit: usize) -> Result<Vec<Ino>>;
}

/// Opens the store a URL names. `create` allows creating a new, empty SQLite database.
pub fn open(url: &str, create: bool) -> Result<Arc<dyn MetaStore>> {
    match MetaUrl::parse(url)? {
        MetaUrl::Sqlite(path) => Ok(Arc::new(crate::sqlite::SqliteStore::open(&path, create)?)),
        MetaUrl::Postgres(_) => Err(MetaError::BadUrl {
            url: MetaUrl::parse(url)?.display(),
            why: "PostgreSQL metadata is not built into this version yet".into(),
        }),
    }
}
