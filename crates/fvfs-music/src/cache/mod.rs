//! [`MusicCache`]: the music face's copy of its origins' bytes, so that playback goes on
//! when every origin is offline. A track's bytes are split into *pieces* (its tag-free
//! audio, the head and tail around it, or the whole file; see [`pieces`]), each piece
//! into fixed *windows* of [`CacheConfig::window`] bytes counted from the piece's start.
//! A window is fetched from the best origin on the first read that needs it, cut into
//! content-addressed blocks and stored in the engine's hottest tier, held by the holder
//! (`music`, window key) so that GC and tier eviction leave it alone (`Tiering::
//! put_cached`); its row (`MusicCacheStore`) lists its blocks and its last read.
//!
//! Invariants:
//! - A window key is the piece key (32 bytes) then the window index (8 bytes,
//!   big-endian). Piece keys are derived from content identities (the audio id, the
//!   quick id), never from an origin or a path: copies on several origins share one
//!   cached copy, and a tag edit that leaves the audio bytes alone leaves the audio
//!   piece's key, and so its cached windows, unchanged (delta sync).
//! - A row is written after its blocks are held, and removed before they are released:
//!   a reader never follows a row to released blocks. A read that finds a block it cannot
//!   read or verify (corrupt, lost) fetches the window again from an origin and rewrites
//!   its objects; a window released under a reader is fetched again as a miss.
//! - The bytes of all windows are kept under `limit_bytes`: after each new window the
//!   least recently read windows are released until the total is at most 90 % of it.
//!   Reads update the LRU in batches (at most [`TOUCH_BATCH`] pending, always flushed
//!   before an eviction picks its victims).
//! - One fetch per window at a time: concurrent misses of one window wait for the first.

mod pieces;

pub use pieces::{pieces, whole_file, Piece, PieceKind};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use fvfs_meta::{MetaStore, MusicWindow, MUSIC_HOLDER};
use fvfs_vfs::tiering::Tiering;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::origin::OriginError;

/// Default window size: large enough that a sequential read makes few origin requests,
/// small enough that the first byte of a track does not wait for much more.
pub const DEFAULT_WINDOW: u64 = 4 << 20;
/// Default size limit of the cache.
pub const DEFAULT_LIMIT: u64 = 10 << 30;
/// Pending LRU updates flushed at once.
pub const TOUCH_BATCH: usize = 256;

/// Why a cached read failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The window is not cached and no origin could give it (offline, gone, changed).
    #[error("not cached, and no origin could serve it: {0}")]
    Origin(#[from] OriginError),
    /// The engine could not store or read the window's blocks.
    #[error("music cache storage: {0}")]
    Storage(#[from] fvfs_vfs::VfsError),
    #[error("music cache index: {0}")]
    Meta(#[from] fvfs_meta::MetaError),
    /// An origin returned a window of another length than the index says.
    #[error("the origin returned {got} bytes of a window of {want}: the file changed since the last scan")]
    Changed { want: u64, got: u64 },
}

/// Where a missing window is fetched from: the origins holding the track.
pub trait WindowSource: Send + Sync {
    /// `len` bytes at `offset` of the origin file (exactly, or an error).
    fn fetch(&self, offset: u64, len: u64) -> BoxFuture<'_, Result<Bytes, OriginError>>;
}

/// Cache settings.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    pub limit_bytes: u64,
    pub window: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            limit_bytes: DEFAULT_LIMIT,
            window: DEFAULT_WINDOW,
        }
    }
}

/// Counters since the cache was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheCounters {
    /// Window reads served from the cache.
    pub hits: u64,
    /// Window reads that fetched from an origin.
    pub misses: u64,
    /// Bytes fetched from origins into the cache.
    pub origin_bytes: u64,
    /// Cached windows that failed to read or verify and were fetched again.
    pub refetched: u64,
    /// Windows released to stay under the limit.
    pub evicted: u64,
}

