//! The block layer: cutting byte streams into content-defined blocks, encoding them
//! (BLAKE3 id of the plain bytes, optional zstd), caching them in memory and on local
//! disk, and storing them in a [`fvfs_tier::Tier`].
//!
//! Modules: [`cdc`] (FastCDC cut points), [`codec`] (id, compression, verification),
//! [`cache`] (memory and disk caches), [`store`] ([`BlockStore`]), [`error`].
//!
//! Invariants: a block's id is BLAKE3 of its plain bytes and every block handed out
//! has been verified against it; this crate knows nothing of files, inodes or the
//! metadata store (it depends on `fvfs-types` and `fvfs-tier` only).

pub mod cache;
pub mod cdc;
pub mod codec;
pub mod error;
pub mod store;

pub use cache::{DiskCache, MemCache};
pub use cdc::{cut, effective_params};
pub use codec::{
    block_id, decode_block, encode_as, encode_block, EncodedBlock, MAX_BLOCK_SIZE, ZSTD_LEVEL,
};
pub use codec::{compress_bytes, compress_file, decompress_bytes};
pub use error::ChunkError;
pub use store::{BlockMeta, BlockStore, BlockStoreConfig, CacheStats, TierEvent, TierEventKind};
