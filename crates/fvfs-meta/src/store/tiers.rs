//! [`TierStore`]: where block copies live — tier bitmasks, the replication queue
//! (`queue_*`), per-tier usage, eviction candidates, access statistics and file pins.

use crate::error::Result;
use crate::types::*;
use fvfs_types::{BlockId, Ino, Settings};

pub trait TierStore {
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
}
