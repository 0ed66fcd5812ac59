//! Tiering as a component: blocks and their holders, without the POSIX namespace.
//! [`Tiering`] owns where blocks go and how they move: uploads with dedup and tier
//! choice (`upload.rs`), payloads held without an inode (`holders.rs`), replication from
//! the durable queue (`replicate.rs`), eviction by watermarks and scrubbing
//! (`evict.rs`), garbage collection and the pins that keep uncommitted blocks from it
//! (`gc.rs`), what reads teach about the tiers (`events.rs`), and the in-memory tier
//! state (`state.rs`). `Vfs` builds one and adds the namespace; a face without files
//! (the HSM archive, the music cache) builds one from the metadata and the block store
//! alone and runs the same workers on it.
//!
//! Invariants:
//! - A block lives while anything holds it: a file's slices or a holder row
//!   (`fvfs_meta::HolderStore`). GC deletes only blocks no holder references, after the
//!   grace, and never one pinned by a writer between its upload and its commit.
//! - A block is evicted from a tier only when its durable copy is recorded; blocks a
//!   registered [`BlockUsers`] has in use now are evicted last.
//! - Every new block's commit queues it for the replica tiers in the same transaction.

mod events;
mod evict;
mod gc;
mod holders;
mod replicate;
mod state;
mod upload;

pub use events::TierEventsWorker;
pub use evict::{EvictorWorker, ScrubWorker};
pub use gc::{GcReport, GcWorker, LeakedObject};
pub use holders::{HeldPayload, HeldWriter};
pub use replicate::ReplicatorWorker;
pub use state::{TierHealth, TierPolicy};
pub use upload::Placement;

pub(crate) use gc::BlockPins;
pub(crate) use state::TierState;
pub(crate) use upload::{await_uploads, block_ids, Uploaded};

use crate::{Result, VfsError};
use fvfs_chunk::BlockStore;
use fvfs_meta::MetaStore;
use fvfs_types::{BlockId, Settings, TierSettings};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Something that has blocks in use now (open files, a recall in progress): eviction
/// takes their blocks last.
pub trait BlockUsers: Send + Sync {
    fn blocks_in_use(&self) -> HashSet<BlockId>;
}

/// The tiering of one filesystem's blocks.
pub struct Tiering {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) store: Arc<BlockStore>,
    pub(crate) settings: Settings,
    pub(crate) state: Arc<TierState>,
    pub(crate) pins: Arc<BlockPins>,
    gc_grace: Duration,
    users: Mutex<Vec<Weak<dyn BlockUsers>>>,
}

impl Tiering {
    /// Builds the component over a filesystem's metadata and block store. `gc_grace` is
    /// how long garbage blocks (refcount 0) are kept before they are deleted.
    pub fn new(
        meta: Arc<dyn MetaStore>,
        store: Arc<BlockStore>,
        policy: TierPolicy,
        gc_grace: Duration,
    ) -> Result<Arc<Tiering>> {
        let settings = meta.settings()?;
        let n = settings.tier_list().len();
        if store.tiers().len() != n {
            return Err(VfsError::Internal(format!(
                "the block store has {} tiers, the filesystem {n}",
                store.tiers().len()
            )));
        }
        let usage = meta.tier_usage(n)?.iter().map(|u| u.bytes).collect();
        let state = Arc::new(TierState::new(&settings, policy, usage));
        Ok(Arc::new(Tiering {
            meta,
            store,
            settings,
            state,
            pins: Arc::new(BlockPins::default()),
            gc_grace,
            users: Mutex::new(Vec::new()),
        }))
    }

    /// Registers `users`, whose blocks eviction takes last while they live.
    pub fn add_users(&self, users: Weak<dyn BlockUsers>) {
        let mut all = self.users.lock();
        all.retain(|u| u.strong_count() > 0);
        all.push(users);
    }

    /// The union of every live user's blocks in use.
    pub(crate) fn blocks_in_use(&self) -> HashSet<BlockId> {
        let users: Vec<_> = self
            .users
            .lock()
            .iter()
            .filter_map(|u| u.upgrade())
            .collect();
        let mut out = HashSet::new();
        for u in users {
            out.extend(u.blocks_in_use());
        }
        out
    }

    /// The tiers' settings, hottest first.
    pub fn tiers(&self) -> &[TierSettings] {
        &self.state.list
    }

    /// Health, usage and settings of each tier, hottest first.
    pub fn tier_report(&self) -> Vec<(TierSettings, u64, TierHealth)> {
        let h = self.state.health();
        self.state
            .list
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), self.state.usage(i), h[i].clone()))
            .collect()
    }

    /// The tiers every new block is queued for (bit n = tier n).
    pub fn replica_mask(&self) -> u32 {
        self.state.replica_mask
    }
}
