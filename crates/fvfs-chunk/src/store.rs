//! [`BlockStore`]: stores and fetches content-addressed blocks through an ordered list
//! of tiers (hottest first), with a memory cache of plain blocks and an optional disk
//! cache of stored blocks. It knows nothing of metadata: callers say which tiers hold a
//! block (a bitmask), and the store reports what it saw on the tiers (served, missing,
//! corrupt, unreachable) as [`TierEvent`]s for the caller to record and repair.
//!
//! Invariants:
//! - every byte returned by [`BlockStore::fetch`] hashes to the requested id: copies
//!   from the disk cache and from the tier are decoded and verified; a bad cached copy
//!   is deleted and the tier is asked instead; a bad tier copy is
//!   [`ChunkError::Corrupt`], logged with the block and the tier;
//! - concurrent fetches of one id share one tier GET;
//! - a fetch tries the tiers holding the block hottest first and falls through to the
//!   next on a missing, corrupt or unreachable copy;
//! - the caches are an optimisation only: their failures never fail a call;
//! - CPU work (hashing, zstd) runs on blocking threads, never on the async workers;
//! - at most `upload_concurrency` tier PUTs run at once per store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use fvfs_tier::Tier;
use fvfs_types::{BlockId, Codec, Compression};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::cache::{DiskCache, MemCache};
use crate::codec::{decode_block, decode_block_bytes, encode_block, EncodedBlock, MAX_BLOCK_SIZE};
use crate::error::ChunkError;

/// What the metadata records about a stored block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockMeta {
    pub id: BlockId,
    /// Plain size.
    pub size: u32,
    /// Size of the stored object.
    pub stored_size: u32,
    pub codec: Codec,
}

impl From<&EncodedBlock> for BlockMeta {
    fn from(e: &EncodedBlock) -> Self {
        BlockMeta {
            id: e.id,
            size: e.size,
            stored_size: u32::try_from(e.stored.len()).unwrap_or(u32::MAX),
            codec: e.codec,
        }
    }
}

/// Settings of a [`BlockStore`].
#[derive(Clone, Debug)]
pub struct BlockStoreConfig {
    /// Compression of new blocks.
    pub compression: Compression,
    /// Byte limit of the memory cache of plain blocks (0 disables it).
    pub mem_cache_bytes: u64,
    /// Directory and byte limit of the disk cache of stored blocks.
    pub disk_cache: Option<(PathBuf, u64)>,
    /// Maximum number of concurrent tier PUTs (at least 1).
    pub upload_concurrency: usize,
}

impl Default for BlockStoreConfig {
    fn default() -> Self {
        BlockStoreConfig {
            compression: Compression::Zstd,
            mem_cache_bytes: 256 << 20,
            disk_cache: None,
            upload_concurrency: 16,
        }
    }
}

/// Cache counters since the store was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Fetches served by a cache (memory or disk).
    pub hits: u64,
    /// Fetches that went to the tier.
    pub misses: u64,
    /// Of `hits`, those served by the memory cache.
    pub mem_hits: u64,
    /// Of `hits`, those served by the disk cache.
    pub disk_hits: u64,
    pub mem_bytes: u64,
    pub disk_bytes: u64,
}

type FetchFuture = Shared<BoxFuture<'static, Result<Bytes, ChunkError>>>;

/// What a fetch observed on a tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TierEventKind {
    /// The block was read (and verified) from this tier.
    Served,
    /// The tier does not have the object.
    Missing,
    /// The tier's copy does not match the id.
    Corrupt,
    /// The tier did not answer.
    Unreachable,
}

/// One observation of a fetch, for the caller to act on (repair, promote, health).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierEvent {
    pub id: BlockId,
    pub tier: usize,
    pub kind: TierEventKind,
    pub codec: Codec,
    pub size: u32,
}

/// Block storage over one tier. Cheap to clone; all methods take `&self`.
#[derive(Clone)]
pub struct BlockStore {
    inner: Arc<Inner>,
}

