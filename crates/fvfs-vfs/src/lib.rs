//! The vfs layer: POSIX semantics over the metadata store and the block store. Faces
//! (FUSE, HTTP) hold one [`Vfs`] and call its Result-returning methods; nothing here knows
//! about HTTP, and of FUSE only fvfs-fuse's plain `FsOps` trait (`fuse_ops.rs`).
//!
//! Layout: `tiering/` the [`Tiering`] component (blocks and their holders: uploads,
//! payloads held without an inode, replication, eviction, scrubbing, GC, tier health),
//! which `Vfs` builds and a face without files can use alone; `fuse_ops.rs` the FUSE face
//! (fvfs-fuse's `FsOps` over [`Vfs`]), `ns.rs` namespace operations, `acl.rs` POSIX ACL
//! rules, `handle.rs` open files and unlinked-but-open inodes, `write.rs` per-inode write
//! buffers (CDC cut, slice commit), `slices.rs` uploaded blocks → slices, `read.rs` slice
//! overlay resolution and block reads with readahead, `pin.rs` a file's tiers, pinning and
//! warm-up, `fsck.rs` consistency checks, `access.rs` the POSIX permission rules,
//! `caller.rs` the operations checked with a caller's identity (the HTTP face's entry
//! points), `worker.rs` the one shape of background jobs, `backup.rs` metadata
//! backups to a tier on demand, `ship.rs` continuous metadata shipping (a base and the
//! log of every commit, to the durable tier), `report.rs` the status model and the read-only reports faces show,
//! `writeback.rs` the retry of commits that failed at the last close, `spool.rs` the
//! on-disk spool of writes that could not be committed by the time the process stops,
//! `walk.rs` the depth-first walk of the whole namespace that exports read.
//!
//! Invariants:
//! - Data written through a handle is visible to every reader in this process at once
//!   (reads overlay the write buffer) and durable in the tier and the metadata once
//!   `flush`/`fsync`/`release` returns Ok.
//! - A block referenced by buffered, not yet committed data is never garbage-collected
//!   (the `BlockPins` set in tiering/gc.rs).
//! - Bytes a `write` accepted are stored or stay buffered: a failed commit returns an
//!   error and keeps them (retained after the last close, handle.rs), they are retried
//!   until stored, and spooled to disk at stop when they still cannot be.

pub mod access;
pub mod acl;
mod backup;
mod caller;
mod error;
pub mod fsck;
mod fuse_ops;
mod handle;
mod journal;
mod locks;
mod ns;
mod paths;
mod pin;
mod read;
mod report;
mod session;
pub mod ship;
mod slices;
mod spool;
pub mod tiering;
mod trash;
mod walk;
pub mod worker;
mod write;
mod writeback;

pub use error::{Result, VfsError};
pub use fuse_ops::EngineOps;
pub use fvfs_meta::{Attr, DirEntry, RenameFlags, SetAttr, XattrMode};
pub use fvfs_meta::{BlockRow, QueueEntry, Session, Stats, TierUsage};
pub use fvfs_types::{FileKind, Ino, ROOT_INO};
pub use handle::OpenFlags;
pub use locks::{LockKind, LockRequest};
pub use ns::{AttrChange, StatFs, TimeSet};
pub use paths::{FileLayout, FileReader, LayoutPiece, NewOwner, Upload, UPLOAD_PREFIX};
pub use report::{role, CacheStats, EngineStatus, FileTiers, TierRow};
pub use walk::{Walk, WalkEntry};

use fvfs_chunk::BlockStore;
use fvfs_meta::MetaStore;
use fvfs_types::Settings;
use handle::Handles;
use std::sync::Arc;

/// Caller identity of one request (from the FUSE header or the API token).
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

impl Ctx {
    pub fn root() -> Ctx {
        Ctx {
            uid: 0,
            gid: 0,
            pid: 0,
        }
    }
}

/// Tunables of the data path.
#[derive(Clone, Debug)]
pub struct VfsConfig {
    /// Uncommitted bytes per inode before buffered blocks are committed as slices.
    pub commit_bytes: usize,
    /// A write buffer's unsealed tail is cut into blocks once it reaches this size.
    pub seal_bytes: usize,
    /// Most bytes per inode held in sealed-but-uncommitted blocks (back-pressure).
    pub max_inflight_bytes: usize,
    /// Most bytes kept in memory for files closed with a failed commit (retained): past
    /// it, writes fail with ENOSPC until the writeback worker has stored some.
    pub max_retained_bytes: u64,
    /// Slices in one chunk that trigger compaction of the chunk.
    pub compact_slices: u64,
    /// Readahead window for sequential reads, bytes.
    pub readahead_bytes: u64,
    /// Replication, eviction and scrubbing.
    pub policy: TierPolicy,
    /// Purge orphans (unlinked inodes) at start. Only the process that owns the
    /// filesystem (the mount) may: a helper process running beside a mount must not free
    /// the mount's unlinked-but-open files.
    pub purge_orphans: bool,
    /// How long garbage blocks (refcount 0) are kept before they are deleted.
    pub gc_grace: std::time::Duration,
    /// Most bytes of closed files kept buffered (journaled, not yet cut into blocks) for
    /// the writeback worker to store; past it a close stores its file itself.
    pub journal_retain_bytes: u64,
    /// Use the write journal when the hottest tier is local or write-back is on (false:
    /// never, every fsync and close stores blocks on the hottest tier).
    pub write_journal: bool,
    /// Other hosts mount this filesystem too (the metadata is on a server): no write
    /// journal (a close stores blocks, so another host's open finds them), an open
    /// revalidates what this process cached of the file (close-to-open), and file locks
    /// live in the metadata (locks.rs). docs/SEMANTICS.md, "Several hosts".
    pub shared: bool,
}

