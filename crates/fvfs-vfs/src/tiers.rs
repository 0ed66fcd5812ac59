//! Tiering in the engine: where a new block goes, what reads teach us about the tiers
//! (promotion into the hot tier, repair of corrupt copies, bookkeeping of lost copies,
//! tier health), and batched access statistics for eviction.
//!
//! Invariants:
//! - A write lands on the hottest tier whose high watermark leaves room; the durable tier
//!   always has room. The block row records that tier's bit in the commit that makes the
//!   data visible, and the same commit queues `wal_pending` rows for the replica tiers.
//! - A tier bit is set only after the object was written (and, for copies, verified);
//!   it is cleared when a read finds the object missing or corrupt and unrepairable.
//! - Access statistics are kept in memory and written in batches (`flush_access`).

use crate::worker::{Worker, WorkerState};
use crate::{now_ns, Result, Vfs};
use bytes::Bytes;
use futures::future::BoxFuture;
use fvfs_chunk::{TierEvent, TierEventKind};
use fvfs_types::{BlockId, Codec, Settings, TierSettings};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Tunables of replication, eviction and scrubbing (`[upload]`, `[eviction]`).
#[derive(Clone, Debug)]
pub struct TierPolicy {
    /// Replicate once this many bytes are queued…
    pub flush_bytes: u64,
    /// …or once the oldest queued entry has waited this long.
    pub flush_interval: Duration,
    /// Concurrent copies per target tier.
    pub replicate_concurrency: usize,
    pub evict_interval: Duration,
    pub recency_weight: f64,
    pub frequency_weight: f64,
    /// Blocks per second the scrubber verifies (0 = off).
    pub scrub_blocks_per_sec: f64,
}

impl Default for TierPolicy {
    fn default() -> Self {
        TierPolicy {
            flush_bytes: 64 << 20,
            flush_interval: Duration::from_secs(10),
            replicate_concurrency: 4,
            evict_interval: Duration::from_secs(60),
            recency_weight: 0.7,
            frequency_weight: 0.3,
            scrub_blocks_per_sec: 0.0,
        }
    }
}

/// Health of one tier as last observed.
#[derive(Clone, Debug, Default)]
pub struct TierHealth {
    pub reachable: bool,
    pub last_error: Option<String>,
    pub checked_at: i64,
}

pub(crate) struct TierState {
    pub(crate) list: Vec<TierSettings>,
    pub(crate) durable: usize,
    pub(crate) replica_mask: u32,
    pub(crate) policy: TierPolicy,
    /// Stored bytes per tier (live blocks), kept current between recounts.
    usage: Vec<AtomicU64>,
    health: Mutex<Vec<TierHealth>>,
    reserve_lock: Mutex<()>,
    /// Copies in flight per target tier (replication concurrency is per tier).
    pub(crate) copy_slots: Vec<tokio::sync::Semaphore>,
    /// Tiers that passed their high watermark and are not yet under their low one.
    pub(crate) evicting: Vec<std::sync::atomic::AtomicBool>,
    access: Mutex<HashMap<BlockId, (i64, u32)>>,
    /// Bytes committed for replication since the replicator last ran.
    pub(crate) queued_bytes: AtomicU64,
    pub(crate) replicate_wake: tokio::sync::Notify,
    pub(crate) evict_wake: tokio::sync::Notify,
    pub(crate) force_flush: std::sync::atomic::AtomicBool,
}

impl TierState {
    pub(crate) fn new(settings: &Settings, policy: TierPolicy, usage: Vec<u64>) -> TierState {
        let list = settings.tier_list();
        let n = list.len();
        let per_tier = policy.replicate_concurrency.max(1);
        TierState {
            durable: settings.durable_tier(),
            replica_mask: settings.replica_mask(),
            policy,
            usage: (0..n)
                .map(|i| AtomicU64::new(usage.get(i).copied().unwrap_or(0)))
                .collect(),
            health: Mutex::new(vec![
                TierHealth {
                    reachable: true,
                    ..TierHealth::default()
                };
                n
            ]),
            reserve_lock: Mutex::new(()),
            copy_slots: (0..n)
                .map(|_| tokio::sync::Semaphore::new(per_tier))
                .collect(),
            evicting: (0..n)
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
            access: Mutex::new(HashMap::new()),
            queued_bytes: AtomicU64::new(0),
            replicate_wake: tokio::sync::Notify::new(),
            evict_wake: tokio::sync::Notify::new(),
            force_flush: std::sync::atomic::AtomicBool::new(true),
            list,
        }
    }