struct Inner {
    tiers: Vec<Tier>,
    durable: usize,
    events: Mutex<Option<tokio::sync::mpsc::UnboundedSender<TierEvent>>>,
    compression: Compression,
    mem: MemCache,
    disk: Option<Arc<DiskCache>>,
    /// The tiers whose blocks the disk cache keeps (bit n = tier n): not a directory tier
    /// on the disk cache's own filesystem, whose blocks would only be stored twice.
    disk_cached: u32,
    uploads: Semaphore,
    inflight: Mutex<HashMap<BlockId, FetchFuture>>,
    mem_hits: AtomicU64,
    disk_hits: AtomicU64,
    misses: AtomicU64,
}

impl Inner {
    /// The disk cache, if it keeps the blocks of tier `tier`.
    fn disk_for(&self, tier: usize) -> Option<Arc<DiskCache>> {
        self.disk
            .as_ref()
            .filter(|_| self.disk_cached & (1 << tier) != 0)
            .cloned()
    }
}

/// The tiers whose blocks a disk cache in `cache_dir` keeps: every tier but a directory on
/// the same filesystem (device) as the cache, whose copy is as local as the cache's.
fn disk_cached_tiers(tiers: &[Tier], cache_dir: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| m.dev());
    let cache_dev = dev(cache_dir);
    let mut mask = 0u32;
    for (i, t) in tiers.iter().enumerate().take(32) {
        let same_disk = match &t.spec().kind {
            fvfs_tier::TierKind::Fs { root } => cache_dev.is_some() && dev(root) == cache_dev,
            _ => false,
        };
        if !same_disk {
            mask |= 1 << i;
        }
    }
    mask
}

fn task_err(e: tokio::task::JoinError) -> ChunkError {
    ChunkError::Task(e.to_string())
}

impl BlockStore {
    /// A store over one tier; opens (and indexes) the disk cache if configured.
    pub fn new(tier: Tier, cfg: BlockStoreConfig) -> Result<BlockStore, ChunkError> {
        Self::with_tiers(vec![tier], 0, cfg)
    }

