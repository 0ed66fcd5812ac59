//! [`MusicCacheStore`]: the music face's content cache. The face caches its origins'
//! bytes in *windows* (a fixed-size range of one *piece*: a track's tag-free audio, its
//! head or tail, or a whole file), each window stored as blocks held by the holder
//! (`MUSIC_HOLDER`, window key) — see `HolderStore`. A row here says which blocks make a
//! window, in order, and when it was last read, for the LRU.
//!
//! Invariants:
//! - A row exists only while its holder holds its blocks: `music_cache_put` is called
//!   after the hold committed, and the face releases the holder after
//!   `music_cache_remove` (a crash between leaves a holder without a row, which the next
//!   `music_cache_orphans` pass releases; never a row whose blocks may be gone).
//! - `bytes` is the window's length; the sum over rows is what the size limit bounds.

use crate::error::Result;
use crate::types::BlockRef;

/// The holder kind of the music cache's windows.
pub const MUSIC_HOLDER: &str = "music";

/// One cached window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MusicWindow {
    /// The piece's key (32 bytes) followed by the window's index (8 bytes, big-endian).
    pub key: Vec<u8>,
    /// Its blocks, in order; their lengths add up to `bytes`.
    pub blocks: Vec<BlockRef>,
    pub bytes: u64,
    pub last_access: i64,
}

/// The totals `cache.stats` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MusicCacheTotals {
    pub windows: u64,
    /// Block references over every window.
    pub blocks: u64,
    /// Distinct blocks held by the music cache.
    pub unique_blocks: u64,
    pub bytes: u64,
}

pub trait MusicCacheStore {
    /// The window `key`, if cached.
    fn music_cache_get(&self, key: &[u8]) -> Result<Option<MusicWindow>>;
    /// Records (or replaces) a window whose blocks its holder now holds.
    fn music_cache_put(&self, w: &MusicWindow) -> Result<()>;
    /// Sets the last access of windows (a batch of reads).
    fn music_cache_touch(&self, keys: &[(Vec<u8>, i64)]) -> Result<()>;
    /// Removes a window's row (the face then releases its holder); false when absent.
    fn music_cache_remove(&self, key: &[u8]) -> Result<bool>;
    /// The least recently read windows, oldest first, at most `limit`.
    fn music_cache_oldest(&self, limit: usize) -> Result<Vec<MusicWindow>>;
    /// The keys of the windows of pieces whose key is in `pieces` (a cache clear).
    fn music_cache_keys_of(&self, pieces: &[[u8; 32]]) -> Result<Vec<Vec<u8>>>;
    fn music_cache_totals(&self) -> Result<MusicCacheTotals>;
    /// Keys held by the music holder that have no row (a crash between a hold and its
    /// row, or between a row's removal and the release), at most `limit`.
    fn music_cache_orphans(&self, limit: usize) -> Result<Vec<Vec<u8>>>;
}
