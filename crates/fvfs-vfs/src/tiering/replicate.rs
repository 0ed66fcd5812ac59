//! The replicator: drains `wal_pending`, copying each queued block to its target tier.
//!
//! Invariants: the queue lives in the metadata (it survives `kill -9`; every start
//! replays it at once). A copy is recorded (`queue_done`: row removed, tier bit set in one
//! transaction) only after the object is on the target; a block already on the target is
//! not uploaded again; a copy is the source's stored bytes, verified, not re-encoded.
//! While writers are busy, copies go one at a time (`TierState::yield_to_writers`).
//! Failures back off per entry: 100 ms, 500 ms, 2 s, 10 s, 30 s, 1 min,
//! 2 min, then 5 min, each ±20% jitter. Batches start when `flush_bytes` are queued, when
//! the oldest entry has waited `flush_interval`, or on demand (`request_flush`).

use super::Tiering;
use crate::worker::{Worker, WorkerState};
use crate::{now_ns, Result};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use fvfs_meta::QueueEntry;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

const BACKOFF_MS: [u64; 8] = [100, 500, 2_000, 10_000, 30_000, 60_000, 120_000, 300_000];
const BATCH: usize = 256;

/// Delay before attempt `attempts + 1`, with ±20% jitter.
pub(crate) fn backoff(attempts: u32) -> Duration {
    let base = BACKOFF_MS[(attempts as usize).min(BACKOFF_MS.len() - 1)];
    let seed = now_ns() as u64 ^ (attempts as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let jitter = (seed % 401) as i64 - 200; // -20.0% .. +20.0% in tenths of a percent
    let ms = base as i64 + base as i64 * jitter / 1000;
    Duration::from_millis(ms.max(1) as u64)
}

/// What one replication attempt did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Copied(u64),
    AlreadyThere,
    Dropped,
}

impl Tiering {
    /// Asks the replicator to run now (`fvfsd flush`, API).
    pub fn request_flush(&self) {
        self.state.force_flush.store(true, Ordering::SeqCst);
        self.state.replicate_wake.notify_one();
    }

    async fn replicate_one(&self, e: &QueueEntry) -> Result<Outcome> {
        let tier = e.tier as usize;
        let Some(row) = e.row.filter(|r| r.refcount > 0) else {
            self.meta.queue_drop(e.id)?;
            return Ok(Outcome::Dropped);
        };
        if tier >= self.state.list.len() {
            self.meta.queue_drop(e.id)?;
            return Ok(Outcome::Dropped);
        }
        if row.tiers & (1 << tier) != 0 || self.store.exists_on(&row.id, tier).await? {
            self.meta.queue_done(e.id, &row.id, e.tier)?;
            return Ok(Outcome::AlreadyThere);
        }
        let _slot = self.state.copy_slots[tier]
            .acquire()
            .await
            .map_err(|e| crate::VfsError::Internal(e.to_string()))?;
        let _gate = self.state.yield_to_writers().await;
        let sources = row.tiers & !(1 << tier);
        let stored = self.stored_copy(&row, sources).await?;
        let n = stored.len() as u64;
        self.store.put_stored_to(&row.id, stored, tier).await?;
        self.meta.queue_done(e.id, &row.id, e.tier)?;
        self.state.add_usage(tier, n as i64);
        Ok(Outcome::Copied(n))
    }

    /// A block's stored bytes for a copy: as stored on the hottest source tier that has
    /// a good copy (verified by decoding; no re-encoding). When none has, the ordinary
    /// fetch, which reports what it found to the tier events (repairs, lost copies), and
    /// the plain bytes encoded again.
    async fn stored_copy(&self, row: &fvfs_meta::BlockRow, sources: u32) -> Result<Bytes> {
        for t in 0..self.state.list.len() {
            if sources & (1 << t) == 0 {
                continue;
            }
            match self.store.get_stored_from(&row.id, row.codec, t).await {
                Ok(b) => return Ok(b),
                Err(e) => {
                    tracing::debug!(block = %row.id, tier = t, error = %e, "no good copy to replicate from")
                }
            }
        }
        let plain = self
            .store
            .fetch_masked(&row.id, row.codec, row.size, sources)
            .await?;
        let codec = row.codec;
        tokio::task::spawn_blocking(move || super::events::reencode(&plain, codec))
            .await
            .map_err(|e| crate::VfsError::Internal(e.to_string()))
    }