    /// A store over `tiers` (hottest first); `durable` is the index of the durable tier.
    pub fn with_tiers(
        tiers: Vec<Tier>,
        durable: usize,
        cfg: BlockStoreConfig,
    ) -> Result<BlockStore, ChunkError> {
        if tiers.is_empty() || durable >= tiers.len() {
            return Err(ChunkError::Task(
                "a block store needs its durable tier".into(),
            ));
        }
        let disk = match &cfg.disk_cache {
            Some((dir, limit)) => Some(DiskCache::open_scanning(dir, *limit)?),
            None => None,
        };
        let disk_cached = match &disk {
            Some(d) => disk_cached_tiers(&tiers, d.dir()),
            None => 0,
        };
        Ok(BlockStore {
            inner: Arc::new(Inner {
                disk_cached,
                tiers,
                durable,
                events: Mutex::new(None),
                compression: cfg.compression,
                mem: MemCache::new(cfg.mem_cache_bytes),
                disk,
                uploads: Semaphore::new(cfg.upload_concurrency.max(1)),
                inflight: Mutex::new(HashMap::new()),
                mem_hits: AtomicU64::new(0),
                disk_hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        })
    }

    /// The durable tier (the source of truth).
    pub fn tier(&self) -> &Tier {
        &self.inner.tiers[self.inner.durable]
    }

    /// Every tier, hottest first.
    pub fn tiers(&self) -> &[Tier] {
        &self.inner.tiers
    }

    /// Index of the durable tier.
    pub fn durable(&self) -> usize {
        self.inner.durable
    }

    /// Sends every later [`TierEvent`] to the returned receiver (replacing an earlier one).
    pub fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<TierEvent> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.inner.events.lock() = Some(tx);
        rx
    }

    fn tier_at(&self, tier: usize) -> Result<&Tier, ChunkError> {
        self.inner
            .tiers
            .get(tier)
            .ok_or_else(|| ChunkError::Task(format!("no tier {tier}")))
    }

    /// Stores an encoded block on tier `tier` (bounded by the upload concurrency) and in
    /// the disk cache (unless the tier is a directory on the cache's own filesystem).
    pub async fn put_encoded_to(&self, enc: &EncodedBlock, tier: usize) -> Result<(), ChunkError> {
        self.put_stored_to(&enc.id, enc.stored.clone(), tier)
            .await?;
        if let Some(disk) = self.inner.disk_for(tier) {
            let (id, stored) = (enc.id, enc.stored.clone());
            let _ = tokio::task::spawn_blocking(move || disk.insert(&id, &stored)).await;
        }
        Ok(())
    }

    /// Stores an object's bytes on one tier as they are (replication, repair).
    pub async fn put_stored_to(
        &self,
        id: &BlockId,
        stored: Bytes,
        tier: usize,
    ) -> Result<(), ChunkError> {
        let t = self.tier_at(tier)?;
        let _permit = self
            .inner
            .uploads
            .acquire()
            .await
            .map_err(|e| ChunkError::Task(e.to_string()))?;
        t.put_block(id, stored).await?;
        Ok(())
    }

    /// An object's bytes on one tier, verified against `id` (by decoding with `codec`).
    pub async fn get_stored_from(
        &self,
        id: &BlockId,
        codec: Codec,
        tier: usize,
    ) -> Result<Bytes, ChunkError> {
        let stored = self.tier_at(tier)?.get_block(id).await?;
        let (id2, s2) = (*id, stored.clone());
        tokio::task::spawn_blocking(move || decode_block(&id2, codec, &s2).map(|_| ()))
            .await
            .map_err(task_err)??;
        Ok(stored)
    }

    /// Whether one tier has the block's object.
    pub async fn exists_on(&self, id: &BlockId, tier: usize) -> Result<bool, ChunkError> {
        Ok(self.tier_at(tier)?.block_exists(id).await?)
    }

    /// Deletes a block's object from one tier (eviction). Missing is Ok.
    pub async fn delete_from(&self, id: &BlockId, tier: usize) -> Result<(), ChunkError> {
        self.tier_at(tier)?.delete_block(id).await?;
        Ok(())
    }

    /// Verifies a block's copy on one tier (scrubbing, fsck).
    pub async fn verify_on(
        &self,
        id: &BlockId,
        codec: Codec,
        tier: usize,
    ) -> Result<(), ChunkError> {
        self.get_stored_from(id, codec, tier).await.map(|_| ())
    }

    /// The compression applied to new blocks.
    pub fn compression(&self) -> Compression {
        self.inner.compression
    }

    /// Encodes a block with this store's compression (CPU-bound: call from a blocking
    /// context for big blocks). Lets the caller learn the id first, check for a
    /// duplicate, then [`BlockStore::put_encoded`].
    pub fn encode(&self, plain: &[u8]) -> EncodedBlock {
        encode_block(plain, self.inner.compression)
    }

    /// Encodes on a blocking thread.
    pub async fn encode_async(&self, plain: Bytes) -> Result<EncodedBlock, ChunkError> {
        check_size(plain.len())?;
        let compression = self.inner.compression;
        tokio::task::spawn_blocking(move || encode_block(&plain, compression))
            .await
            .map_err(task_err)
    }

    /// Encodes, stores in the tier, and fills both caches.
    pub async fn upload(&self, plain: Bytes) -> Result<BlockMeta, ChunkError> {
        let enc = self.encode_async(plain.clone()).await?;
        self.put_encoded(&enc).await?;
        self.inner.mem.insert(enc.id, plain);
        Ok(BlockMeta::from(&enc))
    }

    /// Stores an encoded block in the tier (bounded by the upload concurrency) and in
    /// the disk cache.
    pub async fn put_encoded(&self, enc: &EncodedBlock) -> Result<(), ChunkError> {
        self.put_encoded_to(enc, 0).await
    }

    /// The plain bytes of a block, verified against `id`: memory cache, then disk cache,
    /// then the tier. `size` is the plain size recorded in the metadata.
    pub async fn fetch(&self, id: &BlockId, codec: Codec, size: u32) -> Result<Bytes, ChunkError> {
        self.fetch_masked(id, codec, size, 0).await
    }

    /// Like [`BlockStore::fetch`], trying only the tiers in `mask` (bit n = tier n;
    /// 0 = every tier), hottest first.
    pub async fn fetch_masked(
        &self,
        id: &BlockId,
        codec: Codec,
        size: u32,
        mask: u32,
    ) -> Result<Bytes, ChunkError> {
        if let Some(b) = self.inner.mem.get(id) {
            self.inner.mem_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(b);
        }
        let fut = {
            let mut inflight = self.inner.inflight.lock();
            match inflight.get(id) {
                Some(f) => f.clone(),
                None => {
                    // A task, so that the fetch completes (and fills the caches) even
                    // if every caller gives up; it removes its own map entry.
                    let inner = self.inner.clone();
                    let id = *id;
                    let handle = tokio::spawn(async move {
                        let _guard = InflightGuard {
                            inner: inner.clone(),
                            id,
                        };
                        fetch_uncached(&inner, id, codec, size, mask).await
                    });
                    let f = async move { handle.await.map_err(task_err)? }
                        .boxed()
                        .shared();
                    inflight.insert(id, f.clone());
                    f
                }
            }
        };
        fut.await
    }

    /// Starts fetching a block into the caches without waiting. Errors are logged at
    /// debug level only. Does nothing outside a tokio runtime or if already cached.
    pub fn prefetch(&self, id: BlockId, codec: Codec, size: u32, mask: u32) {
        if self.inner.mem.get(&id).is_some() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.clone();
        rt.spawn(async move {
            if let Err(e) = store.fetch_masked(&id, codec, size, mask).await {
                tracing::debug!(block = %id, error = %e, "prefetch failed");
            }
        });
    }

    /// Reads a block's object from the tier (bypassing the caches) and checks that it
    /// decodes to bytes hashing to `id`. Used by fsck and scrubbing.
    pub async fn verify(&self, id: &BlockId, codec: Codec) -> Result<(), ChunkError> {
        self.verify_on(id, codec, self.inner.durable).await
    }

    /// Deletes a block from every tier and both caches. Deleting a missing block is Ok.
    pub async fn delete(&self, id: &BlockId) -> Result<(), ChunkError> {
        self.inner.mem.remove(id);
        if let Some(disk) = &self.inner.disk {
            let disk = disk.clone();
            let id = *id;
            tokio::task::spawn_blocking(move || disk.remove(&id))
                .await
                .map_err(task_err)?;
        }
        for t in &self.inner.tiers {
            t.delete_block(id).await?;
        }
        Ok(())
    }

    /// Drops a block from both caches only (the tier copy stays).
    pub async fn evict_cached(&self, id: &BlockId) {
        self.inner.mem.remove(id);
        if let Some(disk) = &self.inner.disk {
            let disk = disk.clone();
            let id = *id;
            let _ = tokio::task::spawn_blocking(move || disk.remove(&id)).await;
        }
    }

    /// Drops the memory cache's blocks when it has not been used for `idle` (an idle
    /// process gives its memory back). Returns the bytes dropped.
    pub fn trim_idle(&self, idle: std::time::Duration) -> u64 {
        self.inner.mem.clear_if_idle(idle)
    }

    /// Cache counters and sizes.
    pub fn cache_stats(&self) -> CacheStats {
        let i = &self.inner;
        let mem_hits = i.mem_hits.load(Ordering::Relaxed);
        let disk_hits = i.disk_hits.load(Ordering::Relaxed);
        CacheStats {
            hits: mem_hits + disk_hits,
            misses: i.misses.load(Ordering::Relaxed),
            mem_hits,
            disk_hits,
            mem_bytes: i.mem.bytes(),
            disk_bytes: i.disk.as_ref().map_or(0, |d| d.bytes()),
        }
    }
}

/// Removes a fetch's in-flight entry when its task ends, even by panic.
struct InflightGuard {
    inner: Arc<Inner>,
    id: BlockId,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.inner.inflight.lock().remove(&self.id);
    }
}

