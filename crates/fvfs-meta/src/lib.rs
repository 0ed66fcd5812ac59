//! The metadata layer: the namespace (inodes, dentries, xattrs), file layout (chunks →
//! slices → block references), the block table with refcounts and tier bitmask, the
//! replication queue, sessions and settings.
//!
//! Invariants every implementation keeps:
//! - One call is one transaction: after a crash the store is before or after it.
//! - A slice, its block references, the refcount increments and the new file size become
//!   visible together (`commit`).
//! - `blocks.refcount` equals the number of slice references to the block plus its holder
//!   rows (`HolderStore`); a block with refcount 0 and no holder is garbage and only
//!   `forget_blocks` removes its row.
//! - An inode whose link count reaches 0 is an *orphan*: its data stays until
//!   `purge_inode`, so unlinked-but-open files stay readable.
//!
//! Layout: `store/` (the [`MetaStore`] trait and its sub-traits, one file per concern),
//! `types.rs`, `alloc.rs` (st_blocks), `url.rs` (metadata URLs), `sql/` (the operations,
//! written once for every engine, each sub-trait in the file of its concern), `sqlite/`
//! (the embedded engine: schema and migrations, snapshots, log shipping) and `postgres/`
//! (the shared engine, for several hosts).

pub mod alloc;
pub mod dump;
mod error;
pub mod postgres;
pub mod sql;
pub mod sqlite;
mod store;
pub mod testing;
mod types;
mod url;

pub use error::{DbError, MetaError, Result};
pub use store::{
    hsm_holder_key, open, AdminStore, AudioSpan, CheckStore, DataStore, DumpStore, FileLock,
    HolderStore, HsmDir, HsmFile, HsmRequest, HsmState, HsmStore, JournalStore, LockKind,
    LockOwner, LockStore, MetaStore, MusicCacheStore, MusicCacheTotals, MusicCollection,
    MusicEntry, MusicNode, MusicOrigin, MusicStamp, MusicStore, MusicTrack, MusicView, MusicWindow,
    NamespaceStore, TierStore, HSM_HOLDER, MUSIC_HOLDER, MUSIC_ROOT,
};

/// The metadata traits, for callers that call methods on a concrete store (methods of a
/// `dyn MetaStore` need no import): `use fvfs_meta::prelude::*;`.
pub mod prelude {
    pub use crate::store::{
        AdminStore, CheckStore, DataStore, DumpStore, HolderStore, HsmStore, JournalStore,
        LockStore, MetaStore, MusicCacheStore, MusicStore, NamespaceStore, TierStore,
    };
}
pub use types::*;
pub use url::MetaUrl;