    /// One replication pass over the entries due now. Returns (entries handled, failures).
    pub async fn replicate_pass(&self, limit: usize) -> Result<(usize, usize)> {
        let due = self.meta.queue_due(now_ns(), limit)?;
        let n = due.len();
        let conc = self.state.policy.replicate_concurrency.max(1) * self.state.list.len();
        let results: Vec<(QueueEntry, Result<Outcome>)> = futures::stream::iter(due)
            .map(|e| async move {
                let r = self.replicate_one(&e).await;
                (e, r)
            })
            .buffer_unordered(conc)
            .collect()
            .await;
        let mut failed = 0;
        for (e, r) in results {
            match r {
                Ok(_) => self.state.set_health(e.tier as usize, true, None),
                Err(err) => {
                    failed += 1;
                    let msg = err.to_string();
                    let next = now_ns() + backoff(e.attempts).as_nanos() as i64;
                    tracing::debug!(block = %e.block, tier = e.tier, attempts = e.attempts + 1, error = %msg, "replication failed");
                    self.state
                        .set_health(e.tier as usize, false, Some(msg.clone()));
                    self.meta.queue_retry(e.id, next, &msg)?;
                }
            }
        }
        if failed > 0 {
            tracing::warn!(
                failed,
                of = n,
                "replication attempts failed; retrying with backoff"
            );
        }
        Ok((n, failed))
    }

    /// Replicates until nothing is due (or `deadline` passes). Returns entries left.
    pub async fn replicate_all(&self, deadline: Duration) -> Result<u64> {
        let start = std::time::Instant::now();
        loop {
            let (n, failed) = self.replicate_pass(BATCH).await?;
            if n == 0 || (failed == n) || start.elapsed() > deadline {
                break;
            }
        }
        Ok(self.meta.queue_list(0)?.1)
    }
}

pub struct ReplicatorWorker {
    tiering: Weak<Tiering>,
    last_run: std::time::Instant,
    /// Entries are waiting on their backoff: run on every tick until the queue drains.
    retrying: bool,
}

impl ReplicatorWorker {
    pub fn new(tiering: &Arc<Tiering>) -> ReplicatorWorker {
        ReplicatorWorker {
            tiering: Arc::downgrade(tiering),
            last_run: std::time::Instant::now(),
            retrying: false,
        }
    }
}

impl Worker for ReplicatorWorker {
    type Error = crate::VfsError;
    fn name(&self) -> String {
        "replicator".into()
    }
    fn work(&mut self) -> BoxFuture<'_, Result<WorkerState>> {
        Box::pin(async move {
            let Some(tiering) = self.tiering.upgrade() else {
                return Ok(WorkerState::Done);
            };
            let t = &tiering.state;
            let forced = t.force_flush.swap(false, Ordering::SeqCst);
            let enough = t.queued_bytes.load(Ordering::Relaxed) >= t.policy.flush_bytes;
            let waited = self.last_run.elapsed() >= t.policy.flush_interval;
            if !(forced || enough || waited || self.retrying) {
                return Ok(WorkerState::Idle);
            }
            self.last_run = std::time::Instant::now();
            t.queued_bytes.store(0, Ordering::Relaxed);
            let (n, failed) = tiering.replicate_pass(BATCH).await?;
            self.retrying = failed > 0 || (self.retrying && tiering.meta.queue_list(0)?.1 > 0);
            if n == BATCH && failed < n {
                // More is due: keep going without waiting for the next trigger.
                t.force_flush.store(true, Ordering::SeqCst);
                return Ok(WorkerState::Busy);
            }
            Ok(WorkerState::Idle)
        })
    }
    fn wait_for_work(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(tiering) = self.tiering.upgrade() else {
                return;
            };
            // Wake every 100 ms: cheap, and keeps backoff delays and the interval honest.
            let tick = Duration::from_millis(100);
            let _ = tokio::time::timeout(tick, tiering.state.replicate_wake.notified()).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn backoff_schedule() {
        let within = |d: Duration, ms: u64| {
            let v = d.as_millis() as u64;
            v >= ms * 8 / 10 && v <= ms * 12 / 10
        };
        assert!(within(backoff(0), 100));
        assert!(within(backoff(1), 500));
        assert!(within(backoff(2), 2000));
        assert!(within(backoff(50), 300_000));
    }
}