fn check_size(len: usize) -> Result<(), ChunkError> {
    if len > MAX_BLOCK_SIZE {
        return Err(ChunkError::TooLarge {
            size: len,
            max: MAX_BLOCK_SIZE,
        });
    }
    Ok(())
}

/// The slow path of [`BlockStore::fetch`]: disk cache, then the tiers in `mask`
/// hottest first; fills the caches.
async fn fetch_uncached(
    inner: &Arc<Inner>,
    id: BlockId,
    codec: Codec,
    size: u32,
    mask: u32,
) -> Result<Bytes, ChunkError> {
    // Another fetch may have just filled it.
    if let Some(b) = inner.mem.get(&id) {
        inner.mem_hits.fetch_add(1, Ordering::Relaxed);
        return Ok(b);
    }
    if let Some(disk) = &inner.disk {
        let disk = disk.clone();
        let from_disk = tokio::task::spawn_blocking(move || {
            let stored = disk.get(&id)?;
            match decode_block(&id, codec, &stored) {
                Ok(plain) => Some(plain),
                Err(_) => {
                    tracing::warn!(block = %id, cache = %disk.dir().display(),
                        "corrupt block in the disk cache: deleted, reading from the tier");
                    disk.remove(&id);
                    None
                }
            }
        })
        .await
        .map_err(task_err)?;
        if let Some(plain) = from_disk {
            inner.disk_hits.fetch_add(1, Ordering::Relaxed);
            inner.mem.insert(id, plain.clone());
            return Ok(plain);
        }
    }
    inner.misses.fetch_add(1, Ordering::Relaxed);
    let emit = |tier: usize, kind: TierEventKind| {
        if let Some(tx) = inner.events.lock().as_ref() {
            let _ = tx.send(TierEvent {
                id,
                tier,
                kind,
                codec,
                size,
            });
        }
    };
    let mut last_err: Option<ChunkError> = None;
    let mut found = None;
    for (i, tier) in inner.tiers.iter().enumerate() {
        if mask != 0 && mask & (1 << i) == 0 {
            continue;
        }
        let stored = match tier.get_block(&id).await {
            Ok(s) => s,
            Err(e) => {
                let e = ChunkError::from(e);
                let kind = if e.is_not_found() {
                    TierEventKind::Missing
                } else {
                    tracing::warn!(block = %id, tier = %tier.display(), error = %e,
                        "tier read failed; trying the next tier");
                    TierEventKind::Unreachable
                };
                emit(i, kind);
                last_err = Some(e);
                continue;
            }
        };
        let stored2 = stored.clone();
        let decoded = tokio::task::spawn_blocking(move || decode_block_bytes(&id, codec, stored2))
            .await
            .map_err(task_err)?;
        match decoded {
            Ok(p) => {
                emit(i, TierEventKind::Served);
                found = Some((p, stored, i));
                break;
            }
            Err(e) => {
                tracing::error!(block = %id, tier = %tier.display(), ?codec,
                    stored_bytes = stored.len(),
                    "block read from the tier does not match its id: corrupt copy");
                emit(i, TierEventKind::Corrupt);
                last_err = Some(e);
            }
        }
    }
    let Some((plain, stored, from)) = found else {
        return Err(
            last_err.unwrap_or_else(|| ChunkError::Task(format!("block {id} is on no tier")))
        );
    };
    if plain.len() != size as usize {
        tracing::warn!(block = %id, expected = size, actual = plain.len(),
            "block size differs from the recorded size (content verified by id)");
    }
    inner.mem.insert(id, plain.clone());
    if let Some(disk) = inner.disk_for(from) {
        // Fire and forget: the caller need not wait for the cache write.
        tokio::task::spawn_blocking(move || disk.insert(&id, &stored));
    }
    Ok(plain)
}
