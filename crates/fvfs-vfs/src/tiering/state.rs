//! The in-memory state of the tiers: the policy, where a new block goes (the hottest
//! tier under its high watermark), usage per tier, health, the replicator's and
//! evictor's wake-ups, and batched access statistics.
//!
//! Invariants:
//! - A write lands on the hottest reachable tier whose high watermark leaves room; the
//!   durable tier always has room. `reserve` counts the bytes at once, so concurrent
//!   uploads do not all squeeze into the last free space.
//! - Usage is the live blocks' stored bytes per tier, recounted from the metadata by
//!   each eviction pass and kept current between passes.
//! - Access statistics are kept in memory and written in batches (`flush_access`).

use crate::now_ns;
use fvfs_types::{BlockId, Settings, TierSettings};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Tunables of replication, eviction, scrubbing and metadata shipping (`[upload]`,
/// `[eviction]`, `[backup]`).
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
    /// Write-back: acknowledge fsync and close from the local write journal even when the
    /// hottest tier is remote (with a local hottest tier the journal is always used).
    pub writeback: bool,
    /// Continuous metadata shipping to the durable tier.
    pub meta_ship: crate::ShipConfig,
    /// Days deleted and replaced files stay in `/.trash` (trash.rs); 0 = no trash. The
    /// engine's default is 0; fvfsd's configuration file defaults to 1.
    pub trash_days: u32,
    /// How long a session may go without a heartbeat before another host ends it
    /// (session.rs; `[sessions] timeout_secs`).
    pub session_timeout: Duration,
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
            writeback: false,
            meta_ship: crate::ShipConfig::default(),
            trash_days: 0,
            session_timeout: crate::DEFAULT_SESSION_TIMEOUT,
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
    /// When a writer last wrote through this process (ns since the epoch; 0: never).
    foreground_at: std::sync::atomic::AtomicI64,
    /// While writers are busy, copies pass this gate one at a time (`yield_to_writers`).
    yield_gate: tokio::sync::Semaphore,
}

/// Writers count as busy for this long after their last write.
const FOREGROUND_WINDOW: Duration = Duration::from_millis(200);

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
            foreground_at: std::sync::atomic::AtomicI64::new(0),
            yield_gate: tokio::sync::Semaphore::new(1),
            list,
        }
    }

    /// A writer wrote now (called on the write path: one relaxed store, skipped when the
    /// stamp is under a millisecond old).
    pub(crate) fn note_foreground(&self) {
        let now = crate::now_ns();
        if now - self.foreground_at.load(Ordering::Relaxed) > 1_000_000 {
            self.foreground_at.store(now, Ordering::Relaxed);
        }
    }

    /// Whether no writer wrote through this process for `d`.
    pub(crate) fn writers_idle_for(&self, d: Duration) -> bool {
        crate::now_ns() - self.foreground_at.load(Ordering::Relaxed) >= d.as_nanos() as i64
    }

    /// Replication yields to writers: while one wrote in the last 200 ms, copies go one at
    /// a time (the returned permit), so the two cores of a small host serve the writer
    /// first; never zero, so a writer that never stops cannot starve the durable copy.
    pub(crate) async fn yield_to_writers(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        if !self.writers_idle_for(FOREGROUND_WINDOW) {
            self.yield_gate.acquire().await.ok()
        } else {
            None
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> TierState {
        let settings = Settings {
            uuid: "6f1c1d6e-0000-4000-8000-00000000000b".parse().unwrap(),
            name: "t".into(),
            format_version: fvfs_types::FORMAT_VERSION,
            cdc: Default::default(),
            compression: fvfs_types::Compression::Zstd,
            storage: vec!["/tmp/a".into(), "/tmp/b".into()],
            created: 0,
            tiers: vec![],
        };
        TierState::new(&settings, TierPolicy::default(), vec![])
    }

    /// Copies pass one at a time while a writer is busy, and all at once otherwise.
    #[tokio::test]
    async fn replication_yields_to_a_busy_writer() {
        let s = state();
        let (a, b) = (s.yield_to_writers().await, s.yield_to_writers().await);
        assert!(a.is_none() && b.is_none(), "no writer yet: no gate");
        s.note_foreground();
        let first = s.yield_to_writers().await;
        assert!(first.is_some());
        let second = tokio::time::timeout(Duration::from_millis(50), s.yield_to_writers()).await;
        assert!(
            second.is_err(),
            "a second copy waits while the first holds the gate"
        );
        drop(first);
        assert!(s.yield_to_writers().await.is_some());
    }
}
