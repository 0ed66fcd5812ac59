//! Block uploads, for the write path and for holders: encode, pin, dedup check, choice
//! of tier and PUT (`upload_task`), and waiting for a batch of uploads.
//!
//! Invariant: a successful upload leaves its block id pinned (gc.rs) until the caller
//! commits the block or gives it up (`BlockPins::unpin`); a failed one leaves nothing
//! pinned.

use super::gc::BlockPins;
use super::state::TierState;
use super::Tiering;
use crate::{Result, VfsError};
use bytes::Bytes;
use fvfs_chunk::{BlockMeta, BlockStore};
use fvfs_meta::{MetaStore, NewBlock};
use fvfs_types::BlockId;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Blocks up to this size are encoded on the calling task.
const INLINE_ENCODE_BYTES: usize = 64 << 10;

/// Where a new block is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// The hottest reachable tier with room (the write path, user archives).
    #[default]
    Hottest,
    /// The durable tier directly: a payload about to leave its only other copy (the
    /// janitor's archive before a release) gains nothing from a hot copy and would need
    /// replicating first.
    Durable,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Uploaded {
    pub(crate) meta: BlockMeta,
    /// The tier the object was written to (when `new`).
    pub(crate) tier: usize,
    /// True when this upload created the object (no live row existed).
    pub(crate) new: bool,
}

impl Uploaded {
    /// The row to insert for a block this upload created.
    pub(crate) fn new_block(&self) -> NewBlock {
        NewBlock {
            id: self.meta.id,
            size: self.meta.size,
            stored_size: self.meta.stored_size,
            codec: self.meta.codec,
            tiers: 1 << self.tier,
        }
    }
}

fn upload_task(
    store: Arc<BlockStore>,
    meta: Arc<dyn MetaStore>,
    pins: Arc<BlockPins>,
    tiers: Arc<TierState>,
    data: Bytes,
    placement: Placement,
    rewrite: bool,
) -> JoinHandle<Result<Uploaded>> {
    tokio::spawn(async move {
        // Hashing and compressing a small block costs less than a hop to the blocking pool.
        let enc = if data.len() <= INLINE_ENCODE_BYTES {
            store.encode(&data)
        } else {
            let st = store.clone();
            tokio::task::spawn_blocking(move || st.encode(&data))
                .await
                .map_err(|e| VfsError::Internal(format!("encode task: {e}")))?
        };
        pins.pin(enc.id).await;
        let live = matches!(meta.get_block(&enc.id), Ok(Some(row)) if row.refcount > 0);
        let mut tier = 0;
        if !live || rewrite {
            // A tier that fails a write is marked down and the block goes to the next
            // one; the durable tier is the last resort, and its failure is the caller's.
            loop {
                tier = match placement {
                    Placement::Hottest => tiers.reserve(enc.stored.len() as u64),
                    Placement::Durable => {
                        tiers.add_usage(tiers.durable, enc.stored.len() as i64);
                        tiers.durable
                    }
                };
                match store.put_encoded_to(&enc, tier).await {
                    Ok(()) => break,
                    Err(e) => {
                        tiers.add_usage(tier, -(enc.stored.len() as i64));
                        if tier == tiers.durable {
                            pins.unpin(&[enc.id]);
                            return Err(e.into());
                        }
                        tiers.set_health(tier, false, Some(e.to_string()));
                    }
                }
            }
            if tiers.over_high(tier) {
                tiers.evict_wake.notify_one();
            }
        }
        Ok(Uploaded {
            meta: BlockMeta {
                id: enc.id,
                size: enc.size,
                stored_size: enc.stored.len() as u32,
                codec: enc.codec,
            },
            tier,
            new: !live,
        })
    })
}

/// Awaits every upload; on a failure releases the pins of the uploads that succeeded
/// (their blocks will not be committed) and returns the first error.
pub(crate) async fn await_uploads(
    pins: &BlockPins,
    uploads: Vec<(u64, JoinHandle<Result<Uploaded>>)>,
) -> Result<Vec<(u64, Uploaded)>> {
    let mut done = Vec::with_capacity(uploads.len());
    let mut failed = None;
    for (at, t) in uploads {
        match t
            .await
            .map_err(|e| VfsError::Internal(format!("upload task: {e}")))
            .and_then(|r| r)
        {
            Ok(up) => done.push((at, up)),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        None => Ok(done),
        Some(e) => {
            pins.unpin(&block_ids(&done));
            Err(e)
        }
    }
}

pub(crate) fn block_ids(blocks: &[(u64, Uploaded)]) -> Vec<BlockId> {
    blocks.iter().map(|(_, u)| u.meta.id).collect()
}

impl Tiering {
    pub(crate) fn spawn_upload(&self, data: Bytes) -> JoinHandle<Result<Uploaded>> {
        self.spawn_upload_to(data, Placement::Hottest)
    }

    pub(crate) fn spawn_upload_to(
        &self,
        data: Bytes,
        placement: Placement,
    ) -> JoinHandle<Result<Uploaded>> {
        self.spawn_upload_with(data, placement, false)
    }

    /// As `spawn_upload_to`; with `rewrite` the object is written even when a live row
    /// says it exists (its stored copy failed verification and these are its bytes).
    pub(crate) fn spawn_upload_with(
        &self,
        data: Bytes,
        placement: Placement,
        rewrite: bool,
    ) -> JoinHandle<Result<Uploaded>> {
        upload_task(
            self.store.clone(),
            self.meta.clone(),
            self.pins.clone(),
            self.state.clone(),
            data,
            placement,
            rewrite,
        )
    }

    /// Counts new blocks' bytes toward the replicator's batch trigger.
    pub(crate) fn note_queued(&self, new_blocks: &[NewBlock]) {
        let bytes: u64 = new_blocks.iter().map(|b| b.stored_size as u64).sum();
        if bytes > 0 {
            let t = &self.state;
            let before = t
                .queued_bytes
                .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
            if before + bytes >= t.policy.flush_bytes {
                t.replicate_wake.notify_one();
            }
        }
    }
}
