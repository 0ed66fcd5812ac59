//! [`HolderStore`]: block references held by a *holder* other than a file. A holder is a
//! (kind, key) pair — kind names the face that owns it ("hsm", "music", …; "file" is
//! reserved: files hold blocks through their slices), key is that face's id of the
//! payload. Each (kind, key, block) row counts one reference in the block's refcount, so
//! a held block is live (replicated, evictable from caches like any other) and never
//! garbage; releasing the holder drops its rows and references, and a block whose
//! refcount reaches 0 becomes garbage with the usual grace.
//!
//! The store keeps which blocks a holder holds, not their order: the face records the
//! payload's block list (`BlockRef`s) in its own tables.

use crate::error::Result;
use crate::types::*;
use fvfs_types::BlockId;

pub trait HolderStore {
    /// Atomically: inserts missing `new_blocks` (queueing their replication to the tiers
    /// of `replicate_to`), then makes (kind, key) hold each of `blocks`. Idempotent per
    /// (kind, key, block): only a new row increments the block's refcount (once, however
    /// often the block appears in `blocks`). A block without a row is `MissingBlock` and
    /// nothing changes. Returns how many rows were added.
    fn hold(
        &self,
        kind: &str,
        key: &[u8],
        blocks: &[BlockId],
        new_blocks: &[NewBlock],
        replicate_to: u32,
    ) -> Result<u64>;
    /// Drops every row of (kind, key) and the references they held; returns the blocks
    /// released (those whose refcount reached 0 are garbage from now on).
    fn release(&self, kind: &str, key: &[u8]) -> Result<Vec<BlockId>>;
    /// The blocks (kind, key) holds, in id order.
    fn held_by(&self, kind: &str, key: &[u8]) -> Result<Vec<BlockId>>;
    /// Which of `blocks` (kind, key) holds, in the order given (a point lookup each: a
    /// recall step asks for a few blocks of a file that may hold thousands).
    fn holds(&self, kind: &str, key: &[u8], blocks: &[BlockId]) -> Result<Vec<bool>>;
    /// The holders (kind, key) of one block.
    fn holders_of(&self, block: &BlockId) -> Result<Vec<Holder>>;
    /// Holder rows whose block has no row (fsck): (holder, block).
    fn dangling_holds(&self) -> Result<Vec<(Holder, BlockId)>>;
    /// Removes the holder rows whose block has no row (fsck --repair); returns how many.
    fn drop_dangling_holds(&self) -> Result<u64>;
}
