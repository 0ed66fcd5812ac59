//! What the engine reports about itself: the status model shared by `fvfsd status` and
//! `GET /v1/status`, the replication queue, per-file tier state, cache and metadata
//! counters, and the session registry. Faces read the engine through these methods and
//! never through the metadata or block store directly.
//!
//! Invariants: every figure is read from the metadata in one call per kind (no figure
//! is cached here), so a report is as current as the store; tier health is the engine's
//! tracked health (the tier-events worker and every fetch update it), not a new probe.

use crate::{Result, Vfs};
use fvfs_meta::{BlockRow, QueueEntry, Session, Stats, TierUsage};
use fvfs_types::{Ino, TierSettings};

pub use fvfs_chunk::CacheStats;

/// One tier in a status report.
#[derive(Clone, Debug)]
pub struct TierRow {
    pub settings: TierSettings,
    /// Bytes and blocks of live data the tier holds.
    pub usage: TierUsage,
    pub reachable: bool,
    pub last_error: Option<String>,
}

impl TierRow {
    /// The tier's role as shown to users.
    pub fn role(&self) -> &'static str {
        role(&self.settings)
    }
    /// The location with any credentials removed: the only form shown to users.
    pub fn location(&self) -> String {
        fvfs_tier::redact(&self.settings.location)
    }
}

/// A tier's role as shown to users.
pub fn role(t: &TierSettings) -> &'static str {
    if t.durable {
        "durable"
    } else if t.keep_copy {
        "keep-copy"
    } else {
        "cache"
    }
}

/// The status model: settings, tiers, queue, totals, counters and sessions.
#[derive(Clone, Debug)]
pub struct EngineStatus {
    pub name: String,
    pub uuid: String,
    pub format_version: u32,
    /// The metadata store, as shown to users (no secrets).
    pub metadata: String,
    pub tiers: Vec<TierRow>,
    /// Block copies waiting in the replication queue.
    pub queue_pending: u64,
    pub stats: Stats,
    pub counters: Vec<(String, i64)>,
    pub sessions: Vec<Session>,
    /// Metadata shipping of this process (None: this process ships none).
    pub meta_shipping: Option<crate::ShipStatus>,
}

impl EngineStatus {
    /// Referenced bytes over unique bytes (1.0 when nothing is stored).
    pub fn dedup_ratio(&self) -> f64 {
        if self.stats.unique_bytes > 0 {
            self.stats.referenced_bytes as f64 / self.stats.unique_bytes as f64
        } else {
            1.0
        }
    }
}

/// What a file's blocks are and where they are.
#[derive(Clone, Debug)]
pub struct FileTiers {
    pub blocks: Vec<BlockRow>,
    pub pinned: bool,
}

impl FileTiers {
    /// Tier bits every block has (0 for a file without blocks).
    pub fn on_every_block(&self) -> u32 {
        if self.blocks.is_empty() {
            0
        } else {
            self.blocks.iter().fold(u32::MAX, |m, b| m & b.tiers)
        }
    }
    /// Tier bits some block has.
    pub fn on_some_block(&self) -> u32 {
        self.blocks.iter().fold(0, |m, b| m | b.tiers)
    }
    pub fn stored_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.stored_size as u64).sum()
    }
}

impl Vfs {
    /// The status model of this engine.
    pub fn status(&self) -> Result<EngineStatus> {
        let s = &self.settings;
        let list = s.tier_list();
        let usage = self.meta.tier_usage(list.len())?;
        let health = self.tiering.state.health();
        let tiers = list
            .into_iter()
            .enumerate()
            .map(|(i, settings)| TierRow {
                settings,
                usage: usage[i],
                reachable: health[i].reachable,
                last_error: health[i].last_error.clone(),
            })
            .collect();
        let (_, queue_pending) = self.meta.queue_list(0)?;
        Ok(EngineStatus {
            name: s.name.clone(),
            uuid: s.uuid.to_string(),
            format_version: s.format_version,
            metadata: self.meta.describe(),
            tiers,
            queue_pending,
            stats: self.meta.stats()?,
            counters: self.meta.counters()?,
            sessions: self.meta.sessions()?,
            meta_shipping: self.shipper.get().map(|s| s.status()),
        })
    }

    /// Filesystem totals.
    pub fn stats(&self) -> Result<Stats> {
        Ok(self.meta.stats()?)
    }

    /// Bytes and blocks each tier holds, hottest first.
    pub fn tier_usage(&self) -> Result<Vec<TierUsage>> {
        Ok(self.meta.tier_usage(self.tiering.state.list.len())?)
    }

    /// The first `limit` entries of the replication queue (by due time) and the total.
    pub fn queue(&self, limit: usize) -> Result<(Vec<QueueEntry>, u64)> {
        Ok(self.meta.queue_list(limit)?)
    }

    /// Makes every queued replication due now; returns how many are queued.
    pub fn queue_due_now(&self) -> Result<u64> {
        Ok(self.meta.queue_make_due(crate::now_ns())?)
    }

    /// Metadata counters (repairs, lost copies, ...).
    pub fn counters(&self) -> Result<Vec<(String, i64)>> {
        Ok(self.meta.counters()?)
    }

    /// Hits and sizes of the block caches.
    pub fn cache_stats(&self) -> CacheStats {
        self.store.cache_stats()
    }

    /// The live sessions (processes serving this filesystem).
    pub fn sessions(&self) -> Result<Vec<Session>> {
        Ok(self.meta.sessions()?)
    }

    /// The blocks of regular file `ino` and where they are.
    pub fn file_blocks(&self, ino: Ino) -> Result<FileTiers> {
        Ok(FileTiers {
            blocks: self.meta.file_blocks(ino)?,
            pinned: self.meta.is_pinned(ino)?,
        })
    }
}