    pub(crate) fn usage(&self, tier: usize) -> u64 {
        self.usage[tier].load(Ordering::Relaxed)
    }
    pub(crate) fn add_usage(&self, tier: usize, bytes: i64) {
        if bytes >= 0 {
            self.usage[tier].fetch_add(bytes as u64, Ordering::Relaxed);
        } else {
            let _ = self.usage[tier].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(bytes.unsigned_abs()))
            });
        }
    }
    pub(crate) fn set_usage(&self, tier: usize, bytes: u64) {
        self.usage[tier].store(bytes, Ordering::Relaxed);
    }

    /// Picks the hottest tier with room for `bytes` more and counts them on it at once,
    /// so concurrent uploads do not all squeeze into the last free space.
    pub(crate) fn reserve(&self, bytes: u64) -> usize {
        let _one_at_a_time = self.reserve_lock.lock();
        let t = self.write_tier(bytes);
        self.add_usage(t, bytes as i64);
        t
    }

    /// The hottest tier with room (the durable tier always has room). `bytes` is the size
    /// of what is about to land, for callers that must not cross the watermark (promotion).
    pub(crate) fn write_tier(&self, bytes: u64) -> usize {
        self.pick(bytes, false)
    }

    fn pick(&self, bytes: u64, strict: bool) -> usize {
        for (i, t) in self.list.iter().enumerate() {
            if i == self.durable {
                return i;
            }
            if !self.health.lock()[i].reachable {
                continue;
            }
            // Room = under the high watermark: the write that crosses it lands here and
            // wakes the evictor, which brings the tier back under its low watermark.
            match t.high_watermark {
                Some(h) if self.usage(i) >= h || (strict && self.usage(i) + bytes > h) => continue,
                _ => return i,
            }
        }
        self.durable
    }

    /// Like `write_tier`, but a tier only has room if `bytes` fit under its watermark.
    pub(crate) fn pick_strict(&self, bytes: u64) -> usize {
        self.pick(bytes, true)
    }

    /// Whether tier `tier` passed its high watermark.
    pub(crate) fn over_high(&self, tier: usize) -> bool {
        matches!(self.list[tier].high_watermark, Some(h) if self.usage(tier) >= h)
    }

    pub(crate) fn note_access(&self, id: BlockId, now: i64) {
        let mut m = self.access.lock();
        let e = m.entry(id).or_insert((now, 0));
        e.0 = now;
        e.1 += 1;
    }

    pub(crate) fn take_access(&self) -> Vec<(BlockId, i64, u32)> {
        let m = std::mem::take(&mut *self.access.lock());
        m.into_iter().map(|(id, (t, n))| (id, t, n)).collect()
    }

    pub(crate) fn set_health(&self, tier: usize, ok: bool, err: Option<String>) {
        let mut h = self.health.lock();
        if let Some(x) = h.get_mut(tier) {
            if x.reachable != ok {
                if ok {
                    tracing::info!(tier = %self.list[tier].name, "tier reachable again");
                } else {
                    tracing::warn!(tier = %self.list[tier].name, error = ?err, "tier unreachable");
                }
            }
            x.reachable = ok;
            if err.is_some() {
                x.last_error = err;
            }
            x.checked_at = now_ns();
        }
    }

    pub(crate) fn health(&self) -> Vec<TierHealth> {
        self.health.lock().clone()
    }
}

/// Re-encodes verified plain bytes as `codec` (a copy for repair or promotion).
pub(crate) fn reencode(plain: &[u8], codec: Codec) -> Bytes {
    fvfs_chunk::encode_as(plain, codec)
}