impl Default for VfsConfig {
    fn default() -> Self {
        VfsConfig {
            commit_bytes: 16 << 20,
            seal_bytes: 8 << 20,
            max_inflight_bytes: 32 << 20,
            max_retained_bytes: 256 << 20,
            compact_slices: 32,
            readahead_bytes: 16 << 20,
            policy: TierPolicy::default(),
            purge_orphans: true,
            gc_grace: std::time::Duration::from_secs(2 * 3600),
            journal_retain_bytes: 64 << 20,
            write_journal: true,
            shared: false,
        }
    }
}

/// The filesystem engine one process serves.
pub struct Vfs {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) store: Arc<BlockStore>,
    pub(crate) settings: Settings,
    pub(crate) cfg: VfsConfig,
    pub(crate) handles: Handles,
    pub(crate) tiering: Arc<Tiering>,
    /// fsync and close are acknowledged from the write journal (journal.rs): the hottest
    /// tier is a local directory, or write-back was asked for.
    pub(crate) journal: bool,
    /// The process's metadata shipper, when it ships (its status joins `status()`).
    pub(crate) shipper: std::sync::OnceLock<Arc<MetaShipper>>,
    /// This process's session (0 until registered): owns its file locks.
    pub(crate) session: std::sync::atomic::AtomicU64,
    /// The (inode, lock owner) pairs this process took a lock for, with the handle of
    /// the last request: a close asks the metadata to drop locks only for those (locks.rs).
    pub(crate) lockers: parking_lot::Mutex<std::collections::HashMap<(Ino, u64), u64>>,
}

impl Vfs {
    /// Builds the engine. With `purge_orphans`, first purges the orphans no live session
    /// owns (left by a process that ended or was reaped: nobody has them open).
    pub fn new(
        meta: Arc<dyn MetaStore>,
        store: Arc<BlockStore>,
        cfg: VfsConfig,
    ) -> Result<Arc<Vfs>> {
        if cfg.purge_orphans {
            for ino in meta.unowned_orphans()? {
                meta.purge_inode(ino)?;
            }
        }
        let tiering = Tiering::new(
            meta.clone(),
            store.clone(),
            cfg.policy.clone(),
            cfg.gc_grace,
        )?;
        let local_hottest = store
            .tiers()
            .first()
            .is_some_and(|t| matches!(t.spec().kind, fvfs_tier::TierKind::Fs { .. }));
        let journal = cfg.write_journal && !cfg.shared && (cfg.policy.writeback || local_hottest);
        let vfs = Arc::new(Vfs {
            journal,
            settings: tiering.settings.clone(),
            meta,
            store,
            cfg,
            handles: Handles::default(),
            tiering,
            shipper: Default::default(),
            session: Default::default(),
            lockers: Default::default(),
        });
        let users: std::sync::Weak<dyn BlockUsers> = Arc::downgrade(&vfs) as _;
        vfs.tiering.add_users(users);
        Ok(vfs)
    }

    /// Makes `shipper` the one whose status `status()` reports (set once per process).
    pub fn attach_shipper(&self, shipper: Arc<MetaShipper>) {
        let _ = self.shipper.set(shipper);
    }

    /// The tiering of this filesystem's blocks (replication, eviction, GC, health).
    pub fn tiering(&self) -> &Arc<Tiering> {
        &self.tiering
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Makes `id` this process's session (after `AdminStore::register_session`).
    pub fn set_session(&self, id: u64) {
        self.session.store(id, std::sync::atomic::Ordering::Relaxed);
    }

    /// This process's session, 0 before one is registered.
    pub fn session(&self) -> u64 {
        self.session.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether other hosts may mount this filesystem at once ([`VfsConfig::shared`]).
    pub fn shared(&self) -> bool {
        self.cfg.shared
    }

    /// Makes every metadata operation so far durable against power loss (fsyncdir).
    pub fn sync_metadata(&self) -> Result<()> {
        Ok(self.meta.sync()?)
    }

    /// Commits every write buffer, open or retained (used at unmount); tries them all
    /// and returns the first error.
    pub async fn flush_all(&self) -> Result<()> {
        let mut first = None;
        for ino in self.handles.open_inodes() {
            if let Err(e) = self.flush_inode(ino).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub use backup::{
    backup_now, backup_stamp, is_backup_key, list_backups, prune_backups, utc_stamp, LATEST_KEY,
    META_BACKUP_KEEP, META_PREFIX,
};
pub use session::{heartbeat_of, SessionInfo, SessionWorker, DEFAULT_SESSION_TIMEOUT};
pub use ship::{MetaShipWorker, MetaShipper, ShipConfig, ShipHook, ShipStatus};
pub use spool::{Spool, SPOOL_SUFFIX};
pub use tiering::{
    BlockUsers, EvictorWorker, GcWorker, HeldPayload, HeldWriter, Placement, ReplicatorWorker,
    ScrubWorker, TierEventsWorker, TierHealth, TierPolicy, Tiering,
};
pub use trash::{TrashWorker, TRASH_PURGE_EVERY};
pub use writeback::{WritebackWorker, STOP_RETRY};
