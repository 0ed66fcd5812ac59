//! Eviction by watermarks and the scrubber.
//!
//! Eviction: when a non-durable tier holds more than its high watermark, its blocks are
//! removed lowest score first until it is under the low watermark, where
//! `score = recency_weight / seconds_since_access + frequency_weight × accesses_30d`
//! (accesses count as 0 once the last one is over 30 days old). Only blocks whose durable
//! bit is set and that no pinned file references are candidates (the query enforces it);
//! blocks a registered user has in use now (`BlockUsers`: the files open now) go last.
//!
//! Scrubbing: blocks are re-read from every tier that holds them at a bounded rate and
//! verified against their id; a corrupt copy is repaired from a good one, a missing copy
//! is un-recorded and re-queued for replication when the tier must hold it.

use super::Tiering;
use crate::worker::{Worker, WorkerState};
use crate::{now_ns, Result};
use futures::future::BoxFuture;
use fvfs_meta::EvictCandidate;
use fvfs_types::BlockId;
use std::sync::{Arc, Weak};
use std::time::Duration;

const THIRTY_DAYS_NS: i64 = 30 * 86_400 * 1_000_000_000;

pub(crate) fn score(c: &EvictCandidate, now: i64, recency: f64, frequency: f64) -> f64 {
    let age_ns = (now - c.last_access).max(1_000_000_000);
    let secs = age_ns as f64 / 1e9;
    let accesses = if age_ns > THIRTY_DAYS_NS {
        0.0
    } else {
        c.accesses as f64
    };
    recency / secs + frequency * accesses
}