impl Vfs {
    /// Health, usage and settings of each tier, hottest first.
    pub fn tier_report(&self) -> Vec<(TierSettings, u64, TierHealth)> {
        let h = self.tiers.health();
        self.tiers
            .list
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), self.tiers.usage(i), h[i].clone()))
            .collect()
    }

    /// Acts on what a fetch saw: promotion, repair, lost copies, health.
    pub(crate) async fn on_tier_event(&self, ev: TierEvent) -> Result<()> {
        let bit = 1u32 << ev.tier;
        match ev.kind {
            TierEventKind::Served => {
                self.tiers.set_health(ev.tier, true, None);
                // Promote only into free room: never evict to make space for a promotion.
                if ev.tier != 0 && self.tiers.pick_strict(ev.size as u64) == 0 {
                    self.copy_to_tier(ev.id, ev.codec, ev.size, 0).await?;
                }
            }
            TierEventKind::Unreachable => {
                self.tiers
                    .set_health(ev.tier, false, Some("read failed".into()));
            }
            TierEventKind::Missing => {
                // A read through a chunk map loaded before an eviction: nothing was lost.
                match self.meta.get_block(&ev.id)? {
                    Some(row) if row.tiers & bit != 0 => {}
                    _ => return Ok(()),
                }
                tracing::warn!(block = %ev.id, tier = %self.tiers.list[ev.tier].name,
                    "a copy recorded on this tier is missing");
                self.meta.set_block_tiers(&ev.id, 0, bit)?;
                self.meta.bump_counter("copies_missing", 1)?;
                if self.tiers.replica_mask & bit != 0 {
                    self.meta.queue_add(&[ev.id], bit, now_ns())?;
                    self.tiers.replicate_wake.notify_one();
                }
            }
            TierEventKind::Corrupt => {
                // The fetch went on to a good copy, which is now in the memory cache.
                let repaired = match self.store.fetch(&ev.id, ev.codec, ev.size).await {
                    Ok(plain) => {
                        let stored = reencode(&plain, ev.codec);
                        self.store
                            .put_stored_to(&ev.id, stored, ev.tier)
                            .await
                            .is_ok()
                    }
                    Err(_) => false,
                };
                if repaired {
                    tracing::warn!(block = %ev.id, tier = %self.tiers.list[ev.tier].name,
                        "corrupt copy repaired from another tier");
                    self.meta.bump_counter("corruptions_repaired", 1)?;
                } else {
                    tracing::error!(block = %ev.id, tier = %self.tiers.list[ev.tier].name,
                        "corrupt copy could not be repaired: dropped from the tier");
                    let _ = self.store.delete_from(&ev.id, ev.tier).await;
                    self.meta.set_block_tiers(&ev.id, 0, bit)?;
                    self.meta.bump_counter("corruptions_dropped", 1)?;
                    if self.tiers.replica_mask & bit != 0 {
                        self.meta.queue_add(&[ev.id], bit, now_ns())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Copies a block onto `tier` from wherever it is readable (verified), and records it.
    pub(crate) async fn copy_to_tier(
        &self,
        id: BlockId,
        codec: Codec,
        size: u32,
        tier: usize,
    ) -> Result<()> {
        let Some(row) = self.meta.get_block(&id)? else {
            return Ok(());
        };
        if row.tiers & (1 << tier) != 0 || row.refcount == 0 {
            return Ok(());
        }
        let plain = self.store.fetch_masked(&id, codec, size, row.tiers).await?;
        let stored = reencode(&plain, codec);
        let len = stored.len() as i64;
        self.store.put_stored_to(&id, stored, tier).await?;
        self.meta.set_block_tiers(&id, 1 << tier, 0)?;
        self.tiers.add_usage(tier, len);
        if self.tiers.over_high(tier) {
            self.tiers.evict_wake.notify_one();
        }
        Ok(())
    }

    /// The tiers holding every block of a file (bit n = tier n). A file without data
    /// reports the replica tiers.
    pub fn file_tiers(&self, ino: fvfs_types::Ino) -> Result<u32> {
        let blocks = self.meta.file_blocks(ino)?;
        if blocks.is_empty() {
            return Ok(self.tiers.replica_mask);
        }
        Ok(blocks.iter().fold(u32::MAX, |m, b| m & b.tiers))
    }

    /// Pins a file's blocks to the hot tier (copying them there) or unpins them.
    pub async fn pin(&self, ino: fvfs_types::Ino, pin: bool) -> Result<usize> {
        let blocks = self.meta.pin_file(ino, pin)?;
        if pin {
            for b in &blocks {
                self.copy_to_tier(b.id, b.codec, b.size, 0).await?;
            }
        }
        Ok(blocks.len())
    }

    /// Copies a file's blocks into the hot tier; `progress(bytes)` after each block.
    pub async fn warmup(
        &self,
        ino: fvfs_types::Ino,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<u64> {
        let mut done = 0;
        for b in self.meta.file_blocks(ino)? {
            self.copy_to_tier(b.id, b.codec, b.size, 0).await?;
            done += b.size as u64;
            progress(b.size as u64);
        }
        Ok(done)
    }

    /// Probes the tiers marked down; a tier that answers is used again.
    pub(crate) async fn probe_down_tiers(&self) {
        let health = self.tiers.health();
        for (i, h) in health.iter().enumerate() {
            if h.reachable {
                continue;
            }
            match self.store.tiers()[i].check().await {
                Ok(()) => self.tiers.set_health(i, true, None),
                Err(e) => self.tiers.set_health(i, false, Some(e.to_string())),
            }
        }
    }

    /// Writes the batched access statistics.
    pub(crate) fn flush_access(&self) -> Result<()> {
        let batch = self.tiers.take_access();
        if !batch.is_empty() {
            self.meta.record_access(&batch)?;
        }
        Ok(())
    }
}

/// Consumes the block store's tier events and flushes access statistics every 5 s.
pub struct TierEventsWorker {
    vfs: Weak<Vfs>,
    rx: UnboundedReceiver<TierEvent>,
    pending: Option<TierEvent>,
}

impl TierEventsWorker {
    pub fn new(vfs: &Arc<Vfs>) -> TierEventsWorker {
        TierEventsWorker {
            rx: vfs.store.subscribe(),
            vfs: Arc::downgrade(vfs),
            pending: None,
        }
    }
}

impl Worker for TierEventsWorker {
    type Error = crate::VfsError;
    fn name(&self) -> String {
        "tier-events".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            let Some(vfs) = self.vfs.upgrade() else {
                return Ok(WorkerState::Done);
            };
            if let Some(ev) = self.pending.take() {
                vfs.on_tier_event(ev).await?;
            }
            while let Ok(ev) = self.rx.try_recv() {
                vfs.on_tier_event(ev).await?;
            }
            vfs.flush_access()?;
            vfs.probe_down_tiers().await;
            Ok(WorkerState::Idle)
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), self.rx.recv()).await
            {
                self.pending = Some(ev);
            }
        })
    }
}
