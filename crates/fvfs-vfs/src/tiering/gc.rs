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