impl Tiering {
    /// Brings `tier` under its low watermark if it is over its high one. Returns the
    /// number of blocks evicted.
    pub async fn evict_tier(&self, tier: usize, force: bool) -> Result<u64> {
        let t = &self.state.list[tier];
        if tier == self.state.durable {
            return Ok(0);
        }
        let Some(high) = t.high_watermark else {
            return Ok(0);
        };
        let low = t.low_watermark.unwrap_or(high * 8 / 10);
        let usage = self.meta.tier_usage(self.state.list.len())?;
        self.state.set_usage(tier, usage[tier].bytes);
        // Hysteresis: a tier that passed its high watermark is evicted until it is under
        // its low one, across passes (blocks become candidates once replicated).
        let evicting = &self.state.evicting[tier];
        if usage[tier].bytes >= high {
            evicting.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if !evicting.load(std::sync::atomic::Ordering::Relaxed) && !force {
            return Ok(0);
        }
        let target = if force {
            low.min(usage[tier].bytes)
        } else {
            low
        };
        let mut used = usage[tier].bytes;
        let now = now_ns();
        let open = self.blocks_in_use();
        let mut evicted = 0u64;
        let mut evicted_bytes = 0u64;
        while used > target {
            let mut cands =
                self.meta
                    .evict_candidates(tier as u32, self.state.durable as u32, 4096)?;
            if cands.is_empty() {
                tracing::warn!(tier = %t.name, used, high, "over the high watermark but nothing can be evicted (no durable copies yet, or pinned)");
                break;
            }
            let (rw, fw) = (
                self.state.policy.recency_weight,
                self.state.policy.frequency_weight,
            );
            cands.sort_by(|a, b| {
                let ka = (open.contains(&a.row.id), score(a, now, rw, fw));
                let kb = (open.contains(&b.row.id), score(b, now, rw, fw));
                ka.partial_cmp(&kb).unwrap_or(std::cmp::Ordering::Equal)
            });
            let before = evicted;
            for c in cands {
                if used <= target {
                    break;
                }
                // Re-check under the current row: the durable copy must still be recorded.
                let Some(row) = self.meta.get_block(&c.row.id)? else {
                    continue;
                };
                if row.tiers & (1 << self.state.durable) == 0 || row.tiers & (1 << tier) == 0 {
                    continue;
                }
                self.meta.set_block_tiers(&row.id, 0, 1 << tier)?;
                if let Err(e) = self.store.delete_from(&row.id, tier).await {
                    // The bit is cleared: the object is now unreferenced space on the tier.
                    tracing::warn!(block = %row.id, tier = %t.name, error = %e, "evicted block's object could not be deleted");
                }
                self.store.evict_cached(&row.id).await;
                used = used.saturating_sub(row.stored_size as u64);
                evicted += 1;
                evicted_bytes += row.stored_size as u64;
            }
            if evicted == before {
                break;
            }
        }
        // Writes may have landed meanwhile: the flag clears only on the recorded usage.
        let used = self.meta.tier_usage(self.state.list.len())?[tier].bytes;
        self.state.set_usage(tier, used);
        if used <= low {
            evicting.store(false, std::sync::atomic::Ordering::Relaxed);
        } else if evicted > 0 {
            self.state.evict_wake.notify_one();
        }
        if evicted > 0 {
            self.meta.bump_counter("blocks_evicted", evicted as i64)?;
            self.meta
                .bump_counter("evicted_bytes", evicted_bytes as i64)?;
            tracing::info!(tier = %t.name, evicted, used, "evicted blocks");
        }
        Ok(evicted)
    }

    /// Verifies up to `limit` blocks after `after` on every tier holding them; repairs
    /// what it can. Returns the last block id checked (None at the end of the table).
    pub async fn scrub_step(
        &self,
        after: Option<BlockId>,
        limit: usize,
    ) -> Result<Option<BlockId>> {
        let page = self.meta.blocks_page(after, limit)?;
        let last = page.last().map(|b| b.id);
        for b in page.into_iter().filter(|b| b.refcount > 0) {
            for tier in 0..self.state.list.len() {
                if b.tiers & (1 << tier) == 0 {
                    continue;
                }
                match self.store.verify_on(&b.id, b.codec, tier).await {
                    Ok(()) => tracing::trace!(block = %b.id, tier, "scrubbed"),
                    Err(e) => {
                        let kind = if e.is_not_found() {
                            fvfs_chunk::TierEventKind::Missing
                        } else if e.is_corrupt() {
                            fvfs_chunk::TierEventKind::Corrupt
                        } else {
                            fvfs_chunk::TierEventKind::Unreachable
                        };
                        if kind == fvfs_chunk::TierEventKind::Corrupt {
                            // Make a good copy available to the repair: fetch from the others.
                            let others = b.tiers & !(1 << tier);
                            if others != 0 {
                                let _ = self.store.evict_cached(&b.id).await;
                                let _ = self
                                    .store
                                    .fetch_masked(&b.id, b.codec, b.size, others)
                                    .await;
                            }
                        }
                        self.on_tier_event(fvfs_chunk::TierEvent {
                            id: b.id,
                            tier,
                            kind,
                            codec: b.codec,
                            size: b.size,
                        })
                        .await?;
                    }
                }
            }
        }
        Ok(last)
    }
}

/// Runs eviction for every tier with watermarks.
pub struct EvictorWorker {
    tiering: Weak<Tiering>,
}

impl EvictorWorker {
    pub fn new(tiering: &Arc<Tiering>) -> EvictorWorker {
        EvictorWorker {
            tiering: Arc::downgrade(tiering),
        }
    }
}

impl Worker for EvictorWorker {
    type Error = crate::VfsError;
    fn name(&self) -> String {
        "evictor".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            let Some(tiering) = self.tiering.upgrade() else {
                return Ok(WorkerState::Done);
            };
            for tier in 0..tiering.state.list.len() {
                tiering.evict_tier(tier, false).await?;
            }
            Ok(WorkerState::Idle)
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(tiering) = self.tiering.upgrade() else {
                return;
            };
            let every = tiering.state.policy.evict_interval;
            let _ = tokio::time::timeout(every, tiering.state.evict_wake.notified()).await;
        })
    }
}

/// Verifies blocks at `scrub_blocks_per_sec`, cycling through the table.
pub struct ScrubWorker {
    tiering: Weak<Tiering>,
    cursor: Option<BlockId>,
}

impl ScrubWorker {
    pub fn new(tiering: &Arc<Tiering>) -> ScrubWorker {
        ScrubWorker {
            tiering: Arc::downgrade(tiering),
            cursor: None,
        }
    }
}

const SCRUB_STEP: usize = 16;

impl Worker for ScrubWorker {
    type Error = crate::VfsError;
    fn name(&self) -> String {
        "scrubber".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            let Some(tiering) = self.tiering.upgrade() else {
                return Ok(WorkerState::Done);
            };
            if tiering.state.policy.scrub_blocks_per_sec <= 0.0 {
                return Ok(WorkerState::Done);
            }
            self.cursor = tiering.scrub_step(self.cursor, SCRUB_STEP).await?;
            tracing::trace!(cursor = ?self.cursor, "scrub step");
            Ok(WorkerState::Idle)
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(tiering) = self.tiering.upgrade() else {
                return;
            };
            let rate = tiering.state.policy.scrub_blocks_per_sec.max(0.001);
            tokio::time::sleep(Duration::from_secs_f64(SCRUB_STEP as f64 / rate)).await;
        })
    }
}
