//! Tags and audio properties of a track, read through a ranged, block-caching reader.
//!
//! Layout: `ranged.rs` the [`RangedReader`] (`Read + Seek` over a
//! [`RangeSource`](crate::source::RangeSource), aligned blocks, LRU, request and byte
//! counters).

mod ranged;

pub use ranged::{RangedReader, DEFAULT_BLOCK_SIZE, DEFAULT_MAX_BLOCKS};