/// The music face's content cache (see the module docs).
pub struct MusicCache {
    tiering: Arc<Tiering>,
    meta: Arc<dyn MetaStore>,
    cfg: CacheConfig,
    hits: AtomicU64,
    misses: AtomicU64,
    origin_bytes: AtomicU64,
    refetched: AtomicU64,
    evicted: AtomicU64,
    /// Bytes of every window (from the rows at open, then kept up to date).
    size: AtomicU64,
    touched: Mutex<HashMap<Vec<u8>, i64>>,
    fetching: Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
    evicting: tokio::sync::Mutex<()>,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The key of window `index` of `piece`.
pub fn window_key(piece: &[u8; 32], index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(40);
    k.extend_from_slice(piece);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

impl MusicCache {
    /// The cache over the engine's tiers. Releases holders left without a row by a
    /// crash (see the invariants).
    pub fn open(
        tiering: Arc<Tiering>,
        meta: Arc<dyn MetaStore>,
        cfg: CacheConfig,
    ) -> Result<MusicCache, CacheError> {
        let totals = meta.music_cache_totals()?;
        let cache = MusicCache {
            tiering,
            meta,
            cfg: CacheConfig {
                window: cfg.window.max(64 << 10),
                ..cfg
            },
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            origin_bytes: AtomicU64::new(0),
            refetched: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            size: AtomicU64::new(totals.bytes),
            touched: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            evicting: tokio::sync::Mutex::new(()),
        };
        loop {
            let orphans = cache.meta.music_cache_orphans(256)?;
            if orphans.is_empty() {
                break;
            }
            for k in orphans {
                cache.tiering.release_held(MUSIC_HOLDER, &k)?;
            }
        }
        Ok(cache)
    }

    pub fn config(&self) -> CacheConfig {
        self.cfg
    }

    pub fn counters(&self) -> CacheCounters {
        CacheCounters {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            origin_bytes: self.origin_bytes.load(Ordering::Relaxed),
            refetched: self.refetched.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    /// Bytes of every cached window.
    pub fn size_bytes(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// The totals of the index (windows, block references, distinct blocks, bytes).
    pub fn totals(&self) -> Result<fvfs_meta::MusicCacheTotals, CacheError> {
        self.flush_touches()?;
        Ok(self.meta.music_cache_totals()?)
    }

    /// Whether every window of `[offset, offset + len)` of `piece` is cached.
    pub fn is_cached(&self, piece: &Piece, offset: u64, len: u64) -> Result<bool, CacheError> {
        for (idx, _, _) in self.windows_of(piece, offset, len) {
            if self
                .meta
                .music_cache_get(&window_key(&piece.key, idx))?
                .is_none()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `(index, offset in window, len)` of each window `[offset, offset + len)` of
    /// `piece` touches (cut at the piece's end).
    fn windows_of(&self, piece: &Piece, offset: u64, len: u64) -> Vec<(u64, u64, u64)> {
        let w = self.cfg.window;
        let end = offset.saturating_add(len).min(piece.len);
        let mut out = Vec::new();
        let mut pos = offset;
        while pos < end {
            let idx = pos / w;
            let in_w = pos - idx * w;
            let n = (w - in_w).min(end - pos);
            out.push((idx, in_w, n));
            pos += n;
        }
        out
    }

    /// Length of window `idx` of `piece`.
    fn window_len(&self, piece: &Piece, idx: u64) -> u64 {
        let start = idx * self.cfg.window;
        self.cfg.window.min(piece.len.saturating_sub(start))
    }

    /// `[offset, offset + len)` of `piece` (offsets within the piece), from the cache,
    /// fetching missing windows from `src`.
    pub async fn read(
        &self,
        piece: &Piece,
        offset: u64,
        len: u64,
        src: &dyn WindowSource,
    ) -> Result<Bytes, CacheError> {
        let spans = self.windows_of(piece, offset, len);
        if spans.len() == 1 {
            let (idx, at, n) = spans[0];
            return self.read_window(piece, idx, at, n, src).await;
        }
        let mut out = BytesMut::with_capacity(len as usize);
        for (idx, at, n) in spans {
            out.extend_from_slice(&self.read_window(piece, idx, at, n, src).await?);
        }
        Ok(out.freeze())
    }

    /// Makes window `idx` of `piece` ready for a reader (prefetch): a missing window is
    /// fetched into the cache; a cached one has its blocks read into the block store's
    /// memory, so that reading it from disk overlaps serving the window before it.
    pub async fn warm(
        &self,
        piece: &Piece,
        idx: u64,
        src: &dyn WindowSource,
    ) -> Result<(), CacheError> {
        if idx * self.cfg.window >= piece.len {
            return Ok(());
        }
        let key = window_key(&piece.key, idx);
        if self.fetching.lock().contains_key(&key) {
            // Being fetched already: a second wait would only hold a prefetch slot.
            return Ok(());
        }
        match self.meta.music_cache_get(&key)? {
            Some(w) => self.tiering.prefetch_held(&w.blocks)?,
            None => {
                self.fill(piece, idx, &key, src, false).await?;
            }
        }
        Ok(())
    }

    /// `[at, at + n)` of window `idx`.
    async fn read_window(
        &self,
        piece: &Piece,
        idx: u64,
        at: u64,
        n: u64,
        src: &dyn WindowSource,
    ) -> Result<Bytes, CacheError> {
        let key = window_key(&piece.key, idx);
        if let Some(w) = self.meta.music_cache_get(&key)? {
            match self.read_cached(&w, at, n).await {
                Ok(b) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::cache_hit();
                    self.touch(&key)?;
                    return Ok(b);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a cached music window does not read back; fetching it again");
                    let data = self.fill(piece, idx, &key, src, true).await?;
                    return Ok(slice(&data, at, n));
                }
            }
        }
        let data = self.fill(piece, idx, &key, src, false).await?;
        Ok(slice(&data, at, n))
    }

    /// `[at, at + n)` of a cached window, reading only the blocks it covers.
    async fn read_cached(
        &self,
        w: &MusicWindow,
        at: u64,
        n: u64,
    ) -> Result<Bytes, fvfs_vfs::VfsError> {
        let mut pos = 0u64;
        let mut first = None;
        let mut sel = Vec::new();
        for r in &w.blocks {
            let end = pos + u64::from(r.len);
            if end > at && pos < at + n {
                first.get_or_insert(pos);
                sel.push(*r);
            }
            pos = end;
        }
        let parts = self
            .tiering
            .read_held_blocks(MUSIC_HOLDER, &w.key, &sel)
            .await?;
        let base = first.unwrap_or(0);
        if parts.len() == 1 {
            return Ok(slice(&parts[0], at - base, n));
        }
        let mut buf = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
        for p in &parts {
            buf.extend_from_slice(p);
        }
        Ok(slice(&buf.freeze(), at - base, n))
    }

    /// Fetches window `idx` from `src`, stores and records it; returns its bytes. With
    /// `rewrite`, the window's cached copy failed: its objects are written again.
    async fn fill(
        &self,
        piece: &Piece,
        idx: u64,
        key: &[u8],
        src: &dyn WindowSource,
        rewrite: bool,
    ) -> Result<Bytes, CacheError> {
        let lock = self
            .fetching
            .lock()
            .entry(key.to_vec())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        // Waited behind another fill of this window: it may have just rewritten it.
        let (guard, waited) = match lock.try_lock() {
            Ok(g) => (g, false),
            Err(_) => (lock.lock().await, true),
        };
        let res = self
            .fill_locked(piece, idx, key, src, rewrite, waited)
            .await;
        drop(guard);
        {
            let mut f = self.fetching.lock();
            if Arc::strong_count(&lock) <= 2 {
                f.remove(key);
            }
        }
        let (data, added) = res?;
        if added {
            self.evict_over_limit().await?;
        }
        Ok(data)
    }

    async fn fill_locked(
        &self,
        piece: &Piece,
        idx: u64,
        key: &[u8],
        src: &dyn WindowSource,
        rewrite: bool,
        waited: bool,
    ) -> Result<(Bytes, bool), CacheError> {
        // Another reader may have filled (or repaired) it while this one waited: one
        // fetch per window, even when several readers found it missing or corrupt. The
        // first look may join a block read that began before that repair (the block
        // store shares reads in flight) and see the old copy: after a wait, look twice.
        for _ in 0..if waited { 2 } else { 1 } {
            if let Some(w) = self.meta.music_cache_get(key)? {
                if let Ok(b) = self.read_cached(&w, 0, w.bytes).await {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok((b, false));
                }
            }
        }
        let want = self.window_len(piece, idx);
        let at = piece.start + idx * self.cfg.window;
        if rewrite {
            self.refetched.fetch_add(1, Ordering::Relaxed);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cache_miss();
        let data = src.fetch(at, want).await?;
        self.origin_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if data.len() as u64 != want {
            return Err(CacheError::Changed {
                want,
                got: data.len() as u64,
            });
        }
        let old = self.meta.music_cache_get(key)?.map_or(0, |w| w.bytes);
        let blocks = self
            .tiering
            .put_cached(MUSIC_HOLDER, key, data.clone(), rewrite)
            .await?;
        self.meta.music_cache_put(&MusicWindow {
            key: key.to_vec(),
            blocks,
            bytes: want,
            last_access: now_ns(),
        })?;
        self.size.fetch_add(want, Ordering::Relaxed);
        if old > 0 {
            let cur = self.size_bytes();
            self.size.fetch_sub(old.min(cur), Ordering::Relaxed);
        }
        crate::metrics::cache_size(self.size_bytes());
        Ok((data, old == 0))
    }

    fn touch(&self, key: &[u8]) -> Result<(), CacheError> {
        let full = {
            let mut t = self.touched.lock();
            t.insert(key.to_vec(), now_ns());
            t.len() >= TOUCH_BATCH
        };
        if full {
            self.flush_touches()?;
        }
        Ok(())
    }

    /// Writes the pending LRU updates.
    pub fn flush_touches(&self) -> Result<(), CacheError> {
        let batch: Vec<(Vec<u8>, i64)> = self.touched.lock().drain().collect();
        self.meta.music_cache_touch(&batch)?;
        Ok(())
    }

    /// Releases the least recently read windows while the cache is over its limit.
    async fn evict_over_limit(&self) -> Result<(), CacheError> {
        if self.size_bytes() <= self.cfg.limit_bytes {
            return Ok(());
        }
        let _one = self.evicting.lock().await;
        self.flush_touches()?;
        let target = self.cfg.limit_bytes / 10 * 9;
        while self.size_bytes() > target {
            let oldest = self.meta.music_cache_oldest(64)?;
            if oldest.is_empty() {
                break;
            }
            for w in oldest {
                if self.size_bytes() <= target {
                    break;
                }
                self.drop_window(&w.key, w.bytes)?;
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Removes one window: its row, then its holder.
    fn drop_window(&self, key: &[u8], bytes: u64) -> Result<(), CacheError> {
        if self.meta.music_cache_remove(key)? {
            let cur = self.size_bytes();
            self.size.fetch_sub(bytes.min(cur), Ordering::Relaxed);
        }
        self.tiering.release_held(MUSIC_HOLDER, key)?;
        Ok(())
    }

    /// Drops every cached window of the pieces `keys` (every window with None); returns
    /// the windows dropped.
    pub fn clear(&self, keys: Option<&[[u8; 32]]>) -> Result<u64, CacheError> {
        self.flush_touches()?;
        let mut n = 0;
        match keys {
            Some(pieces) => {
                for chunk in pieces.chunks(256) {
                    for k in self.meta.music_cache_keys_of(chunk)? {
                        let bytes = self.meta.music_cache_get(&k)?.map_or(0, |w| w.bytes);
                        self.drop_window(&k, bytes)?;
                        n += 1;
                    }
                }
            }
            None => loop {
                let batch = self.meta.music_cache_oldest(256)?;
                if batch.is_empty() {
                    break;
                }
                for w in batch {
                    self.drop_window(&w.key, w.bytes)?;
                    n += 1;
                }
            },
        }
        Ok(n)
    }
}

fn slice(b: &Bytes, at: u64, n: u64) -> Bytes {
    let start = (at as usize).min(b.len());
    let end = (at.saturating_add(n) as usize).min(b.len());
    b.slice(start..end)
}
