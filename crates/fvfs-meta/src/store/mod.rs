//! The [`MetaStore`] trait: every metadata operation fvfs performs, each one atomic,
//! grouped by concern into sub-traits, one file each:
//!
//! - [`NamespaceStore`] (`namespace.rs`): inodes, entries, links, rename, xattrs, orphans;
//! - [`DataStore`] (`data.rs`): file content (chunks, slices), block rows, refcounts,
//!   garbage blocks;
//! - [`TierStore`] (`tiers.rs`): tier bits, the replication queue, usage, eviction,
//!   access statistics, pins;
//! - [`AdminStore`] (`admin.rs`): settings, lifecycle, durability, snapshots, sessions,
//!   counters, statistics;
//! - [`CheckStore`] (`check.rs`): the consistency checks and repairs behind `fvfsd fsck`;
//! - [`JournalStore`] (`journal.rs`): the write journal (acknowledged bytes not yet in
//!   blocks);
//! - [`LockStore`] (`locks.rs`): fcntl and flock locks every host sees;
//! - [`HolderStore`] (`holders.rs`): block references held by something other than a
//!   file (archived payloads, caches of other faces);
//! - [`HsmStore`] (`hsm.rs`): the HSM face's catalog of archived native files;
//! - [`MusicStore`] (`music.rs`): the music face's index (origins, tracks, views).
//! - [`MusicCacheStore`] (`music_cache.rs`): the music face's content cache (windows).
//! - [`DumpStore`] (`dump.rs`): the whole metadata to and from the JSON dump.
//!
//! [`MetaStore`] is their union, implemented for every type that implements them all, so
//! `Arc<dyn MetaStore>` reaches every method. A new concern (a face with its own tables)
//! adds its own sub-trait and file and one bound here; the others do not change. Callers
//! that call methods on a concrete store write `use fvfs_meta::prelude::*;`.
//!
//! The traits are synchronous and object-safe: SQLite is in-process, and the PostgreSQL
//! engine drives its client's futures on a runtime of its own behind the same signatures.
//! Names are raw bytes (POSIX names need not be UTF-8). Permission checks are the
//! caller's (fvfs-vfs); the store enforces only structural rules (ENOTEMPTY, EEXIST, …).

mod admin;
mod check;
mod data;
mod dump;
mod holders;
mod hsm;
mod journal;
mod locks;
mod music;
mod music_cache;
mod namespace;
mod tiers;

pub use admin::AdminStore;
pub use check::CheckStore;
pub use data::DataStore;
pub use dump::DumpStore;
pub use holders::HolderStore;
pub use hsm::{hsm_holder_key, HsmDir, HsmFile, HsmRequest, HsmState, HsmStore, HSM_HOLDER};
pub use journal::JournalStore;
pub use locks::{FileLock, LockKind, LockOwner, LockStore};
pub use music::{
    AudioSpan, MusicCollection, MusicEntry, MusicNode, MusicOrigin, MusicStamp, MusicStore,
    MusicTrack, MusicView, MUSIC_ROOT,
};
pub use music_cache::{MusicCacheStore, MusicCacheTotals, MusicWindow, MUSIC_HOLDER};
pub use namespace::NamespaceStore;
pub use tiers::TierStore;

use crate::error::Result;
use crate::url::MetaUrl;
use std::sync::Arc;

/// Every metadata operation: the union of the sub-traits.
pub trait MetaStore:
    NamespaceStore
    + DataStore
    + JournalStore
    + LockStore
    + TierStore
    + AdminStore
    + CheckStore
    + HolderStore
    + HsmStore
    + MusicStore
    + MusicCacheStore
    + DumpStore
    + Send
    + Sync
{
}

impl<T> MetaStore for T where
    T: NamespaceStore
        + DataStore
        + JournalStore
        + LockStore
        + TierStore
        + AdminStore
        + CheckStore
        + HolderStore
        + HsmStore
        + MusicStore
        + MusicCacheStore
        + DumpStore
        + Send
        + Sync
{
}

/// Opens the store a URL names. `create` allows creating a new, empty database (SQLite)
/// or schema (PostgreSQL).
pub fn open(url: &str, create: bool) -> Result<Arc<dyn MetaStore>> {
    match MetaUrl::parse(url)? {
        MetaUrl::Sqlite(path) => Ok(Arc::new(crate::sqlite::SqliteStore::open(&path, create)?)),
        u @ MetaUrl::Postgres(_) => {
            let MetaUrl::Postgres(raw) = &u else {
                unreachable!("matched above")
            };
            Ok(Arc::new(crate::postgres::PgStore::open(
                raw,
                u.display(),
                create,
            )?))
        }
    }
}
