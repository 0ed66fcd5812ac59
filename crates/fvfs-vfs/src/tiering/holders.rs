//! Payloads held by a holder instead of a file: `put_held` stores bytes as blocks through
//! the block store (CDC cut, encode, dedup against live blocks, tier choice, replication
//! queued to the durable tier) and makes the holder (kind, key) hold them
//! (`fvfs_meta::HolderStore`); `read_held` reads a payload back from its block list;
//! `release_held` drops the holder, after which blocks no one else references are
//! garbage-collected after the grace. No inode is involved: a face (HSM archive, music
//! cache) keeps the returned `BlockRef`s in its own tables.
//!
//! Invariant: as on the write path, each uploaded block stays pinned against GC
//! (gc.rs) from its dedup check until the hold committed or failed.

use super::upload::{await_uploads, block_ids};
use super::Tiering;
use crate::{Result, VfsError};
use bytes::Bytes;
use fvfs_chunk::cdc;
use fvfs_meta::{BlockRef, MetaError, NewBlock};
use fvfs_types::BlockId;

impl Tiering {
    /// Stores `data` as blocks held by (kind, key) and returns the payload's block list,
    /// in order. Storing the same payload again under the same holder adds nothing; under
    /// another holder it shares the blocks. Kind "file" is reserved (files hold blocks
    /// through their slices).
    pub async fn put_held(&self, kind: &str, key: &[u8], data: Bytes) -> Result<Vec<BlockRef>> {
        let mut uploads = Vec::new();
        let mut pos = 0usize;
        for len in cdc::cut(&data, &self.settings.cdc, true) {
            uploads.push((pos as u64, self.spawn_upload(data.slice(pos..pos + len))));
            pos += len;
        }
        let blocks = await_uploads(&self.pins, uploads).await?;
        let ids = block_ids(&blocks);
        let mut new_blocks: Vec<NewBlock> = Vec::new();
        for (_, up) in blocks.iter().filter(|(_, up)| up.new) {
            if !new_blocks.iter().any(|b| b.id == up.meta.id) {
                new_blocks.push(NewBlock {
                    id: up.meta.id,
                    size: up.meta.size,
                    stored_size: up.meta.stored_size,
                    codec: up.meta.codec,
                    tiers: 1 << up.tier,
                });
            }
        }
        let held = self
            .meta
            .hold(kind, key, &ids, &new_blocks, self.state.replica_mask);
        // Held or not, these uploads need the pins no longer: after a failure their
        // objects are garbage that nothing references.
        self.pins.unpin(&ids);
        held?;
        self.note_queued(&new_blocks);
        Ok(blocks
            .iter()
            .map(|(_, up)| BlockRef {
                id: up.meta.id,
                len: up.meta.size,
            })
            .collect())
    }

    /// Reads the payload of `refs` (as `put_held` returned them), which (kind, key) must
    /// hold: a block it does not hold is `NotFound`.
    pub async fn read_held(&self, kind: &str, key: &[u8], refs: &[BlockRef]) -> Result<Bytes> {
        let held = self.meta.held_by(kind, key)?;
        let mut fetches = Vec::with_capacity(refs.len());
        let now = crate::now_ns();
        for r in refs {
            if held.binary_search(&r.id).is_err() {
                return Err(MetaError::NotFound.into());
            }
            let row = self
                .meta
                .get_block(&r.id)?
                .ok_or(MetaError::MissingBlock(r.id))?;
            self.state.note_access(r.id, now);
            let store = self.store.clone();
            let (id, len) = (r.id, r.len);
            fetches.push(async move { store.fetch_masked(&id, row.codec, len, row.tiers).await });
        }
        let parts = futures::future::try_join_all(fetches).await?;
        let mut out = Vec::with_capacity(refs.iter().map(|r| r.len as usize).sum());
        for (r, part) in refs.iter().zip(parts) {
            if part.len() != r.len as usize {
                return Err(VfsError::Internal(format!(
                    "block {} has {} bytes, the payload says {}",
                    r.id,
                    part.len(),
                    r.len
                )));
            }
            out.extend_from_slice(&part);
        }
        Ok(Bytes::from(out))
    }

    /// Drops the holder (kind, key); returns the blocks it held. Blocks no file or other
    /// holder references become garbage, deleted by GC after the grace.
    pub fn release_held(&self, kind: &str, key: &[u8]) -> Result<Vec<BlockId>> {
        let ids = self.meta.release(kind, key)?;
        if !ids.is_empty() {
            self.gc_wake();
        }
        Ok(ids)
    }
}
