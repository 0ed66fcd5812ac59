//! Garbage collection of blocks whose refcount reached 0 more than `gc_grace` ago, and the
//! pins that keep blocks of uncommitted writes safe from it. The grace period (2 h by
//! default) keeps the blocks that recently shipped metadata and backups reference, so a
//! restore to a point within it finds them; older points may miss blocks freed since
//! (restore reports those files).
//!
//! Invariant: a block id is pinned from the moment a writer decides whether to upload it
//! until its slice commit; pinning takes the GC lock shared, and a GC pass holds it
//! exclusively while it deletes objects, so a pass never deletes an object a writer
//! relies on and a writer never uploads an object while a pass deletes it.

use super::Tiering;
use crate::worker::{Worker, WorkerState};
use crate::Result;
use futures::future::BoxFuture;
use fvfs_types::BlockId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Notify, RwLock};

#[derive(Default)]
pub(crate) struct BlockPins {
    pub(crate) lock: RwLock<()>,
    pins: Mutex<HashMap<BlockId, usize>>,
    pub(crate) wake: Notify,
}

impl BlockPins {
    pub(crate) async fn pin(&self, id: BlockId) {
        let _shared = self.lock.read().await;
        *self.pins.lock().entry(id).or_default() += 1;
    }

    pub(crate) fn unpin(&self, ids: &[BlockId]) {
        let mut pins = self.pins.lock();
        for id in ids {
            if let Some(n) = pins.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(id);
                }
            }
        }
    }

    pub(crate) fn is_pinned(&self, id: &BlockId) -> bool {
        self.pins.lock().contains_key(id)
    }
}

impl Tiering {
    /// Asks the GC worker to look for garbage soon.
    pub fn gc_wake(&self) {
        self.pins.wake.notify_one();
    }

    /// How many blocks writes in progress have pinned against GC (0 when none runs).
    pub fn pinned_blocks(&self) -> usize {
        self.pins.pins.lock().len()
    }

    /// One GC pass over at most `limit` garbage blocks; returns how many were removed.
    pub async fn gc_pass(&self, limit: usize) -> Result<usize> {
        let freed_before = crate::now_ns() - self.gc_grace.as_nanos() as i64;
        let garbage = self.meta.garbage_blocks(limit, freed_before)?;
        if garbage.is_empty() {
            return Ok(0);
        }
        let _exclusive = self.pins.lock.write().await;
        let ids: Vec<BlockId> = garbage
            .iter()
            .map(|b| b.id)
            .filter(|id| !self.pins.is_pinned(id))
            .collect();
        // Rows first: a block whose refcount rose again keeps its row and its object.
        let forgotten = self.meta.forget_blocks(&ids)?;
        for id in &forgotten {
            if let Err(e) = self.store.delete(id).await {
                // The row is gone; the object is now an orphan object that `fsck` reports.
                tracing::warn!(block = %id, error = %e, "could not delete a garbage block object");
            }
        }
        Ok(forgotten.len())
    }
}

/// An object on a tier that no block row claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakedObject {
    pub tier: usize,
    pub id: BlockId,
    pub bytes: u64,
}

/// What `fvfsd gc` finds: what it deletes, and what it leaves for now.
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    /// Blocks unreferenced for longer than the grace period, with their rows.
    pub garbage: Vec<fvfs_meta::BlockRow>,
    /// Block objects with no row, last written longer than the grace period ago.
    pub leaked: Vec<LeakedObject>,
    /// Objects with no row that are younger than the grace (an upload whose commit may
    /// still come) or whose age the tier does not report: left alone.
    pub young: u64,
    /// Objects whose row exists but does not name this tier (a copy the metadata lost
    /// track of): their tier bit is set again, so eviction and GC manage them.
    pub stray: Vec<LeakedObject>,
}

impl GcReport {
    /// Stored bytes of the garbage blocks, counting every tier copy.
    pub fn garbage_bytes(&self) -> u64 {
        self.garbage
            .iter()
            .map(|b| u64::from(b.stored_size) * u64::from(b.tiers.count_ones().max(1)))
            .sum()
    }
    pub fn leaked_bytes(&self) -> u64 {
        self.leaked.iter().map(|o| o.bytes).sum()
    }
}

impl Tiering {
    /// Finds garbage blocks and leaked objects (listing every tier); deletes nothing.
    pub async fn gc_scan(&self) -> Result<GcReport> {
        let freed_before = crate::now_ns() - self.gc_grace.as_nanos() as i64;
        let mut report = GcReport {
            garbage: self.meta.garbage_blocks(usize::MAX >> 1, freed_before)?,
            ..Default::default()
        };
        let horizon = std::time::SystemTime::now() - self.gc_grace;
        for (tier, t) in self.store.tiers().iter().enumerate() {
            let bit = 1u32 << tier;
            let mut failed = None;
            t.for_each_block(|id, bytes, modified| {
                let row = match self.meta.get_block(&id) {
                    Ok(r) => r,
                    Err(e) => {
                        failed.get_or_insert(e);
                        return;
                    }
                };
                match row {
                    Some(r) if r.tiers & bit != 0 => {}
                    Some(_) => report.stray.push(LeakedObject { tier, id, bytes }),
                    None if modified.is_some_and(|m| m < horizon) => {
                        report.leaked.push(LeakedObject { tier, id, bytes })
                    }
                    None => report.young += 1,
                }
            })
            .await
            .map_err(|e| crate::VfsError::Chunk(e.into()))?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        Ok(report)
    }

    /// Deletes the leaked objects of a scan that are still leaked: under the GC lock
    /// (no writer of this process is deciding to upload), not pinned, still without a
    /// row, and still older than the grace (an upload since makes it young again).
    /// Sets the tier bits of stray copies. Returns the bytes deleted.
    pub async fn gc_leaked(&self, report: &GcReport) -> Result<u64> {
        for s in &report.stray {
            if self.meta.get_block(&s.id)?.is_some() {
                self.meta.set_block_tiers(&s.id, 1u32 << s.tier, 0)?;
            }
        }
        let _exclusive = self.pins.lock.write().await;
        let horizon = std::time::SystemTime::now() - self.gc_grace;
        let mut deleted = 0;
        for o in &report.leaked {
            if self.pins.is_pinned(&o.id) || self.meta.get_block(&o.id)?.is_some() {
                continue;
            }
            let tier = &self.store.tiers()[o.tier];
            let old = tier
                .block_modified(&o.id)
                .await
                .map_err(|e| crate::VfsError::Chunk(e.into()))?
                .is_some_and(|m| m < horizon);
            if old {
                self.store.delete_from(&o.id, o.tier).await?;
                deleted += o.bytes;
            }
        }
        Ok(deleted)
    }
}

/// Removes garbage blocks in the background.
pub struct GcWorker {
    tiering: Weak<Tiering>,
}

impl GcWorker {
    pub fn new(tiering: &Arc<Tiering>) -> GcWorker {
        GcWorker {
            tiering: Arc::downgrade(tiering),
        }
    }
}

const GC_BATCH: usize = 512;

impl Worker for GcWorker {
    type Error = crate::VfsError;
    fn name(&self) -> String {
        "gc".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            let Some(tiering) = self.tiering.upgrade() else {
                return Ok(WorkerState::Done);
            };
            let n = tiering.gc_pass(GC_BATCH).await?;
            Ok(if n >= GC_BATCH {
                WorkerState::Busy
            } else {
                WorkerState::Idle
            })
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(tiering) = self.tiering.upgrade() else {
                return;
            };
            let _ =
                tokio::time::timeout(Duration::from_secs(30), tiering.pins.wake.notified()).await;
        })
    }
}
