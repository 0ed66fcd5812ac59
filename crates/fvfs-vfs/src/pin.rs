//! A file's place in the tiers: the tiers holding all its blocks (`user.fvfs.tiers`),
//! pinning its blocks to the hot tier, and warming them up there. The copies themselves
//! are the tiering component's (`Tiering::copy_to_tier`).

use crate::{Result, Vfs};

impl Vfs {
    /// The tiers holding every block of a file (bit n = tier n). A file without data
    /// reports the replica tiers.
    pub fn file_tiers(&self, ino: fvfs_types::Ino) -> Result<u32> {
        let blocks = self.meta.file_blocks(ino)?;
        if blocks.is_empty() {
            return Ok(self.tiering.state.replica_mask);
        }
        Ok(blocks.iter().fold(u32::MAX, |m, b| m & b.tiers))
    }

    /// Pins a file's blocks to the hot tier (copying them there) or unpins them.
    pub async fn pin(&self, ino: fvfs_types::Ino, pin: bool) -> Result<usize> {
        let blocks = self.meta.pin_file(ino, pin)?;
        if pin {
            for b in &blocks {
                self.tiering.copy_to_tier(b.id, b.codec, b.size, 0).await?;
            }
        }
        Ok(blocks.len())
    }

    /// Copies a file's blocks into the hot tier; `progress(bytes)` after each block.
    pub async fn warmup(
        &self,
        ino: fvfs_types::Ino,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<u64> {
        let mut done = 0;
        for b in self.meta.file_blocks(ino)? {
            self.tiering.copy_to_tier(b.id, b.codec, b.size, 0).await?;
            done += b.size as u64;
            progress(b.size as u64);
        }
        Ok(done)
    }
}
