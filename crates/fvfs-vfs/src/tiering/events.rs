//! What reads teach the tiers: promotion into the hot tier, repair of corrupt copies,
//! bookkeeping of lost copies, tier health, and the access statistics eviction ranks by.
//!
//! Invariants:
//! - A tier bit is set only after the object was written (and, for copies, verified);
//!   it is cleared when a read finds the object missing or corrupt and unrepairable, and
//!   a replica tier that lost its copy gets the block queued again.
//! - A promotion never evicts: it copies into the hot tier only when the block fits
//!   under its high watermark.

use super::Tiering;
use crate::worker::{Worker, WorkerState};
use crate::{now_ns, Result};
use bytes::Bytes;
use futures::future::BoxFuture;
use fvfs_chunk::{TierEvent, TierEventKind};
use fvfs_types::{BlockId, Codec};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Re-encodes verified plain bytes as `codec` (a copy for repair or promotion).
pub(crate) fn reencode(plain: &[u8], codec: Codec) -> Bytes {
    fvfs_chunk::encode_as(plain, codec)
}

impl Tiering {
    /// Acts on what a fetch saw: promotion, repair, lost copies, health.
    pub(crate) async fn on_tier_event(&self, ev: TierEvent) -> Result<()> {
        let bit = 1u32 << ev.tier;
        match ev.kind {
            TierEventKind::Served => {
                self.state.set_health(ev.tier, true, None);
                // Promote only into free room: never evict to make space for a promotion.
                if ev.tier != 0 && self.state.pick_strict(ev.size as u64) == 0 {
                    self.copy_to_tier(ev.id, ev.codec, ev.size, 0).await?;
                }
            }
            TierEventKind::Unreachable => {
                self.state
                    .set_health(ev.tier, false, Some("read failed".into()));
            }
            TierEventKind::Missing => {
                // A read through a chunk map loaded before an eviction: nothing was lost.
                match self.meta.get_block(&ev.id)? {
                    Some(row) if row.tiers & bit != 0 => {}
                    _ => return Ok(()),
                }
                // A writer may have put the copy back since that read (the music cache
                // rewrites what it refetched): as for a corrupt copy, the record is only
                // changed while no writer has the block pinned and the object is absent.
                let _exclusive = self.pins.lock.write().await;
                if self.pins.is_pinned(&ev.id)
                    || self.store.exists_on(&ev.id, ev.tier).await.unwrap_or(true)
                {
                    return Ok(());
                }
                tracing::warn!(block = %ev.id, tier = %self.state.list[ev.tier].name,
                    "a copy recorded on this tier is missing");
                self.meta.set_block_tiers(&ev.id, 0, bit)?;
                self.meta.bump_counter("copies_missing", 1)?;
                if self.state.replica_mask & bit != 0 {
                    self.meta.queue_add(&[ev.id], bit, now_ns())?;
                    self.state.replicate_wake.notify_one();
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
                // The copy may have been written again meanwhile by whoever still has
                // the bytes (the music cache refetches from its origin): it verifies now.
                let rewritten = !repaired
                    && self
                        .store
                        .verify_on(&ev.id, ev.codec, ev.tier)
                        .await
                        .is_ok();
                if repaired {
                    tracing::warn!(block = %ev.id, tier = %self.state.list[ev.tier].name,
                        "corrupt copy repaired from another tier");
                    self.meta.bump_counter("corruptions_repaired", 1)?;
                } else if rewritten {
                    tracing::info!(block = %ev.id, tier = %self.state.list[ev.tier].name,
                        "corrupt copy was written again meanwhile: it verifies now");
                } else {
                    // A writer rewriting this block (the music cache, after a refetch)
                    // pins it first, and pinning waits while this lock is held: the copy
                    // is dropped only if nobody is writing it and it still fails, so a
                    // copy written between the check above and the delete survives.
                    let _exclusive = self.pins.lock.write().await;
                    let still_bad = !self.pins.is_pinned(&ev.id)
                        && self
                            .store
                            .verify_on(&ev.id, ev.codec, ev.tier)
                            .await
                            .is_err();
                    if still_bad {
                        tracing::error!(block = %ev.id, tier = %self.state.list[ev.tier].name,
                            "corrupt copy could not be repaired: dropped from the tier");
                        let _ = self.store.delete_from(&ev.id, ev.tier).await;
                        self.meta.set_block_tiers(&ev.id, 0, bit)?;
                        self.meta.bump_counter("corruptions_dropped", 1)?;
                        if self.state.replica_mask & bit != 0 {
                            self.meta.queue_add(&[ev.id], bit, now_ns())?;
                        }
                    } else {
                        tracing::info!(block = %ev.id, tier = %self.state.list[ev.tier].name,
                            "corrupt copy is being written again: left to its writer");
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
        self.state.add_usage(tier, len);
        if self.state.over_high(tier) {
            self.state.evict_wake.notify_one();
        }
        Ok(())
    }

    /// Probes the tiers marked down; a tier that answers is used again.
    pub(crate) async fn probe_down_tiers(&self) {
        let health = self.state.health();
        for (i, h) in health.iter().enumerate() {
            if h.reachable {
                continue;
            }
            match self.store.tiers()[i].check().await {
                Ok(()) => self.state.set_health(i, true, None),
                Err(e) => self.state.set_health(i, false, Some(e.to_string())),
            }
        }
    }

    /// Writes the batched access statistics.
    pub(crate) fn flush_access(&self) -> Result<()> {
        let batch = self.state.take_access();
        if !batch.is_empty() {
            self.meta.record_access(&batch)?;
        }
        Ok(())
    }
}

/// Consumes the block store's tier events and flushes access statistics every 5 s.
pub struct TierEventsWorker {
    tiering: Weak<Tiering>,
    rx: UnboundedReceiver<TierEvent>,
    pending: Option<TierEvent>,
}

impl TierEventsWorker {
    pub fn new(tiering: &Arc<Tiering>) -> TierEventsWorker {
        TierEventsWorker {
            rx: tiering.store.subscribe(),
            tiering: Arc::downgrade(tiering),
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
            let Some(tiering) = self.tiering.upgrade() else {
                return Ok(WorkerState::Done);
            };
            if let Some(ev) = self.pending.take() {
                tiering.on_tier_event(ev).await?;
            }
            while let Ok(ev) = self.rx.try_recv() {
                tiering.on_tier_event(ev).await?;
            }
            tiering.flush_access()?;
            tiering.probe_down_tiers().await;
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
