//! [`DataStore`]: file content — chunks, slices and the block references they hold — the
//! block rows with their refcounts, and the garbage (refcount 0) blocks left behind.

use crate::error::Result;
use crate::types::*;
use fvfs_types::{BlockId, Ino};

pub trait DataStore {
    /// Slices of one chunk, oldest first.
    fn read_chunk(&self, ino: Ino, chunk: u64) -> Result<Vec<Slice>>;
    /// Slices of one chunk, oldest first, and the rows of the blocks they reference (a
    /// block without a row is absent from the map), read in one transaction.
    fn read_chunk_blocks(
        &self,
        ino: Ino,
        chunk: u64,
    ) -> Result<(Vec<Slice>, std::collections::HashMap<BlockId, BlockRow>)>;
    /// Atomically: inserts missing `new_blocks`, adds the slices (incrementing each
    /// referenced block's refcount; a reference to a block without a row is
    /// `MissingBlock`), removes the superseded slices, raises the size to `min_size` if
    /// smaller and sets mtime/ctime when given. Returns the attributes and the ids of the
    /// new slices (in order).
    fn commit(&self, ino: Ino, c: &Commit<'_>) -> Result<(Attr, Vec<u64>)>;
    /// Atomically replaces every slice of a chunk by `slices` (compaction), queueing
    /// replication of `new_blocks` to the tiers of `replicate_to`.
    ///
    /// `expect` holds the ids of the chunk's slices the new ones were made from (oldest
    /// first). When the chunk holds other slices now (another process or host wrote,
    /// truncated or compacted it meanwhile), nothing changes and `false` is returned.
    fn replace_chunk(
        &self,
        ino: Ino,
        chunk: u64,
        expect: &[u64],
        slices: &[NewSlice],
        new_blocks: &[NewBlock],
        replicate_to: u32,
    ) -> Result<bool>;
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
    /// The blocks of a file (each once) with their rows, for `fvfsd stat` and warmup.
    fn file_blocks(&self, ino: Ino) -> Result<Vec<BlockRow>>;
    /// Deletes an orphan (nlink 0) inode with its slices and xattrs, releasing block refs.
    /// A no-op for an inode that has links again or is gone.
    fn purge_inode(&self, ino: Ino) -> Result<()>;
    /// Blocks whose refcount reached 0 at or before `freed_before` and that no holder
    /// holds, at most `limit`.
    fn garbage_blocks(&self, limit: usize, freed_before: i64) -> Result<Vec<BlockRow>>;
    /// Deletes the rows of blocks that still have refcount 0 and no holder; returns
    /// those deleted.
    fn forget_blocks(&self, ids: &[BlockId]) -> Result<Vec<BlockId>>;
}
