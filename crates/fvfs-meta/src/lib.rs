//! The metadata layer: the namespace (inodes, dentries, xattrs), file layout (chunks →
//! slices → block references), the block table with refcounts and tier bitmask, the
//! replication queue, sessions and settings.
//!
//! Invariants every implementation keeps:
//! - One call is one transaction: after a crash the store is before or after it.
//! - A slice, its block references, the refcount increments and the new file size become
//!   visible together (`commit`).
//! - `blocks.refcount` equals the number of slice references to the block; a block with
//!   refcount 0 is garbage and only `take_garbage`/`forget_blocks` remove its row.
//! - An inode whose link count reaches 0 is an *orphan*: its data stays until
//!   `purge_inode`, so unlinked-but-open files stay readable.
//!
//! Layout: `store.rs` (the [`MetaStore`] trait), `types.rs`, `alloc.rs` (st_blocks),
//! `url.rs` (metadata URLs), `sqlite/` (the embedded implementation: schema and
//! migrations, namespace ops, data ops, admin ops).

pub mod alloc;
mod error;
pub mod sqlite;
mod store;
mod types;
mod url;

pub use error::{MetaError, Result};
pub use store::{open, MetaStore};
pub use types::*;
pub use url::MetaUrl;
