//! [`CheckStore`]: the consistency checks and repairs behind `fvfsd fsck`. A block's
//! refcount must equal its slice references plus its holder rows ([`super::HolderStore`]).

use crate::error::Result;
use crate::types::*;
use fvfs_types::{BlockId, Ino};

pub trait CheckStore {
    /// Every block row, in id order, `limit` at a time after `after`.
    fn blocks_page(&self, after: Option<BlockId>, limit: usize) -> Result<Vec<BlockRow>>;
    /// Blocks whose stored refcount differs from the references counted (slice
    /// references plus holder rows): (block, stored, counted).
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
    /// Every inode referencing any of `ids`, with how many of its block references are
    /// among them (one pass over the slices), in inode order.
    fn inodes_referencing_any(
        &self,
        ids: &std::collections::HashSet<BlockId>,
    ) -> Result<Vec<(Ino, usize)>>;
    /// One path of an inode from the root (`/a/b`), following its first name at each
    /// level; `None` if it has no name (an orphan) or a loop is met.
    fn path_of(&self, ino: Ino) -> Result<Option<Vec<u8>>>;
}
